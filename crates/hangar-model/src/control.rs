//! The monitor's control protocol: one JSON request per line on its Unix socket, one
//! JSON reply line back. New verbs (pause, checkpoint, migrate) become new variants.

use crate::RuntimeState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Report the runtime state.
    Status,
    /// Ask init to shut down with its stop signal; SIGKILL after `timeout` seconds.
    Stop { timeout: u32 },
    /// SIGKILL the guest now (Xen's destroy).
    Kill,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
pub enum Reply {
    Ok { state: RuntimeState },
    Error { message: String },
}
