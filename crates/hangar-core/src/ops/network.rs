//! `hangar network create/list/show/delete/check`.

use crate::net::{store, up};
use crate::{CoreError, Host, Result, lock};
use hangar_model::net::NetworkConfig;
use serde::Serialize;

pub use crate::net::up::CreateRequest;

pub fn create(host: &Host, req: &CreateRequest) -> Result<NetworkConfig> {
    let _host_lock = lock::host(&host.paths)?;
    up::create(host, req)
}

pub fn list(host: &Host) -> Result<Vec<NetworkConfig>> {
    store::names(&host.paths)?
        .iter()
        .map(|n| store::load(&host.paths, n))
        .collect()
}

/// A network with the guests on it.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub network: NetworkConfig,
    pub guests: Vec<(String, String)>,
}

pub fn show(host: &Host, name: &str) -> Result<Shown> {
    let network = store::load(&host.paths, name)?;
    let guests = up::members(host, name)?
        .into_iter()
        .map(|(g, a)| (g, a.to_string()))
        .collect();
    Ok(Shown { network, guests })
}

/// Delete a network no guest uses.
pub fn delete(host: &Host, name: &str) -> Result<()> {
    let _host_lock = lock::host(&host.paths)?;
    let cfg = store::load(&host.paths, name)?;
    let users: Vec<String> = crate::store::names(&host.paths)?
        .into_iter()
        .filter(|g| {
            crate::store::load(&host.paths, g)
                .is_ok_and(|c| c.nics.iter().any(|n| n.network.as_deref() == Some(name)))
        })
        .map(|g| g.to_string())
        .collect();
    if !users.is_empty() {
        return Err(CoreError::Invalid(format!(
            "network {name} is used by {}: detach or delete them first",
            users.join(", ")
        )));
    }
    up::down(host, &cfg)?;
    let f = store::file(&host.paths, name);
    std::fs::remove_file(&f).map_err(|e| CoreError::io("removing", &f, e))?;
    // The last network takes hangar's nftables tables with it.
    if store::names(&host.paths)?.is_empty() {
        up::nft(host).delete_tables()?;
    }
    Ok(())
}

/// What `network check` found and did.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Host-side interfaces of guests that are not running (removed with --repair).
    pub stale_links: Vec<String>,
    /// nftables guards of guests that are not running.
    pub stale_guards: Vec<String>,
    /// nftables port forwards no network file has (removed with --repair).
    pub stale_forwards: Vec<String>,
    /// Forwards of network files whose guest is gone or has no IPv4 address on the
    /// network: they have no rule; remove them or give the guest its NIC back.
    pub forwards_without_target: Vec<String>,
    /// Networks whose DNS service is down: `NAME (dnsmasq)` or `NAME (keeper)`.
    pub dns_down: Vec<String>,
    /// Networks brought back up (missing bridge, rules or DNS).
    pub networks_up: Vec<String>,
    pub repaired: bool,
}

/// Compare what the kernel has with what running guests and networks need; with
/// `repair`, remove leftovers (after a host or monitor crash) and bring networks up.
pub fn check(host: &Host, repair: bool) -> Result<CheckReport> {
    let _host_lock = lock::host(&host.paths)?;
    let mut report = CheckReport {
        repaired: repair,
        ..Default::default()
    };
    let mut running_ifs = vec![];
    let mut running_guests = vec![];
    for g in crate::store::names(&host.paths)? {
        let Ok(cfg) = crate::store::load(&host.paths, &g) else {
            continue;
        };
        if crate::status::status(&host.paths, &g).is_active() {
            running_guests.push(g.to_string());
            running_ifs.extend(
                cfg.nics
                    .iter()
                    .map(|n| crate::net::names::host_if(&host.paths, cfg.context.get(), &n.name)),
            );
        }
    }
    let networks = list(host)?;
    let prefix = crate::net::names::prefix(&host.paths);
    let bridges: Vec<String> = networks.iter().map(|n| n.bridge.clone()).collect();
    for l in hangar_net::link::links_with_prefix(&prefix)? {
        let is_guest_if = l[prefix.len()..].starts_with(|c: char| c.is_ascii_digit());
        if is_guest_if && !running_ifs.contains(&l) && !bridges.contains(&l) {
            if repair {
                hangar_net::link::nic_unplug(&l)?;
                let _ = hangar_net::tc::unshape(&l);
            }
            report.stale_links.push(l);
        }
    }
    // Shaping devices outlive their guest's veth; find them by the interface they shaped.
    for (ifb, shaped) in hangar_net::tc::ifb_devices()? {
        if shaped.starts_with(&prefix) && !running_ifs.contains(&shaped) {
            if repair {
                hangar_net::tc::unshape(&shaped)?;
            }
            report.stale_links.push(ifb);
        }
    }
    let nft = up::nft(host);
    for guard in nft.inventory()?.guards {
        // Guard tags are `<guest>.<nic>`.
        let guest = guard.split('.').next().unwrap_or_default();
        if !running_guests.iter().any(|g| g == guest) {
            if repair {
                nft.unguard(&guard)?;
            }
            report.stale_guards.push(guard);
        }
    }
    let mut wanted_forwards = vec![];
    for n in &networks {
        let members = up::members(host, &n.name)?;
        for fw in &n.forwards {
            wanted_forwards.push(up::forward_id(n, fw));
            if up::forward_target(&members, fw).is_none() {
                report
                    .forwards_without_target
                    .push(format!("{} of network {}", fw, n.name));
            }
        }
    }
    for id in nft.inventory()?.forwards {
        if !wanted_forwards.contains(&id) {
            if repair {
                nft.remove_port_forward(&id)?;
            }
            report.stale_forwards.push(id);
        }
    }
    for n in &networks {
        if let Some(d) = up::dns(host, n) {
            if !d.is_running() {
                report.dns_down.push(format!("{} (dnsmasq)", n.name));
            } else if !crate::net::dns::keeper_alive(&d) {
                report.dns_down.push(format!("{} (keeper)", n.name));
            }
        }
    }
    if repair {
        // Every change leaves a present skeleton alone (see hangar_net::nft): repair
        // writes it again, in case someone flushed one of hangar's base chains.
        if !networks.is_empty() {
            nft.ensure()?;
        }
        for n in networks {
            up::up(host, &n)?;
            report.networks_up.push(n.name);
        }
    }
    Ok(report)
}
