//! Networks and guest NICs: `etc/hangar/networks/NAME.toml` and the `[[nic]]` tables of
//! a guest config.
//!
//! Interface names are bounded by the kernel's 15 characters, and must say whose they
//! are: a guest NIC's host side is `<prefix><ctx>-<nic>` (`hg7-eth0`), a network's bridge
//! `<prefix>b-<network>` (`hgb-lan`). The prefix is `hg` for the host's own hangar root
//! and `h` plus three hex digits of the root's hash for a relocated root, so parallel
//! test roots never share an interface.

use crate::ModelError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn field(field: &'static str, why: impl Into<String>) -> ModelError {
    ModelError::Field {
        field,
        why: why.into(),
    }
}

/// A network's name: `[a-z0-9][a-z0-9-]{0,9}` (it becomes part of an interface name).
pub fn validate_net_name(n: &str) -> Result<(), ModelError> {
    let ok = !n.is_empty()
        && n.len() <= 10
        && !n.starts_with('-')
        && n.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(field(
            "network",
            format!("{n:?}: use 1-10 characters a-z, 0-9 and '-'"),
        ))
    }
}

/// A NIC's name inside the guest: `[a-z][a-z0-9]{0,4}` (eth0, lan, dmz1).
pub fn validate_nic_name(n: &str) -> Result<(), ModelError> {
    let b = n.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 5
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(field(
            "nic.name",
            format!("{n:?}: use 1-5 characters a-z and 0-9, starting with a letter"),
        ))
    }
}

/// An address with its prefix length, v4 or v6: `10.77.0.5/24`, `fd77::5/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cidr {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, ModelError> {
        let err = || {
            field(
                "address",
                format!("{s:?}: write an address with its prefix, like 10.77.0.5/24 or fd77::5/64"),
            )
        };
        let (a, p) = s.trim().split_once('/').ok_or_else(err)?;
        let p: u8 = p.parse().map_err(|_| err())?;
        if let Ok(v4) = a.parse::<Ipv4Addr>() {
            return if p <= 32 {
                Ok(Cidr::V4(v4, p))
            } else {
                Err(err())
            };
        }
        let v6 = a.parse::<Ipv6Addr>().map_err(|_| err())?;
        if p <= 128 {
            Ok(Cidr::V6(v6, p))
        } else {
            Err(err())
        }
    }

    pub fn prefix(&self) -> u8 {
        match self {
            Cidr::V4(_, p) | Cidr::V6(_, p) => *p,
        }
    }

    pub fn addr(&self) -> std::net::IpAddr {
        match *self {
            Cidr::V4(a, _) => a.into(),
            Cidr::V6(a, _) => a.into(),
        }
    }

    pub fn addr_string(&self) -> String {
        match self {
            Cidr::V4(a, _) => a.to_string(),
            Cidr::V6(a, _) => a.to_string(),
        }
    }

    pub fn is_v4(&self) -> bool {
        matches!(self, Cidr::V4(..))
    }

    /// The network this address is in, as a CIDR with the host bits cleared.
    pub fn network(&self) -> Cidr {
        match *self {
            Cidr::V4(a, p) => {
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                Cidr::V4(Ipv4Addr::from(u32::from(a) & mask), p)
            }
            Cidr::V6(a, p) => {
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                Cidr::V6(Ipv6Addr::from(u128::from(a) & mask), p)
            }
        }
    }

    /// Does the network of `self` contain `other`'s address?
    pub fn contains(&self, other: &Cidr) -> bool {
        match (self.network(), other) {
            (Cidr::V4(n, p), Cidr::V4(a, _)) => Cidr::V4(*a, p).network() == Cidr::V4(n, p),
            (Cidr::V6(n, p), Cidr::V6(a, _)) => Cidr::V6(*a, p).network() == Cidr::V6(n, p),
            _ => false,
        }
    }

    /// The `n`-th address of this network (`n` = 1 is the first usable one), same prefix.
    pub fn nth(&self, n: u128) -> Option<Cidr> {
        match self.network() {
            Cidr::V4(a, p) => {
                let size = 1u128 << (32 - p);
                (n < size.saturating_sub(1))
                    .then(|| Cidr::V4(Ipv4Addr::from(u32::from(a) + n as u32), p))
            }
            Cidr::V6(a, p) => {
                let size = if p == 0 {
                    u128::MAX
                } else {
                    1u128 << (128 - p).min(127)
                };
                (n < size).then(|| Cidr::V6(Ipv6Addr::from(u128::from(a) + n), p))
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4(a, p) => write!(f, "{a}/{p}"),
            Cidr::V6(a, p) => write!(f, "{a}/{p}"),
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cidr::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    /// A bridge hangar owns, optionally with a host uplink: guests are on the LAN.
    Bridge,
    /// A bridge with its own subnet; the host is the gateway and masquerades.
    Nat,
}

/// `host_port -> guest:guest_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    #[serde(default = "tcp")]
    pub proto: String,
    pub host_port: u16,
    pub guest: String,
    pub guest_port: u16,
}

fn tcp() -> String {
    "tcp".into()
}

/// A port number as typed: 1 to 65535.
pub fn parse_port(field_name: &'static str, s: &str) -> Result<u16, ModelError> {
    match s.trim().parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(field(
            field_name,
            format!("{s:?}: use a port from 1 to 65535"),
        )),
    }
}

