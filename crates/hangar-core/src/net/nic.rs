//! Guest NICs: what `--nic`/`hangar attach NAME nic ...` ask for, allocated into a
//! [`Nic`] of the guest config, and resolved into a [`NicPlan`] for the monitor.

use super::{DEFAULT_NETWORK, alloc, names, store, up};
use crate::{CoreError, Host, Result};
use hangar_model::GuestConfig;
use hangar_model::net::{Cidr, Nic, NicMode, Rate};
use hangar_model::spec::NicPlan;

/// An address as asked for: a fixed one, or the next free one of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrReq {
    Auto,
    Fixed(Cidr),
}

/// `network=lan ip=auto ip6=fd77::5/64 mode=routed mac=02:.. vlan=7 mtu=1400
/// egress=10mbit ingress=10mbit name=eth1` (also comma-separated).
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
                _ => {
                    return Err(bad(format!(
                        "unknown key {k:?}; keys: name network mode ip ip6 mac vlan mtu egress ingress"
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
            (None, fixed(&req.ipv4)?, fixed(&req.ipv6)?)
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
    };
    nic.validate()?;
    Ok(nic)
}

/// Everything the monitor needs to plug `cfg`'s NICs.
pub fn plans(host: &Host, cfg: &GuestConfig) -> Result<Vec<NicPlan>> {
    cfg.nics.iter().map(|n| plan(host, cfg, n)).collect()
}

pub fn plan(host: &Host, cfg: &GuestConfig, nic: &Nic) -> Result<NicPlan> {
    let addrs: Vec<String> = nic
        .ipv4
        .iter()
        .chain(&nic.ipv6)
        .map(|c| c.to_string())
        .collect();
    let (bridge, gateways) = match &nic.network {
        Some(n) => {
            let net = store::load(&host.paths, n)?;
            let gws = [net.ipv4, net.ipv6]
                .into_iter()
                .flatten()
                .filter(|g| {
                    nic.ipv4.iter().chain(&nic.ipv6).any(|a| g.contains(a)) && nic.vlan.is_none()
                })
                .map(|g| g.addr_string())
                .collect();
            (Some(names::bridge(&host.paths, n, nic.vlan)), gws)
        }
        None => (None, vec![]),
    };
    Ok(NicPlan {
        host_if: names::host_if(&host.paths, cfg.context.get(), &nic.name),
        guest_if: nic.name.clone(),
        mac: nic.mac.clone(),
        bridge,
        addrs,
        gateways,
        mtu: nic.mtu,
        routed: nic.mode == NicMode::Routed,
        egress: nic.egress.map(|r| r.0),
        ingress: nic.ingress.map(|r| r.0),
    })
}
