//! hangar-sys: the only crate of hangar that contains `unsafe`.
//!
//! Each raw call is wrapped once here, with the invariants that make it sound written
//! beside it, and returns a typed error. Everything that `nix` already wraps safely is
//! used from `nix` directly by the other crates; this crate holds the rest: a fork that
//! enters new namespaces, the capability bounding set, seccomp without no_new_privs,
//! closing inherited descriptors, pidfds, the new mount API (open_tree, move_mount,
//! mount_setattr, fsopen/fsmount, statx's mount-root bit), and a few terminal,
//! interface, loop device and filesystem ioctls (dedupe, extent maps, freeze).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("{call} failed")]
    Call {
        call: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SysError {
    /// The kernel's error number, to tell one refusal from another.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysError::Call { source, .. } => source.raw_os_error(),
        }
    }

    /// The error of the call, for a message that names what was being done instead.
    pub fn into_io(self) -> io::Error {
        match self {
            SysError::Call { source, .. } => source,
        }
    }
}

fn last(call: &'static str) -> SysError {
    SysError::Call {
        call,
        source: io::Error::last_os_error(),
    }
}

/// Which side of a fork we are on.
pub enum Forked {
    Parent(i32),
    Child,
}

/// Fork into new namespaces: `clone(2)` with `flags` (CLONE_NEW*) and no new stack, so the
/// child continues like after `fork(2)` on a copy of the caller's stack.
///
/// Callers must be single-threaded (the monitor and the CLI are when they call this);
/// like after `fork`, the child should only set itself up and `exec` or `_exit`.
pub fn fork_into(flags: libc::c_int) -> Result<Forked, SysError> {
    // SAFETY: a clone without CLONE_VM and with a NULL stack duplicates the address space
    // exactly as fork(2) does; the child resumes here with its own copy of this stack.
    // The caller is single-threaded, so no lock held by another thread can be copied
    // in a locked state. No pointers are passed besides NULLs.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match r {
        -1 => Err(last("clone")),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// The kernel's `struct clone_args` for `clone3(2)`, up to `cgroup` (version 2, Linux
/// 5.7). The libc crate defines it only for musl.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`fork_into`], with the child born in the cgroup2 directory `cgroup`
/// (`CLONE_INTO_CGROUP`): no process is moved between cgroups afterwards, and a move is
/// what costs a start an RCU grace period (the cgroup layer's global threadgroup lock
/// switching to its slow path). Fails with ENOSYS, E2BIG or EINVAL where the kernel has
/// no `clone3` or no `CLONE_INTO_CGROUP`: callers fall back to [`fork_into`] and a move.
pub fn fork_into_cgroup(flags: libc::c_int, cgroup: BorrowedFd) -> Result<Forked, SysError> {
    let args = CloneArgs {
        // The namespace flags are positive c_ints: no sign extension.
        flags: u64::from(flags.unsigned_abs()) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::try_from(cgroup.as_raw_fd()).unwrap_or(u64::MAX),
        ..CloneArgs::default()
    };
    // SAFETY: as for `fork_into`: without CLONE_VM and with a zero stack, clone3
    // duplicates the address space as fork(2) does and the child resumes here on its
    // own copy of this stack; the caller is single-threaded. `args` is a valid
    // clone_args of the size passed, alive for the call; its pointer fields are zero.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        -1 => Err(last("clone3")),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Plain `fork(2)`, with the same contract as `fork_into`.
pub fn fork() -> Result<Forked, SysError> {
    fork_into(0)
}

/// Leave the child with nothing but exit: `_exit(2)` skips destructors and atexit
/// handlers that belong to the parent's copy of the process.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// Drop `cap` (a CAP_* number) from the bounding set. Missing capabilities (e.g. one this
/// kernel does not know) are not an error.
pub fn capbset_drop(cap: u32) -> Result<(), SysError> {
    // SAFETY: PR_CAPBSET_DROP takes an integer argument and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    if r == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(last("prctl(PR_CAPBSET_DROP)"));
    }
    Ok(())
}

/// Highest capability number this kernel knows.
pub fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Install a classic-BPF seccomp filter with `seccomp(SECCOMP_SET_MODE_FILTER)`.
///
/// Without no_new_privs: the caller holds CAP_SYS_ADMIN in its user namespace (guest root
/// does), and leaving no_new_privs unset keeps setuid programs inside the guest working.
pub fn seccomp_install(filter: &[libc::sock_filter]) -> Result<(), SysError> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies the
    // program before returning and keeps no pointer to our memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if r == -1 {
        Err(last("seccomp"))
    } else {
        Ok(())
    }
}