/// `tcp` or `udp`, the protocols a port forward takes.
pub fn check_proto(proto: &str) -> Result<(), ModelError> {
    if proto == "tcp" || proto == "udp" {
        Ok(())
    } else {
        Err(field(
            "forwards.proto",
            format!("{proto:?}: use tcp or udp"),
        ))
    }
}

impl PortForward {
    /// A forward as `hangar network forward add` takes it: `HOST_PORT GUEST:PORT`.
    pub fn parse(proto: &str, host_port: &str, target: &str) -> Result<PortForward, ModelError> {
        check_proto(proto)?;
        let host_port = parse_port("forwards.host_port", host_port)?;
        let (guest, port) = target.split_once(':').ok_or_else(|| {
            field(
                "forwards.guest",
                format!("{target:?}: write the target as GUEST:PORT, like web:80"),
            )
        })?;
        let fw = PortForward {
            proto: proto.to_string(),
            host_port,
            guest: guest.to_string(),
            guest_port: parse_port("forwards.guest_port", port)?,
        };
        fw.validate()?;
        Ok(fw)
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        check_proto(&self.proto)?;
        if self.host_port == 0 {
            return Err(field("forwards.host_port", "0: use a port from 1 to 65535"));
        }
        if self.guest_port == 0 {
            return Err(field(
                "forwards.guest_port",
                "0: use a port from 1 to 65535",
            ));
        }
        crate::GuestName::new(&self.guest)?;
        Ok(())
    }

    /// Does this forward take `proto` port `host_port` of the host?
    pub fn takes(&self, proto: &str, host_port: u16) -> bool {
        self.proto == proto && self.host_port == host_port
    }
}

impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {}:{}",
            self.proto, self.host_port, self.guest, self.guest_port
        )
    }
}

/// `etc/hangar/networks/NAME.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub name: String,
    pub kind: NetKind,
    /// The bridge interface (chosen at creation, see the module doc).
    pub bridge: String,
    /// The host's address on the bridge; its network is the guests' pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Cidr>,
    /// Host interface enslaved to the bridge (bridge networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Run a DNS service on the bridge so guests resolve each other by name.
    #[serde(default = "yes")]
    pub dns: bool,
    #[serde(default = "default_domain")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<PortForward>,
}

fn yes() -> bool {
    true
}
fn default_domain() -> String {
    "hangar".into()
}

