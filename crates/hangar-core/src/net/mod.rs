//! Networks on the host and NICs of guests: configs, names, address allocation, and
//! bringing networks up (bridge, nftables, DNS) through `hangar-net`.

pub mod alloc;
pub mod dns;
pub mod names;
pub mod nic;
pub mod store;
pub mod up;

pub use store::{load, names as network_names, save};

/// The network every new guest joins unless told otherwise; created on first use.
pub const DEFAULT_NETWORK: &str = "default";
