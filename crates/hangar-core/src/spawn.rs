//! Starting hangar's long-lived helper processes (a guest's monitor, the lxcfs keeper):
//! the `hangar-monitor` binary, detached, reporting readiness on a pipe.

use crate::{CoreError, Result};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The monitor binary: `HANGAR_MONITOR`, or `hangar-monitor` beside the running binary.
pub fn monitor_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HANGAR_MONITOR") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map(|d| d.join("hangar-monitor"))
        .unwrap_or_else(|| "hangar-monitor".into())
}

/// Run `hangar-monitor ARGS... READY_FD` detached (it makes its own session), with its
/// stderr appended to `log`, and return the line it reports on the ready pipe ("" when
/// it exited without reporting).
pub fn detached(args: &[&std::ffi::OsStr], log: &Path) -> Result<String> {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| CoreError::io("opening", log, e))?;
    let (ready_r, ready_w) =
        nix::unistd::pipe().map_err(|e| CoreError::io("creating a pipe for", log, e.into()))?;
    let bin = monitor_binary();
    let child = Command::new(&bin)
        .args(args)
        .arg(ready_w.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| CoreError::io("starting", &bin, e))?;
    drop(ready_w);
    // Not waited for: it outlives us, and the host's init reaps it in the end.
    drop(child);
    let mut reply = String::new();
    let _ = std::fs::File::from(ready_r).read_to_string(&mut reply);
    Ok(reply.trim().to_string())
}