/// Close every descriptor from `first` up, so nothing of the host leaks into a guest.
pub fn close_from(first: u32) -> Result<(), SysError> {
    // SAFETY: close_range only closes descriptors; callers own every fd >= first (they
    // are about to exec, or have moved what they keep below `first`).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    if r == -1 {
        Err(last("close_range"))
    } else {
        Ok(())
    }
}

/// Open the peer (slave) side of a pty master without a path lookup (TIOCGPTPEER), so it
/// comes from the master's own devpts instance whatever mount namespace we are in.
pub fn pty_peer(master: BorrowedFd<'_>) -> Result<OwnedFd, SysError> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as an integer and returns a new fd.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd < 0 {
        return Err(last("ioctl(TIOCGPTPEER)"));
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Make `fd` (a terminal) the controlling terminal of the calling session leader.
pub fn set_controlling_tty(fd: RawFd) -> Result<(), SysError> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    let r = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if r == -1 {
        Err(last("ioctl(TIOCSCTTY)"))
    } else {
        Ok(())
    }
}

/// Terminal window size (rows, cols) of `fd`, if it is a terminal.
pub fn window_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass, which lives across the call.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

/// `LOOP_SET_CAPACITY` (linux/loop.h): a loop device takes its backing file's size anew.
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
/// `FIFREEZE` and `FITHAW` (linux/fs.h: `_IOWR('X', 119, int)`, `_IOWR('X', 120, int)`).
const FIFREEZE: libc::c_ulong =
    nix::request_code_readwrite!(b'X', 119, std::mem::size_of::<libc::c_int>()) as libc::c_ulong;
const FITHAW: libc::c_ulong =
    nix::request_code_readwrite!(b'X', 120, std::mem::size_of::<libc::c_int>()) as libc::c_ulong;

/// Make loop device `dev` (open) take the size its backing file has now, as
/// `losetup -c` does: after the file grew, the device (and so a filesystem's online
/// resize) sees the new room.
pub fn loop_set_capacity(dev: BorrowedFd<'_>) -> Result<(), SysError> {
    // SAFETY: LOOP_SET_CAPACITY takes no argument (0) and touches no memory of ours.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_CAPACITY as _, 0) };
    if r == -1 {
        Err(last("ioctl(LOOP_SET_CAPACITY)"))
    } else {
        Ok(())
    }
}

/// Freeze the filesystem of `dir` (an open file or directory on it): everything cached
/// is written out, the journal emptied, and every write waits until [`thaw_fs`]. Its
/// device then holds a clean filesystem that can be copied as it is.
pub fn freeze_fs(dir: BorrowedFd<'_>) -> Result<(), SysError> {
    // SAFETY: FIFREEZE takes an integer argument (ignored, 0) and touches no memory of ours.
    let r = unsafe { libc::ioctl(dir.as_raw_fd(), FIFREEZE as _, 0) };
    if r == -1 {
        Err(last("ioctl(FIFREEZE)"))
    } else {
        Ok(())
    }
}

/// Thaw the filesystem of `dir`, frozen by [`freeze_fs`].
pub fn thaw_fs(dir: BorrowedFd<'_>) -> Result<(), SysError> {
    // SAFETY: FITHAW takes an integer argument (ignored, 0) and touches no memory of ours.
    let r = unsafe { libc::ioctl(dir.as_raw_fd(), FITHAW as _, 0) };
    if r == -1 {
        Err(last("ioctl(FITHAW)"))
    } else {
        Ok(())
    }
}

