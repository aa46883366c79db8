//! Interface names (15 characters at most) that say whose they are.
//!
//! | link | name |
//! | --- | --- |
//! | a network's bridge | `<prefix>b-<net>` |
//! | VLAN `N`'s bridge | `<prefix>v<N>-<net>` |
//! | VLAN `N`'s 802.1Q device on the uplink | `<prefix>q<N>-<net>` |
//! | a NIC's host side | `<prefix><ctx>-<nic>` |
//!
//! When `<net>` does not fit in what is left of the 15 characters, a hash of it takes
//! its place (as many hex digits as fit): cutting it short instead would give two
//! networks whose names share a beginning the same VLAN bridge, joining VLANs that
//! must stay apart.

use crate::paths::Paths;

/// The kernel's limit on interface names.
const IFNAMSIZ: usize = 15;

/// `hg` for the host's own root, `h` + three hex digits of the root's hash otherwise.
pub fn prefix(paths: &Paths) -> String {
    let parent = paths.default_cgroup_parent();
    match parent.strip_prefix("hangar-") {
        Some(hash) => format!("h{}", &hash[..3]),
        None => "hg".into(),
    }
}

/// nftables table tag: None for the host's own root, the root's hash otherwise.
pub fn nft_tag(paths: &Paths) -> Option<String> {
    paths
        .default_cgroup_parent()
        .strip_prefix("hangar-")
        .map(str::to_string)
}

/// `head` + `net`, or `head` + a hash of `net` when that would be too long.
fn fit(head: String, net: &str) -> String {
    if head.len() + net.len() <= IFNAMSIZ {
        return head + net;
    }
    // FNV-1a, stable across builds.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in net.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let room = IFNAMSIZ.saturating_sub(head.len());
    let hash = format!("{h:016x}");
    head + &hash[..room]
}

/// The bridge of network `net` (VLAN `vlan`: a bridge of its own, the Xen seed's
/// "one bridge per VLAN").
pub fn bridge(paths: &Paths, net: &str, vlan: Option<u16>) -> String {
    match vlan {
        None => fit(format!("{}b-", prefix(paths)), net),
        Some(v) => fit(format!("{}v{v}-", prefix(paths)), net),
    }
}

/// The 802.1Q device of VLAN `vlan` of network `net` on its uplink: tags what the
/// VLAN's bridge sends out of the uplink and brings in what carries its tag.
pub fn uplink_vlan(paths: &Paths, net: &str, vlan: u16) -> String {
    fit(format!("{}q{vlan}-", prefix(paths)), net)
}

/// A link of one of a network's VLANs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanLink {
    /// The VLAN's bridge.
    Bridge(u16),
    /// The VLAN's 802.1Q device on the uplink.
    Uplink(u16),
}

/// Which of `links` are network `net`'s VLAN bridges and uplink VLAN devices (each
/// name is computed back from the VLAN id it carries, so only exact matches count).
pub fn vlan_links_of(paths: &Paths, net: &str, links: &[String]) -> Vec<(String, VlanLink)> {
    let p = prefix(paths);
    links
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix(&p)?;
            let (kind, rest) = rest.split_at(rest.len().min(1));
            let vlan = rest.split_once('-')?.0.parse::<u16>().ok()?;
            let (name, what) = match kind {
                "v" => (bridge(paths, net, Some(vlan)), VlanLink::Bridge(vlan)),
                "q" => (uplink_vlan(paths, net, vlan), VlanLink::Uplink(vlan)),
                _ => return None,
            };
            (*l == name).then_some((name, what))
        })
        .collect()
}

/// Host side of a guest's NIC: `<prefix><ctx>-<nic>` (`hg7-eth0`).
pub fn host_if(paths: &Paths, ctx: u16, nic: &str) -> String {
    format!("{}{ctx}-{nic}", prefix(paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_root() -> Paths {
        Paths::new(std::path::Path::new("/"))
    }

    #[test]
    fn names_fit_and_say_whose_they_are() {
        let p = host_root();
        assert_eq!(bridge(&p, "lan", None), "hgb-lan");
        assert_eq!(bridge(&p, "lan", Some(10)), "hgv10-lan");
        assert_eq!(uplink_vlan(&p, "lan", 10), "hgq10-lan");
        // Too long for "hgv100-campus-dmz": the hash takes the name's place.
        let long = bridge(&p, "campus-dmz", Some(100));
        assert!(
            long.starts_with("hgv100-") && long.len() == IFNAMSIZ,
            "{long}"
        );
        assert!(long[7..].bytes().all(|b| b.is_ascii_hexdigit()), "{long}");
        for n in ["campus-dmz", "campus-lan", "a", "abcdefghij"] {
            for v in [1, 100, 4094] {
                assert!(bridge(&p, n, Some(v)).len() <= IFNAMSIZ);
                assert!(uplink_vlan(&p, n, v).len() <= IFNAMSIZ);
            }
        }
        let relocated = Paths::new(std::path::Path::new("/tmp/some-root"));
        assert!(bridge(&relocated, "abcdefghij", None).len() <= IFNAMSIZ);
    }

    #[test]
    fn networks_sharing_a_beginning_never_share_a_vlan_bridge() {
        let p = host_root();
        for v in [1, 100, 4094] {
            assert_ne!(
                bridge(&p, "campus-dmz", Some(v)),
                bridge(&p, "campus-lan", Some(v))
            );
            assert_ne!(
                uplink_vlan(&p, "campus-dmz", v),
                uplink_vlan(&p, "campus-lan", v)
            );
        }
    }

    #[test]
    fn a_networks_vlan_links_are_told_from_its_neighbours() {
        let p = host_root();
        let links: Vec<String> = [
            bridge(&p, "lan", Some(7)),
            uplink_vlan(&p, "lan", 7),
            bridge(&p, "lan2", Some(7)),
            bridge(&p, "campus-dmz", Some(4094)),
            bridge(&p, "campus-lan", Some(4094)),
            "hgb-lan".to_string(),
            "hg7-eth0".to_string(),
        ]
        .into();
        assert_eq!(
            vlan_links_of(&p, "lan", &links),
            [
                ("hgv7-lan".to_string(), VlanLink::Bridge(7)),
                ("hgq7-lan".to_string(), VlanLink::Uplink(7))
            ]
        );
        assert_eq!(
            vlan_links_of(&p, "campus-lan", &links),
            [(bridge(&p, "campus-lan", Some(4094)), VlanLink::Bridge(4094))]
        );
    }
}
