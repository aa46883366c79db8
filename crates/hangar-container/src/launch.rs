//! Start a guest's init: the monitor calls [`launch`] and gets back the host pid of init.
//!
//! An unprivileged guest is made in two steps, so that the kernel locks every mount
//! hangar makes for it (masks over /proc files, read-only /proc/sys, the hidden
//! /sys/firmware, lxcfs's files): the kernel locks the mounts of a mount namespace
//! copied into a *less privileged* user namespace, so that nobody there can unmount
//! them or change their flags, not even from a new mount namespace of their own.
//!
//! 1. The monitor forks the **outer** process into a new user namespace (the guest's id
//!    range) and mount namespace, writes its id maps and lets it go. The outer process
//!    becomes root of that namespace and forks init-to-be.
//! 2. **Init-to-be** is born in a user namespace nested in the outer one (identity
//!    mapped: the same ids), with new pid, uts, ipc and network namespaces, all owned by
//!    that inner user namespace, so guest root has every right over them. A short
//!    helper of its makes the filesystems tied to those namespaces (proc, sysfs, mqueue;
//!    `mounts::Superblocks`) in a scratch mount namespace and passes them to the outer
//!    process, which builds the whole mount tree (`mounts::setup`) and pivots into the
//!    root filesystem, then exits.
//! 3. Init-to-be (now the monitor's child: the monitor is its subreaper) unshares its
//!    mount namespace: a copy of the outer one, into its less privileged user namespace,
//!    so every mount arrives locked. It unshares its cgroup namespace, sets the
//!    hostname, waits until the monitor has plugged its NICs, takes the console, drops
//!    capabilities, closes every other descriptor, installs seccomp and execs init.
//!
//! A privileged guest (no user namespace) is one process: forked into all its new
//! namespaces at once, it makes its own superblocks, builds its mounts and execs init.
//! Any failure before exec is written to an error pipe, which exec closes (O_CLOEXEC):
//! EOF there means init runs. The console is a pty of the guest's own devpts; its two
//! ends go to the monitor over a socket pair (SCM_RIGHTS).

use crate::cgroup_join::Joins;
use crate::mounts::Superblocks;
use crate::{ContainerError, caps, mounts, procstat, seccomp};
use hangar_model::LaunchSpec;
use hangar_sys::Forked;
use nix::sched::CloneFlags;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A guest's init, running.
pub struct Launched {
    /// Host pid of init.
    pub pid: i32,
    /// The console pty's master: what init and its children write to /dev/console.
    pub console: OwnedFd,
    /// The console pty's peer, kept open so the console survives its users closing it.
    pub console_peer: OwnedFd,
    /// Init's `cminflt` just before it was exec'd ([`procstat::REAPED_CHILDREN_FAULTS`]):
    /// above it, init has forked (and reaped) a child of its own; at it, only the
    /// launch's helpers ran.
    pub reaped_faults_at_exec: u64,
}

/// A pipe's two ends, close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), ContainerError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| ContainerError::sys("pipe", e))
}

/// Wait for one byte on `fd`; false at EOF (the writer died or gave up).
fn wait_byte(fd: OwnedFd) -> bool {
    let mut b = [0u8; 1];
    std::fs::File::from(fd).read(&mut b).unwrap_or(0) == 1
}

fn send_byte(fd: OwnedFd, what: &str) -> Result<(), ContainerError> {
    std::fs::File::from(fd)
        .write_all(b"g")
        .map_err(|e| ContainerError::sys(what.to_string(), e))
}

/// What the child processes of a launch hold: where they report.
struct ToMonitor<'a> {
    /// Console ends and init's reaped-faults count go here.
    sock: &'a UnixStream,
    /// The error pipe's write end (close-on-exec), kept open across the steps.
    err_fd: i32,
}

/// What the monitor makes before the fork for init-to-be to apply in its last steps
/// ([`inside`]): the seccomp filter, and the shared directories' mounts.
struct ForInit<'a> {
    filter: Option<&'a [libc::sock_filter]>,
    dirs: &'a [crate::shared::Prepared],
}

