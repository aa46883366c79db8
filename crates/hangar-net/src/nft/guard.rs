//! Anti-spoofing guards: one fixed rule set per family in the base chain `guard`, and an
//! element per NIC in five named sets, so that guarding or unguarding a NIC adds or
//! deletes that NIC's elements and nothing else, whatever the number of guests.
//!
//! ```text
//! set guarded   { type ifname; }                  # "hg2-eth0" comment "web.eth0"
//! set guard_mac { type ifname . ether_addr; }     # "hg2-eth0" . 02:..:01
//! set guard_v4  { type ifname . ipv4_addr; }      # "hg2-eth0" . 10.232.0.2
//! set guard_v6  { type ifname . ipv6_addr; }      # "hg2-eth0" . fd00::2
//! set guard_nd  { typeof iifname . @th,64,128; }  # "hg2-eth0" . 0xfd00..02
//! chain guard {
//!     iifname != @guarded return
//!     iifname . ether saddr != @guard_mac drop
//!     ...
//!     iifname . ip saddr != @guard_v4 drop
//! }
//! ```
//!
//! The element of `guarded` carries the guard's tag (`<guest>.<nic>`) as its comment:
//! that is how [`Nft::inventory`] and [`Nft::unguard`] find a guest's guards, and how a
//! late removal tells an interface's new owner from its old one. A NIC without IPv4 (or
//! IPv6) addresses has no element in `guard_v4` (`guard_v6`), so all its IPv4 (IPv6
//! other than link-local and ::) is dropped. `guard_nd` holds the same IPv6 addresses
//! as integers: nft 1.0.6 has no `icmpv6 taddr`, so a neighbour advertisement's target
//! is the 128 bits after the ICMPv6 header, and a raw payload does not concatenate
//! with a typed address.

use super::input::{check_ifname, check_tag};
use super::listing::TableState;
use super::netlink::{self, Elements, Verb, concat, ifname_key};
use super::{BRIDGE, Batch, INET, Nft};
use crate::Result;
use hangar_model::net::{Cidr, Mac};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The set of guarded interfaces, each element commented with its guard's tag.
pub(super) const GUARDED: &str = "guarded";
const MAC: &str = "guard_mac";
const V4: &str = "guard_v4";
const V6: &str = "guard_v6";
const ND: &str = "guard_nd";

/// Every set of the guards, with its declaration.
pub(super) const SETS: [(&str, &str); 5] = [
    (GUARDED, "type ifname;"),
    (MAC, "type ifname . ether_addr;"),
    (V4, "type ifname . ipv4_addr;"),
    (V6, "type ifname . ipv6_addr;"),
    (ND, "typeof iifname . @th,64,128;"),
];

/// The verdict maps earlier hangar versions sent each NIC to a chain of its own with,
/// and those chains' prefix: removed when the skeleton is written again.
pub(super) const LEGACY_MAPS: [&str; 2] = ["guard_ifs", "guard_ports"];
pub(super) const LEGACY_CHAIN: &str = "guard_";

/// The base chain `guard`'s rules in `family` (`inet` for routed ports, `bridge` for
/// bridge ports); what they allow is in the module docs of `nft`.
pub(super) fn base_rules(family: &str) -> Vec<String> {
    let mut r = vec![
        format!("iifname != @{GUARDED} return"),
        format!("iifname . ether saddr != @{MAC} drop"),
    ];
    if family == BRIDGE {
        r.extend([
            "ether type != { ip, arp, ip6 } drop".to_string(),
            "arp hlen != 6 drop".to_string(),
            "arp plen != 4 drop".to_string(),
            format!("iifname . arp saddr ether != @{MAC} drop"),
            format!("arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @{V4} drop"),
        ]);
    }
    r.extend([
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept".to_string(),
        format!("iifname . ip saddr != @{V4} drop"),
        format!("ip6 saddr != {{ ::, fe80::/10 }} iifname . ip6 saddr != @{V6} drop"),
        format!(
            "icmpv6 type nd-neighbor-advert \
             @th,64,128 != 0xfe800000000000000000000000000000-0xfebfffffffffffffffffffffffffffff \
             iifname . @th,64,128 != @{ND} drop"
        ),
        "icmpv6 type { nd-router-advert, nd-redirect } drop".to_string(),
        "icmp type redirect drop".to_string(),
        "udp sport 67 udp dport 68 drop".to_string(),
        "udp sport 547 udp dport 546 drop".to_string(),
    ]);
    r
}

