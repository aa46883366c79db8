//! hangar's packet filter rules: NAT for networks, port forwards, and anti-spoofing guards
//! on guest NICs, driven through the `nft` tool.
//!
//! hangar keeps all its rules in two tables of its own and never touches any other:
//! `inet T` (NAT, port forwards, guards on routed ports) and `bridge T` (guards on bridge
//! ports), where `T` is `hangar` for the host's own hangar root and `hangar_<tag>` for a
//! relocated root. Each table has a fixed skeleton of base chains that dispatch through
//! verdict maps, and every network and forward owns one regular chain, reached only
//! through elements of those maps; the anti-spoofing guards are one fixed rule set per
//! family matching elements of named sets, an element per NIC (`nft/guard.rs`):
//!
//! ```text
//! table inet hangar {
//!     map nat_nets4 { type ipv4_addr : verdict; flags interval; }   # subnet -> net_*
//!     map nat_nets6 { type ipv6_addr : verdict; flags interval; }
//!     map nat_ports { type nf_proto . inet_proto . inet_service : verdict; }  # -> fwd_*
//!     set guarded { type ifname; }  set guard_mac, guard_v4, guard_v6, guard_nd { ... }
//!     chain guard       { type filter hook prerouting priority raw;
//!                         iifname != @guarded return; iifname . ether saddr != @guard_mac drop; ... }
//!     chain prerouting  { type nat hook prerouting priority dstnat;
//!                         fib daddr type local meta nfproto . meta l4proto . th dport vmap @nat_ports }
//!     chain output      { type nat hook output priority -100; (loopback excluded)
//!                         fib daddr type local meta nfproto . meta l4proto . th dport vmap @nat_ports }
//!     chain postrouting { type nat hook postrouting priority srcnat;
//!                         ip saddr vmap @nat_nets4; ip6 saddr vmap @nat_nets6 }
//!     chain net_lan     { oifname != "br0" masquerade }
//!     chain fwd_web_3a8080 { meta l4proto tcp dnat ip to 10.232.0.2:80 }
//! }
//! table bridge hangar {
//!     set guarded { type ifname; }  set guard_mac, ...
//!     chain guard { type filter hook prerouting priority filter;
//!                   iifname != @guarded return; ...; iifname . arp saddr ip != @guard_v4 drop; ... }
//! }
//! ```
//!
//! Chain names carry the tag (`net_<network>`, `fwd_<id>`), with
//! every character outside `[A-Za-z0-9.-]` written as `_xx` (its hex code), because `nft`
//! 1.0 accepts only plain identifiers as chain names; the chain's comment holds the tag
//! as given. Because nothing but map elements points at a tag's chain, removing a tag is
//! "delete the elements that jump to its chains, flush and delete the chains", and adding
//! one replaces whatever the tag had before. A guard (the one change every start and stop
//! of a guest with NICs makes) first tries one netlink transaction that reads nothing
//! (`nft/netlink.rs`): create the NIC's elements, or delete them; only when the kernel
//! refuses it, because the skeleton is missing or the interface is guarded already, does
//! it take the general path: read the tables it changes (`nft -j list table`, parsed in
//! `nft/listing.rs`, whose size grows with the number of guests) and apply one
//! transaction. Either way a change happens entirely or not at all. Callers serialise
//! changes to one table (hangar holds its host lock); a concurrent writer can make a
//! transaction fail, never half-apply. Inputs are checked (`nft/input.rs`) before any
//! of them reaches a script.
//!
//! Choices worth knowing:
//! - Port forwards apply to packets addressed to any of the host's own addresses
//!   (`fib daddr type local`): arriving from outside (other hosts, other network
//!   namespaces, guests) and sent by the host itself to a non-loopback address of its
//!   own. Connections to 127.0.0.1/::1 are not forwarded (that would need
//!   `route_localnet` and a masquerade of loopback sources). A guest reaching a forward
//!   of its own network through the host's address (hairpin) gets no source NAT, so the
//!   reply bypasses the host: guests should use each other's addresses.
//! - Guards are installed in both families for every port: the bridge table sees the
//!   frames of a bridge port, the inet table (prerouting at raw priority, so before
//!   conntrack, and covering traffic to the host itself as well as forwarded traffic)
//!   sees the packets of a routed port. Only the one that matches the port's role ever
//!   sees traffic, and the guard does not depend on the port being enslaved first.
//! - A guard allows: frames from the NIC's MAC only; on bridges only IPv4, ARP and IPv6
//!   frames (so 802.1Q tags cannot smuggle spoofed packets past the checks); ARP whose
//!   sender is that MAC and one of the NIC's IPv4 addresses (or 0.0.0.0, an RFC 5227
//!   probe); IPv4 from the NIC's addresses, plus the DHCP client's
//!   0.0.0.0:68 -> 255.255.255.255:67; IPv6 from the NIC's addresses, link-local
//!   (fe80::/10) and :: (duplicate address detection), and neighbour advertisements only
//!   for those addresses. Guests are hosts, not routers or DHCP servers: router
//!   advertisements, redirects and DHCP server replies from them are dropped too.
//!   Prefix lengths on guard addresses are ignored: the address itself is allowed.

