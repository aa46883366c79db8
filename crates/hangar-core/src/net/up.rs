//! Creating networks and bringing them up: the bridge (and per-VLAN bridges), forwarding
//! and masquerading for NAT, port forwards, and the DNS service (kept running by
//! `dns.rs`). Every step is idempotent, so `hangar start` simply brings up the networks
//! its guest uses (after a host reboot they are gone) and `hangar network check` can
//! repair.

use super::{DEFAULT_NETWORK, alloc, names, store};
use crate::{CoreError, Host, Result};
use hangar_model::net::{Cidr, NetKind, NetworkConfig};
use hangar_net::{dns::Dns, link, nft::Nft};

/// What `hangar network create` asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub kind: NetKind,
    /// None: pick a free 10.x.y.1/24 (nat networks).
    pub ipv4: Option<Cidr>,
    pub ipv6: Option<Cidr>,
    pub uplink: Option<String>,
    pub dns: bool,
}

pub fn nft(host: &Host) -> Nft {
    Nft::new(names::nft_tag(&host.paths).as_deref())
}

/// Create network `req.name` and bring it up.
pub fn create(host: &Host, req: &CreateRequest) -> Result<NetworkConfig> {
    hangar_model::net::validate_net_name(&req.name)?;
    let _net_lock = crate::lock::host_network()?;
    if store::file(&host.paths, &req.name).exists() {
        return Err(CoreError::Invalid(format!(
            "a network named {} already exists",
            req.name
        )));
    }
    let ipv4 = match (req.ipv4, req.kind) {
        (Some(c), NetKind::Bridge) if req.uplink.is_some() => Some(c),
        (Some(c), _) => {
            alloc::check_subnet_free(&host.paths, &c)?;
            Some(c)
        }
        (None, NetKind::Nat) => Some(alloc::pick_subnet(&host.paths)?),
        (None, NetKind::Bridge) => None,
    };
    let cfg = NetworkConfig {
        name: req.name.clone(),
        kind: req.kind,
        bridge: names::bridge(&host.paths, &req.name, None),
        ipv4,
        ipv6: req.ipv6,
        uplink: req.uplink.clone(),
        mtu: None,
        dns: req.dns,
        domain: "hangar".into(),
        forwards: vec![],
    };
    cfg.validate()?;
    if let Some(u) = &cfg.uplink
        && !link::link_exists(u)
    {
        return Err(CoreError::Invalid(format!(
            "uplink {u} does not exist on this host"
        )));
    }
    up(host, &cfg)?;
    if let Err(e) = store::save(&host.paths, &cfg) {
        let _ = down(host, &cfg);
        return Err(e);
    }
    Ok(cfg)
}

/// Load network `name`, creating the default NAT network on first use.
pub fn ensure_exists(host: &Host, name: &str) -> Result<NetworkConfig> {
    if name == DEFAULT_NETWORK && !store::file(&host.paths, name).exists() {
        let req = CreateRequest {
            name: name.into(),
            kind: NetKind::Nat,
            ipv4: None,
            ipv6: None,
            uplink: None,
            dns: true,
        };
        return create(host, &req);
    }
    store::load(&host.paths, name)
}

/// The DNS service of network `cfg`, if it has one.
pub fn dns(host: &Host, cfg: &NetworkConfig) -> Option<Dns> {
    let listen: Vec<String> = cfg
        .ipv4
        .iter()
        .chain(&cfg.ipv6)
        .map(|c| c.addr_string())
        .collect();
    (cfg.dns && !listen.is_empty()).then(|| Dns {
        network: cfg.name.clone(),
        interface: cfg.bridge.clone(),
        listen,
        domain: cfg.domain.clone(),
        dir: host
            .paths
            .root()
            .join("run/hangar/networks")
            .join(&cfg.name),
    })
}

/// Name servers and search domain for a guest: its networks' DNS services.
pub fn resolvers(
    host: &Host,
    cfg: &hangar_model::GuestConfig,
) -> Result<(Vec<String>, Option<String>)> {
    let mut servers = vec![];
    let mut search = None;
    for nic in cfg.nics.iter().filter(|n| n.vlan.is_none()) {
        let Some(n) = &nic.network else { continue };
        let net = store::load(&host.paths, n)?;
        if let (true, Some(a)) = (net.dns, net.ipv4) {
            servers.push(a.addr_string());
            search.get_or_insert(net.domain.clone());
        }
    }
    Ok((servers, search))
}

