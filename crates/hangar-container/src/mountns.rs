//! Work inside a running guest's mount namespace: re-binding lxcfs's files after lxcfs
//! restarted, attaching and detaching shared directories live.
//!
//! Entering a mount namespace changes the process's root and working directory, and
//! needs a single-threaded caller: the work runs in a forked child, which reports its
//! error back as text.

use crate::ContainerError;
use hangar_sys::Forked;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

/// The exit status of a child whose work answered no.
const NO: i32 = 3;

/// Run `work` in a child process that entered the mount namespace `mnt_ns` (a
/// descriptor of `/proc/PID/ns/mnt`): there `/` and the working directory are that
/// namespace's root, whatever lies above it on the host. The child keeps the caller's
/// credentials (host root) and every other namespace. `work`'s answer (yes or no)
/// comes back as the child's exit status.
pub fn run_in(
    mnt_ns: BorrowedFd<'_>,
    work: impl FnOnce() -> Result<bool, ContainerError>,
) -> Result<bool, ContainerError> {
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ContainerError::sys("pipe", e))?;
    match hangar_sys::fork()? {
        Forked::Child => {
            drop(err_r);
            let done = nix::sched::setns(mnt_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|e| ContainerError::sys("entering the guest's mount namespace", e))
                .and_then(|()| work());
            match done {
                Ok(yes) => hangar_sys::exit_now(if yes { 0 } else { NO }),
                Err(e) => {
                    let _ = std::fs::File::from(err_w).write_all(crate::error_chain(&e).as_bytes());
                    hangar_sys::exit_now(1)
                }
            }
        }
        Forked::Parent(pid) => {
            drop(err_w);
            let mut msg = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(true),
                Ok(nix::sys::wait::WaitStatus::Exited(_, NO)) if msg.is_empty() => Ok(false),
                _ if !msg.is_empty() => Err(ContainerError::InGuest(msg)),
                other => Err(ContainerError::InGuest(format!(
                    "the helper in the guest's mount namespace ended: {other:?}"
                ))),
            }
        }
    }
}
