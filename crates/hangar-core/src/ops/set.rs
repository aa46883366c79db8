//! `hangar set NAME key=value ...`: change a guest's limits, in its config and, when it
//! runs, at once (Xen's mem-set/vcpu-set, VServer's live limit files).
//!
//! Every key of `[limits]` takes effect live: cgroup keys through the guest's cgroup,
//! rlimits on every process of the guest. If the kernel refuses a new value (say a
//! memory limit below what the guest uses now on cgroup v1), the old values are put
//! back and the config is not changed. A stopped guest's new limits are tried on the
//! kernel all the same (`Host::trial_limits`): what its next start would refuse is
//! refused now.

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
    crate::adopt::ensure(host, name)?;
    let mut new = old.clone();
    let (nic_items, limit_items): (Vec<String>, Vec<String>) = items
        .iter()
        .cloned()
        .partition(|i| i.starts_with("nic.") || i.starts_with("net."));
    new.limits.set_all(&limit_items)?;
    for item in &nic_items {
        set_nic(&mut new, item)?;
    }
    new.validate()?;
    // The disk limit belongs to the guest's volume, running or not: applied first, and
    // put back if anything after it is refused.
    let (old_disk, new_disk) = (disk_size(host, &old), disk_size(host, &new));
    let pool = crate::pools::Pool::of(host, &new)?;
    let volume = pool.volume(name);
    if new_disk != old_disk {
        pool.set_size(&volume, new_disk)?;
    }
    let live = status::status(&host.paths, name).is_active();
    let applied = if live {
        apply_live(host, &new).inspect_err(|_| {
            let _ = apply_live(host, &old);
        })
    } else if new.limits != old.limits {
        host.trial_limits(&new)
    } else {
        Ok(())
    };
    if let Err(e) = applied.and_then(|()| store::save(&host.paths, &new)) {
        if new_disk != old_disk {
            let _ = pool.set_size(&volume, old_disk);
        }
        return Err(e);
    }
    Ok(SetOutcome { live })
}

/// The `disk.size` in force for `cfg`: its own, else the host default's where its pool
/// can limit a disk (a default is no reason to refuse the built-in dir pool's guests).
fn disk_size(host: &Host, cfg: &hangar_model::GuestConfig) -> Option<hangar_model::Size> {
    use hangar_model::limits::Bound;
    let own = cfg.limits.disk.size;
    let limit = match (own, cfg.pool.as_ref().filter(|p| !p.is_default())) {
        (Some(b), _) => Some(b),
        (None, Some(_)) => host.defaults.limits.disk.size,
        (None, None) => None,
    };
    match limit {
        Some(Bound::At(s)) => Some(s),
        _ => None,
    }
}

/// `nic.NAME.egress=10mbit` / `nic.NAME.ingress=max`: a NIC's rate limits;
/// `net.egress=` / `net.ingress=` for a guest with one NIC.
fn set_nic(cfg: &mut hangar_model::GuestConfig, item: &str) -> Result<()> {
    let bad = || {
        CoreError::Invalid(format!(
            "{item:?}: write nic.NAME.egress=RATE or nic.NAME.ingress=RATE (RATE like 10mbit, or max)"
        ))
    };
    let (key, value) = item.split_once('=').ok_or_else(bad)?;
    let name = cfg.name.clone();
    let (nic, dir) = match key.split_once('.').ok_or_else(bad)? {
        ("net", dir) => match &cfg.nics[..] {
            [only] => (only.name.clone(), dir),
            nics => {
                let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
                return Err(CoreError::Invalid(format!(
                    "{item:?}: guest {name} has {} NICs ({}): name one, as nic.NAME.{dir}",
                    nics.len(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        },
        (_, rest) => {
            let (nic, dir) = rest.split_once('.').ok_or_else(bad)?;
            (nic.to_string(), dir)
        }
    };
    let n = cfg
        .nics
        .iter_mut()
        .find(|n| n.name == nic)
        .ok_or_else(|| CoreError::Invalid(format!("guest {name} has no NIC named {nic}")))?;
    let rate = match value.trim() {
        "" | "max" | "none" => None,
        v => Some(hangar_model::net::Rate::parse(v)?),
    };
    match dir {
        "egress" => n.egress = rate,
        "ingress" => n.ingress = rate,
        _ => return Err(bad()),
    }
    Ok(())
}

/// Put `cfg`'s effective limits on the running guest.
fn apply_live(host: &Host, cfg: &hangar_model::GuestConfig) -> Result<()> {
    let cg = host.guest_cgroup(cfg)?;
    cg.apply(&host.cgroup_limits(cfg)?)?;
    for nic in &cfg.nics {
        let host_if = crate::net::names::host_if(&host.paths, cfg.context.get(), &nic.name);
        hangar_net::tc::shape(&host_if, nic.egress.map(|r| r.0), nic.ingress.map(|r| r.0))?;
    }
    let rlimits = host.rlimits(cfg);
    if !rlimits.is_empty() {
        for pid in cg.pids()? {
            hangar_container::rlimits::apply(pid, &rlimits)?;
        }
    }
    Ok(())
}
