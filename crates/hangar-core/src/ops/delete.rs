//! `hangar delete`: remove everything a guest owns. The config goes first (it is what
//! makes a guest exist), then its data, runtime state, logs and cgroup.

use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;

pub fn delete(host: &Host, name: &GuestName, force: bool) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    let cfg = store::load(&host.paths, name)?;
    if status::status(&host.paths, name).is_active() {
        if !force {
            return Err(CoreError::Running(name.to_string()));
        }
        crate::ops::stop::kill_locked(host, name)?;
    }
    let cfg_file = host.paths.config_file(name);
    std::fs::remove_file(&cfg_file).map_err(|e| CoreError::io("removing", &cfg_file, e))?;
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
    crate::ops::attach::refresh_networks(host, &cfg.nics);
    Ok(())
}
