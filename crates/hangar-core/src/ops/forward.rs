//! `hangar network forward add/remove`: a port of the host forwarded to a port of a
//! guest. A forward is a `[[forwards]]` entry of its network's file and a rule in
//! hangar's nftables table; each change writes the file first and then the rule, and
//! puts the file's old bytes back when the rule is refused, so a forward is in both or
//! in neither. (A crash between the two leaves the entry without its rule, which `hangar
//! network check --repair` and the next start install; never a rule without an entry.)
//!
//! Host ports are the root's to hand out: one protocol and port is forwarded once,
//! across all networks. Changes hold the host lock (it guards the network files), and
//! `add` first the target guest's lock, so the guest cannot lose its address meanwhile.

use crate::net::{store, up};
use crate::{CoreError, Host, Result, lock};
use hangar_model::GuestName;
use hangar_model::net::{NetworkConfig, PortForward};
use std::fmt;
use std::path::Path;

/// A forward taken away with the guest it pointed at.
#[derive(Debug, Clone)]
pub struct Removed {
    pub network: String,
    pub forward: PortForward,
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port forward {} of network {}",
            self.forward, self.network
        )
    }
}

/// The command that removes forward `fw` of network `network`.
pub fn remove_command(network: &str, fw: &PortForward) -> String {
    let proto = if fw.proto == "tcp" {
        String::new()
    } else {
        format!(" --proto {}", fw.proto)
    };
    format!(
        "hangar network forward remove {network} {}{proto}",
        fw.host_port
    )
}

/// Forward `fw.proto` port `fw.host_port` of the host to `fw.guest`'s IPv4 address on
/// network `network`, port `fw.guest_port`; the rule applies at once.
pub fn add(host: &Host, network: &str, fw: &PortForward) -> Result<()> {
    fw.validate()?;
    let guest = GuestName::new(&fw.guest)?;
    let _guest = lock::guest(&host.paths, &guest)?;
    let _host = lock::host(&host.paths)?;
    let mut cfg = store::load(&host.paths, network)?;
    check_port_free(host, fw)?;
    let target = target_ipv4(host, &cfg, &guest)?;
    cfg.forwards.push(fw.clone());
    cfg.validate()?;
    change_file(host, &cfg, || {
        up::nft(host)
            .port_forward(
                &up::forward_id(&cfg, fw),
                &fw.proto,
                fw.host_port,
                &target,
                fw.guest_port,
            )
            .map_err(CoreError::from)
    })
}

/// Remove the forward of `proto` port `host_port` from network `network`, rule and entry.
pub fn remove(host: &Host, network: &str, proto: &str, host_port: u16) -> Result<PortForward> {
    hangar_model::net::check_proto(proto)?;
    let _host = lock::host(&host.paths)?;
    let mut cfg = store::load(&host.paths, network)?;
    let Some(i) = cfg.forwards.iter().position(|f| f.takes(proto, host_port)) else {
        return Err(CoreError::Invalid(format!(
            "network {network} has no forward of {proto} port {host_port}: see `hangar network show {network}`"
        )));
    };
    let fw = cfg.forwards.remove(i);
    let id = up::forward_id(&cfg, &fw);
    change_file(host, &cfg, || {
        up::nft(host)
            .remove_port_forward(&id)
            .map_err(CoreError::from)
    })?;
    Ok(fw)
}

/// Remove every forward to guest `guest` (it is being deleted). Call with the guest's
/// lock held.
pub fn remove_all_to(host: &Host, guest: &GuestName) -> Result<Vec<Removed>> {
    let _host = lock::host(&host.paths)?;
    let mut removed = vec![];
    for name in store::names(&host.paths)? {
        let mut cfg = store::load(&host.paths, &name)?;
        let (gone, kept): (Vec<_>, Vec<_>) = cfg
            .forwards
            .drain(..)
            .partition(|f| f.guest == guest.as_str());
        if gone.is_empty() {
            continue;
        }
        cfg.forwards = kept;
        let ids: Vec<String> = gone.iter().map(|f| up::forward_id(&cfg, f)).collect();
        change_file(host, &cfg, || {
            let nft = up::nft(host);
            ids.iter()
                .try_for_each(|id| nft.remove_port_forward(id))
                .map_err(CoreError::from)
        })?;
        removed.extend(gone.into_iter().map(|forward| Removed {
            network: name.clone(),
            forward,
        }));
    }
    Ok(removed)
}

/// Forwards of network `network` that reach `guest` only through NIC `nic` (its only
/// IPv4 address on that network): what detaching that NIC would strand.
pub fn through_nic(
    host: &Host,
    cfg: &hangar_model::GuestConfig,
    nic: &hangar_model::net::Nic,
) -> Result<Vec<PortForward>> {
    let Some(network) = nic.network.as_deref().filter(|_| nic.ipv4.is_some()) else {
        return Ok(vec![]);
    };
    let other_v4 = cfg
        .nics
        .iter()
        .any(|n| n.name != nic.name && n.network.as_deref() == Some(network) && n.ipv4.is_some());
    if other_v4 {
        return Ok(vec![]);
    }
    let net = store::load(&host.paths, network)?;
    Ok(net
        .forwards
        .into_iter()
        .filter(|f| f.guest == cfg.name.as_str())
        .collect())
}

/// Refuse a host port and protocol some network of this root already forwards.
fn check_port_free(host: &Host, fw: &PortForward) -> Result<()> {
    for name in store::names(&host.paths)? {
        let net = store::load(&host.paths, &name)?;
        if let Some(taken) = net
            .forwards
            .iter()
            .find(|f| f.takes(&fw.proto, fw.host_port))
        {
            return Err(CoreError::Invalid(format!(
                "{} port {} is already forwarded on network {name} ({taken}): remove it first with `{}`",
                fw.proto,
                fw.host_port,
                remove_command(&name, taken)
            )));
        }
    }
    Ok(())
}

/// Guest `guest`'s IPv4 address on network `net`, where its forwards go.
fn target_ipv4(host: &Host, net: &NetworkConfig, guest: &GuestName) -> Result<String> {
    if !crate::store::exists(&host.paths, guest) {
        return Err(CoreError::NotFound(guest.to_string()));
    }
    up::members(host, &net.name)?
        .into_iter()
        .find(|(g, a)| g == guest.as_str() && a.is_v4())
        .map(|(_, a)| a.addr_string())
        .ok_or_else(|| {
            CoreError::Invalid(format!(
                "guest {guest} has no IPv4 address on network {}: give it a NIC there first \
                 (`hangar attach {guest} nic network={}`)",
                net.name, net.name
            ))
        })
}

/// Save `cfg` over its network's file, then `apply` the matching rule change; when that
/// fails, the file gets its old bytes back.
fn change_file(host: &Host, cfg: &NetworkConfig, apply: impl FnOnce() -> Result<()>) -> Result<()> {
    let file = store::file(&host.paths, &cfg.name);
    let before = std::fs::read(&file).map_err(|e| CoreError::io("reading", &file, e))?;
    store::save(&host.paths, cfg)?;
    apply().inspect_err(|_| {
        let _ = restore(&file, &before);
    })
}

fn restore(file: &Path, bytes: &[u8]) -> Result<()> {
    hangar_sys::write_atomic(file, bytes, true).map_err(|e| CoreError::io("restoring", file, e))
}
