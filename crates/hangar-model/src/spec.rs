//! The launch spec: everything a guest's monitor needs, resolved by `hangar-core` so the
//! monitor reads no config, probes nothing and stays small.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub name: String,
    pub hostname: String,
    /// Absolute path of the root filesystem on the host.
    pub rootfs: PathBuf,
    pub init: Vec<String>,
    /// Environment of init, `KEY=VALUE`.
    pub env: Vec<String>,
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

/// A guest NIC with every name and address resolved, ready to plug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicPlan {
    pub host_if: String,
    pub guest_if: String,
    pub mac: String,
    /// Bridge to attach the host side to (bridged NICs).
    pub bridge: Option<String>,
    /// The guest's addresses, CIDR.
    pub addrs: Vec<String>,
    /// Default gateways inside the guest that go via this NIC, at most one per family
    /// (one NIC of a guest carries each family's default route).
    pub gateways: Vec<String>,
    pub mtu: Option<u32>,
    pub routed: bool,
    /// Rate limits seen from the guest, bytes per second.
    pub egress: Option<u64>,
    pub ingress: Option<u64>,
}
