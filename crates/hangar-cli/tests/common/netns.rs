//! Test hosts outside hangar: network namespaces wired to the host by a veth pair, and
//! a shell for the host's own tools.

use std::process::Command;

/// Runs `cmd` with sh on the host: (success, stdout and stderr).
pub fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A network namespace wired to the host by a veth pair, removed on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str, host_addr: &str, ns_addr: &str) -> Netns {
        let host_if = format!("{}h", &name[..name.len().min(13)]);
        let cmds = [
            format!("ip netns add {name}"),
            format!("ip link add {host_if} type veth peer name eth0 netns {name}"),
            format!("ip addr add {host_addr} dev {host_if}"),
            format!("ip link set {host_if} up"),
            format!("ip -n {name} addr add {ns_addr} dev eth0"),
            format!("ip -n {name} link set eth0 up"),
            format!("ip -n {name} link set lo up"),
            format!(
                "ip -n {name} route add default via {}",
                host_addr.split('/').next().unwrap()
            ),
        ];
        let ns = Netns {
            name: name.to_string(),
        };
        for c in cmds {
            let (ok, out) = sh(&c);
            assert!(ok, "{c}: {out}");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

/// What the kernel holds of this test root: its interfaces (prefix `h<hash>`), its
/// nftables tables, its routes and its DNS servers. (Tests run in parallel, so only
/// this root's share of the host's state can be compared.)
pub fn leftovers(h: &super::TestHost) -> String {
    let hash = h.cgroup_parent().replace("hangar-", "");
    let prefix = format!("h{}", &hash[..3]);
    let links = sh(&format!(
        "ip -o link show | awk -F': ' '{{print $2}}' | grep -E '^(ifb)?{prefix}' || true"
    ))
    .1;
    let routes = sh(&format!(
        "ip route show table all | grep -E 'dev (ifb)?{prefix}' || true"
    ))
    .1;
    let rules = sh(&format!("nft list tables | grep {hash} || true")).1;
    let dns = sh(&format!(
        "pgrep -af '(dnsmas[q]|hangar-monito[r] --dns) .*{}' || true",
        h.root.display()
    ))
    .1;
    format!("{links}{routes}{rules}{dns}")
}
