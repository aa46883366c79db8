//! The host's lxcfs, kept running by the lxcfs keeper (see `hangar-monitor`'s keeper):
//! guests get their /proc files (meminfo, cpuinfo, stat, uptime, loadavg, ...) from it.
//!
//! Without the `lxcfs` program on the host, guests start with the kernel's own /proc
//! files, which describe the host.

use crate::{CoreError, Host, Result, lock};
use std::path::PathBuf;

/// Where lxcfs is mounted for this hangar root.
pub fn mountpoint(host: &Host) -> PathBuf {
    host.paths.root().join("var/lib/hangar/lxcfs")
}

fn run_dir(host: &Host) -> PathBuf {
    host.paths.root().join("run/hangar")
}

fn installed() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("lxcfs").is_file()))
        .unwrap_or(false)
}

/// Make sure the keeper (and so lxcfs) runs; returns the mount point, or None when the
/// host has no lxcfs.
pub fn ensure(host: &Host) -> Result<Option<PathBuf>> {
    if !installed() {
        return Ok(None);
    }
    let mp = mountpoint(host);
    let run = run_dir(host);
    let lock_path = run.join("lxcfs.lock");
    if lock::is_held(&lock_path) {
        return Ok(Some(mp));
    }
    let _host = lock::host(&host.paths)?;
    if lock::is_held(&lock_path) {
        return Ok(Some(mp));
    }
    let log_dir = host.paths.root().join("var/log/hangar");
    for d in [&run, &log_dir] {
        std::fs::create_dir_all(d).map_err(|e| CoreError::io("creating", d, e))?;
    }
    let reply = crate::spawn::detached(
        &["--lxcfs".as_ref(), mp.as_os_str(), run.as_os_str()],
        &log_dir.join("lxcfs.log"),
    )?;
    match reply.as_str() {
        "ok" => Ok(Some(mp)),
        r => Err(CoreError::Invalid(format!(
            "lxcfs did not start ({}); see {}",
            r.strip_prefix("error: ").unwrap_or("no reply"),
            log_dir.join("lxcfs.log").display()
        ))),
    }
}