/// One NIC's guard: its interface, tag and the keys of its elements in each set but
/// `guarded` (as `nft` writes them, and as the kernel's bytes), checked once here.
struct Guard {
    tag: String,
    host_if: String,
    keys: Vec<(&'static str, String, Vec<u8>)>,
}

impl Guard {
    fn new(tag: &str, host_if: &str, mac: &Mac, addrs: &[Cidr]) -> Result<Guard> {
        check_tag("guest", tag)?;
        check_ifname(host_if)?;
        let at = |key: String| format!("\"{host_if}\" . {key}");
        let name = ifname_key(host_if);
        let bytes = |part: &[u8]| concat(&[&name, part]);
        let mut keys = vec![(MAC, at(mac.to_string()), bytes(&mac.0))];
        let mut seen = BTreeSet::new();
        for a in addrs {
            // The address only: a prefix length means nothing to a source check.
            if !seen.insert(a.addr()) {
                continue; // one element per address: a repeated add is no change
            }
            match *a {
                Cidr::V4(a, _) => keys.push((V4, at(a.to_string()), bytes(&a.octets()))),
                Cidr::V6(a, _) => {
                    keys.push((V6, at(a.to_string()), bytes(&a.octets())));
                    let nd = format!("{:#034x}", u128::from(a));
                    keys.push((ND, at(nd), bytes(&a.octets())));
                }
            }
        }
        Ok(Guard {
            tag: tag.to_string(),
            host_if: host_if.to_string(),
            keys,
        })
    }

    /// `verb element` lines for this guard's elements in table `ns`, `guarded`'s first
    /// (`adds` carries its comment).
    fn lines(&self, script: &mut String, ns: &str, verb: &str, adds: bool) {
        let host_if = &self.host_if;
        let comment = if adds {
            format!(" comment \"{}\"", self.tag)
        } else {
            String::new()
        };
        let _ = writeln!(
            script,
            "{verb} element {ns} {GUARDED} {{ \"{host_if}\"{comment} }}"
        );
        for (set, _) in SETS.iter().skip(1) {
            let keys: Vec<&str> = self
                .keys
                .iter()
                .filter(|(s, _, _)| s == set)
                .map(|(_, k, _)| k.as_str())
                .collect();
            if !keys.is_empty() {
                let verb = if verb == "create" { "add" } else { verb };
                let _ = writeln!(
                    script,
                    "{verb} element {ns} {set} {{ {} }}",
                    keys.join(", ")
                );
            }
        }
    }
}

impl Guard {
    /// This guard's elements in both families, for [`netlink::commit`]: `verb` on
    /// `guarded` (with the tag as comment when adding), and on the other sets the same
    /// except that `Create` becomes `Add`.
    fn elements(&self, verb: Verb) -> Vec<Elements> {
        let adds = verb != Verb::Delete;
        let rest = if verb == Verb::Create {
            Verb::Add
        } else {
            verb
        };
        let mut out = Vec::new();
        for family in [INET, BRIDGE] {
            out.push(Elements {
                family,
                set: GUARDED,
                verb,
                keys: vec![(ifname_key(&self.host_if), adds.then(|| self.tag.clone()))],
            });
            for (set, _) in SETS.iter().skip(1) {
                let keys: Vec<(Vec<u8>, Option<String>)> = self
                    .keys
                    .iter()
                    .filter(|(s, _, _)| s == set)
                    .map(|(_, _, b)| (b.clone(), None))
                    .collect();
                if !keys.is_empty() {
                    out.push(Elements {
                        family,
                        set,
                        verb: rest,
                        keys,
                    });
                }
            }
        }
        out
    }
}

/// Whether a fast transaction went through (`Ok(true)`), or was refused because
/// something is in the way or missing (`Ok(false)`: EEXIST, ENOENT; the general path
/// deals with that). Any other refusal is an error: the elements themselves were wrong.
fn in_the_way(result: std::io::Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::EEXIST | nix::libc::ENOENT)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(crate::NetError::Command {
            command: "nf_tables guard elements (netlink)".to_string(),
            stderr: e.to_string(),
        }),
    }
}

/// Append to `script` the deletion of every guard element keyed by `host_if`.
fn drop_interface(script: &mut String, ns: &str, state: &TableState, host_if: &str) {
    for m in state.members.iter().filter(|m| m.ifname == host_if) {
        let _ = writeln!(script, "delete element {ns} {} {{ {} }}", m.set, m.key);
    }
}

/// The tag that guards `host_if` in `state`, if any.
fn owner<'a>(state: &'a TableState, host_if: &str) -> Option<&'a str> {
    state
        .members
        .iter()
        .find(|m| m.set == GUARDED && m.ifname == host_if)
        .and_then(|m| m.comment.as_deref())
}

/// The tags of the guards in `state`.
pub(super) fn tags(state: &TableState) -> impl Iterator<Item = &str> {
    state
        .members
        .iter()
        .filter(|m| m.set == GUARDED)
        .filter_map(|m| m.comment.as_deref())
}