/// Fork the guest's init from `spec`. `before_init` runs on the host side once init-to-be
/// exists (with its namespaces, id maps and cgroup) and before it goes on: the monitor
/// plugs the guest's NICs into its network namespace there.
pub fn launch(
    spec: &LaunchSpec,
    before_init: &dyn Fn(i32) -> Result<(), String>,
) -> Result<Launched, ContainerError> {
    let (fds_parent, fds_child) =
        std::os::unix::net::UnixStream::pair().map_err(|e| ContainerError::sys("socketpair", e))?;
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Unprivileged: the outer process says init-to-be's pid here, and init-to-be waits
    // on `plugged` until its NICs are in.
    let (pid_r, pid_w) = pipe()?;
    let (plugged_r, plugged_w) = pipe()?;
    let filter = if spec.seccomp {
        Some(seccomp::default_filter()?)
    } else {
        None
    };
    let userns = spec.id_base.is_some();
    // Opened and mounted here, on the host, where the kernel lets a mount be idmapped;
    // init-to-be attaches them in its own mount namespace (see `inside`).
    let dirs = crate::shared::prepare(&spec.dirs, spec.id_base, spec.id_count)?;
    let flags = if userns {
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS
    } else {
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNET
    };
    let joins = Joins::open(&spec.cgroup_dirs)?;
    let (forked, born_in_v2) = joins.fork(flags.bits())?;
    match forked {
        Forked::Child => {
            drop((go_w, err_r, fds_parent, pid_r, plugged_w));
            if let Err(e) = joins.join_self() {
                let mut w = std::fs::File::from(err_w);
                let _ = w.write_all(crate::error_chain(&e).as_bytes());
                hangar_sys::exit_now(1);
            }
            if !wait_byte(go_r) {
                hangar_sys::exit_now(1);
            }
            let to = ToMonitor {
                sock: &fds_child,
                err_fd: err_w.as_raw_fd(),
            };
            let last = ForInit {
                filter: filter.as_deref(),
                dirs: &dirs,
            };
            let e = if userns {
                match outer(spec, &to, pid_w, plugged_r, &last) {
                    Ok(never) => match never {},
                    Err(e) => e,
                }
            } else {
                drop((pid_w, plugged_r));
                match privileged(spec, &to, &last) {
                    Ok(never) => match never {},
                    Err(e) => e,
                }
            };
            let mut w = std::fs::File::from(err_w);
            let _ = w.write_all(crate::error_chain(&e).as_bytes());
            hangar_sys::exit_now(1)
        }
        Forked::Parent(first) => {
            drop((go_r, err_w, fds_child, pid_w, plugged_r, dirs));
            let v2_move = joins
                .v2_dir()
                .filter(|_| !born_in_v2)
                .map(Path::to_path_buf);
            drop(joins);
            let kill = |pid: i32| {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            };
            let reap = |pid: i32| {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            };
            let mut init = first;
            let mut prepared = prepare_from_host(spec, first, v2_move.as_deref());
            if !userns {
                prepared =
                    prepared.and_then(|()| before_init(first).map_err(ContainerError::Child));
            }
            if let Err(e) = prepared {
                kill(first);
                reap(first);
                return Err(e);
            }
            send_byte(go_w, "signalling the guest")?;
            if userns {
                // init-to-be's host pid, or EOF when the outer process failed first.
                let mut pid = [0u8; 4];
                if std::fs::File::from(pid_r).read_exact(&mut pid).is_ok() {
                    init = i32::from_le_bytes(pid);
                    if let Err(e) = before_init(init) {
                        kill(init);
                        kill(first);
                        reap(first);
                        reap(init);
                        return Err(ContainerError::Child(e));
                    }
                    // The outer process's exit gives init-to-be to us (its subreaper).
                    send_byte(plugged_w, "signalling the guest")?;
                } else {
                    drop(plugged_w);
                }
            }
            let mut msg = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            if userns {
                reap(first);
            }
            if msg.is_empty() {
                let (console, console_peer, reaped_faults_at_exec) = receive_console(&fds_parent)?;
                return Ok(Launched {
                    pid: init,
                    console,
                    console_peer,
                    reaped_faults_at_exec,
                });
            }
            if init != first {
                kill(init);
                reap(init);
            }
            reap(first);
            Err(ContainerError::Child(msg))
        }
    }
}

/// What the host side does for the new child: id maps, and moving it into the cgroup2
/// directory `v2_move` when it could not be born there.
fn prepare_from_host(
    spec: &LaunchSpec,
    pid: i32,
    v2_move: Option<&Path>,
) -> Result<(), ContainerError> {
    if let Some(base) = spec.id_base {
        write_id_maps(pid, base, spec.id_count)?;
    }
    reset_oom_score(pid)?;
    if let Some(dir) = v2_move {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .map_err(|e| ContainerError::path("joining cgroup", procs, e))?;
    }
    Ok(())
}

