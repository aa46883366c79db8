//! `hangar attach NAME nic ...` / `hangar detach NAME nic IFNAME` (Xen's
//! network-attach/-detach): change a guest's NICs, live when it runs.

use crate::net::nic::{self, NicRequest};
use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;
use hangar_model::net::Nic;
use std::os::fd::AsFd;

/// Add a NIC; plugged at once into a running guest. Returns it.
pub fn attach(host: &Host, name: &GuestName, items: &[String]) -> Result<Nic> {
    let req = NicRequest::parse(items)?;
    let _guest = lock::guest(&host.paths, name)?;
    let mut cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
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
    crate::adopt::ensure(host, name)?;
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
    if !status::status(&host.paths, &cfg.name).is_active() {
        return Ok(());
    }
    let plan = nic::plan(host, cfg, nic)?;
    if plug {
        let Some(netns) = guest_ns(host, &cfg.name, "net")? else {
            return Ok(());
        };
        crate::ops::start::networks_up(host, cfg)?;
        let owner = format!("guest {}", cfg.name);
        hangar_net::plug(
            &hangar_net::link::Netns::held(netns.as_fd(), &owner),
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
    record_in_spec(host, &cfg.name, &plan, plug)
}

/// Keep the running guest's launch spec in step with its NICs: its monitor reads it
/// again when init ends (to remove the guards of NICs attached live, and to plug them
/// again after a reboot), and an adopting monitor reads it from the start.
fn record_in_spec(
    host: &Host,
    name: &GuestName,
    plan: &hangar_model::spec::NicPlan,
    plugged: bool,
) -> Result<()> {
    let path = host.paths.run_dir(name).join("spec.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let mut spec: hangar_model::LaunchSpec = serde_json::from_slice(&bytes)
        .map_err(|e| CoreError::Invalid(format!("{}: {e}", path.display())))?;
    spec.nics.retain(|n| n.guest_if != plan.guest_if);
    if plugged {
        spec.nics.push(plan.clone());
    }
    crate::ops::start::write_spec(host, name, &spec)?;
    Ok(())
}

/// Namespace `kind` (`net`, `mnt`: a name in /proc/PID/ns) of running guest `name`,
/// held open; `None` when it is stopped. Its init may exit at any moment and its pid
/// go to another process, so the namespace is opened only once that pid is known to
/// be the guest's init, and the descriptor then keeps naming that namespace whatever
/// happens.
pub(crate) fn guest_ns(host: &Host, name: &GuestName, kind: &str) -> Result<Option<std::fs::File>> {
    let st = status::status(&host.paths, name);
    let (Some(pid), Some(start)) = (
        st.init_pid(),
        st.runtime.as_ref().and_then(|r| r.init_start),
    ) else {
        return Ok(None);
    };
    let stopped = || CoreError::Invalid(format!("guest {name} stopped meanwhile; nothing changed"));
    // The pidfd names the process that has `pid` now, even if the pid is reused later.
    let Ok(pidfd) = hangar_sys::pidfd_open(pid) else {
        return Err(stopped());
    };
    // It is the guest's init if it started when the state file says init started (a
    // process that reused the pid started later), and runs.
    if !hangar_container::procstat::alive_since(pid, start) {
        return Err(stopped());
    }
    let path = format!("/proc/{pid}/ns/{kind}");
    let ns = std::fs::File::open(&path).map_err(|_| stopped())?;
    // Still alive after the open: the pid was not reused between the check and the open.
    if exited(&pidfd) {
        return Err(stopped());
    }
    Ok(Some(ns))
}

/// Whether the process of `pidfd` has exited (a pidfd polls readable then).
fn exited(pidfd: &std::os::fd::OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

/// Names on these NICs' networks changed: refresh their DNS (best effort; `hangar
/// network check --repair` redoes it).
pub(crate) fn refresh_networks(host: &Host, nics: &[Nic]) {
    for nic in nics {
        let _ = refresh_network(host, nic);
    }
}

/// Names on the NIC's network changed: refresh its DNS (its rules did not change).
fn refresh_network(host: &Host, nic: &Nic) -> Result<()> {
    if let Some(n) = &nic.network {
        let cfg = crate::net::store::load(&host.paths, n)?;
        crate::net::up::publish_names(host, &cfg)?;
    }
    Ok(())
}