/// Guests of this root on network `net`: (name, address) for DNS, forwards and guards.
pub fn members(host: &Host, net: &str) -> Result<Vec<(String, Cidr)>> {
    let mut out = vec![];
    for g in crate::store::names(&host.paths)? {
        if let Ok(cfg) = crate::store::load(&host.paths, &g) {
            out.extend(addresses_on(&cfg, net));
        }
    }
    Ok(out)
}

/// Guest `cfg`'s addresses on network `net`, as [`members`] lists them.
fn addresses_on<'a>(
    cfg: &'a hangar_model::GuestConfig,
    net: &'a str,
) -> impl Iterator<Item = (String, Cidr)> + 'a {
    cfg.nics
        .iter()
        .filter(move |n| n.network.as_deref() == Some(net))
        .flat_map(|n| n.ipv4.iter().chain(&n.ipv6))
        .map(|a| (cfg.name.to_string(), *a))
}

/// Bring network `cfg` up (idempotent), rewriting its masquerade and forward rules.
pub fn up(host: &Host, cfg: &NetworkConfig) -> Result<()> {
    bring_up(host, cfg, None)
}

/// What the start of guest `starting` needs of network `cfg`: up (after a host reboot
/// it is gone), but rules that are in place are left alone rather than read and
/// rewritten, so a start costs the same with one guest on the host as with a thousand;
/// only the forwards to `starting` are written again (its address may have changed).
/// `network check --repair` rewrites them all.
pub fn up_for_start(host: &Host, cfg: &NetworkConfig, starting: &str) -> Result<()> {
    bring_up(host, cfg, Some(starting))
}

/// `starting`: None rewrites every rule; Some(guest) only what `up_for_start` says.
fn bring_up(host: &Host, cfg: &NetworkConfig, starting: Option<&str>) -> Result<()> {
    let addrs: Vec<Cidr> = cfg.ipv4.iter().chain(&cfg.ipv6).copied().collect();
    link::bridge_ensure(&cfg.bridge, &addrs, cfg.mtu)?;
    if let Some(u) = &cfg.uplink {
        hangar_net::cmd::ip(&["link", "set", u, "master", &cfg.bridge])?;
    }
    // No separate `nft.ensure()`: every rule hangar adds (masquerade, forward, guard) is
    // one transaction that makes the tables too, and each nft commit costs an RCU grace
    // period, the largest part of a start with NICs.
    let nft = nft(host);
    if cfg.kind == NetKind::Nat {
        link::enable_forwarding()?;
        let subnets: Vec<String> = cfg
            .ipv4
            .iter()
            .chain(&cfg.ipv6)
            .map(|c| c.network().to_string())
            .collect();
        if starting.is_none() || !nft.has_network(&cfg.name) {
            nft.masquerade(&cfg.name, &cfg.bridge, &subnets)?;
        }
    }
    // Every guest's config is read only when something needs it: at a start, the
    // network's DNS already naming the guest and no forward to write leave it unread.
    let dns = dns(host, cfg);
    let forwards: Vec<_> = cfg
        .forwards
        .iter()
        .filter(|fw| {
            starting.is_none_or(|g| g == fw.guest) || !nft.has_port_forward(&forward_id(cfg, fw))
        })
        .collect();
    let named = match (starting, &dns) {
        (Some(g), Some(d)) => {
            let guest = crate::store::load(&host.paths, &hangar_model::GuestName::new(g)?)?;
            let own: Vec<_> = addresses_on(&guest, &cfg.name).collect();
            d.publishes(&published(&own))
        }
        _ => dns.is_none(),
    };
    let members = if forwards.is_empty() && named {
        vec![]
    } else {
        members(host, &cfg.name)?
    };
    for fw in forwards {
        // A forward whose guest is gone or left the network (a hand edit) has no rule:
        // its host port must not reach whoever holds the old address now, and it must
        // not keep the network down for every other guest. `network check` reports it.
        let Some((_, ip)) = forward_target(&members, fw) else {
            nft.remove_port_forward(&forward_id(cfg, fw))?;
            continue;
        };
        nft.port_forward(
            &forward_id(cfg, fw),
            &fw.proto,
            fw.host_port,
            &ip.addr_string(),
            fw.guest_port,
        )?;
    }
    if let Some(d) = dns {
        super::dns::ensure(host, &d)?;
        if !named {
            set_names(&d, &members)?;
        }
    }
    Ok(())
}

