//! Guest NICs: what `--nic`/`hangar attach NAME nic ...` ask for, allocated into a
//! [`Nic`] of the guest config, and resolved into a [`NicPlan`] for the monitor.

use super::{DEFAULT_NETWORK, alloc, names, store, up};
use crate::{CoreError, Host, Result};
use hangar_model::GuestConfig;
use hangar_model::net::{
    Cidr, Gateway, Mac, Nic, NicMode, ROUTED_GATEWAY_V4, ROUTED_GATEWAY_V6, Rate,
};
use hangar_model::spec::NicPlan;
use std::net::IpAddr;

/// An address as asked for: a fixed one, or the next free one of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrReq {
    Auto,
    Fixed(Cidr),
}

/// `network=lan ip=auto ip6=fd77::5/64 mode=routed mac=02:.. vlan=7 mtu=1400
/// egress=10mbit ingress=10mbit gateway=10.77.0.254|none gateway6=.. name=eth1` (also
/// comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicRequest {
    pub name: Option<String>,
    pub network: Option<String>,
    pub mode: NicMode,
    pub ipv4: Option<AddrReq>,
    pub ipv6: Option<AddrReq>,
    pub mac: Option<String>,
    pub vlan: Option<u16>,
    pub mtu: Option<u32>,
    pub egress: Option<Rate>,
    pub ingress: Option<Rate>,
    pub gateway: Option<Gateway>,
    pub gateway6: Option<Gateway>,
}

fn bad(why: String) -> CoreError {
    CoreError::Invalid(format!("nic: {why}"))
}

fn addr(v: &str, v4: bool) -> Result<AddrReq> {
    if v == "auto" {
        return Ok(AddrReq::Auto);
    }
    let c = Cidr::parse(v)?;
    if c.is_v4() != v4 {
        return Err(bad(format!(
            "{v} is not an IPv{} address",
            if v4 { 4 } else { 6 }
        )));
    }
    Ok(AddrReq::Fixed(c))
}

impl NicRequest {
    pub fn parse(items: &[String]) -> Result<NicRequest> {
        let mut r = NicRequest::default();
        for item in items
            .iter()
            .flat_map(|i| i.split(','))
            .filter(|i| !i.is_empty())
        {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("{item:?}: write KEY=VALUE")))?;
            match k {
                "name" => r.name = Some(v.to_string()),
                "network" | "net" => r.network = Some(v.to_string()),
                "mode" => {
                    r.mode = match v {
                        "bridged" => NicMode::Bridged,
                        "routed" => NicMode::Routed,
                        _ => return Err(bad(format!("mode {v:?}: use bridged or routed"))),
                    }
                }
                "ip" | "ipv4" => r.ipv4 = Some(addr(v, true)?),
                "ip6" | "ipv6" => r.ipv6 = Some(addr(v, false)?),
                "mac" => r.mac = Some(v.to_string()),
                "vlan" => {
                    r.vlan = Some(
                        v.parse()
                            .map_err(|_| bad(format!("vlan {v:?}: use 1 to 4094")))?,
                    )
                }
                "mtu" => {
                    r.mtu = Some(
                        v.parse()
                            .map_err(|_| bad(format!("mtu {v:?}: use 576 to 65535")))?,
                    )
                }
                "egress" => r.egress = Some(Rate::parse(v)?),
                "ingress" => r.ingress = Some(Rate::parse(v)?),
                "gateway" | "gw" => r.gateway = Some(Gateway::parse(v)?),
                "gateway6" | "gw6" => r.gateway6 = Some(Gateway::parse(v)?),
                _ => {
                    return Err(bad(format!(
                        "unknown key {k:?}; keys: name network mode ip ip6 mac vlan mtu egress \
                         ingress gateway gateway6"
                    )));
                }
            }
        }
        Ok(r)
    }
}

