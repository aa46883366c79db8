//! The launch spec: everything a guest's monitor needs, resolved by `hangar-core` so the
//! monitor reads no config, probes nothing and stays small.

use crate::ModelError;
use crate::net::{Cidr, Mac, ROUTED_GATEWAY_V4, ROUTED_GATEWAY_V6};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub name: String,
    pub hostname: String,
    /// Absolute path of the root filesystem on the host.
    pub rootfs: PathBuf,
    pub init: Vec<String>,
    /// Environment of init, `KEY=VALUE`, over hangar's own (`PATH`; a key given here
    /// replaces it).
    pub env: Vec<String>,
    /// The directory init starts in, inside the guest (None: `/`).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// First host uid/gid of the guest's range; None runs without a user namespace.
    pub id_base: Option<u32>,
    pub id_count: u32,
    /// Cgroup directories the guest's processes join (one per v1 hierarchy, one on v2).
    pub cgroup_dirs: Vec<PathBuf>,
    pub stop_signal: i32,
    /// Mount the guest's own (delegated) cgroup2 tree at /sys/fs/cgroup, for an init
    /// that manages cgroups (systemd); otherwise /sys/fs/cgroup is an empty tmpfs.
    #[serde(default)]
    pub cgroup2: bool,
    pub stop_timeout: u32,
    pub seccomp: bool,
    /// setrlimit values for init: (name, soft, hard), None = unlimited.
    #[serde(default)]
    pub rlimits: Vec<(String, Option<u64>, Option<u64>)>,
    /// Mount point of the host's lxcfs, whose files replace the guest's /proc files.
    #[serde(default)]
    pub lxcfs: Option<PathBuf>,
    /// Network interfaces to plug before init runs.
    #[serde(default)]
    pub nics: Vec<NicPlan>,
    /// Host directories to mount into the guest, each resolved and checked by
    /// hangar-core at start (or at `hangar attach`, which records it here for the
    /// guest's next reboot).
    #[serde(default)]
    pub dirs: Vec<crate::dir::SharedDir>,
    /// Name servers for the guest's /etc/resolv.conf (empty: leave it alone).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Search domain for the guest's /etc/resolv.conf.
    #[serde(default)]
    pub search: Option<String>,
    /// nftables table tag of this hangar root (None: the host's own `hangar` tables).
    #[serde(default)]
    pub nft_tag: Option<String>,
    /// Runtime directory of this guest: state.json, control socket, monitor lock.
    pub run_dir: PathBuf,
    /// Console log of the guest's init.
    pub console_log: PathBuf,
}

impl LaunchSpec {
    pub fn state_path(&self) -> PathBuf {
        self.run_dir.join("state.json")
    }
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir.join("control.sock")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.run_dir.join("monitor.lock")
    }
}

/// A guest NIC with every name and address resolved, ready to plug: typed from
/// allocation to the monitor, its values checked where they were parsed (the guest's
/// config) and its consistency by [`NicPlan::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicPlan {
    pub host_if: String,
    pub guest_if: String,
    pub mac: Mac,
    /// Bridge to attach the host side to (bridged NICs).
    pub bridge: Option<String>,
    /// The guest's addresses.
    pub addrs: Vec<Cidr>,
    /// Default gateways inside the guest that go via this NIC, at most one per family
    /// (one NIC of a guest carries each family's default route). A routed NIC takes
    /// only [`ROUTED_GATEWAY_V4`] and [`ROUTED_GATEWAY_V6`].
    pub gateways: Vec<IpAddr>,
    pub mtu: Option<u32>,
    pub routed: bool,
    /// Rate limits seen from the guest, bytes per second.
    pub egress: Option<u64>,
    pub ingress: Option<u64>,
}

impl NicPlan {
    /// The plan's parts agree: a routed NIC has no bridge and its gateways are the host
    /// side's; a bridged NIC's gateways are on one of its subnets (or IPv6 link-local),
    /// or the kernel would refuse the route only after the NIC exists.
    pub fn check(&self) -> Result<(), ModelError> {
        let owner = format!("nic {}", self.host_if);
        let bad = |reason: String| ModelError::Field {
            field: "nic",
            why: format!("{owner}: {reason}"),
        };
        if self.routed && self.bridge.is_some() {
            return Err(bad(
                "a routed NIC has no bridge: drop the bridge or the routed mode".to_string(),
            ));
        }
        for gw in &self.gateways {
            if self.routed {
                if *gw != IpAddr::V4(ROUTED_GATEWAY_V4) && *gw != IpAddr::V6(ROUTED_GATEWAY_V6) {
                    return Err(bad(format!(
                        "a routed NIC's default routes go via the host side: its gateways \
                         are {ROUTED_GATEWAY_V4} and {ROUTED_GATEWAY_V6}, or none"
                    )));
                }
                continue;
            }
            let (host, link_local) = match gw {
                IpAddr::V4(a) => (Cidr::V4(*a, 32), false),
                IpAddr::V6(a) => (Cidr::V6(*a, 128), a.segments()[0] & 0xffc0 == 0xfe80),
            };
            if !link_local && !self.addrs.iter().any(|c| c.contains(&host)) {
                return Err(bad(format!(
                    "gateway {gw} is on none of the NIC's subnets: give an address in its \
                     subnet, or another gateway"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(routed: bool, addrs: &[&str], gateways: &[&str]) -> NicPlan {
        NicPlan {
            host_if: "hg2-eth0".into(),
            guest_if: "eth0".into(),
            mac: Mac::parse("02:00:00:00:00:01").unwrap(),
            bridge: (!routed).then(|| "hgb-lan".to_string()),
            addrs: addrs.iter().map(|a| Cidr::parse(a).unwrap()).collect(),
            gateways: gateways.iter().map(|g| g.parse().unwrap()).collect(),
            mtu: None,
            routed,
            egress: None,
            ingress: None,
        }
    }

    #[test]
    fn a_routed_nic_takes_only_the_host_sides_gateways() {
        assert!(
            plan(true, &["10.0.0.5/32"], &["169.254.0.1", "fe80::1"])
                .check()
                .is_ok()
        );
        let e = plan(true, &["10.0.0.5/32"], &["10.0.0.1"])
            .check()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("a routed NIC's default routes go via the host side"),
            "{e}"
        );
    }

    #[test]
    fn a_bridged_nics_gateway_is_on_its_subnet_or_link_local() {
        assert!(
            plan(false, &["10.0.0.5/24"], &["10.0.0.1", "fe80::1"])
                .check()
                .is_ok()
        );
        let e = plan(false, &["10.0.0.5/24"], &["10.9.0.1"])
            .check()
            .unwrap_err();
        assert!(
            e.to_string().contains("on none of the NIC's subnets"),
            "{e}"
        );
    }

    #[test]
    fn plans_travel_as_json_with_typed_values() {
        let p = plan(false, &["10.0.0.5/24", "fd00::5/64"], &["10.0.0.1"]);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""mac":"02:00:00:00:00:01""#), "{json}");
        assert!(
            json.contains(r#""addrs":["10.0.0.5/24","fd00::5/64"]"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<NicPlan>(&json).unwrap(), p);
        let bad = json.replace("02:00:00:00:00:01", "01:00:00:00:00:01");
        assert!(serde_json::from_str::<NicPlan>(&bad).is_err());
    }
}
