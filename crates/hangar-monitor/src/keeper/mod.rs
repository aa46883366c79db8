//! Keepers: host-side helpers that keep one service of a hangar root running, the way
//! a guest's monitor keeps its init. Each holds a lock file for its whole life (any
//! process can tell it is alive without trusting a pid) and reports readiness on a pipe.
//!
//! - `lxcfs.rs`: `hangar-monitor --lxcfs`, one per root; lxcfs is its child.
//! - `dns.rs`: `hangar-monitor --dns`, one per network with DNS; it watches the
//!   network's (daemonized) dnsmasq through a pidfd and starts it again when it dies.

pub mod dns;
pub mod lxcfs;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SigSet, SignalFd};
use std::fs::File;
use std::path::Path;

pub type Res<T> = Result<T, String>;

/// Take `path`'s lock if nobody holds it; `None` when another keeper does.
pub fn try_lock(path: &Path) -> Res<Option<Flock<File>>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    Ok(Flock::lock(file, FlockArg::LockExclusiveNonblock).ok())
}

/// Block `signals` and return a descriptor that reads them.
pub fn signal_fd(signals: &[Signal]) -> Res<SignalFd> {
    let mut mask = SigSet::empty();
    for s in signals {
        mask.add(*s);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(|e| format!("signalfd: {e}"))
}