impl Nft {
    /// Guard the guest NIC whose host side is `host_if`: drop what enters from it with
    /// a source other than `mac` and `addrs` (rules in the module docs). Replaces
    /// whatever guard `host_if` had (an earlier one of `tag`, or one left by a previous
    /// owner of that name); other guards stay. `tag` is `<guest>.<nic>`.
    pub fn guard(&self, tag: &str, host_if: &str, mac: &Mac, addrs: &[Cidr]) -> Result<()> {
        let guard = Guard::new(tag, host_if, mac, addrs)?;
        // The usual case, in one netlink transaction that reads nothing: the sets are there and
        // `host_if` is not in `guarded` yet. Otherwise the kernel refuses the whole
        // transaction (a missing set, or `create` meeting an element: EEXIST) and the
        // general path reads the tables and replaces what is in the way.
        if in_the_way(netlink::commit(&self.table, &guard.elements(Verb::Create)))? {
            return Ok(());
        }
        let inet = self.read(INET)?;
        let bridge = self.read(BRIDGE)?;
        let mut batch = Batch::default();
        for (family, state) in [(INET, &inet), (BRIDGE, &bridge)] {
            let ns = self.ns(family);
            drop_interface(&mut batch.chains, &ns, state, host_if);
            guard.lines(&mut batch.elements, &ns, "add", true);
        }
        self.apply(&self.transaction(&batch, Some((&inet, &bridge))))
    }

    /// Remove the guard [`Nft::guard`] made with the same arguments (idempotent): in the
    /// usual case one transaction that reads nothing. If anything of it is missing or
    /// different (a crash, a hand edit, a changed address), the general path reads the
    /// tables and removes every element of `host_if` while its guard is `tag`'s; an
    /// interface another guard took over in the meantime keeps that guard.
    pub fn unguard_nic(&self, tag: &str, host_if: &str, mac: &Mac, addrs: &[Cidr]) -> Result<()> {
        let guard = Guard::new(tag, host_if, mac, addrs)?;
        if in_the_way(netlink::commit(&self.table, &guard.elements(Verb::Delete)))? {
            return Ok(());
        }
        let mut script = String::new();
        for family in [INET, BRIDGE] {
            let state = self.read(family)?;
            if owner(&state, host_if).is_none_or(|o| o == tag) {
                drop_interface(&mut script, &self.ns(family), &state, host_if);
            }
        }
        if script.is_empty() {
            return Ok(());
        }
        self.apply(&script)
    }

    /// Remove the guards of tag `tag` on any interface (idempotent).
    pub fn unguard(&self, tag: &str) -> Result<()> {
        check_tag("guest", tag)?;
        let mut script = String::new();
        for family in [INET, BRIDGE] {
            let state = self.read(family)?;
            let ifs: BTreeSet<&str> = state
                .members
                .iter()
                .filter(|m| m.set == GUARDED && m.comment.as_deref() == Some(tag))
                .map(|m| m.ifname.as_str())
                .collect();
            for host_if in ifs {
                drop_interface(&mut script, &self.ns(family), &state, host_if);
            }
        }
        if script.is_empty() {
            return Ok(());
        }
        self.apply(&script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> Mac {
        Mac::parse(s).unwrap()
    }

    fn lines(g: &Guard, verb: &str, adds: bool) -> String {
        let mut s = String::new();
        g.lines(&mut s, "inet t", verb, adds);
        s
    }

    #[test]
    fn a_guard_is_one_element_per_set_and_address() {
        let addrs = ["10.0.0.2/24", "fd00::2/64", "10.0.0.2/32"].map(|a| Cidr::parse(a).unwrap());
        let g = Guard::new("web.eth0", "hg2-eth0", &mac("02:00:00:00:00:0A"), &addrs).unwrap();
        assert_eq!(
            lines(&g, "create", true),
            "create element inet t guarded { \"hg2-eth0\" comment \"web.eth0\" }\n\
             add element inet t guard_mac { \"hg2-eth0\" . 02:00:00:00:00:0a }\n\
             add element inet t guard_v4 { \"hg2-eth0\" . 10.0.0.2 }\n\
             add element inet t guard_v6 { \"hg2-eth0\" . fd00::2 }\n\
             add element inet t guard_nd { \"hg2-eth0\" . 0xfd000000000000000000000000000002 }\n"
        );
    }

    #[test]
    fn a_guard_without_addresses_has_only_its_interface_and_mac() {
        let g = Guard::new("web.eth1", "hg2-eth1", &mac("02:00:00:00:00:01"), &[]).unwrap();
        assert_eq!(
            lines(&g, "delete", false),
            "delete element inet t guarded { \"hg2-eth1\" }\n\
             delete element inet t guard_mac { \"hg2-eth1\" . 02:00:00:00:00:01 }\n"
        );
    }

    #[test]
    fn bad_guard_inputs_are_refused() {
        let m = mac("02:00:00:00:00:01");
        assert!(Guard::new("web.eth0", "hg2 eth0", &m, &[]).is_err());
        assert!(Guard::new("web eth0", "hg2-eth0", &m, &[]).is_err());
    }

    #[test]
    fn bridge_guards_check_arp_and_allow_dhcp_discovery_before_ipv4() {
        let rules = base_rules(BRIDGE);
        assert!(rules.contains(&"iifname . arp saddr ether != @guard_mac drop".to_string()));
        let dhcp = rules
            .iter()
            .position(|r| r.contains("udp dport 67 accept"))
            .unwrap();
        let ip = rules
            .iter()
            .position(|r| r == "iifname . ip saddr != @guard_v4 drop")
            .unwrap();
        assert!(dhcp < ip);
        assert!(!base_rules(INET).iter().any(|r| r.contains("arp")));
    }
}