impl NetworkConfig {
    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        let n: NetworkConfig =
            toml::from_str(text).map_err(|e| ModelError::Toml(e.to_string().replace('\n', " ")))?;
        n.validate()?;
        Ok(n)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("network configs serialise")
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        validate_net_name(&self.name)?;
        if self.kind == NetKind::Nat && self.ipv4.is_none() && self.ipv6.is_none() {
            return Err(field(
                "ipv4",
                "a nat network needs a subnet (ipv4 = \"10.77.0.1/24\")",
            ));
        }
        for (f, c, v4) in [("ipv4", self.ipv4, true), ("ipv6", self.ipv6, false)] {
            if let Some(c) = c
                && (c.is_v4() != v4 || c.network() == c || c.prefix() > if v4 { 30 } else { 126 })
            {
                return Err(field(
                    f,
                    format!("{c}: give the host's address in the subnet, e.g. 10.77.0.1/24"),
                ));
            }
        }
        if matches!(self.mtu, Some(m) if !(576..=65535).contains(&m)) {
            return Err(field("mtu", "use 576 to 65535"));
        }
        for (i, fw) in self.forwards.iter().enumerate() {
            fw.validate()?;
            if let Some(other) = self.forwards[..i]
                .iter()
                .find(|o| o.takes(&fw.proto, fw.host_port))
            {
                return Err(field(
                    "forwards.host_port",
                    format!(
                        "{} {} is forwarded twice ({} and {})",
                        fw.proto, fw.host_port, other, fw
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What a copy (`hangar clone`, `hangar import`) makes of one of its source's NICs,
/// instead of the next free addresses on the same network: `--nic NAME:ip=ADDR`
/// (`ip6=ADDR` too, comma-separated) gives it these addresses, `--nic NAME:none` leaves
/// it out. A routed NIC needs one or the other: its addresses are given by hand, not
/// picked from a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicOverride {
    /// The source's NIC.
    pub name: String,
    /// None: the copy has no such NIC.
    pub addrs: Option<NicAddrs>,
}

/// Addresses given by hand; a family not given is picked as usual (or, for a routed
/// NIC that has one, must be given).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NicAddrs {
    pub ipv4: Option<Cidr>,
    pub ipv6: Option<Cidr>,
}

impl NicOverride {
    pub fn parse(s: &str) -> Result<NicOverride, ModelError> {
        let bad = |why: String| ModelError::NicOverride(format!("{s:?}: {why}"));
        let usage = "write NAME:ip=ADDR/PREFIX[,ip6=ADDR/PREFIX] or NAME:none";
        let (name, rest) = s.split_once(':').ok_or_else(|| bad(usage.into()))?;
        validate_nic_name(name).map_err(|e| bad(e.to_string()))?;
        let name = name.to_string();
        if rest == "none" {
            return Ok(NicOverride { name, addrs: None });
        }
        let mut addrs = NicAddrs::default();
        for item in rest.split(',') {
            let (k, v) = item.split_once('=').ok_or_else(|| bad(usage.into()))?;
            let (slot, v4) = match k {
                "ip" | "ipv4" => (&mut addrs.ipv4, true),
                "ip6" | "ipv6" => (&mut addrs.ipv6, false),
                _ => return Err(bad(format!("unknown key {k:?}: {usage}"))),
            };
            if slot.is_some() {
                return Err(bad(format!("{k} is given twice")));
            }
            let c = Cidr::parse(v).map_err(|_| {
                bad(format!(
                    "{v:?} is no address with its prefix, like 192.0.2.26/32 or 2001:db8::26/128"
                ))
            })?;
            if c.is_v4() != v4 {
                return Err(bad(format!(
                    "{v} is not an IPv{} address",
                    if v4 { 4 } else { 6 }
                )));
            }
            *slot = Some(c);
        }
        Ok(NicOverride {
            name,
            addrs: Some(addrs),
        })
    }
}

impl fmt::Display for NicOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(a) = self.addrs else {
            return write!(f, "{}:none", self.name);
        };
        let given: Vec<String> = [("ip", a.ipv4), ("ip6", a.ipv6)]
            .iter()
            .filter_map(|(k, c)| c.map(|c| format!("{k}={c}")))
            .collect();
        write!(f, "{}:{}", self.name, given.join(","))
    }
}

/// How a NIC reaches the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NicMode {
    /// On a hangar network's bridge.
    #[default]
    Bridged,
    /// VServer/OpenVZ venet style: the host routes the guest's own addresses to it.
    Routed,
}

/// A NIC's default gateway as configured: an address, or `none` (no default route via
/// this NIC). Unset, the NIC carries the guest's default route when no other NIC does,
/// via the automatic gateway (see [`Nic::gateway`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    NoDefault,
    Via(IpAddr),
}

