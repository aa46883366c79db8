//! Interface names (15 characters at most) that say whose they are.

use crate::paths::Paths;

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

/// The bridge of network `net` (VLAN `vlan`: a bridge of its own, the Xen seed's
/// "one bridge per VLAN").
pub fn bridge(paths: &Paths, net: &str, vlan: Option<u16>) -> String {
    match vlan {
        None => format!("{}b-{net}", prefix(paths)),
        // prefix (2-4) + "v" + vlan (<=4) + "-" + net, cut to 15.
        Some(v) => {
            let mut s = format!("{}v{v}-{net}", prefix(paths));
            s.truncate(15);
            s
        }
    }
}

/// Host side of a guest's NIC: `<prefix><ctx>-<nic>` (`hg7-eth0`).
pub fn host_if(paths: &Paths, ctx: u16, nic: &str) -> String {
    format!("{}{ctx}-{nic}", prefix(paths))
}
