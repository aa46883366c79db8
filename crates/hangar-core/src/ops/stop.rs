//! `hangar stop`, `kill`, `restart`: ask the monitor, then wait for it to be gone.

use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;
use hangar_model::control::Request;
use std::time::Duration;

/// Clean shutdown with the guest's own stop signal; SIGKILL after `timeout` seconds
/// (default: the guest's configured timeout).
pub fn stop(host: &Host, name: &GuestName, timeout: Option<u32>) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    stop_locked(host, name, timeout)
}

fn stop_locked(host: &Host, name: &GuestName, timeout: Option<u32>) -> Result<()> {
    let cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if !status::status(&host.paths, name).is_active() {
        return Err(CoreError::NotRunning(name.to_string()));
    }
    thaw(host, &cfg);
    let timeout = timeout.unwrap_or(cfg.stop.timeout);
    status::request(&host.paths, name, &Request::Stop { timeout })?;
    status::wait_stopped(
        &host.paths,
        name,
        Duration::from_secs(u64::from(timeout) + 10),
    )
}

/// Kill the guest at once (Xen's destroy).
pub fn kill(host: &Host, name: &GuestName) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if !status::status(&host.paths, name).is_active() {
        return Err(CoreError::NotRunning(name.to_string()));
    }
    kill_locked(host, name)
}

/// A paused guest is thawed first: frozen, it would heed no stop signal (and on cgroup
/// v1 not even SIGKILL); so is a filesystem a snapshot cut short left frozen.
fn thaw(host: &Host, cfg: &hangar_model::GuestConfig) {
    if let Ok(cg) = host.guest_cgroup(cfg)
        && cg.frozen()
    {
        let _ = cg.set_frozen(false);
        if let Ok(pool) = crate::pools::Pool::of(host, cfg) {
            let _ = pool.thaw_volume(&pool.volume(&cfg.name));
        }
    }
}

pub(crate) fn kill_locked(host: &Host, name: &GuestName) -> Result<()> {
    if let Ok(cfg) = store::load(&host.paths, name) {
        thaw(host, &cfg);
    }
    status::request(&host.paths, name, &Request::Kill)?;
    status::wait_stopped(&host.paths, name, Duration::from_secs(10))
}

/// Stop (if running) and start again.
pub fn restart(host: &Host, name: &GuestName, timeout: Option<u32>) -> Result<i32> {
    let _guest = lock::guest(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if status::status(&host.paths, name).is_active() {
        stop_locked(host, name, timeout)?;
    }
    crate::ops::start::start_locked(host, name)
}
