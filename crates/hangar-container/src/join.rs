//! Run a command inside a running guest (`hangar exec`, `hangar enter`).
//!
//! The caller forks a joiner that enters the guest's cgroup and namespaces (user last, so
//! host privilege is still there to enter the others), becomes guest root, and forks the
//! command, which is the first of the two to be inside the guest's pid namespace. The
//! joiner is made non-dumpable before it enters the user namespace: guest root can then
//! neither ptrace it nor open its /proc entries (and through /proc/PID/exe, the hangar
//! binary of the host).

use crate::cgroup_join::Joins;
use crate::launch::{become_guest_root, cstrings, set_stdio};
use crate::{ContainerError, caps, seccomp};
use hangar_sys::Forked;
use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// A running guest as seen from the host.
#[derive(Debug, Clone)]
pub struct Target {
    pub init_pid: i32,
    pub cgroup_dirs: Vec<PathBuf>,
    pub userns: bool,
    pub seccomp: bool,
    /// The guest's rlimits, for the joined command as for init.
    pub rlimits: Vec<crate::rlimits::RlimitSetting>,
}

/// The command to run.
#[derive(Debug, Clone)]
pub struct Command {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
}

/// Namespaces joined, in order; the user namespace is joined last.
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("user", CloneFlags::CLONE_NEWUSER),
];

/// Open a pty in the guest's own devpts (through init's root), owned by guest root,
/// and return (master, peer).
pub fn guest_pty(t: &Target, id_base: Option<u32>) -> Result<(OwnedFd, OwnedFd), ContainerError> {
    let ptmx = format!("/proc/{}/root/dev/pts/ptmx", t.init_pid);
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&ptmx)
        .map_err(|e| ContainerError::path("opening", &ptmx, e))?
        .into();
    hangar_sys::pty_unlock(std::os::fd::AsFd::as_fd(&master))?;
    let peer = hangar_sys::pty_peer(std::os::fd::AsFd::as_fd(&master))?;
    if let Some(base) = id_base {
        nix::unistd::fchown(&peer, Some(base.into()), Some((base + 5).into()))
            .map_err(|e| ContainerError::sys("fchown pty", e))?;
    }
    Ok((master, peer))
}

/// Run `cmd` in the guest and return its exit code (128+N when killed by signal N).
/// It inherits the caller's stdin, stdout and stderr.
pub fn run(t: &Target, cmd: &Command) -> Result<i32, ContainerError> {
    wait(spawn(t, cmd, None)?)
}

/// Start `cmd` in the guest and return the pid to [`wait`] for. With `tty`, the command
/// gets that terminal as stdio and controlling terminal.
pub fn spawn(t: &Target, cmd: &Command, tty: Option<OwnedFd>) -> Result<i32, ContainerError> {
    let mut ns = Vec::new();
    for &(name, flag) in NAMESPACES {
        if flag == CloneFlags::CLONE_NEWUSER && !t.userns {
            continue;
        }
        let p = format!("/proc/{}/ns/{name}", t.init_pid);
        let f = std::fs::File::open(&p).map_err(|e| ContainerError::path("opening", &p, e))?;
        ns.push((f, flag));
    }
    let argv = cstrings(&cmd.argv)?;
    let envp = cstrings(&crate::with_env(crate::base_env(), &cmd.env))?;
    let filter = if t.seccomp {
        Some(seccomp::default_filter()?)
    } else {
        None
    };
    let joins = Joins::open(&t.cgroup_dirs)?;
    let (forked, born_in_v2) = joins.fork(0)?;
    match forked {
        Forked::Parent(pid) => Ok(pid),
        Forked::Child => {
            let code = match joiner(t, &joins, born_in_v2, &ns, || {
                exec_child(
                    cmd,
                    &argv,
                    &envp,
                    tty.as_ref(),
                    &t.rlimits,
                    filter.as_deref(),
                )
            }) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("hangar: {e}");
                    125
                }
            };
            hangar_sys::exit_now(code)
        }
    }
}

/// Wait for a command started by [`spawn`]; returns its exit code (128+N for signal N).
pub fn wait(pid: i32) -> Result<i32, ContainerError> {
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(ContainerError::sys("waitpid", e)),
        }
    }
}

/// In the forked joiner: enter cgroups (see `cgroup_join`) and namespaces, fork the
/// command, wait for it.
fn joiner(
    t: &Target,
    joins: &Joins,
    born_in_v2: bool,
    ns: &[(std::fs::File, CloneFlags)],
    child: impl FnOnce() -> ContainerError,
) -> Result<i32, ContainerError> {
    joins.join_self()?;
    if !born_in_v2 {
        joins.move_self_v2()?;
    }
    nix::sys::prctl::set_dumpable(false).map_err(|e| ContainerError::sys("prctl", e))?;
    for (f, flag) in ns {
        nix::sched::setns(f, *flag).map_err(|e| {
            ContainerError::sys(format!("entering the guest's {flag:?} namespace"), e)
        })?;
    }
    become_guest_root(t.userns)?;
    match hangar_sys::fork()? {
        Forked::Parent(pid) => wait(pid),
        Forked::Child => {
            let e = child();
            eprintln!("hangar: {e}");
            hangar_sys::exit_now(
                if matches!(&e, ContainerError::Sys { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
                {
                    127
                } else {
                    126
                },
            )
        }
    }
}

/// In the command's process, inside the guest: terminal, capabilities, seccomp, exec.
fn exec_child(
    cmd: &Command,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
    tty: Option<&OwnedFd>,
    rlimits: &[crate::rlimits::RlimitSetting],
    filter: Option<&[libc::sock_filter]>,
) -> ContainerError {
    let steps = || -> Result<std::convert::Infallible, ContainerError> {
        if let Some(tty) = tty {
            nix::unistd::setsid().map_err(|e| ContainerError::sys("setsid", e))?;
            set_stdio(tty)?;
            hangar_sys::set_controlling_tty(0)?;
        }
        nix::unistd::chdir(cmd.cwd.as_str())
            .or_else(|_| nix::unistd::chdir("/"))
            .map_err(|e| ContainerError::sys("chdir", e))?;
        caps::drop_bounding()?;
        crate::rlimits::apply(0, rlimits)?;
        hangar_sys::reset_signals();
        hangar_sys::close_all_except(2)?;
        if let Some(f) = filter {
            hangar_sys::seccomp_install(f)?;
        }
        let e = nix::unistd::execvpe(&argv[0], argv, envp).unwrap_err();
        Err(ContainerError::sys(cmd.argv[0].clone(), e))
    };
    match steps() {
        Ok(never) => match never {},
        Err(e) => e,
    }
}
