//! `hangar set NAME key=value ...`: change a guest's limits, in its config and, when it
//! runs, at once (Xen's mem-set/vcpu-set, VServer's live limit files).
//!
//! Every key of `[limits]` takes effect live: cgroup keys through the guest's cgroup,
//! rlimits on every process of the guest. If the kernel refuses a new value (say a
//! memory limit below what the guest uses now on cgroup v1), the old values are put
//! back and the config is not changed.

use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;

/// What `set` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SetOutcome {
    /// The guest ran and the new limits are in force now.
    pub live: bool,
}

pub fn set(host: &Host, name: &GuestName, items: &[String]) -> Result<SetOutcome> {
    if items.is_empty() {
        return Err(CoreError::Invalid(format!(
            "nothing to set: hangar set {name} KEY=VALUE ... (keys: {})",
            hangar_model::limits::KEYS.join(", ")
        )));
    }
    let _guest = lock::guest(&host.paths, name)?;
    let old = store::load(&host.paths, name)?;
    let mut new = old.clone();
    new.limits.set_all(items)?;
    new.validate()?;
    let live = status::status(&host.paths, name).is_active();
    if live {
        apply_live(host, &new).inspect_err(|_| {
            let _ = apply_live(host, &old);
        })?;
    }
    store::save(&host.paths, &new)?;
    Ok(SetOutcome { live })
}

/// Put `cfg`'s effective limits on the running guest.
fn apply_live(host: &Host, cfg: &hangar_model::GuestConfig) -> Result<()> {
    let cg = host.guest_cgroup(cfg)?;
    cg.apply(&host.cgroup_limits(cfg)?)?;
    let rlimits = host.rlimits(cfg);
    if !rlimits.is_empty() {
        for pid in cg.pids()? {
            hangar_container::rlimits::apply(pid, &rlimits)?;
        }
    }
    Ok(())
}