impl Gateway {
    pub fn parse(s: &str) -> Result<Gateway, ModelError> {
        if s.trim() == "none" {
            return Ok(Gateway::NoDefault);
        }
        s.trim().parse().map(Gateway::Via).map_err(|_| {
            field(
                "nic.gateway",
                format!("{s:?}: write an address like 10.77.0.254 or fd77::fe, or none"),
            )
        })
    }

    /// The address, when there is one.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Gateway::Via(a) => Some(*a),
            Gateway::NoDefault => None,
        }
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gateway::NoDefault => f.write_str("none"),
            Gateway::Via(a) => write!(f, "{a}"),
        }
    }
}

impl Serialize for Gateway {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Gateway {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Gateway::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One `[[nic]]` of a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// Name inside the guest.
    pub name: String,
    #[serde(default)]
    pub mode: NicMode,
    /// The network (bridged NICs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Cidr>,
    /// Fixed, or generated from the guest's and the NIC's names at creation.
    pub mac: String,
    /// 802.1Q VLAN: the NIC joins the network's bridge for that VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Rate limits seen from the guest, bytes per second (`10mbit` in `hangar set`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Rate>,
    /// The IPv4 default gateway: an address on this NIC's subnet, or `none`. Unset: the
    /// network's host address (bridged) or the host side (routed), if no other NIC
    /// carries the default route. At most one NIC of a guest gives an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    /// The IPv6 default gateway, as `gateway` (a link-local fe80::/10 address is also
    /// accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Gateway>,
}

impl Nic {
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_nic_name(&self.name)?;
        parse_mac(&self.mac)?;
        match (self.mode, &self.network) {
            (NicMode::Bridged, None) => {
                return Err(field(
                    "nic.network",
                    format!("nic {} needs a network", self.name),
                ));
            }
            (NicMode::Routed, Some(_)) => {
                return Err(field(
                    "nic.network",
                    format!("nic {} is routed: it has no network", self.name),
                ));
            }
            (NicMode::Routed, None) if self.ipv4.is_none() && self.ipv6.is_none() => {
                return Err(field(
                    "nic.ipv4",
                    format!("routed nic {} needs its own address", self.name),
                ));
            }
            _ => {}
        }
        if let Some(n) = &self.network {
            validate_net_name(n)?;
        }
        if matches!(self.vlan, Some(v) if !(1..=4094).contains(&v)) {
            return Err(field("nic.vlan", "use 1 to 4094"));
        }
        if matches!(self.mtu, Some(m) if !(576..=65535).contains(&m)) {
            return Err(field("nic.mtu", "use 576 to 65535"));
        }
        self.validate_gateway("nic.gateway", true)?;
        self.validate_gateway("nic.gateway6", false)
    }

    /// `gateway` (IPv4) or `gateway6`.
    pub fn gateway_of(&self, v4: bool) -> Option<Gateway> {
        if v4 { self.gateway } else { self.gateway6 }
    }

    /// A gateway address is of its key's family, on this (bridged) NIC's subnet, and
    /// none of the subnet's own addresses.
    fn validate_gateway(&self, key: &'static str, v4: bool) -> Result<(), ModelError> {
        let Some(gw) = self.gateway_of(v4).and_then(|g| g.addr()) else {
            return Ok(());
        };
        let (family, other) = if v4 {
            ("IPv4", "gateway6")
        } else {
            ("IPv6", "gateway")
        };
        let name = &self.name;
        if gw.is_ipv4() != v4 {
            return Err(field(
                key,
                format!("{gw} is not an {family} address: give it as {other}"),
            ));
        }
        if self.mode == NicMode::Routed {
            return Err(field(
                key,
                format!(
                    "nic {name} is routed: its default route goes via the host side; \
                     use none, or leave {key} unset"
                ),
            ));
        }
        let own = if v4 { self.ipv4 } else { self.ipv6 };
        let Some(own) = own else {
            return Err(field(
                key,
                format!("nic {name} has no {family} address, so {gw} is on no subnet of it"),
            ));
        };
        let gw_cidr = match gw {
            IpAddr::V4(a) => Cidr::V4(a, 32),
            IpAddr::V6(a) => Cidr::V6(a, 128),
        };
        if gw_cidr.addr_string() == own.addr_string() {
            return Err(field(
                key,
                format!("{gw} is nic {name}'s own address: give the router's"),
            ));
        }
        if matches!(gw, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80) {
            return Ok(());
        }
        if !own.contains(&gw_cidr) {
            return Err(field(
                key,
                format!(
                    "{gw} is not on nic {name}'s subnet {}: give an address in it",
                    own.network()
                ),
            ));
        }
        if is_reserved(&own, gw) {
            return Err(field(
                key,
                format!(
                    "{gw} is the network or broadcast address of {}: give a host's",
                    own.network()
                ),
            ));
        }
        Ok(())
    }
}

