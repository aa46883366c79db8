//! hangar's packet filter rules: NAT for networks, port forwards, and anti-spoofing guards
//! on guest NICs, driven through the `nft` tool.
//!
//! hangar keeps all its rules in two tables of its own and never touches any other:
//! `inet T` (NAT, port forwards, guards on routed ports) and `bridge T` (guards on bridge
//! ports), where `T` is `hangar` for the host's own hangar root and `hangar_<tag>` for a
//! relocated root. Each table has a fixed skeleton of base chains that dispatch through
//! verdict maps, and every network, forward and guard owns one regular chain (a guard one
//! per family), reached only through elements of those maps:
//!
//! ```text
//! table inet hangar {
//!     map nat_nets4 { type ipv4_addr : verdict; flags interval; }   # subnet -> net_*
//!     map nat_nets6 { type ipv6_addr : verdict; flags interval; }
//!     map nat_ports { type nf_proto . inet_proto . inet_service : verdict; }  # -> fwd_*
//!     map guard_ifs { type ifname : verdict; }                      # host_if -> guard_*
//!     chain guard       { type filter hook prerouting priority raw; iifname vmap @guard_ifs }
//!     chain prerouting  { type nat hook prerouting priority dstnat;
//!                         fib daddr type local meta nfproto . meta l4proto . th dport vmap @nat_ports }
//!     chain output      { type nat hook output priority -100; (loopback excluded)
//!                         fib daddr type local meta nfproto . meta l4proto . th dport vmap @nat_ports }
//!     chain postrouting { type nat hook postrouting priority srcnat;
//!                         ip saddr vmap @nat_nets4; ip6 saddr vmap @nat_nets6 }
//!     chain net_lan     { oifname != "br0" masquerade }
//!     chain fwd_web_3a8080 { meta l4proto tcp dnat ip to 10.232.0.2:80 }
//!     chain guard_web.eth0/veth5 { ether saddr != ... drop; ip saddr != { ... } drop; ... }
//! }
//! table bridge hangar {
//!     map guard_ports { type ifname : verdict; }
//!     chain guard { type filter hook prerouting priority filter; iifname vmap @guard_ports }
//!     chain guard_web.eth0/veth5 { ether saddr ...; arp ...; ip saddr ...; ip6 saddr ... }
//! }
//! ```
//!
//! Chain names carry the tag (`net_<network>`, `fwd_<id>`, `guard_<guest>/<host_if>`), with
//! every character outside `[A-Za-z0-9.-]` written as `_xx` (its hex code), because `nft`
//! 1.0 accepts only plain identifiers as chain names; the chain's comment holds the tag
//! as given. Because nothing but map elements points at a tag's chain, removing a tag is
//! "delete the elements that jump to its chains, flush and delete the chains", and adding
//! one replaces whatever the tag had before. A guard (the one change every start and stop
//! of a guest with NICs makes) first tries one `nft -f -` transaction that reads nothing
//! (`fast_put`; [`Nft::unguard_nic`] removes a NIC's guard by its name); only when the
//! kernel refuses it, because the skeleton is missing or the interface leads to another
//! chain, does it take the general path: read the tables it changes (`nft -j list
//! table`, parsed in `nft/listing.rs`, whose size grows with the number of guests) and
//! apply one transaction. Either way a change happens entirely or not at all. Callers serialise
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

mod input;
mod listing;

use crate::{NetError, Result, cmd};
use input::{
    check_ifname, check_tag, decode, encode, invalid, parse_addr, parse_mac, parse_subnet,
    render_prefix,
};
use listing::{TableState, parse_json, table_state, unexpected};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const INET: &str = "inet";
const BRIDGE: &str = "bridge";

const NET: &str = "net_";
const FWD: &str = "fwd_";
const GUARD: &str = "guard_";

