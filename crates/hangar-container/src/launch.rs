//! Start a guest's init: the monitor calls [`launch`] and gets back the host pid of init.
//!
//! The forked child is born in new user, mount, pid, uts, ipc and network namespaces. It
//! waits on a pipe until the monitor has written its uid/gid maps and put it in its
//! cgroup, then becomes root of its namespace, unshares its cgroup namespace, builds its
//! mounts, pivots, drops capabilities, installs seccomp and execs init. Any failure before
//! exec is written to an error pipe, which exec closes (O_CLOEXEC): EOF there means init runs.
//! The console is a pty of the guest's own devpts; the child passes its two ends to the
//! monitor over a socket pair (SCM_RIGHTS) before it execs.

use crate::cgroup_join::Joins;
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
    /// launch's helper ran.
    pub reaped_faults_at_exec: u64,
}

/// Fork the guest's init from `spec`. `before_init` runs on the host side once the
/// child exists (with its namespaces, id maps and cgroup) and before it goes on: the
/// monitor plugs the guest's NICs into the child's network namespace there.
pub fn launch(
    spec: &LaunchSpec,
    before_init: &dyn Fn(i32) -> Result<(), String>,
) -> Result<Launched, ContainerError> {
    let (fds_parent, fds_child) =
        std::os::unix::net::UnixStream::pair().map_err(|e| ContainerError::sys("socketpair", e))?;
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ContainerError::sys("pipe", e))?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ContainerError::sys("pipe", e))?;
    let filter = if spec.seccomp {
        Some(seccomp::default_filter()?)
    } else {
        None
    };
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    if spec.id_base.is_some() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let joins = Joins::open(&spec.cgroup_dirs)?;
    let (forked, born_in_v2) = joins.fork(flags.bits())?;
    match forked {
        Forked::Child => {
            drop(go_w);
            drop(err_r);
            drop(fds_parent);
            if let Err(e) = joins.join_self() {
                let mut w = std::fs::File::from(err_w);
                let _ = w.write_all(crate::error_chain(&e).as_bytes());
                hangar_sys::exit_now(1);
            }
            let mut go = [0u8; 1];
            if std::fs::File::from(go_r).read(&mut go).unwrap_or(0) != 1 {
                hangar_sys::exit_now(1);
            }
            let err_fd = err_w.as_raw_fd();
            let e = child(spec, &fds_child, err_fd, filter.as_deref());
            let mut w = std::fs::File::from(err_w);
            let _ = w.write_all(crate::error_chain(&e).as_bytes());
            hangar_sys::exit_now(1)
        }
        Forked::Parent(pid) => {
            drop(go_r);
            drop(err_w);
            drop(fds_child);
            let v2_move = joins
                .v2_dir()
                .filter(|_| !born_in_v2)
                .map(Path::to_path_buf);
            drop(joins);
            let prepared = prepare_from_host(spec, pid, v2_move.as_deref())
                .and_then(|()| before_init(pid).map_err(ContainerError::Child));
            if let Err(e) = prepared {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(e);
            }
            std::fs::File::from(go_w)
                .write_all(b"g")
                .map_err(|e| ContainerError::sys("signalling the guest", e))?;
            let mut msg = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            if msg.is_empty() {
                let (console, console_peer, reaped_faults_at_exec) = receive_console(&fds_parent)?;
                return Ok(Launched {
                    pid,
                    console,
                    console_peer,
                    reaped_faults_at_exec,
                });
            }
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
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

/// Send the console's two ends to the monitor.
/// Pass the console's two ends to the monitor, with the child's count of its reaped
/// children's faults (after the last fork it makes before exec).
fn send_console(
    sock: &UnixStream,
    master: &OwnedFd,
    peer: &OwnedFd,
    reaped_faults: u64,
) -> Result<(), ContainerError> {
    let fds = [master.as_raw_fd(), peer.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let bytes = reaped_faults.to_le_bytes();
    let iov = [std::io::IoSlice::new(&bytes)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| ContainerError::sys("passing the console to the monitor", e))?;
    Ok(())
}

/// Receive the console's two ends and the reaped-children faults from the child.
fn receive_console(sock: &UnixStream) -> Result<(OwnedFd, OwnedFd, u64), ContainerError> {
    let mut bytes = [0u8; 8];
    let mut iov = [std::io::IoSliceMut::new(&mut bytes)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| ContainerError::sys("receiving the console", e))?;
    for c in msg
        .cmsgs()
        .map_err(|e| ContainerError::sys("receiving the console", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let [master, peer] = fds[..]
        {
            let master = hangar_sys::own_fd(master)?;
            let peer = hangar_sys::own_fd(peer)?;
            return Ok((master, peer, u64::from_le_bytes(bytes)));
        }
    }
    Err(ContainerError::Child(
        "the guest did not pass its console".into(),
    ))
}

/// The child's side; returns only on failure.
fn child(
    spec: &LaunchSpec,
    console: &UnixStream,
    err_fd: i32,
    filter: Option<&[libc::sock_filter]>,
) -> ContainerError {
    match child_steps(spec, console, err_fd, filter) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn child_steps(
    spec: &LaunchSpec,
    fds: &UnixStream,
    err_fd: i32,
    filter: Option<&[libc::sock_filter]>,
) -> Result<std::convert::Infallible, ContainerError> {
    let userns = spec.id_base.is_some();
    mounts::enter_root(&spec.rootfs)?;
    let lxcfs = spec.lxcfs.as_deref().map(crate::lxcfs::open).transpose()?;
    become_guest_root(userns)?;
    // A credential change clears the parent-death signal: set it now, so a launch whose
    // monitor dies half-way ends with it (it is cleared again just before exec: a
    // running guest outlives its monitor and is adopted by the next one).
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| ContainerError::sys("prctl", e))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| ContainerError::sys("unshare(cgroup)", e))?;
    nix::unistd::sethostname(&spec.hostname).map_err(|e| ContainerError::sys("sethostname", e))?;
    let (master, peer) = mounts::setup(userns, spec.cgroup2, lxcfs.as_ref())?;
    if lxcfs.is_some() {
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
    drop(lxcfs);
    sync_hostname_file(&spec.hostname);
    write_resolv_conf(&spec.nameservers, spec.search.as_deref());
    sync_hosts_file(
        &spec.hostname,
        spec.nics.iter().flat_map(|n| n.addrs.iter()),
    );
    hangar_sys::loopback_up()?;
    // The launch forks nothing after this: what init's own children add to this count
    // later tells the monitor that init forked, even if they are gone already.
    let reaped = procstat::stat_field("self", procstat::REAPED_CHILDREN_FAULTS).unwrap_or(0);
    send_console(fds, &master, &peer, reaped)?;
    drop(master);
    attach_console(&peer)?;
    drop(peer);
    caps::drop_bounding()?;
    crate::rlimits::apply(0, &spec.rlimits)?;
    let argv = cstrings(&spec.init)?;
    let mut env = crate::base_env();
    env.extend(spec.env.iter().cloned());
    let envp = cstrings(&env)?;
    hangar_sys::reset_signals();
    // From here on the guest runs whatever happens to its monitor: the monitor wrote
    // init's pid and start time to the state file before letting us go on.
    nix::sys::prctl::set_pdeathsig(None).map_err(|e| ContainerError::sys("prctl", e))?;
    hangar_sys::close_all_except(err_fd)?;
    if let Some(f) = filter {
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