/// The network address of `subnet`, or its IPv4 broadcast address (no host has them;
/// /31 and /32 have neither).
fn is_reserved(subnet: &Cidr, a: IpAddr) -> bool {
    match (subnet.network(), a) {
        (Cidr::V4(n, p), IpAddr::V4(a)) if p < 31 => {
            let broadcast = u32::from(n) | (u32::MAX >> p);
            a == n || u32::from(a) == broadcast
        }
        (Cidr::V6(n, p), IpAddr::V6(a)) if p < 127 => a == n,
        _ => false,
    }
}

/// The NICs of one guest together: distinct names, and at most one explicit gateway
/// address per family (one NIC carries the guest's default route).
pub fn validate_nics(nics: &[Nic]) -> Result<(), ModelError> {
    for (i, nic) in nics.iter().enumerate() {
        nic.validate()?;
        let earlier = &nics[..i];
        if earlier.iter().any(|n| n.name == nic.name) {
            return Err(field(
                "nic.name",
                format!("two NICs are named {}", nic.name),
            ));
        }
        for (key, v4) in [("nic.gateway", true), ("nic.gateway6", false)] {
            let has = |n: &Nic| n.gateway_of(v4).and_then(|g| g.addr()).is_some();
            if let Some(first) = earlier.iter().find(|n| has(n)).filter(|_| has(nic)) {
                return Err(field(
                    key,
                    format!(
                        "nics {} and {} both give one, but only one NIC carries the \
                         default route: leave the other's unset or set it to none",
                        first.name, nic.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A NIC's MAC address, checked by [`parse_mac`], written `02:00:5e:10:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn parse(s: &str) -> Result<Mac, ModelError> {
        parse_mac(s).map(Mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Mac::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The IPv4 default gateway of a routed guest (`onlink`), owned by the NIC's host side.
pub const ROUTED_GATEWAY_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 0, 1);
/// The IPv6 default gateway of a routed guest, owned by the NIC's host side.
pub const ROUTED_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// A MAC address `02:xx:xx:xx:xx:xx`: unicast, and locally administered when generated.
pub fn parse_mac(s: &str) -> Result<[u8; 6], ModelError> {
    let err = || {
        field(
            "nic.mac",
            format!("{s:?}: write six hex bytes, like 02:00:5e:10:00:01"),
        )
    };
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(err());
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| err())?;
    }
    if mac[0] & 1 == 1 {
        return Err(field(
            "nic.mac",
            format!("{s}: a multicast address cannot be a NIC's"),
        ));
    }
    Ok(mac)
}

/// A stable MAC for NIC `nic` of guest `guest` (`salt` > 0 picks another on collision).
pub fn generate_mac(guest: &str, nic: &str, salt: u32) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in guest
        .bytes()
        .chain([0])
        .chain(nic.bytes())
        .chain(salt.to_le_bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let b = h.to_le_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

/// Bytes per second, written `10mbit`, `1gbit`, `500kbit` (bits, as tc writes them) or
/// `2mbyte` / plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl Rate {
    pub fn parse(s: &str) -> Result<Rate, ModelError> {
        let err = || {
            field(
                "rate",
                format!("{s:?}: write a rate like 10mbit, 500kbit or 1gbit"),
            )
        };
        let t = s.trim().to_ascii_lowercase();
        let units: [(&str, f64); 8] = [
            ("gbit", 1e9 / 8.0),
            ("mbit", 1e6 / 8.0),
            ("kbit", 1e3 / 8.0),
            ("bit", 1.0 / 8.0),
            ("gbyte", 1e9),
            ("mbyte", 1e6),
            ("kbyte", 1e3),
            ("bps", 1.0),
        ];
        let (num, mult) = units
            .iter()
            .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n, *m)))
            .unwrap_or((t.as_str(), 1.0));
        let v = num.trim().parse::<f64>().map_err(|_| err())? * mult;
        if !v.is_finite() || v < 1000.0 {
            return Err(field("rate", format!("{s:?}: at least 8kbit")));
        }
        // Displayed in bits: far below u64::MAX / 8 bytes per second.
        if v > 1e15 / 8.0 {
            return Err(field("rate", format!("{s:?}: at most 1000000gbit")));
        }
        Ok(Rate(v.round() as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.0 * 8;
        match bits {
            b if b % 1_000_000_000 == 0 => write!(f, "{}gbit", b / 1_000_000_000),
            b if b % 1_000_000 == 0 => write!(f, "{}mbit", b / 1_000_000),
            b if b % 1000 == 0 => write!(f, "{}kbit", b / 1000),
            _ => write!(f, "{}bps", self.0),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Rate::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_overrides_parse_and_bad_ones_are_refused() {
        let o = NicOverride::parse("eth1:ip=192.0.2.26/32,ip6=2001:db8::26/128").unwrap();
        assert_eq!(o.name, "eth1");
        let a = o.addrs.unwrap();
        assert_eq!(a.ipv4, Some(Cidr::parse("192.0.2.26/32").unwrap()));
        assert_eq!(a.ipv6, Some(Cidr::parse("2001:db8::26/128").unwrap()));
        assert_eq!(
            NicOverride::parse("eth1:none").unwrap(),
            NicOverride {
                name: "eth1".into(),
                addrs: None
            }
        );
        for text in [
            "eth1:ip=192.0.2.26/32,ip6=2001:db8::26/128",
            "lan:ip6=fd00::1/64",
            "x:none",
        ] {
            assert_eq!(NicOverride::parse(text).unwrap().to_string(), text);
        }
        for (bad, says) in [
            ("eth1", "NAME:ip=ADDR"),
            ("eth1:", "NAME:ip=ADDR"),
            ("Eth1:none", "1-5 characters"),
            ("eth1:ip=192.0.2.26", "prefix"),
            ("eth1:ip=2001:db8::26/128", "not an IPv4"),
            ("eth1:ip6=192.0.2.26/32", "not an IPv6"),
            ("eth1:ip=192.0.2.26/32,ip=192.0.2.27/32", "given twice"),
            ("eth1:mac=02:00:00:00:00:01", "unknown key"),
            ("eth1:none,ip=192.0.2.26/32", "NAME:ip=ADDR"),
        ] {
            let e = NicOverride::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--nic ") && e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn cidrs_parse_and_compute_networks() {
        let c = Cidr::parse("10.77.0.5/24").unwrap();
        assert_eq!(c.network().to_string(), "10.77.0.0/24");
        assert!(c.contains(&Cidr::parse("10.77.0.200/32").unwrap()));
        assert!(!c.contains(&Cidr::parse("10.78.0.1/32").unwrap()));
        assert_eq!(c.nth(1).unwrap().to_string(), "10.77.0.1/24");
        assert!(c.nth(255).is_none(), "the broadcast address is no guest's");
        assert_eq!(
            Cidr::parse("fd77::1/64")
                .unwrap()
                .nth(2)
                .unwrap()
                .to_string(),
            "fd77::2/64"
        );
        for bad in [
            "10.77.0.5",
            "10.77.0.5/33",
            "300.1.1.1/24",
            "fd77::1/129",
            "x/1",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_fit_interface_names() {
        assert!(validate_net_name("lan").is_ok());
        assert!(validate_net_name("much-too-long").is_err());
        assert!(validate_nic_name("eth0").is_ok());
        assert!(validate_nic_name("eth123").is_err());
        assert!(validate_nic_name("0eth").is_err());
    }

    #[test]
    fn generated_macs_are_stable_local_unicast() {
        let a = generate_mac("web", "eth0", 0);
        assert_eq!(a, generate_mac("web", "eth0", 0));
        assert_ne!(a, generate_mac("web", "eth1", 0));
        assert_ne!(a, generate_mac("web", "eth0", 1));
        let m = parse_mac(&a).unwrap();
        assert_eq!(m[0], 0x02);
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
    }

    #[test]
    fn rates_are_in_bits_like_tc() {
        assert_eq!(Rate::parse("10mbit").unwrap().0, 1_250_000);
        assert_eq!(Rate::parse("1gbit").unwrap().to_string(), "1gbit");
        assert!(Rate::parse("fast").is_err());
    }

    #[test]
    fn rates_too_high_to_display_in_bits_are_refused() {
        // Found by fuzz/ (net_values): its display multiplied 2^64 - 1 by 8.
        let e = Rate::parse("6666666666660Gbit").unwrap_err().to_string();
        assert!(e.contains("at most 1000000gbit"), "{e}");
        let top = Rate::parse("1000000gbit").unwrap();
        assert_eq!(top.to_string(), "1000000gbit");
    }

    #[test]
    fn a_nat_network_needs_a_subnet() {
        let text = "name = \"lan\"\nkind = \"nat\"\nbridge = \"hgb-lan\"\n";
        assert!(
            NetworkConfig::from_toml(text)
                .unwrap_err()
                .to_string()
                .contains("subnet")
        );
        let ok = format!("{text}ipv4 = \"10.77.0.1/24\"\n");
        assert_eq!(
            NetworkConfig::from_toml(&ok)
                .unwrap()
                .ipv4
                .unwrap()
                .to_string(),
            "10.77.0.1/24"
        );
        assert!(NetworkConfig::from_toml(&format!("{text}ipv4 = \"10.77.0.0/24\"\n")).is_err());
    }

    fn bridged(ipv4: &str) -> Nic {
        Nic {
            name: "eth0".into(),
            mode: NicMode::Bridged,
            network: Some("lan".into()),
            ipv4: Some(Cidr::parse(ipv4).unwrap()),
            ipv6: None,
            mac: "02:00:00:00:00:01".into(),
            vlan: None,
            mtu: None,
            egress: None,
            ingress: None,
            gateway: None,
            gateway6: None,
        }
    }

    fn gateway_error(nic: &Nic) -> String {
        nic.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_gateway_on_the_nics_subnet_is_accepted_and_none_means_no_default_route() {
        let mut nic = bridged("10.77.0.5/24");
        nic.gateway = Some(Gateway::parse("10.77.0.254").unwrap());
        assert!(nic.validate().is_ok());
        nic.gateway = Some(Gateway::parse("none").unwrap());
        assert_eq!(nic.gateway, Some(Gateway::NoDefault));
        assert!(nic.validate().is_ok());
        nic.ipv6 = Some(Cidr::parse("fd77::5/64").unwrap());
        for ok in ["fd77::fe", "fe80::1"] {
            nic.gateway6 = Some(Gateway::parse(ok).unwrap());
            assert!(nic.validate().is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_gateway_off_the_subnet_of_the_wrong_family_or_the_nics_own_is_refused() {
        let mut nic = bridged("10.77.0.5/24");
        for (gw, why) in [
            ("10.78.0.1", "is not on nic eth0's subnet 10.77.0.0/24"),
            ("fd77::1", "is not an IPv4 address: give it as gateway6"),
            ("10.77.0.5", "is nic eth0's own address"),
            ("10.77.0.0", "network or broadcast address"),
            ("10.77.0.255", "network or broadcast address"),
        ] {
            nic.gateway = Some(Gateway::parse(gw).unwrap());
            let e = gateway_error(&nic);
            assert!(e.contains("nic.gateway:") && e.contains(why), "{gw}: {e}");
        }
        nic.gateway = None;
        nic.gateway6 = Some(Gateway::parse("10.77.0.1").unwrap());
        let e = gateway_error(&nic);
        assert!(
            e.contains("nic.gateway6:") && e.contains("not an IPv6 address"),
            "{e}"
        );
        nic.gateway6 = Some(Gateway::parse("fd77::1").unwrap());
        assert!(gateway_error(&nic).contains("has no IPv6 address"));
        assert!(
            Gateway::parse("router")
                .unwrap_err()
                .to_string()
                .contains("or none")
        );
    }

    #[test]
    fn a_routed_nic_takes_no_gateway_address_but_may_say_none() {
        let mut nic = bridged("192.0.2.25/32");
        nic.mode = NicMode::Routed;
        nic.network = None;
        nic.gateway = Some(Gateway::NoDefault);
        assert!(nic.validate().is_ok());
        nic.gateway = Some(Gateway::parse("192.0.2.1").unwrap());
        assert!(gateway_error(&nic).contains("routed"));
    }

    #[test]
    fn only_one_nic_gives_a_gateway_address_per_family() {
        let mut a = bridged("10.77.0.5/24");
        a.gateway = Some(Gateway::parse("10.77.0.254").unwrap());
        let mut b = bridged("10.78.0.5/24");
        b.name = "eth1".into();
        b.gateway = Some(Gateway::NoDefault);
        assert!(validate_nics(&[a.clone(), b.clone()]).is_ok());
        b.gateway = Some(Gateway::parse("10.78.0.1").unwrap());
        let e = validate_nics(&[a, b]).unwrap_err().to_string();
        assert!(
            e.contains("nic.gateway:") && e.contains("eth0 and eth1"),
            "{e}"
        );
    }

    #[test]
    fn gateways_round_trip_through_toml() {
        let mut nic = bridged("10.77.0.5/24");
        nic.gateway = Some(Gateway::parse("10.77.0.254").unwrap());
        nic.gateway6 = Some(Gateway::NoDefault);
        let text = toml::to_string(&nic).unwrap();
        assert!(text.contains("gateway = \"10.77.0.254\"") && text.contains("gateway6 = \"none\""));
        assert_eq!(toml::from_str::<Nic>(&text).unwrap(), nic);
    }

    #[test]
    fn port_forwards_take_ports_1_to_65535_tcp_or_udp_and_a_guest() {
        let fw = PortForward::parse("udp", "5353", "dns:53").unwrap();
        assert_eq!(fw.to_string(), "udp 5353 -> dns:53");
        for (proto, port, target, why) in [
            (
                "tcp",
                "0",
                "web:80",
                "forwards.host_port: \"0\": use a port from 1 to 65535",
            ),
            ("tcp", "70000", "web:80", "forwards.host_port: \"70000\""),
            (
                "sctp",
                "80",
                "web:80",
                "forwards.proto: \"sctp\": use tcp or udp",
            ),
            ("tcp", "80", "web", "GUEST:PORT"),
            ("tcp", "80", "web:0", "forwards.guest_port"),
            ("tcp", "80", "Web!:80", "invalid guest name"),
        ] {
            let e = PortForward::parse(proto, port, target)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{proto} {port} {target}: {e}");
        }
    }

    #[test]
    fn a_network_forwards_one_host_port_once_per_protocol() {
        let base =
            "name = \"lan\"\nkind = \"nat\"\nbridge = \"hgb-lan\"\nipv4 = \"10.77.0.1/24\"\n";
        let fw = |proto: &str, guest: &str| {
            format!(
                "[[forwards]]\nproto = \"{proto}\"\nhost_port = 8080\nguest = \"{guest}\"\nguest_port = 80\n"
            )
        };
        let ok = format!("{base}{}{}", fw("tcp", "a"), fw("udp", "b"));
        assert_eq!(NetworkConfig::from_toml(&ok).unwrap().forwards.len(), 2);
        let twice = format!("{base}{}{}", fw("tcp", "a"), fw("tcp", "b"));
        let e = NetworkConfig::from_toml(&twice).unwrap_err().to_string();
        assert!(e.contains("tcp 8080 is forwarded twice"), "{e}");
    }
}
