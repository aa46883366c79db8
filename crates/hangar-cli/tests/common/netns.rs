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
