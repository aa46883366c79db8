//! hangar-net: the network backend — host bridges, guest veth pairs, addresses and
//! routes, traffic shaping, nftables rules (NAT, port forwards, anti-spoofing) and the
//! per-network DNS service.
//!
//! It drives the kernel through the real tools (iproute2's `ip` and `tc`, `nft`,
//! `dnsmasq`), whose interfaces are stable and whose JSON output is parseable, rather
//! than through netlink crates: network setup is not on any hot path of hangar's, and
//! an admin can replay every command it runs.
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
