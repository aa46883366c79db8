//! hangar-net: the network backend — host bridges, guest veth pairs, addresses and
//! routes, traffic shaping, nftables rules (NAT, port forwards, anti-spoofing) and the
//! per-network DNS service.
//!
//! Links, addresses and routes (a guest's NIC, a network's bridge, a VLAN's 802.1Q
//! device) go through rtnetlink in-process (`rtnl.rs`), and so do the guards' set
//! elements (`nft/netlink.rs`): a start costs no process and the same at the 1st and
//! the 1,000th guest. What happens once per network, forward or repair (the nftables
//! skeleton, NAT and forward chains, listings), shaping (`tc`: TBF has no netlink
//! crate) and DNS go through the real tools (`nft`, `tc`, `dnsmasq`). Errors name the
//! command an admin would run to do the same by hand.
#![forbid(unsafe_code)]

pub mod cmd;
pub mod dns;
pub mod guest;
pub mod link;
pub mod nft;
mod rtnl;
pub mod tc;

pub use guest::{plug, unplug};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run {program}: install it (scripts/setup-host.sh does)")]
    Missing {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;
