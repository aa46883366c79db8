//! Allocation of host-wide network resources: subnets for new networks, addresses in a
//! network, MACs. Subnets are host-wide (two hangar roots share the host's routing), so
//! their allocation holds a lock outside the root prefix: `/run/lock/hangar-net.lock` ([`crate::lock::host_network`]).

use super::store;
use crate::paths::Paths;
use crate::{CoreError, Result};
use hangar_model::net::{Cidr, NetworkConfig};
use std::net::Ipv4Addr;

/// IPv4 networks the host already routes or has addresses in.
fn host_v4_networks() -> Vec<Cidr> {
    let mut out = vec![];
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        hangar_net::cmd::ip(args)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    };
    for r in json(&["-4", "-json", "route", "show", "table", "all"]) {
        let dst = r["dst"].as_str().unwrap_or("");
        let c = if dst.contains('/') {
            Cidr::parse(dst).ok()
        } else {
            Cidr::parse(&format!("{dst}/32")).ok()
        };
        out.extend(c.filter(|c| c.prefix() > 0));
    }
    for link in json(&["-4", "-json", "addr"]) {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let (Some(l), Some(p)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                out.extend(Cidr::parse(&format!("{l}/{p}")).ok());
            }
        }
    }
    out
}

fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Prefix of the subnets hangar picks for NAT networks: a /22 holds 1,021 guests.
pub const PICKED_PREFIX: u8 = 22;

/// A free /22 for a new NAT network: the host address `.1` in the first 10.x.y.0/22
/// (x from 77) that overlaps nothing the host routes or any network of `paths` has.
/// Call with [`crate::lock::host_network`] held until the network's bridge exists.
pub fn pick_subnet(paths: &Paths) -> Result<Cidr> {
    let taken = taken_subnets(paths)?;
    for x in 77..=254u8 {
        for y in (0..=255u8).step_by(4) {
            let c = Cidr::V4(Ipv4Addr::new(10, x, y, 1), PICKED_PREFIX);
            if !taken.iter().any(|(t, _)| overlaps(t, &c)) {
                return Ok(c);
            }
        }
    }
    Err(CoreError::Invalid(
        "no free 10.x.y.0/22 subnet left for a new network; give --ipv4".into(),
    ))
}

/// Refuses an IPv4 subnet given for a new routed-from-here network (NAT, or a bridge
/// without an uplink) that overlaps what the host already routes or has addresses in,
/// or another network of this root: the host would send part of that traffic the wrong
/// way. Call with [`crate::lock::host_network`] held.
pub fn check_subnet_free(paths: &Paths, subnet: &Cidr) -> Result<()> {
    let clash = |taken: &Cidr, what: &str| {
        CoreError::Invalid(format!(
            "{} overlaps {}, which {what}; choose another subnet, or leave --ipv4 out \
             for a NAT network to get a free one",
            subnet.network(),
            taken.network()
        ))
    };
    match taken_subnets(paths)?
        .into_iter()
        .find(|(t, _)| overlaps(t, subnet))
    {
        Some((t, by)) => Err(clash(&t, &by)),
        None => Ok(()),
    }
}

/// Every IPv4 subnet in use, with who uses it: what the host routes or has addresses
/// in, then the networks of `paths`.
fn taken_subnets(paths: &Paths) -> Result<Vec<(Cidr, String)>> {
    let mut taken: Vec<(Cidr, String)> = host_v4_networks()
        .into_iter()
        .map(|c| (c, "this host already routes".to_string()))
        .collect();
    for n in store::names(paths)? {
        if let Ok(cfg) = store::load(paths, &n) {
            taken.extend(cfg.ipv4.map(|c| (c, format!("network {n} has"))));
        }
    }
    Ok(taken)
}

/// Every NIC of this root: of guests, and reserved by builds in progress.
pub fn all_nics(paths: &Paths) -> Result<Vec<(String, hangar_model::net::Nic)>> {
    let mut out = vec![];
    for g in crate::store::names(paths)? {
        if let Ok(cfg) = crate::store::load(paths, &g) {
            out.extend(cfg.nics.into_iter().map(|n| (g.to_string(), n)));
        }
    }
    if let Ok(entries) = std::fs::read_dir(paths.data_root()) {
        for e in entries.flatten() {
            let Some(g) = e
                .file_name()
                .to_str()
                .and_then(|f| f.strip_prefix(".build-"))
                .map(str::to_string)
            else {
                continue;
            };
            let nics: Vec<hangar_model::net::Nic> = std::fs::read(e.path().join("nics.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            out.extend(nics.into_iter().map(|n| (g.clone(), n)));
        }
    }
    Ok(out)
}

/// Addresses used in `net` by its host side and every guest NIC of this root.
pub fn used_addresses(paths: &Paths, net: &NetworkConfig) -> Result<Vec<Cidr>> {
    let mut used: Vec<Cidr> = net.ipv4.into_iter().chain(net.ipv6).collect();
    for (_, nic) in all_nics(paths)?
        .into_iter()
        .filter(|(_, n)| n.network.as_deref() == Some(&net.name))
    {
        used.extend(nic.ipv4.into_iter().chain(nic.ipv6));
    }
    Ok(used)
}

/// The lowest free address of `subnet` (the network's host address) for a guest:
/// one pass over the used addresses, then over the candidates.
pub fn pick_address(subnet: &Cidr, used: &[Cidr]) -> Result<Cidr> {
    let taken: std::collections::HashSet<String> = used.iter().map(Cidr::addr_string).collect();
    (2..65536u128)
        .map_while(|n| subnet.nth(n))
        .find(|c| !taken.contains(&c.addr_string()))
        .ok_or_else(|| {
            CoreError::Invalid(format!(
                "no free address left in {}: the network is full; put the guest on a \
                 larger network (hangar network create NAME --ipv4 ADDRESS/PREFIX, a /22 \
                 holds 1,021 guests) or free an address by deleting a guest",
                subnet.network()
            ))
        })
}

/// A MAC for NIC `nic` of guest `guest` that no other NIC of this root has.
pub fn pick_mac(paths: &Paths, guest: &str, nic: &str) -> Result<String> {
    let used: Vec<String> = all_nics(paths)?
        .into_iter()
        .filter(|(g, n)| !(g == guest && n.name == nic))
        .map(|(_, n)| n.mac)
        .collect();
    (0..1000)
        .map(|salt| hangar_model::net::generate_mac(guest, nic, salt))
        .find(|m| !used.contains(m))
        .ok_or_else(|| CoreError::Invalid("no free MAC address found".into()))
}