/// Set the window size of terminal `fd`.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> Result<(), SysError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the struct we pass.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws as *const libc::winsize) };
    if r == -1 {
        Err(last("ioctl(TIOCSWINSZ)"))
    } else {
        Ok(())
    }
}

/// Bring the loopback interface of the current network namespace up.
pub fn loopback_up() -> Result<(), SysError> {
    // SAFETY: socket() has no memory preconditions; we take ownership of the new fd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last("socket"));
    }
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags of the ifreq we own and pass by pointer.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut req as *mut libc::ifreq,
        )
    } == -1
    {
        return Err(last("ioctl(SIOCGIFFLAGS)"));
    }
    // SAFETY: the kernel initialised ifru_flags in the call above; writing a union field is safe.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &req as *const libc::ifreq,
        )
    } == -1
    {
        return Err(last("ioctl(SIOCSIFFLAGS)"));
    }
    Ok(())
}

/// Block `signals` in the calling thread (used before a signalfd takes them over).
pub fn block_signals(signals: &[libc::c_int]) -> Result<(), SysError> {
    let mut set = nix::sys::signal::SigSet::empty();
    for &s in signals {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(s) {
            set.add(sig);
        }
    }
    set.thread_block().map_err(|e| SysError::Call {
        call: "sigprocmask",
        source: e.into(),
    })
}

/// Reset every signal disposition to default and unblock all signals, as a freshly
/// exec'd init expects (a forked child inherits the monitor's mask).
pub fn reset_signals() {
    let _ = nix::sys::signal::SigSet::all().thread_unblock();
    for s in 1..65 {
        if s == libc::SIGKILL || s == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL as a handler has no preconditions; setting it for an invalid
        // number just fails with EINVAL, which we ignore.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
}

/// Close every descriptor from 3 up except `keep`.
pub fn close_all_except(keep: RawFd) -> Result<(), SysError> {
    let keep = keep as u32;
    for (first, last_fd) in [(3, keep.saturating_sub(1)), (keep + 1, u32::MAX)] {
        if first > last_fd || keep < 3 && first == 3 && last_fd < 3 {
            continue;
        }
        // SAFETY: close_range only closes descriptors; the caller is about to exec and
        // owns all of them except `keep`, which stays open.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first, last_fd, 0) };
        if r == -1 {
            return Err(last("close_range"));
        }
    }
    Ok(())
}

/// Unlock the peer of pty master `master` (what unlockpt(3) does).
pub fn pty_unlock(master: BorrowedFd<'_>) -> Result<(), SysError> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer we pass, which lives across the call.
    let r = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSPTLCK,
            &unlock as *const libc::c_int,
        )
    };
    if r == -1 {
        Err(last("ioctl(TIOCSPTLCK)"))
    } else {
        Ok(())
    }
}

/// Take ownership of descriptor `fd` handed to us by number (a pipe inherited from the
/// parent and named on the command line, or descriptors received with SCM_RIGHTS),
/// after checking it is open.
///
/// Call it once per such descriptor, before anything else in the process could have
/// taken ownership of that number.
pub fn own_fd(fd: RawFd) -> Result<OwnedFd, SysError> {
    // SAFETY: F_GETFD only queries the descriptor flags.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(SysError::Call {
            call: "fcntl(F_GETFD)",
            source: io::Error::from_raw_os_error(libc::EBADF),
        });
    }
    // Whatever we start later must not inherit it (a reader waits for its EOF).
    // SAFETY: F_SETFD only sets the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the descriptor is open (checked above) and, per this function's contract,
    // owned by nothing else in this process, so wrapping it transfers sole ownership.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Write `data` to `path` atomically: a temporary file in the same directory, renamed