/// Turn `req` into a NIC of guest `guest`, allocating its name, addresses and MAC.
/// Call with the host lock held; creates the default network on first use.
pub fn allocate(host: &Host, guest: &str, existing: &[Nic], req: &NicRequest) -> Result<Nic> {
    let name = match &req.name {
        Some(n) => n.clone(),
        None => (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !existing.iter().any(|e| &e.name == n))
            .expect("a free ethN"),
    };
    if existing.iter().any(|e| e.name == name) {
        return Err(bad(format!("the guest already has a NIC named {name}")));
    }
    let mac = match &req.mac {
        Some(m) => {
            hangar_model::net::parse_mac(m)?;
            m.to_ascii_lowercase()
        }
        None => alloc::pick_mac(&host.paths, guest, &name)?,
    };
    let (network, ipv4, ipv6) = match req.mode {
        NicMode::Routed => {
            let fixed = |a: &Option<AddrReq>| match a {
                Some(AddrReq::Fixed(c)) => Ok(Some(*c)),
                Some(AddrReq::Auto) => Err(bad(
                    "a routed NIC keeps its own address: give ip=ADDR/32".into(),
                )),
                None => Ok(None),
            };
            let (ipv4, ipv6) = (fixed(&req.ipv4)?, fixed(&req.ipv6)?);
            // The host routes each such address to one NIC only.
            let all = alloc::all_nics(&host.paths)?;
            let routed: Vec<(&str, &Nic)> = all
                .iter()
                .map(|(g, o)| (g.as_str(), o))
                .chain(existing.iter().map(|o| (guest, o)))
                .filter(|(_, o)| o.mode == NicMode::Routed)
                .collect();
            for a in ipv4.iter().chain(&ipv6) {
                if let Some((g, o)) = routed
                    .iter()
                    .find(|(_, o)| o.ipv4.iter().chain(&o.ipv6).any(|t| t.addr() == a.addr()))
                {
                    return Err(bad(format!(
                        "{} is already routed to {g}'s NIC {}",
                        a.addr(),
                        o.name
                    )));
                }
            }
            (None, ipv4, ipv6)
        }
        NicMode::Bridged => {
            let net_name = req
                .network
                .clone()
                .unwrap_or_else(|| DEFAULT_NETWORK.to_string());
            let net = up::ensure_exists(host, &net_name)?;
            let used = alloc::used_addresses(&host.paths, &net)?;
            let pick = |want: &Option<AddrReq>,
                        subnet: Option<Cidr>,
                        default_auto: bool|
             -> Result<Option<Cidr>> {
                match (want, subnet) {
                    (Some(AddrReq::Fixed(c)), Some(s)) if !s.contains(c) => Err(bad(format!(
                        "{c} is not in network {net_name}'s {}",
                        s.network()
                    ))),
                    (Some(AddrReq::Fixed(c)), _)
                        if used.iter().any(|u| u.addr_string() == c.addr_string()) =>
                    {
                        Err(bad(format!(
                            "{} is already used on network {net_name}",
                            c.addr_string()
                        )))
                    }
                    (Some(AddrReq::Fixed(c)), _) => Ok(Some(*c)),
                    (Some(AddrReq::Auto), None) => Err(bad(format!(
                        "network {net_name} has no subnet to pick an address from"
                    ))),
                    (Some(AddrReq::Auto), Some(s)) => alloc::pick_address(&s, &used).map(Some),
                    (None, Some(s)) if default_auto => alloc::pick_address(&s, &used).map(Some),
                    (None, _) => Ok(None),
                }
            };
            let ipv4 = pick(&req.ipv4, net.ipv4, true)?;
            let ipv6 = pick(&req.ipv6, net.ipv6, true)?;
            (Some(net_name), ipv4, ipv6)
        }
    };
    let nic = Nic {
        name,
        mode: req.mode,
        network,
        ipv4,
        ipv6,
        mac,
        vlan: req.vlan,
        mtu: req.mtu,
        egress: req.egress,
        ingress: req.ingress,
        gateway: req.gateway,
        gateway6: req.gateway6,
    };
    nic.validate()?;
    Ok(nic)
}

