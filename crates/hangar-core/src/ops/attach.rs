//! `hangar attach NAME nic ...` / `hangar detach NAME nic IFNAME` (Xen's
//! network-attach/-detach): change a guest's NICs, live when it runs.

use crate::net::nic::{self, NicRequest};
use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;
use hangar_model::net::Nic;

/// Add a NIC; plugged at once into a running guest. Returns it.
pub fn attach(host: &Host, name: &GuestName, items: &[String]) -> Result<Nic> {
    let req = NicRequest::parse(items)?;
    let _guest = lock::guest(&host.paths, name)?;
    let mut cfg = store::load(&host.paths, name)?;
    let nic = {
        let _host = lock::host(&host.paths)?;
        let nic = nic::allocate(host, name.as_str(), &cfg.nics, &req)?;
        cfg.nics.push(nic.clone());
        cfg.validate()?;
        store::save(&host.paths, &cfg)?;
        nic
    };
    if let Err(e) = live(host, &cfg, &nic, true) {
        cfg.nics.retain(|n| n.name != nic.name);
        store::save(&host.paths, &cfg)?;
        return Err(e);
    }
    refresh_network(host, &nic)?;
    Ok(nic)
}

/// Remove NIC `ifname`; unplugged at once from a running guest.
pub fn detach(host: &Host, name: &GuestName, ifname: &str) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    let mut cfg = store::load(&host.paths, name)?;
    let Some(nic) = cfg.nics.iter().find(|n| n.name == ifname).cloned() else {
        return Err(CoreError::Invalid(format!(
            "guest {name} has no NIC named {ifname}"
        )));
    };
    if let Some(fw) = crate::ops::forward::through_nic(host, &cfg, &nic)?.first() {
        let network = nic.network.as_deref().unwrap_or_default();
        return Err(CoreError::Invalid(format!(
            "port forward {fw} of network {network} goes to {name} through {ifname}: remove it \
             first with `{}`",
            crate::ops::forward::remove_command(network, fw)
        )));
    }
    live(host, &cfg, &nic, false)?;
    cfg.nics.retain(|n| n.name != ifname);
    store::save(&host.paths, &cfg)?;
    refresh_network(host, &nic)
}

/// Plug or unplug `nic` in the running guest (nothing when it is stopped).
fn live(host: &Host, cfg: &hangar_model::GuestConfig, nic: &Nic, plug: bool) -> Result<()> {
    let st = status::status(&host.paths, &cfg.name);
    let Some(pid) = st.init_pid() else {
        return Ok(());
    };
    let plan = nic::plan(host, cfg, nic)?;
    if plug {
        crate::ops::start::networks_up(host, cfg)?;
        hangar_net::plug(
            pid,
            &plan,
            cfg.name.as_str(),
            crate::net::names::nft_tag(&host.paths).as_deref(),
        )?;
    } else {
        hangar_net::unplug(
            &plan,
            cfg.name.as_str(),
            crate::net::names::nft_tag(&host.paths).as_deref(),
        )?;
    }
    Ok(())
}

/// Names on these NICs' networks changed: refresh their DNS (best effort; `hangar
/// network check --repair` redoes it).
pub(crate) fn refresh_networks(host: &Host, nics: &[Nic]) {
    for nic in nics {
        let _ = refresh_network(host, nic);
    }
}

/// Names on the NIC's network changed: refresh its DNS.
fn refresh_network(host: &Host, nic: &Nic) -> Result<()> {
    if let Some(n) = &nic.network {
        let cfg = crate::net::store::load(&host.paths, n)?;
        crate::net::up::up(host, &cfg)?;
    }
    Ok(())
}