/// over the target, so readers see the old or the new content, never a mix.
/// `durable` also fsyncs file and directory (configs); runtime state skips that, since
/// it means nothing after a host reboot and start/stop latency matters.
pub fn write_atomic(path: &std::path::Path, data: &[u8], durable: bool) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write out directory `dir`'s entries: a file created, renamed or removed in it is
/// durable only once its directory is.
pub fn sync_dir(dir: &std::path::Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Set resource limit `resource` (a RLIMIT_* number) of process `pid` (0: ourselves);
/// `None` means unlimited.
pub fn prlimit(
    pid: i32,
    resource: i32,
    soft: Option<u64>,
    hard: Option<u64>,
) -> Result<(), SysError> {
    let lim = libc::rlimit64 {
        rlim_cur: soft.unwrap_or(libc::RLIM64_INFINITY),
        rlim_max: hard.unwrap_or(libc::RLIM64_INFINITY),
    };
    // SAFETY: prlimit64 reads the struct we pass (alive across the call) and writes
    // nothing, since the old-limit pointer is NULL.
    let r = unsafe {
        libc::prlimit64(
            pid,
            resource as libc::__rlimit_resource_t,
            &lim,
            std::ptr::null_mut(),
        )
    };
    if r == -1 {
        Err(last("prlimit"))
    } else {
        Ok(())
    }
}

/// A detached copy of the mount at `path` (open_tree with OPEN_TREE_CLONE), which
/// [`move_mount_to`] can attach in another mount namespace.
pub fn open_tree_clone(path: &std::path::Path) -> Result<OwnedFd, SysError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| SysError::Call {
        call: "open_tree",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; the kernel returns a
    // new descriptor or -1 and touches no other memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(last("open_tree"));
    }
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attach the detached mount `tree` (from [`open_tree_clone`]) at `target` in the
/// caller's current mount namespace.
pub fn move_mount_to(tree: BorrowedFd<'_>, target: &std::path::Path) -> Result<(), SysError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(target.as_os_str().as_bytes()).map_err(|_| SysError::Call {
        call: "move_mount",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let empty = c"";
    // SAFETY: both strings are NUL-terminated and outlive the call; MOVE_MOUNT_F_EMPTY_PATH
    // makes the kernel use `tree` itself as the source.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r == -1 {
        Err(last("move_mount"))
    } else {
        Ok(())
    }
}

/// A pidfd for process `pid`: it keeps naming that process even after the pid is
/// reused, and becomes readable (poll) when the process exits. The caller checks that
/// `pid` is still the process it means *after* this call (for instance its start
/// time); from then on the descriptor cannot be confused with a later process.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, SysError> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(last("pidfd_open"));
    }
    // SAFETY: the kernel just returned this descriptor (close-on-exec by default);
    // nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends signal number `sig` to process `pid`. Unlike nix's `kill`, any number the
/// kernel knows is accepted, real-time signals included: systemd halts on
/// SIGRTMIN+3, which nix's `Signal` enum cannot name.
pub fn kill_signal(pid: i32, sig: i32) -> Result<(), SysError> {
    if pid <= 0 {
        // 0 and negative pids mean process groups, never one guest's init.
        return Err(SysError::Call {
            call: "kill",
            source: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    // SAFETY: kill takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(last("kill"));
    }
    Ok(())
}

/// Sends signal number `sig` to the process a pidfd names: unlike a pid, a pidfd can
/// never reach a later process that reused the number (an adopted guest's init is not
/// our child, so nothing holds its pid for us).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), SysError> {
    // SAFETY: pidfd_send_signal takes a descriptor we borrow, a signal number, a null
    // siginfo (the kernel fills one in, as kill does) and flags 0; no memory of ours
    // is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(last("pidfd_send_signal"));
    }
    Ok(())
}

/// A new filesystem of type `fstype`, created by this process and returned as a
/// detached mount (fsopen, `FSCONFIG_CMD_CREATE`, fsmount) with mount attributes
/// `attrs` (`libc::MOUNT_ATTR_*`), to be attached with [`move_mount_to`], possibly by
/// another process in another mount namespace. The superblock belongs to the
/// caller's namespaces: proc to its pid namespace, sysfs to its network namespace,
/// mqueue to its ipc namespace.
pub fn fs_mount(fstype: &std::ffi::CStr, attrs: u64) -> Result<OwnedFd, SysError> {
    // SAFETY: `fstype` is NUL-terminated and outlives the call; the kernel returns a
    // new descriptor or -1.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(last("fsopen"));
    }
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux; null pointers are what
    // the kernel expects for them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(last("fsconfig"));
    }
    // SAFETY: fsmount takes the filesystem descriptor we own and two integers; it
    // returns a new descriptor or -1.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        )
    };
    if m < 0 {
        return Err(last("fsmount"));
    }
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
}