/// Check NICs that a hand edit (`hangar config edit`) added or changed, as
/// [`allocate`] would have: the network exists, each address is in its subnet and no
/// other guest's (nor the host side's), each MAC is no other NIC's. Call with the host
/// lock held.
pub fn check_edited(host: &Host, guest: &str, old: &[Nic], new: &[Nic]) -> Result<()> {
    let others: Vec<(String, Nic)> = alloc::all_nics(&host.paths)?
        .into_iter()
        .filter(|(g, _)| g != guest)
        .collect();
    for nic in new.iter().filter(|n| !old.contains(n)) {
        let what = format!("NIC {}", nic.name);
        if let Some((g, _)) = others.iter().find(|(_, o)| o.mac == nic.mac) {
            return Err(bad(format!("{what}: MAC {} is {g}'s", nic.mac)));
        }
        if new.iter().filter(|n| n.mac == nic.mac).count() > 1 {
            return Err(bad(format!("{what}: MAC {} is on two NICs", nic.mac)));
        }
        let mut taken: Vec<(String, Cidr)> = vec![];
        if let Some(net_name) = &nic.network {
            let net = store::load(&host.paths, net_name).map_err(|_| {
                bad(format!(
                    "{what}: there is no network {net_name} (hangar network list)"
                ))
            })?;
            for (addr, subnet) in [(nic.ipv4, net.ipv4), (nic.ipv6, net.ipv6)] {
                if let (Some(a), Some(s)) = (addr, subnet)
                    && !s.contains(&a)
                {
                    return Err(bad(format!(
                        "{what}: {a} is not in network {net_name}'s {}",
                        s.network()
                    )));
                }
            }
            taken.extend(
                net.ipv4
                    .iter()
                    .chain(&net.ipv6)
                    .map(|a| ("the host".to_string(), *a)),
            );
        }
        // Same network, or routed (its address is the host's to route, whatever network).
        taken.extend(
            others
                .iter()
                .filter(|(_, o)| o.network == nic.network || o.mode == NicMode::Routed)
                .flat_map(|(g, o)| o.ipv4.iter().chain(&o.ipv6).map(move |a| (g.clone(), *a))),
        );
        for a in nic.ipv4.iter().chain(&nic.ipv6) {
            if let Some((by, _)) = taken
                .iter()
                .find(|(_, t)| t.addr_string() == a.addr_string())
            {
                return Err(bad(format!(
                    "{what}: {} is already used by {by}",
                    a.addr_string()
                )));
            }
        }
    }
    Ok(())
}

/// Everything the monitor needs to plug `cfg`'s NICs.
pub fn plans(host: &Host, cfg: &GuestConfig) -> Result<Vec<NicPlan>> {
    cfg.nics.iter().map(|n| plan(host, cfg, n)).collect()
}

pub fn plan(host: &Host, cfg: &GuestConfig, nic: &Nic) -> Result<NicPlan> {
    let addrs: Vec<Cidr> = nic.ipv4.iter().chain(&nic.ipv6).copied().collect();
    let mut gateways = vec![];
    for v4 in [true, false] {
        if let Some((carrier, gw)) = default_route(host, cfg, v4)?
            && carrier == nic.name
        {
            gateways.push(gw);
        }
    }
    Ok(NicPlan {
        host_if: names::host_if(&host.paths, cfg.context.get(), &nic.name),
        guest_if: nic.name.clone(),
        mac: Mac::parse(&nic.mac)?,
        bridge: nic
            .network
            .as_ref()
            .map(|n| names::bridge(&host.paths, n, nic.vlan)),
        addrs,
        gateways,
        mtu: nic.mtu,
        routed: nic.mode == NicMode::Routed,
        egress: nic.egress.map(|r| r.0),
        ingress: nic.ingress.map(|r| r.0),
    })
}

/// The NIC that carries the guest's default route of one family, and its gateway: the
/// NIC that gives a gateway address (there is at most one), else the first NIC in
/// config order that has an automatic gateway and does not say `none`.
pub fn default_route(host: &Host, cfg: &GuestConfig, v4: bool) -> Result<Option<(String, IpAddr)>> {
    if let Some((n, gw)) = cfg
        .nics
        .iter()
        .find_map(|n| Some((n, n.gateway_of(v4)?.addr()?)))
    {
        return Ok(Some((n.name.clone(), gw)));
    }
    for n in cfg.nics.iter().filter(|n| n.gateway_of(v4).is_none()) {
        if let Some(gw) = automatic_gateway(host, n, v4)? {
            return Ok(Some((n.name.clone(), gw)));
        }
    }
    Ok(None)
}

/// The gateway a NIC gets without `gateway`: the host side's link-local address for a
/// routed NIC, the network's host address for a bridged NIC with an address in the
/// network's subnet (not on a VLAN: the host has no address there).
fn automatic_gateway(host: &Host, nic: &Nic, v4: bool) -> Result<Option<IpAddr>> {
    let Some(own) = (if v4 { nic.ipv4 } else { nic.ipv6 }) else {
        return Ok(None);
    };
    let routed = if v4 {
        IpAddr::V4(ROUTED_GATEWAY_V4)
    } else {
        IpAddr::V6(ROUTED_GATEWAY_V6)
    };
    let net = match (&nic.network, nic.mode) {
        (_, NicMode::Routed) => return Ok(Some(routed)),
        (Some(n), NicMode::Bridged) if nic.vlan.is_none() => store::load(&host.paths, n)?,
        _ => return Ok(None),
    };
    let host_addr = if v4 { net.ipv4 } else { net.ipv6 };
    Ok(host_addr
        .filter(|h| h.contains(&own))
        .and_then(|h| h.addr_string().parse().ok()))
}