/// The monitor asks the OOM killer to spare it (`oom_score_adj` -1000); its child, the
/// guest's init, must not inherit that. Written by the monitor, which holds
/// CAP_SYS_RESOURCE whenever it could lower its own score, so the child's floor
/// (`oom_score_adj_min`) goes back to 0 too and the guest cannot lower its score again.
fn reset_oom_score(pid: i32) -> Result<(), ContainerError> {
    let ours = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
    if ours.trim() == "0" || ours.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, "0").map_err(|e| ContainerError::path("writing", path, e))
}

/// Map guest ids 0..count to host ids base..base+count, for uids and gids alike.
pub fn write_id_maps(pid: i32, base: u32, count: u32) -> Result<(), ContainerError> {
    let line = format!("0 {base} {count}\n");
    for map in ["uid_map", "gid_map"] {
        let p = format!("/proc/{pid}/{map}");
        std::fs::write(&p, &line).map_err(|e| ContainerError::path("writing", p, e))?;
    }
    Ok(())
}

/// Become root of the guest's namespaces (when it has a user namespace).
pub fn become_guest_root(userns: bool) -> Result<(), ContainerError> {
    if userns {
        let root_g = nix::unistd::Gid::from_raw(0);
        let root_u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g)
            .map_err(|e| ContainerError::sys("setresgid", e))?;
        nix::unistd::setgroups(&[]).map_err(|e| ContainerError::sys("setgroups", e))?;
        nix::unistd::setresuid(root_u, root_u, root_u)
            .map_err(|e| ContainerError::sys("setresuid", e))?;
    }
    Ok(())
}

/// Pass the console's two ends to the monitor.
fn send_console(sock: &UnixStream, master: &OwnedFd, peer: &OwnedFd) -> Result<(), ContainerError> {
    let fds = [master.as_raw_fd(), peer.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"c")];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| ContainerError::sys("passing the console to the monitor", e))?;
    Ok(())
}

/// Tell the monitor init's count of its reaped children's faults, after the last fork
/// the launch makes in it.
fn send_reaped_faults(sock: &UnixStream) -> Result<(), ContainerError> {
    let reaped = procstat::stat_field("self", procstat::REAPED_CHILDREN_FAULTS).unwrap_or(0);
    (&*sock)
        .write_all(&reaped.to_le_bytes())
        .map_err(|e| ContainerError::sys("reporting to the monitor", e))
}

/// Receive the console's two ends, then init's reaped-children faults.
fn receive_console(sock: &UnixStream) -> Result<(OwnedFd, OwnedFd, u64), ContainerError> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| ContainerError::sys("receiving the console", e))?;
    let mut ends = None;
    for c in msg
        .cmsgs()
        .map_err(|e| ContainerError::sys("receiving the console", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let [master, peer] = fds[..]
        {
            ends = Some((hangar_sys::own_fd(master)?, hangar_sys::own_fd(peer)?));
        }
    }
    let (master, peer) =
        ends.ok_or_else(|| ContainerError::Child("the guest did not pass its console".into()))?;
    let mut faults = [0u8; 8];
    (&*sock)
        .read_exact(&mut faults)
        .map_err(|e| ContainerError::sys("receiving init's fault count", e))?;
    Ok((master, peer, u64::from_le_bytes(faults)))
}

/// Pass superblocks (detached mounts) over `sock`: one message, proc first.
fn send_superblocks(sock: &UnixStream, supers: &Superblocks) -> Result<(), ContainerError> {
    let present: Vec<i32> = supers
        .fds()
        .iter()
        .flatten()
        .map(|f| f.as_raw_fd())
        .collect();
    let which = [
        u8::from(supers.sys.is_some()),
        u8::from(supers.mqueue.is_some()),
    ];
    let cmsg = [ControlMessage::ScmRights(&present)];
    let iov = [std::io::IoSlice::new(&which)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| ContainerError::sys("passing the guest's filesystems", e))?;
    Ok(())
}