/// A detached copy of the mount at directory `dir` (open_tree with OPEN_TREE_CLONE on
/// the descriptor itself, not a path): the directory the caller opened and checked is
/// the one copied, whatever happened to the path since. Not recursive: mounts below
/// `dir` are not part of the copy.
pub fn open_tree_clone_fd(dir: BorrowedFd<'_>) -> Result<OwnedFd, SysError> {
    let flags = libc::OPEN_TREE_CLONE
        | libc::OPEN_TREE_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: the path is an empty NUL-terminated string that outlives the call; with
    // AT_EMPTY_PATH the kernel uses `dir` itself. It returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(last("open_tree"));
    }
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Set mount attributes `set` (`libc::MOUNT_ATTR_*`) on the mount `tree` (a detached
/// mount from [`open_tree_clone_fd`]). With `userns`, the mount is idmapped by that
/// user namespace's map (`MOUNT_ATTR_IDMAP` is added): an id `n` on disk is seen as the
/// id `n` maps to, and the reverse for what is written.
pub fn mount_setattr(
    tree: BorrowedFd<'_>,
    set: u64,
    userns: Option<BorrowedFd<'_>>,
) -> Result<(), SysError> {
    setattr(tree, set, userns, 0)
}

/// Set mount attributes `set` (`libc::MOUNT_ATTR_*`) on the mount whose root `dir`
/// is and on every mount below it; the others stay as they are (a remount would have
/// to restate them all, and may not clear the ones locked by a less privileged
/// namespace).
pub fn mount_setattr_tree(dir: BorrowedFd<'_>, set: u64) -> Result<(), SysError> {
    setattr(dir, set, None, libc::AT_RECURSIVE as libc::c_uint)
}

fn setattr(
    tree: BorrowedFd<'_>,
    set: u64,
    userns: Option<BorrowedFd<'_>>,
    flags: libc::c_uint,
) -> Result<(), SysError> {
    let attr = libc::mount_attr {
        attr_set: set | userns.map_or(0, |_| libc::MOUNT_ATTR_IDMAP),
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
    };
    // SAFETY: the path is an empty NUL-terminated string (AT_EMPTY_PATH: `tree`
    // itself); `attr` is a valid mount_attr of the size passed, alive across the call,
    // which the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r == -1 {
        Err(last("mount_setattr"))
    } else {
        Ok(())
    }
}

/// Attach the detached mount `tree` on the directory `target` (a descriptor, O_PATH
/// will do): no path is looked up, so nothing can redirect the mount elsewhere.
pub fn move_mount_fd(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), SysError> {
    // SAFETY: both paths are empty NUL-terminated strings that outlive the call; the
    // two EMPTY_PATH flags make the kernel use the descriptors themselves.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r == -1 {
        Err(last("move_mount"))
    } else {
        Ok(())
    }
}

/// Whether the file `fd` names is the root of a mount (statx's
/// `STATX_ATTR_MOUNT_ROOT`, Linux 5.8).
pub fn is_mount_root(fd: BorrowedFd<'_>) -> Result<bool, SysError> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is an empty NUL-terminated string (AT_EMPTY_PATH: `fd` itself);
    // the kernel writes one statx into `st`, which lives across the call.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            0,
            &mut st,
        )
    };
    if r == -1 {
        return Err(last("statx"));
    }
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    Ok(st.stx_attributes_mask & bit != 0 && st.stx_attributes & bit != 0)
}

/// What [`dedupe_range`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedupe {
    /// The two ranges held the same bytes and now share their extents: this many bytes.
    Same(u64),
    /// Their bytes differ: nothing was shared.
    Differs,
}

/// The kernel's `struct file_dedupe_range` followed by one `file_dedupe_range_info`
/// (linux/fs.h; not in the libc crate).
#[repr(C)]
struct DedupeRange {
    src_offset: u64,
    src_length: u64,
    dest_count: u16,
    reserved1: u16,
    reserved2: u32,
    dest_fd: i64,
    dest_offset: u64,
    bytes_deduped: u64,
    status: i32,
    reserved: u32,
}