mod guard;
mod input;
mod listing;
mod netlink;

use crate::{NetError, Result, cmd};
use input::{check_ifname, check_tag, decode, encode, invalid, parse_subnet, render_prefix};
use listing::{TableState, parse_json, table_state, unexpected};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

const INET: &str = "inet";
const BRIDGE: &str = "bridge";

const NET: &str = "net_";
const FWD: &str = "fwd_";

const NETS4: &str = "nat_nets4";
const NETS6: &str = "nat_nets6";
const PORTS: &str = "nat_ports";

/// hangar's two nftables tables of one hangar root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    table: String,
}

/// What hangar's tables hold, by tag: for leftover checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Networks with masquerading ([`Nft::masquerade`]).
    pub networks: Vec<String>,
    /// Port forward ids ([`Nft::port_forward`]).
    pub forwards: Vec<String>,
    /// The tags of the guards ([`Nft::guard`]), `<guest>.<nic>`.
    pub guards: Vec<String>,
}

impl Inventory {
    /// True when no network, forward or guard is left.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.forwards.is_empty() && self.guards.is_empty()
    }
}

impl Nft {
    /// The tables of the host's hangar root (`hangar`), or of a relocated root
    /// (`hangar_<tag>`).
    ///
    /// # Panics
    /// When `tag` is not 1 to 20 characters of `[a-z0-9_]`: tags are chosen by hangar
    /// itself, never typed by users. [`Nft::try_new`] returns the error instead.
    pub fn new(tag: Option<&str>) -> Nft {
        Nft::try_new(tag).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Nft::new`], refusing a bad tag with an error.
    pub fn try_new(tag: Option<&str>) -> Result<Nft> {
        let Some(tag) = tag else {
            return Ok(Nft {
                table: "hangar".to_string(),
            });
        };
        let ok = !tag.is_empty()
            && tag.len() <= 20
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(invalid(
                "nftables table tag",
                tag,
                "expected 1 to 20 of [a-z0-9_]",
            ));
        }
        Ok(Nft {
            table: format!("hangar_{tag}"),
        })
    }

    /// The name of both tables.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Create both tables with their base chains and maps where missing (idempotent).
    /// Every add below does this too, in its own transaction.
    pub fn ensure(&self) -> Result<()> {
        let (inet, bridge) = (self.read(INET)?, self.read(BRIDGE)?);
        self.apply(&self.transaction(&Batch::default(), Some((&inet, &bridge))))
    }

    /// Masquerade traffic from `subnets` (IPv4 and/or IPv6 CIDRs) leaving through any
    /// interface other than `bridge`. Replaces what `network` had before; a subnet
    /// masqueraded by another network is refused.
    pub fn masquerade(&self, network: &str, bridge: &str, subnets: &[String]) -> Result<()> {
        check_tag("network name", network)?;
        check_ifname(bridge)?;
        if subnets.is_empty() {
            return Err(invalid(
                "subnet list",
                "",
                "a network needs at least one subnet",
            ));
        }
        let mut keys = Vec::new();
        for s in subnets {
            let (addr, len) = parse_subnet(s)?;
            let map = if addr.is_ipv4() { NETS4 } else { NETS6 };
            keys.push((map, render_prefix(addr, len)));
        }
        let chain = Owned {
            name: net_chain(network),
            comment: format!("network {network}"),
            rules: vec![format!("oifname != \"{bridge}\" masquerade")],
            keys,
        };
        self.put(&[(INET, chain)])
    }

    /// Remove the masquerading of `network` (idempotent).
    pub fn remove_network(&self, network: &str) -> Result<()> {
        check_tag("network name", network)?;
        let name = net_chain(network);
        self.remove_chains(&[INET], |c| c == name)
    }

    /// Forward `proto` (`tcp` or `udp`) port `host_port` of the host's own addresses to
    /// `guest_ip:guest_port`, for packets from outside and for connections the host
    /// makes to its own non-loopback addresses (see the module docs). The family of
    /// `guest_ip` says which traffic is forwarded. Replaces what `id` had before; a port
    /// forwarded by another id is refused.
    pub fn port_forward(
        &self,
        id: &str,
        proto: &str,
        host_port: u16,
        guest_ip: &str,
        guest_port: u16,
    ) -> Result<()> {
        check_tag("port forward id", id)?;
        if proto != "tcp" && proto != "udp" {
            return Err(invalid("protocol", proto, "expected tcp or udp"));
        }
        if host_port == 0 || guest_port == 0 {
            return Err(invalid("port", "0", "ports are 1 to 65535"));
        }
        let ip: IpAddr = guest_ip
            .parse()
            .map_err(|_| invalid("guest address", guest_ip, "not an IP address"))?;
        let (nfproto, to) = match ip {
            IpAddr::V4(a) => ("ipv4", format!("dnat ip to {a}:{guest_port}")),
            IpAddr::V6(a) => ("ipv6", format!("dnat ip6 to [{a}]:{guest_port}")),
        };
        let chain = Owned {
            name: fwd_chain(id),
            comment: format!("forward {id}: {proto} {host_port} to {guest_ip} {guest_port}"),
            rules: vec![format!("meta l4proto {proto} {to}")],
            keys: vec![(PORTS, format!("{nfproto} . {proto} . {host_port}"))],
        };
        self.put(&[(INET, chain)])
    }

    /// Remove port forward `id` (idempotent).
    pub fn remove_port_forward(&self, id: &str) -> Result<()> {
        check_tag("port forward id", id)?;
        let name = fwd_chain(id);
        self.remove_chains(&[INET], |c| c == name)
    }

    /// Whether our table in `family` has chain `chain` (one netlink request).
    fn has_chain(&self, family: &str, chain: &str) -> bool {
        netlink::has_chain(family, &self.table, chain).unwrap_or(false)
    }

    /// Whether network `network` is masqueraded ([`Nft::masquerade`] made its chain),
    /// without reading the tables.
    pub fn has_network(&self, network: &str) -> bool {
        check_tag("network name", network).is_ok() && self.has_chain(INET, &net_chain(network))
    }

    /// Whether port forward `id` has its chain ([`Nft::port_forward`]), without reading
    /// the tables.
    pub fn has_port_forward(&self, id: &str) -> bool {
        check_tag("port forward id", id).is_ok() && self.has_chain(INET, &fwd_chain(id))
    }

    /// The tags present in both tables.
    pub fn inventory(&self) -> Result<Inventory> {
        let mut networks = BTreeSet::new();
        let mut forwards = BTreeSet::new();
        let mut guards = BTreeSet::new();
        for family in [INET, BRIDGE] {
            let state = self.read(family)?;
            guards.extend(guard::tags(&state).map(str::to_string));
            for chain in state.chains {
                if let Some(t) = chain.strip_prefix(NET).and_then(decode) {
                    networks.insert(t);
                } else if let Some(t) = chain.strip_prefix(FWD).and_then(decode) {
                    forwards.insert(t);
                }
            }
        }
        Ok(Inventory {
            networks: networks.into_iter().collect(),
            forwards: forwards.into_iter().collect(),
            guards: guards.into_iter().collect(),
        })
    }

    /// Delete both tables with everything in them (idempotent): for uninstalling and
    /// for tests.
    pub fn delete_tables(&self) -> Result<()> {
        let t = &self.table;
        // `add` first so that `delete` never meets a missing table.
        self.apply(&format!(
            "add table inet {t}\ndelete table inet {t}\nadd table bridge {t}\ndelete table bridge {t}\n"
        ))
    }

    /// `family table`, as commands name a table.
    fn ns(&self, family: &str) -> String {
        format!("{family} {}", self.table)
    }

    /// One `nft -f` script: `batch`, wrapped in the tables' skeleton when `skeleton`
    /// gives their present state. Rewriting a base chain costs the kernel an RCU grace
    /// period (~15 ms here), so changes to tables whose skeleton is in place leave it
    /// alone; [`Nft::ensure`] always rewrites it.
    ///
    /// The skeleton's order: both tables, what an older hangar's guards left (their
    /// verdict maps and per-NIC chains, which today's guard chain replaces), the
    /// batch's chain changes, the maps and sets, the base chains (flushed and filled
    /// again, so a repeated skeleton never duplicates their rules and a table left by an
    /// older hangar gets today's), then the batch's elements. nft 1.0.6 needs that
    /// order: a map created in a transaction refuses an element that jumps to a chain
    /// created after it.
    fn transaction(&self, batch: &Batch, skeleton: Option<(&TableState, &TableState)>) -> String {
        let inet = self.ns(INET);
        let bridge = self.ns(BRIDGE);
        let Some((inet_state, bridge_state)) = skeleton else {
            return format!("{}{}", batch.chains, batch.elements);
        };
        let mut s = format!("add table {inet}\nadd table {bridge}\n");
        for (ns, state) in [(&inet, inet_state), (&bridge, bridge_state)] {
            drop_legacy_guards(&mut s, ns, state);
        }
        s.push_str(&batch.chains);
        let _ = writeln!(
            s,
            "add map {inet} {NETS4} {{ type ipv4_addr : verdict; flags interval; }}"
        );
        let _ = writeln!(
            s,
            "add map {inet} {NETS6} {{ type ipv6_addr : verdict; flags interval; }}"
        );
        let _ = writeln!(
            s,
            "add map {inet} {PORTS} {{ type nf_proto . inet_proto . inet_service : verdict; }}"
        );
        for ns in [&inet, &bridge] {
            for (set, decl) in guard::SETS {
                let _ = writeln!(s, "add set {ns} {set} {{ {decl} }}");
            }
        }
        let guard_rules = guard::base_rules(INET);
        let to_port =
            format!("fib daddr type local meta nfproto . meta l4proto . th dport vmap @{PORTS}");
        let (nat4, nat6) = (
            format!("ip saddr vmap @{NETS4}"),
            format!("ip6 saddr vmap @{NETS6}"),
        );
        let inet_chains: [(&str, &str, Vec<&str>); 4] = [
            (
                "guard",
                "filter hook prerouting priority raw",
                guard_rules.iter().map(String::as_str).collect(),
            ),
            (
                "prerouting",
                "nat hook prerouting priority dstnat",
                vec![&to_port],
            ),
            (
                "output",
                "nat hook output priority -100",
                vec![
                    "ip daddr 127.0.0.0/8 return",
                    "ip6 daddr ::1 return",
                    &to_port,
                ],
            ),
            (
                "postrouting",
                "nat hook postrouting priority srcnat",
                vec![&nat4, &nat6],
            ),
        ];
        for (name, hook, rules) in inet_chains {
            base_chain(&mut s, &inet, name, hook, &rules);
        }
        let bridge_rules = guard::base_rules(BRIDGE);
        let bridge_rules: Vec<&str> = bridge_rules.iter().map(String::as_str).collect();
        base_chain(
            &mut s,
            &bridge,
            "guard",
            "filter hook prerouting priority filter",
            &bridge_rules,
        );
        s.push_str(&batch.elements);
        s
    }

    /// Install `chains` (one per family at most), replacing what their tags had, in one
    /// transaction.
    fn put(&self, chains: &[(&str, Owned)]) -> Result<()> {
        let inet = self.read(INET)?;
        let bridge = self.read(BRIDGE)?;
        let mut batch = Batch::default();
        for (family, owned) in chains {
            let state = if *family == INET { &inet } else { &bridge };
            replace(&mut batch, &self.ns(family), state, owned)?;
        }
        let skeleton = !has_skeleton(&inet, &bridge);
        self.apply(&self.transaction(&batch, skeleton.then_some((&inet, &bridge))))
    }

    /// Remove the chains of `families` whose names satisfy `pick`, and the map elements
    /// that jump to them, in one transaction.
    fn remove_chains(&self, families: &[&str], pick: impl Fn(&str) -> bool) -> Result<()> {
        let mut script = String::new();
        for family in families {
            let state = self.read(family)?;
            for chain in state.chains.iter().filter(|c| pick(c)) {
                drop_chain(&mut script, &self.ns(family), &state, chain);
            }
        }
        if script.is_empty() {
            return Ok(());
        }
        self.apply(&script)
    }

    /// The chains and map elements of our table in `family` (empty when it is missing).
    /// One `nft` run: every run costs a process and nft's own start-up, and a start
    /// with NICs makes several of these.
    fn read(&self, family: &str) -> Result<TableState> {
        let args = ["-j", "list", "table", family, &self.table];
        let out = match cmd::run("nft", &args, None) {
            Ok(out) => out,
            Err(NetError::Command { stderr, .. })
                if stderr.starts_with("Error: No such file or directory") =>
            {
                return Ok(TableState::default());
            }
            Err(e) => return Err(e),
        };
        let json = parse_json(&out, &args)?;
        table_state(&json).map_err(|reason| unexpected(&args, &reason))
    }

    fn apply(&self, script: &str) -> Result<()> {
        cmd::run("nft", &["-f", "-"], Some(script)).map(drop)
    }
}

/// The tag-specific part of a transaction, in two pieces that [`Nft::transaction`]
/// puts on either side of the skeleton.
#[derive(Debug, Default)]
struct Batch {
    /// Element deletions and chain removals, creations and rules.
    chains: String,
    /// New map elements.
    elements: String,
}

/// What a tag owns in one family: one chain, and the map elements that lead to it.
struct Owned {
    name: String,
    comment: String,
    rules: Vec<String>,
    /// `(map, key)`, keys written as [`render`] writes them.
    keys: Vec<(&'static str, String)>,
}

/// Add to `batch` the commands that make `owned` exactly what the table holds for its
/// tag: the tag's old chain and elements go, the new ones come, in one transaction. A
/// key that leads to another tag's chain is refused: two networks cannot share a
/// subnet, nor two forwards a port.
fn replace(batch: &mut Batch, ns: &str, state: &TableState, owned: &Owned) -> Result<()> {
    for (map, key) in &owned.keys {
        let taken = state.elems.iter().find(|e| e.map == *map && e.key == *key);
        if let Some(e) = taken.filter(|e| e.target != owned.name) {
            let what = match *map {
                PORTS => format!("port {}", key.replace(" . ", " ")),
                _ => format!("subnet {key}"),
            };
            let owner = describe(&e.target);
            return Err(NetError::Invalid(format!(
                "{what} is already used by {owner}"
            )));
        }
    }
    let script = &mut batch.chains;
    if state.chains.contains(&owned.name) {
        drop_chain(script, ns, state, &owned.name);
    }
    let name = &owned.name;
    let _ = writeln!(
        script,
        "add chain {ns} {name} {{ comment \"{}\"; }}",
        owned.comment
    );
    for rule in &owned.rules {
        let _ = writeln!(script, "add rule {ns} {name} {rule}");
    }
    for (map, key) in &owned.keys {
        let _ = writeln!(
            batch.elements,
            "add element {ns} {map} {{ {key} : jump {name} }}"
        );
    }
    Ok(())
}

/// The chain of network `network`'s masquerade.
fn net_chain(network: &str) -> String {
    format!("{NET}{}", encode(network))
}

/// The chain of port forward `id`.
fn fwd_chain(id: &str) -> String {
    format!("{FWD}{}", encode(id))
}

/// Append to `script` the removal of `chain` and of every element that jumps to it.
fn drop_chain(script: &mut String, ns: &str, state: &TableState, chain: &str) {
    for e in state.elems.iter().filter(|e| e.target == chain) {
        let _ = writeln!(script, "delete element {ns} {} {{ {} }}", e.map, e.key);
    }
    let _ = writeln!(script, "flush chain {ns} {chain}");
    let _ = writeln!(script, "delete chain {ns} {chain}");
}

/// Whether both tables have every map and base chain [`Nft::transaction`] makes.
fn has_skeleton(inet: &TableState, bridge: &TableState) -> bool {
    let has = |names: &[String], want: &[&str]| want.iter().all(|w| names.iter().any(|n| n == w));
    has(
        &inet.chains,
        &["guard", "prerouting", "output", "postrouting"],
    ) && has(&inet.maps, &[NETS4, NETS6, PORTS])
        && has(&bridge.chains, &["guard"])
        && guard::SETS
            .iter()
            .all(|(set, _)| has(&inet.sets, &[set]) && has(&bridge.sets, &[set]))
        && !legacy_guards(inet)
        && !legacy_guards(bridge)
}

/// Whether `state` holds what an older hangar's guards were made of.
fn legacy_guards(state: &TableState) -> bool {
    state
        .maps
        .iter()
        .any(|m| guard::LEGACY_MAPS.contains(&m.as_str()))
        || state
            .chains
            .iter()
            .any(|c| c.starts_with(guard::LEGACY_CHAIN))
}

/// Append to `script` the removal of an older hangar's guards: the base chain that
/// dispatched to them is emptied first (the skeleton fills it again), then the maps,
/// then the chains they jumped to.
fn drop_legacy_guards(script: &mut String, ns: &str, state: &TableState) {
    if !legacy_guards(state) {
        return;
    }
    if state.chains.iter().any(|c| c == "guard") {
        let _ = writeln!(script, "flush chain {ns} guard");
    }
    for map in state
        .maps
        .iter()
        .filter(|m| guard::LEGACY_MAPS.contains(&m.as_str()))
    {
        let _ = writeln!(script, "delete map {ns} {map}");
    }
    for chain in state
        .chains
        .iter()
        .filter(|c| c.starts_with(guard::LEGACY_CHAIN))
    {
        let _ = writeln!(script, "flush chain {ns} {chain}");
        let _ = writeln!(script, "delete chain {ns} {chain}");
    }
}

fn base_chain(s: &mut String, ns: &str, name: &str, hook: &str, rules: &[&str]) {
    let _ = writeln!(s, "add chain {ns} {name} {{ type {hook}; policy accept; }}");
    let _ = writeln!(s, "flush chain {ns} {name}");
    for rule in rules {
        let _ = writeln!(s, "add rule {ns} {name} {rule}");
    }
}

/// A user-facing name for the owner of a chain, from the chain's name.
fn describe(chain: &str) -> String {
    let decoded = |s: &str| decode(s).unwrap_or_else(|| s.to_string());
    if let Some(t) = chain.strip_prefix(NET) {
        format!("network {}", decoded(t))
    } else if let Some(t) = chain.strip_prefix(FWD) {
        format!("port forward {}", decoded(t))
    } else {
        format!("chain {chain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_tag() {
        assert_eq!(Nft::new(None).table(), "hangar");
        assert_eq!(Nft::new(Some("t_1")).table(), "hangar_t_1");
    }

    #[test]
    fn bad_table_tags_are_refused() {
        for tag in ["", "Upper", "a-b", "a b", "x".repeat(21).as_str(), "a;b"] {
            assert!(Nft::try_new(Some(tag)).is_err(), "{tag:?}");
        }
    }

    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
      {"table": {"family": "inet", "name": "hangar_x", "handle": 1}},
      {"map": {"family": "inet", "name": "nat_nets4", "table": "hangar_x", "type": "ipv4_addr",
        "map": "verdict", "flags": ["interval"], "elem": [
          [{"prefix": {"addr": "10.232.0.0", "len": 24}}, {"jump": {"target": "net_lan"}}],
          ["10.9.9.9", {"jump": {"target": "net_lan"}}]]}},
      {"map": {"family": "inet", "name": "nat_ports", "table": "hangar_x",
        "type": ["nf_proto", "inet_proto", "inet_service"], "map": "verdict", "elem": [
          [{"concat": ["ipv4", "tcp", 8080]}, {"jump": {"target": "fwd_web"}}]]}},
      {"map": {"family": "inet", "name": "guard_ifs", "table": "hangar_x", "type": "ifname",
        "map": "verdict", "elem": [["veth1", {"jump": {"target": "guard_a/veth1"}}]]}},
      {"chain": {"family": "inet", "table": "hangar_x", "name": "net_lan", "handle": 5}},
      {"chain": {"family": "inet", "table": "hangar_x", "name": "fwd_web", "handle": 6}},
      {"chain": {"family": "inet", "table": "hangar_x", "name": "guard_a/veth1", "handle": 7}}]}"#;

    fn listing() -> TableState {
        table_state(&serde_json::from_str(LISTING).unwrap()).unwrap()
    }

    #[test]
    fn listings_give_keys_as_commands_write_them() {
        let state = listing();
        let keys: Vec<&str> = state.elems.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "10.232.0.0/24",
                "10.9.9.9",
                "ipv4 . tcp . 8080",
                "\"veth1\""
            ]
        );
    }

    #[test]
    fn a_port_of_another_forward_is_refused() {
        let owned = Owned {
            name: "fwd_other".to_string(),
            comment: String::new(),
            rules: vec![],
            keys: vec![(PORTS, "ipv4 . tcp . 8080".to_string())],
        };
        let err = replace(&mut Batch::default(), "inet x", &listing(), &owned).unwrap_err();
        assert_eq!(
            err.to_string(),
            "port ipv4 tcp 8080 is already used by port forward web"
        );
    }

    #[test]
    fn an_older_hangars_guards_are_removed_with_their_map() {
        let state = listing();
        assert!(legacy_guards(&state));
        let mut script = String::new();
        drop_legacy_guards(&mut script, "inet t", &state);
        assert_eq!(
            script,
            "delete map inet t guard_ifs\n\
             flush chain inet t guard_a/veth1\n\
             delete chain inet t guard_a/veth1\n"
        );
    }

    #[test]
    fn set_elements_are_listed_with_their_interface_and_comment() {
        let json = r#"{"nftables": [
          {"set": {"family": "inet", "name": "guarded", "table": "t", "type": "ifname",
            "elem": [{"elem": {"val": "hg2-eth0", "comment": "web.eth0"}}, "hg3-eth0"]}},
          {"set": {"family": "inet", "name": "guard_nd", "table": "t",
            "type": ["ifname", "integer"],
            "elem": [{"concat": ["hg2-eth0", "0xfd000000000000000000000000000002"]}]}}]}"#;
        let state = table_state(&serde_json::from_str(json).unwrap()).unwrap();
        let members: Vec<(&str, &str, &str, Option<&str>)> = state
            .members
            .iter()
            .map(|m| {
                (
                    m.set.as_str(),
                    m.key.as_str(),
                    m.ifname.as_str(),
                    m.comment.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            members,
            [
                ("guarded", "\"hg2-eth0\"", "hg2-eth0", Some("web.eth0")),
                ("guarded", "\"hg3-eth0\"", "hg3-eth0", None),
                (
                    "guard_nd",
                    "\"hg2-eth0\" . 0xfd000000000000000000000000000002",
                    "hg2-eth0",
                    None
                ),
            ]
        );
        assert_eq!(guard::tags(&state).collect::<Vec<_>>(), ["web.eth0"]);
    }

    #[test]
    fn removing_a_network_removes_all_its_subnets() {
        let mut script = String::new();
        drop_chain(&mut script, "inet t", &listing(), "net_lan");
        assert_eq!(
            script,
            "delete element inet t nat_nets4 { 10.232.0.0/24 }\n\
             delete element inet t nat_nets4 { 10.9.9.9 }\n\
             flush chain inet t net_lan\n\
             delete chain inet t net_lan\n"
        );
    }
}