fn receive_superblocks(sock: &UnixStream) -> Result<Superblocks, ContainerError> {
    let mut which = [0u8; 2];
    let mut iov = [std::io::IoSliceMut::new(&mut which)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 3]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| ContainerError::sys("receiving the guest's filesystems", e))?;
    let mut fds = Vec::new();
    for c in msg
        .cmsgs()
        .map_err(|e| ContainerError::sys("receiving the guest's filesystems", e))?
    {
        if let ControlMessageOwned::ScmRights(got) = c {
            for fd in got {
                fds.push(hangar_sys::own_fd(fd)?);
            }
        }
    }
    let mut fds = fds.into_iter();
    let proc = fds.next().ok_or_else(|| {
        ContainerError::Child("the guest's proc filesystem could not be made".into())
    })?;
    let sys = if which[0] == 1 { fds.next() } else { None };
    let mqueue = if which[1] == 1 { fds.next() } else { None };
    Ok(Superblocks { proc, sys, mqueue })
}

/// The outer process of an unprivileged guest (see the module's steps): root of the
/// guest's user namespace and owner of the mount namespace the guest's is copied from.
/// Returns only on failure; on success it exits once the mounts are made.
fn outer(
    spec: &LaunchSpec,
    to: &ToMonitor,
    pid_w: OwnedFd,
    plugged_r: OwnedFd,
    last: &ForInit,
) -> Result<std::convert::Infallible, ContainerError> {
    mounts::enter_root(&spec.rootfs)?;
    let lxcfs = spec.lxcfs.as_deref().map(crate::lxcfs::open).transpose()?;
    become_guest_root(true)?;
    // A credential change clears the parent-death signal: set it now, so a launch whose
    // monitor dies half-way ends with it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| ContainerError::sys("prctl", e))?;
    // Becoming guest root made us non-dumpable, and init-to-be would inherit that: its
    // /proc files would then belong to host root, and we could not write its id maps.
    // (Its exec of init sets dumpability afresh, as for any process.)
    nix::sys::prctl::set_dumpable(true).map_err(|e| ContainerError::sys("prctl", e))?;
    let (maps_r, maps_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    let (supers_here, supers_there) =
        UnixStream::pair().map_err(|e| ContainerError::sys("socketpair", e))?;
    let inner_flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    match hangar_sys::fork_into(inner_flags.bits())? {
        Forked::Child => {
            drop((maps_w, done_w, supers_here, pid_w, lxcfs));
            let e = match init_to_be(spec, to, maps_r, &supers_there, done_r, plugged_r, last) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let mut w = std::fs::File::from(hangar_sys::own_fd(to.err_fd)?);
            let _ = w.write_all(crate::error_chain(&e).as_bytes());
            hangar_sys::exit_now(1)
        }
        Forked::Parent(init) => {
            drop((maps_r, done_r, supers_there, plugged_r));
            // The same ids one level down: guest root is guest root in both.
            write_id_maps(init, 0, spec.id_count)?;
            send_byte(maps_w, "signalling init-to-be")?;
            std::fs::File::from(pid_w)
                .write_all(&init.to_le_bytes())
                .map_err(|e| ContainerError::sys("reporting init's pid", e))?;
            let supers = receive_superblocks(&supers_here)?;
            let (master, peer) = mounts::setup(true, spec.cgroup2, lxcfs.as_ref(), &supers)?;
            drop((supers, lxcfs));
            send_console(to.sock, &master, &peer)?;
            send_byte(done_w, "signalling init-to-be")?;
            hangar_sys::exit_now(0)
        }
    }
}

/// Init-to-be of an unprivileged guest; returns only on failure.
fn init_to_be(
    spec: &LaunchSpec,
    to: &ToMonitor,
    maps_r: OwnedFd,
    supers: &UnixStream,
    done_r: OwnedFd,
    plugged_r: OwnedFd,
    last: &ForInit,
) -> Result<std::convert::Infallible, ContainerError> {
    if !wait_byte(maps_r) {
        return Err(ContainerError::Child(
            "the guest's outer process ended".into(),
        ));
    }
    become_guest_root(true)?;
    // fsopen needs CAP_SYS_ADMIN over the caller's mount namespace, and the one shared
    // with the outer process belongs to the outer user namespace: a helper makes the
    // superblocks in a scratch mount namespace of its own.
    match hangar_sys::fork()? {
        Forked::Child => {
            let made = nix::sched::unshare(CloneFlags::CLONE_NEWNS)
                .map_err(|e| ContainerError::sys("unshare(mount)", e))
                .and_then(|()| Superblocks::make())
                .and_then(|s| send_superblocks(supers, &s));
            if let Err(e) = made {
                let mut w = std::fs::File::from(hangar_sys::own_fd(to.err_fd)?);
                let _ = w.write_all(crate::error_chain(&e).as_bytes());
                hangar_sys::exit_now(1);
            }
            hangar_sys::exit_now(0)
        }
        Forked::Parent(pid) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
    if !wait_byte(done_r) {
        return Err(ContainerError::Child(
            "the guest's outer process ended before its mounts were made".into(),
        ));
    }
    // The outer process pivoted the namespace we share into the guest's root; our own
    // copy of it, in our less privileged user namespace, has every mount locked.
    nix::unistd::chdir("/").map_err(|e| ContainerError::sys("chdir /", e))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| ContainerError::sys("unshare(mount)", e))?;
    inside(spec, to, Some(plugged_r), last)
}

/// The /dev/pts name of the terminal bound on /dev/console (Unix98 ptys have majors
/// 136 to 143, 256 indices each).
fn console_pts() -> Result<std::path::PathBuf, ContainerError> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata("/dev/console")
        .map_err(|e| ContainerError::sys("looking at /dev/console", e))?
        .rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    if !(136..=143).contains(&major) {
        return Err(ContainerError::Child(format!(
            "/dev/console is device {major}:{minor}, not a terminal of the guest's devpts"
        )));
    }
    Ok(format!("/dev/pts/{}", (major - 136) * 256 + minor).into())
}