const NETS4: &str = "nat_nets4";
const NETS6: &str = "nat_nets6";
const PORTS: &str = "nat_ports";
const GUARD_IFS: &str = "guard_ifs";
const GUARD_PORTS: &str = "guard_ports";

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
    /// Guests with at least one guard ([`Nft::guard`]).
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
        self.apply(&self.transaction(&Batch::default(), true))
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
        self.put(&[(INET, chain)], Clash::Refuse)
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
        self.put(&[(INET, chain)], Clash::Refuse)
    }

    /// Remove port forward `id` (idempotent).
    pub fn remove_port_forward(&self, id: &str) -> Result<()> {
        check_tag("port forward id", id)?;
        let name = fwd_chain(id);
        self.remove_chains(&[INET], |c| c == name)
    }

    /// Guard the guest NIC whose host side is `host_if`: drop what enters from it with
    /// a source other than `mac` and `addrs` (rules in the module docs). Replaces an
    /// earlier guard of `guest` on `host_if`, and any guard left on `host_if` by a
    /// previous owner of that name; other guards of `guest` stay.
    pub fn guard(&self, guest: &str, host_if: &str, mac: &str, addrs: &[String]) -> Result<()> {
        check_tag("guest", guest)?;
        check_ifname(host_if)?;
        let mac = parse_mac(mac)?;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for a in addrs {
            match parse_addr(a)? {
                IpAddr::V4(a) => v4.push(a),
                IpAddr::V6(a) => v6.push(a),
            }
        }
        let name = guard_chain(guest, host_if);
        let chain = |family, map| Owned {
            name: name.clone(),
            comment: format!("guard {guest} on {host_if}"),
            rules: guard_rules(family, &mac, &v4, &v6),
            keys: vec![(map, format!("\"{host_if}\""))],
        };
        let chains = [
            (INET, chain(INET, GUARD_IFS)),
            (BRIDGE, chain(BRIDGE, GUARD_PORTS)),
        ];
        // The usual case, in one transaction and without reading the tables (whose
        // size grows with the number of guests): the skeleton is there and `host_if`
        // leads nowhere or to this very chain. Otherwise the kernel refuses the whole
        // transaction (a missing map, or a key that jumps elsewhere: EEXIST) and the
        // general path reads the tables and replaces what is in the way.
        if self.apply(&fast_put(self, &chains)).is_ok() {
            return Ok(());
        }
        self.put(&chains, Clash::Replace)
    }

    /// Remove the guard of `guest` on `host_if` (idempotent), as [`Nft::guard`] made it:
    /// in the usual case one transaction that reads nothing; if anything of it is
    /// missing (a crash, a hand edit), every guard of `guest` goes as [`Nft::unguard`]
    /// removes them. While the guard chain exists, `host_if`'s elements lead to it
    /// (a guard that takes `host_if` over removes the chain it replaces), so deleting
    /// them by key never unhooks another guest's guard.
    pub fn unguard_nic(&self, guest: &str, host_if: &str) -> Result<()> {
        check_tag("guest", guest)?;
        check_ifname(host_if)?;
        let name = guard_chain(guest, host_if);
        let mut script = String::new();
        for (family, map) in [(INET, GUARD_IFS), (BRIDGE, GUARD_PORTS)] {
            let ns = self.ns(family);
            let _ = writeln!(script, "delete element {ns} {map} {{ \"{host_if}\" }}");
            let _ = writeln!(script, "flush chain {ns} {name}");
            let _ = writeln!(script, "delete chain {ns} {name}");
        }
        if self.apply(&script).is_ok() {
            return Ok(());
        }
        self.unguard(guest)
    }

    /// Whether our table in `family` has chain `chain` (one `nft list chain`, whose
    /// output is that chain only).
    fn has_chain(&self, family: &str, chain: &str) -> bool {
        cmd::run("nft", &["list", "chain", family, &self.table, chain], None).is_ok()
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

    /// Remove every guard of `guest` (idempotent).
    pub fn unguard(&self, guest: &str) -> Result<()> {
        check_tag("guest", guest)?;
        let prefix = format!("{GUARD}{}/", encode(guest));
        self.remove_chains(&[INET, BRIDGE], |c| c.starts_with(&prefix))
    }

    /// The tags present in both tables.
    pub fn inventory(&self) -> Result<Inventory> {
        let mut networks = BTreeSet::new();
        let mut forwards = BTreeSet::new();
        let mut guards = BTreeSet::new();
        for family in [INET, BRIDGE] {
            for chain in self.read(family)?.chains {
                if let Some(t) = chain.strip_prefix(NET).and_then(decode) {
                    networks.insert(t);
                } else if let Some(t) = chain.strip_prefix(FWD).and_then(decode) {
                    forwards.insert(t);
                } else if let Some(rest) = chain.strip_prefix(GUARD) {
                    if let Some(t) = rest.split_once('/').and_then(|(g, _)| decode(g)) {
                        guards.insert(t);
                    }
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

    /// `batch` wrapped in the skeleton: both tables, then the batch's chain changes, then
    /// the maps and base chains, then the batch's map elements. nft 1.0.6 needs that
    /// order: a map created in a transaction refuses an element that jumps to a chain
    /// created after it. The base chains are flushed and filled again each time, so a
    /// repeated skeleton never duplicates their rules and a table left by an older
    /// hangar gets today's dispatch rules.
    /// One `nft -f` script: `batch`, after the tables' skeleton (maps, and base chains
    /// flushed and filled again) when `skeleton` is set. Rewriting a base chain costs
    /// the kernel an RCU grace period (~15 ms here), so changes to tables whose skeleton
    /// is in place leave it alone; [`Nft::ensure`] always rewrites it.
    fn transaction(&self, batch: &Batch, skeleton: bool) -> String {
        let inet = self.ns(INET);
        let bridge = self.ns(BRIDGE);
        if !skeleton {
            return format!("{}{}", batch.chains, batch.elements);
        }
        let mut s = format!("add table {inet}\nadd table {bridge}\n");
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
        let _ = writeln!(s, "add map {inet} {GUARD_IFS} {{ type ifname : verdict; }}");
        let to_port =
            format!("fib daddr type local meta nfproto . meta l4proto . th dport vmap @{PORTS}");
        let inet_chains: [(&str, &str, &[&str]); 4] = [
            (
                "guard",
                "filter hook prerouting priority raw",
                &[&format!("iifname vmap @{GUARD_IFS}")],
            ),
            (
                "prerouting",
                "nat hook prerouting priority dstnat",
                &[&to_port],
            ),
            (
                "output",
                "nat hook output priority -100",
                &[
                    "ip daddr 127.0.0.0/8 return",
                    "ip6 daddr ::1 return",
                    &to_port,
                ],
            ),
            (
                "postrouting",
                "nat hook postrouting priority srcnat",
                &[
                    &format!("ip saddr vmap @{NETS4}"),
                    &format!("ip6 saddr vmap @{NETS6}"),
                ],
            ),
        ];
        for (name, hook, rules) in inet_chains {
            base_chain(&mut s, &inet, name, hook, rules);
        }
        let _ = writeln!(
            s,
            "add map {bridge} {GUARD_PORTS} {{ type ifname : verdict; }}"
        );
        base_chain(
            &mut s,
            &bridge,
            "guard",
            "filter hook prerouting priority filter",
            &[&format!("iifname vmap @{GUARD_PORTS}")],
        );
        s.push_str(&batch.elements);
        s
    }

    /// Install `chains` (one per family at most), replacing what their tags had, in one
    /// transaction.
    fn put(&self, chains: &[(&str, Owned)], clash: Clash) -> Result<()> {
        let inet = self.read(INET)?;
        let bridge = self.read(BRIDGE)?;
        let mut batch = Batch::default();
        for (family, owned) in chains {
            let state = if *family == INET { &inet } else { &bridge };
            replace(&mut batch, &self.ns(family), state, owned, clash)?;
        }
        let skeleton = !has_skeleton(&inet, &bridge);
        self.apply(&self.transaction(&batch, skeleton))
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

/// What to do when a key the new chain needs already leads to another tag's chain.
#[derive(Clone, Copy)]
enum Clash {
    /// Refuse: two networks cannot share a subnet, nor two forwards a port.
    Refuse,
    /// Remove the other chain: an interface name belongs to one guest at a time, so a
    /// guard still on it is a leftover.
    Replace,
}

/// Add to `batch` the commands that make `owned` exactly what the table holds for its
/// tag: the tag's old chain and elements go, the new ones come, in one transaction.
fn replace(
    batch: &mut Batch,
    ns: &str,
    state: &TableState,
    owned: &Owned,
    clash: Clash,
) -> Result<()> {
    let mut others = BTreeSet::new();
    for (map, key) in &owned.keys {
        let taken = state.elems.iter().find(|e| e.map == *map && e.key == *key);
        if let Some(e) = taken.filter(|e| e.target != owned.name) {
            match clash {
                Clash::Refuse => {
                    let what = match *map {
                        PORTS => format!("port {}", key.replace(" . ", " ")),
                        _ => format!("subnet {key}"),
                    };
                    let owner = describe(&e.target);
                    return Err(NetError::Invalid(format!(
                        "{what} is already used by {owner}"
                    )));
                }
                Clash::Replace => {
                    others.insert(e.target.clone());
                }
            }
        }
    }
    let script = &mut batch.chains;
    for other in &others {
        drop_chain(script, ns, state, other);
    }
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

/// The chain of `guest`'s guard on `host_if`.
fn guard_chain(guest: &str, host_if: &str) -> String {
    format!("{GUARD}{}/{}", encode(guest), encode(host_if))
}

/// The transaction that adds `chains` when nothing stands in their way: each chain made
/// (or emptied) and filled, then its keys added. Adding a key that already jumps to
/// the same chain is no change; one that jumps elsewhere, or a missing map, makes the
/// kernel refuse the whole transaction.
fn fast_put(nft: &Nft, chains: &[(&str, Owned)]) -> String {
    let mut s = String::new();
    for (family, owned) in chains {
        let ns = nft.ns(family);
        let name = &owned.name;
        let _ = writeln!(
            s,
            "add chain {ns} {name} {{ comment \"{}\"; }}",
            owned.comment
        );
        let _ = writeln!(s, "flush chain {ns} {name}");
        for rule in &owned.rules {
            let _ = writeln!(s, "add rule {ns} {name} {rule}");
        }
        for (map, key) in &owned.keys {
            let _ = writeln!(s, "add element {ns} {map} {{ {key} : jump {name} }}");
        }
    }
    s
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
    ) && has(&inet.maps, &[NETS4, NETS6, PORTS, GUARD_IFS])
        && has(&bridge.chains, &["guard"])
        && has(&bridge.maps, &[GUARD_PORTS])
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
    } else if let Some((g, _)) = chain.strip_prefix(GUARD).and_then(|r| r.split_once('/')) {
        format!("the guard of {}", decoded(g))
    } else {
        format!("chain {chain}")
    }
}

/// The guard chain's rules for `family` (`inet` for routed ports, `bridge` for bridge
/// ports); see the module docs for what they allow.
fn guard_rules(family: &str, mac: &str, v4: &[Ipv4Addr], v6: &[Ipv6Addr]) -> Vec<String> {
    let mut r = vec![format!("ether saddr != {mac} drop")];
    if family == BRIDGE {
        let mut senders = vec!["0.0.0.0".to_string()];
        senders.extend(v4.iter().map(Ipv4Addr::to_string));
        r.extend([
            "ether type != { ip, arp, ip6 } drop".to_string(),
            "arp hlen != 6 drop".to_string(),
            "arp plen != 4 drop".to_string(),
            format!("arp saddr ether != {mac} drop"),
            format!("arp saddr ip != {{ {} }} drop", senders.join(", ")),
        ]);
    }
    r.push(
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept".to_string(),
    );
    if v4.is_empty() {
        r.push("meta protocol ip drop".to_string());
    } else {
        let v4: Vec<String> = v4.iter().map(Ipv4Addr::to_string).collect();
        r.push(format!("ip saddr != {{ {} }} drop", v4.join(", ")));
    }
    let mut sources = vec!["::".to_string(), "fe80::/10".to_string()];
    sources.extend(v6.iter().map(Ipv6Addr::to_string));
    r.push(format!("ip6 saddr != {{ {} }} drop", sources.join(", ")));
    // nft 1.0.6 has no `icmpv6 taddr`: the target address is the 128 bits after the
    // 8-byte ICMPv6 header, compared as an integer.
    let mut targets =
        vec!["0xfe800000000000000000000000000000-0xfebfffffffffffffffffffffffffffff".to_string()];
    targets.extend(v6.iter().map(|a| format!("{:#034x}", u128::from(*a))));
    r.extend([
        format!(
            "icmpv6 type nd-neighbor-advert @th,64,128 != {{ {} }} drop",
            targets.join(", ")
        ),
        "icmpv6 type { nd-router-advert, nd-redirect } drop".to_string(),
        "icmp type redirect drop".to_string(),
        "udp sport 67 udp dport 68 drop".to_string(),
        "udp sport 547 udp dport 546 drop".to_string(),
    ]);
    r
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

    #[test]
    fn bridge_guards_check_arp_and_allow_dhcp_discovery() {
        let rules = guard_rules(
            BRIDGE,
            "02:00:00:00:00:01",
            &["10.0.0.2".parse().unwrap()],
            &[],
        );
        assert!(rules.contains(&"arp saddr ip != { 0.0.0.0, 10.0.0.2 } drop".to_string()));
        assert!(rules.contains(&"arp saddr ether != 02:00:00:00:00:01 drop".to_string()));
        let dhcp = rules
            .iter()
            .position(|r| r.contains("udp dport 67 accept"))
            .unwrap();
        let ip = rules
            .iter()
            .position(|r| r == "ip saddr != { 10.0.0.2 } drop")
            .unwrap();
        assert!(dhcp < ip);
    }

    #[test]
    fn routed_guards_without_ipv4_drop_all_ipv4() {
        let rules = guard_rules(
            INET,
            "02:00:00:00:00:01",
            &[],
            &["fd00::2".parse().unwrap()],
        );
        assert!(rules.contains(&"meta protocol ip drop".to_string()));
        assert!(rules.contains(&"ip6 saddr != { ::, fe80::/10, fd00::2 } drop".to_string()));
        assert!(
            rules
                .iter()
                .any(|r| r.contains("0xfd000000000000000000000000000002"))
        );
        assert!(!rules.iter().any(|r| r.starts_with("arp")));
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
        let err = replace(
            &mut Batch::default(),
            "inet x",
            &listing(),
            &owned,
            Clash::Refuse,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "port ipv4 tcp 8080 is already used by port forward web"
        );
    }

    #[test]
    fn a_guard_takes_over_its_interface_and_replaces_itself() {
        let owned = Owned {
            name: "guard_b/veth1".to_string(),
            comment: "guard b on veth1".to_string(),
            rules: vec!["ether saddr != 02:00:00:00:00:02 drop".to_string()],
            keys: vec![(GUARD_IFS, "\"veth1\"".to_string())],
        };
        let mut batch = Batch::default();
        replace(&mut batch, "inet t", &listing(), &owned, Clash::Replace).unwrap();
        let chains = "delete element inet t guard_ifs { \"veth1\" }\n\
                      flush chain inet t guard_a/veth1\n\
                      delete chain inet t guard_a/veth1\n\
                      add chain inet t guard_b/veth1 { comment \"guard b on veth1\"; }\n\
                      add rule inet t guard_b/veth1 ether saddr != 02:00:00:00:00:02 drop\n";
        assert_eq!(batch.chains, chains);
        assert_eq!(
            batch.elements,
            "add element inet t guard_ifs { \"veth1\" : jump guard_b/veth1 }\n"
        );
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