/// The guests of network `cfg` changed (one was deleted, a NIC attached or detached):
/// publish their names again. Its rules stay as they are.
pub fn publish_names(host: &Host, cfg: &NetworkConfig) -> Result<()> {
    publish_names_as(host, cfg, None)
}

/// [`publish_names`], guest `from` published as `to` when `rename` is `(from, to)`: the
/// names as a rename in progress will leave them (see `ops/rename.rs`).
pub fn publish_names_as(
    host: &Host,
    cfg: &NetworkConfig,
    rename: Option<(&str, &str)>,
) -> Result<()> {
    if let Some(d) = dns(host, cfg) {
        let mut members = members(host, &cfg.name)?;
        if let Some((from, to)) = rename {
            for (g, _) in members.iter_mut().filter(|(g, _)| g == from) {
                *g = to.to_string();
            }
        }
        set_names(&d, &members)?;
    }
    Ok(())
}

/// `members`' names in the DNS of their network.
fn set_names(d: &Dns, members: &[(String, Cidr)]) -> Result<()> {
    Ok(d.set_hosts(&published(members))?)
}

/// The `(name, address)` pairs the DNS publishes for `members`: `host` and `gateway`
/// name the host itself, so a guest so named is not published.
fn published(members: &[(String, Cidr)]) -> Vec<(String, String)> {
    members
        .iter()
        .filter(|(g, _)| !hangar_net::dns::HOST_NAMES.contains(&g.as_str()))
        .map(|(g, a)| (g.clone(), a.addr_string()))
        .collect()
}

/// The guest address forward `fw` goes to: its guest's IPv4 address among `members`.
pub fn forward_target<'a>(
    members: &'a [(String, Cidr)],
    fw: &hangar_model::net::PortForward,
) -> Option<&'a (String, Cidr)> {
    members.iter().find(|(g, a)| g == &fw.guest && a.is_v4())
}

pub fn forward_id(cfg: &NetworkConfig, fw: &hangar_model::net::PortForward) -> String {
    format!("{}:{}:{}", cfg.name, fw.proto, fw.host_port)
}

/// The bridge of VLAN `vlan` of network `cfg`: an L2 segment of its own. On a network
/// with an uplink, the VLAN's 802.1Q device on the uplink is a port of that bridge, so
/// the VLAN reaches the physical network tagged (the Xen seed's `eth0.N` in `xenbrN`).
pub fn vlan_up(host: &Host, cfg: &NetworkConfig, vlan: u16) -> Result<String> {
    let bridge = names::bridge(&host.paths, &cfg.name, Some(vlan));
    let new = !link::link_exists(&bridge);
    link::bridge_ensure(&bridge, &[], cfg.mtu)?;
    if let Some(uplink) = &cfg.uplink {
        let dev = names::uplink_vlan(&host.paths, &cfg.name, vlan);
        if let Err(e) = link::uplink_vlan_ensure(&dev, uplink, vlan, &bridge) {
            // A failed start changes nothing: the bridge made for it goes again.
            if new {
                let _ = link::bridge_delete(&bridge);
            }
            return Err(e.into());
        }
    }
    Ok(bridge)
}

/// Take network `cfg` down: DNS, rules, bridges (VLAN ones included).
pub fn down(host: &Host, cfg: &NetworkConfig) -> Result<()> {
    if let Some(d) = dns(host, cfg) {
        super::dns::stop(&d)?;
    }
    let nft = nft(host);
    for fw in &cfg.forwards {
        nft.remove_port_forward(&forward_id(cfg, fw))?;
    }
    nft.remove_network(&cfg.name)?;
    let all = link::links_with_prefix(&names::prefix(&host.paths))?;
    let mut vlan_links = names::vlan_links_of(&host.paths, &cfg.name, &all);
    // The uplink's VLAN devices first: they are ports of the VLAN bridges.
    vlan_links.sort_by_key(|(_, what)| matches!(what, names::VlanLink::Bridge(_)));
    for (l, what) in &vlan_links {
        match what {
            names::VlanLink::Uplink(_) => link::uplink_vlan_delete(l)?,
            names::VlanLink::Bridge(_) => link::bridge_delete(l)?,
        }
    }
    link::bridge_delete(&cfg.bridge)?;
    Ok(())
}