/// A privileged guest: one process, in all its namespaces from the fork on; returns
/// only on failure.
fn privileged(
    spec: &LaunchSpec,
    to: &ToMonitor,
    last: &ForInit,
) -> Result<std::convert::Infallible, ContainerError> {
    mounts::enter_root(&spec.rootfs)?;
    let lxcfs = spec.lxcfs.as_deref().map(crate::lxcfs::open).transpose()?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| ContainerError::sys("prctl", e))?;
    let supers = Superblocks::make()?;
    let (master, peer) = mounts::setup(false, spec.cgroup2, lxcfs.as_ref(), &supers)?;
    drop((supers, lxcfs));
    send_console(to.sock, &master, &peer)?;
    drop((master, peer));
    inside(spec, to, None, last)
}

/// The last steps of init-to-be, inside the guest's root: shared directories, cgroup
/// namespace, hostname, files, loopback, the console, capabilities, seccomp, exec.
/// With `plugged`, waits there until the monitor has plugged the NICs first.
fn inside(
    spec: &LaunchSpec,
    to: &ToMonitor,
    plugged: Option<OwnedFd>,
    last: &ForInit,
) -> Result<std::convert::Infallible, ContainerError> {
    // In the guest's own mount namespace, after its copy: as a live attach does, so
    // `hangar detach` can unmount them (nobody can unmount a mount the kernel locked
    // in a copy, not even the host's root); their flags were locked by `prepare`.
    crate::shared::attach_all(last.dirs)?;
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| ContainerError::sys("unshare(cgroup)", e))?;
    if spec.cgroup2 {
        mounts::mount_cgroup2()?;
    }
    nix::unistd::sethostname(&spec.hostname).map_err(|e| ContainerError::sys("sethostname", e))?;
    if spec.lxcfs.is_some() {
        // lxcfs starts following a cgroup's load average at the first read of
        // /proc/loadavg from inside it: read it now, so the guest's own averages count
        // from its start rather than from whenever someone first looks. The reader
        // must be a child of init-to-be, as later readers are (a read by init itself,
        // before it execs, starts nothing).
        match hangar_sys::fork() {
            Ok(Forked::Child) => {
                let _ = std::fs::read("/proc/loadavg");
                hangar_sys::exit_now(0)
            }
            Ok(Forked::Parent(pid)) => {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
            Err(_) => {}
        }
    }
    sync_hostname_file(&spec.hostname);
    write_resolv_conf(&spec.nameservers, spec.search.as_deref());
    sync_hosts_file(
        &spec.hostname,
        spec.nics.iter().flat_map(|n| n.addrs.iter()),
    );
    hangar_sys::loopback_up()?;
    if let Some(plugged) = plugged
        && !wait_byte(plugged)
    {
        return Err(ContainerError::Child(
            "the monitor ended before the guest's NICs were plugged".into(),
        ));
    }
    // The launch forks nothing after this: what init's own children add to this count
    // later tells the monitor that init forked, even if they are gone already.
    send_reaped_faults(to.sock)?;
    // The console is a terminal of the guest's devpts bound on /dev/console: opened by
    // its /dev/pts name, as any other terminal there is known.
    let console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(console_pts()?)
        .map_err(|e| ContainerError::sys("opening the console", e))?;
    attach_console(&OwnedFd::from(console))?;
    caps::drop_bounding()?;
    crate::rlimits::apply(0, &spec.rlimits)?;
    let argv = cstrings(&spec.init)?;
    let envp = cstrings(&crate::with_env(crate::base_env(), &spec.env))?;
    if let Some(dir) = &spec.cwd {
        nix::unistd::chdir(dir).map_err(|e| {
            ContainerError::sys(format!("entering init's directory {}", dir.display()), e)
        })?;
    }
    hangar_sys::reset_signals();
    // From here on the guest runs whatever happens to its monitor: the monitor wrote
    // init's pid and start time to the state file before letting us go on.
    nix::sys::prctl::set_pdeathsig(None).map_err(|e| ContainerError::sys("prctl", e))?;
    hangar_sys::close_all_except(to.err_fd)?;
    if let Some(f) = last.filter {
        hangar_sys::seccomp_install(f)?;
    }
    let e = nix::unistd::execve(&argv[0], &argv, &envp).unwrap_err();
    Err(ContainerError::sys(
        format!("executing {} in the guest", spec.init[0]),
        e,
    ))
}