/// `_IOWR(0x94, 54, struct file_dedupe_range)` (its size without the info array: 24).
const FIDEDUPERANGE: libc::c_ulong = 0xC018_9436;

/// Have `len` bytes of `dest` at `dest_offset` share the extents of `src` at
/// `src_offset` if, and only if, the kernel finds the bytes identical
/// (`FIDEDUPERANGE`; it locks and compares both ranges itself, so a concurrent write
/// can only make it answer `Differs`). Filesystems with shared extents only (btrfs,
/// xfs with reflink): others fail with EOPNOTSUPP or EINVAL. The filesystem may
/// shorten a long range (btrfs: 16 MiB a call); the caller loops on what it got.
pub fn dedupe_range(
    src: BorrowedFd<'_>,
    src_offset: u64,
    len: u64,
    dest: BorrowedFd<'_>,
    dest_offset: u64,
) -> Result<Dedupe, SysError> {
    let mut arg = DedupeRange {
        src_offset,
        src_length: len,
        dest_count: 1,
        reserved1: 0,
        reserved2: 0,
        dest_fd: i64::from(dest.as_raw_fd()),
        dest_offset,
        bytes_deduped: 0,
        status: 0,
        reserved: 0,
    };
    // SAFETY: `arg` is the kernel's struct with room for the one info entry that
    // dest_count announces; it lives across the call, which reads and writes only it.
    let r = unsafe { libc::ioctl(src.as_raw_fd(), FIDEDUPERANGE as _, &mut arg) };
    if r == -1 {
        return Err(last("ioctl FIDEDUPERANGE"));
    }
    match arg.status {
        0 => Ok(Dedupe::Same(arg.bytes_deduped)),
        1 => Ok(Dedupe::Differs),
        e => Err(SysError::Call {
            call: "ioctl FIDEDUPERANGE",
            source: io::Error::from_raw_os_error(-e),
        }),
    }
}

/// The kernel's `struct fiemap` header (linux/fiemap.h).
#[repr(C)]
struct FiemapHeader {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
}

/// The kernel's `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_FLAG_SYNC: u32 = 1;
const FIEMAP_MAX: usize = 64;

/// The first extents of the file `fd` (at most 64, after writing out what is cached):
/// `(logical offset, physical address, length)` each. Two files whose lists are equal
/// share their data already.
pub fn extents(fd: BorrowedFd<'_>) -> Result<Vec<(u64, u64, u64)>, SysError> {
    #[repr(C)]
    struct Request {
        header: FiemapHeader,
        extents: [FiemapExtent; FIEMAP_MAX],
    }
    let empty = FiemapExtent {
        logical: 0,
        physical: 0,
        length: 0,
        reserved64: [0; 2],
        flags: 0,
        reserved: [0; 3],
    };
    let mut req = Request {
        header: FiemapHeader {
            start: 0,
            length: u64::MAX,
            flags: FIEMAP_FLAG_SYNC,
            mapped_extents: 0,
            extent_count: FIEMAP_MAX as u32,
            reserved: 0,
        },
        extents: [empty; FIEMAP_MAX],
    };
    // SAFETY: `req` is the kernel's header followed by the `extent_count` entries it
    // announces; it lives across the call, which writes only within it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FIEMAP as _, &mut req) };
    if r == -1 {
        return Err(last("ioctl FS_IOC_FIEMAP"));
    }
    let n = (req.header.mapped_extents as usize).min(FIEMAP_MAX);
    Ok(req.extents[..n]
        .iter()
        .map(|e| (e.logical, e.physical, e.length))
        .collect())
}
#[cfg(test)]
mod tests {
    #[test]
    fn filesystem_freeze_requests_are_linuxs() {
        // linux/fs.h on x86-64 and arm64: _IOWR('X', 119, int), _IOWR('X', 120, int).
        assert_eq!(super::FIFREEZE, 0xC004_5877);
        assert_eq!(super::FITHAW, 0xC004_5878);
    }
}
