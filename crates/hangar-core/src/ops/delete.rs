//! `hangar delete`: remove everything a guest owns. The config goes first (it is what
//! makes a guest exist), then its data, runtime state, logs and cgroup, and last the
//! port forwards to it (a forward to a deleted guest would send a host port to whoever
//! gets its address next).

use crate::ops::forward::Removed;
use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;

/// Delete guest `name`; returns the port forwards removed with it.
pub fn delete(host: &Host, name: &GuestName, force: bool) -> Result<Vec<Removed>> {
    let _guest = lock::guest(&host.paths, name)?;
    let cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if status::status(&host.paths, name).is_active() {
        if !force {
            return Err(CoreError::Running(name.to_string()));
        }
        crate::ops::stop::kill_locked(host, name)?;
    }
    let pool = crate::pools::Pool::of(host, &cfg)?;
    let cfg_file = host.paths.config_file(name);
    std::fs::remove_file(&cfg_file).map_err(|e| CoreError::io("removing", &cfg_file, e))?;
    pool.remove_volume(&pool.volume(name))?;
    crate::ops::snapshot::delete_all(&pool, name)?;
    for dir in [
        host.paths.data_dir(name),
        host.paths.run_dir(name),
        host.paths.log_dir(name),
    ] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| CoreError::io("removing", &dir, e))?;
        }
    }
    if let Ok(cg) = host.guest_cgroup(&cfg) {
        cg.remove()?;
    }
    // Best effort: an entry left behind is stale without its config, and free.
    let registry = crate::ids::Registry::host();
    if let Ok(ids) = registry.lock() {
        ids.release(cfg.context, &host.paths, name);
    }
    let removed = crate::ops::forward::remove_all_to(host, name).map_err(|e| {
        CoreError::Invalid(format!(
            "guest {name} is deleted, but its port forwards are not ({e}): remove them with \
             `hangar network forward remove`"
        ))
    })?;
    crate::ops::attach::refresh_networks(host, &cfg.nics);
    Ok(removed)
}