/// Make the console the controlling terminal and stdio of the new session.
fn attach_console(console: &OwnedFd) -> Result<(), ContainerError> {
    nix::unistd::setsid().map_err(|e| ContainerError::sys("setsid", e))?;
    set_stdio(console)?;
    hangar_sys::set_controlling_tty(0)?;
    Ok(())
}

pub(crate) fn cstrings(v: &[String]) -> Result<Vec<CString>, ContainerError> {
    v.iter()
        .map(|s| {
            CString::new(s.as_str())
                .map_err(|_| ContainerError::Child(format!("{s:?} contains a NUL byte")))
        })
        .collect()
}

/// Make `fd` the standard input, output and error.
pub fn set_stdio(fd: &impl std::os::fd::AsFd) -> Result<(), ContainerError> {
    let e = |e| ContainerError::sys("dup2", e);
    nix::unistd::dup2_stdin(fd).map_err(e)?;
    nix::unistd::dup2_stdout(fd).map_err(e)?;
    nix::unistd::dup2_stderr(fd).map_err(e)
}

/// Keep the guest's /etc/hostname in step with its config, so init scripts that set the
/// hostname from it (busybox rcS, Debian's hostname.sh) agree with `hangar config`.
/// Runs inside the guest, as guest root, after pivot_root: a symlink planted in the
/// guest cannot redirect the write to a host file.
fn sync_hostname_file(hostname: &str) {
    let path = std::path::Path::new("/etc/hostname");
    match std::fs::read_to_string(path) {
        Ok(old) if old.trim() != hostname => {
            let _ = std::fs::write(path, format!("{hostname}\n"));
        }
        _ => {}
    }
}

/// Point the guest's resolver at its network's DNS service. Runs inside the guest, as
/// guest root, after pivot_root (like [`sync_hostname_file`]).
fn write_resolv_conf(nameservers: &[String], search: Option<&str>) {
    if nameservers.is_empty() {
        return;
    }
    let mut text = String::from("# written by hangar at start from the guest's networks\n");
    if let Some(s) = search {
        text.push_str(&format!("search {s}\n"));
    }
    for n in nameservers {
        text.push_str(&format!("nameserver {n}\n"));
    }
    let _ = std::fs::write("/etc/resolv.conf", text);
}

/// Keep one line of the guest's /etc/hosts, marked `# hangar`, naming its hostname at its
/// addresses (the admin's own lines are left as they are). Inside the guest, as guest root.
fn sync_hosts_file<'a>(hostname: &str, addrs: impl Iterator<Item = &'a hangar_model::net::Cidr>) {
    const MARK: &str = "# hangar";
    let path = std::path::Path::new("/etc/hosts");
    let Ok(old) = std::fs::read_to_string(path) else {
        return;
    };
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names = if short == hostname {
        hostname.to_string()
    } else {
        format!("{hostname} {short}")
    };
    let mut text: String = old
        .lines()
        .filter(|l| !l.ends_with(MARK))
        .map(|l| format!("{l}\n"))
        .collect();
    for a in addrs {
        text.push_str(&format!("{} {names} {MARK}\n", a.addr()));
    }
    if text != old {
        let _ = std::fs::write(path, text);
    }
}
