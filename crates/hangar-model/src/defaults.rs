//! Host-wide defaults (VServer's `/etc/vservers/.defaults`): `etc/hangar/defaults.toml`.
//!
//! A missing file means the built-in values below. Every new guest gets at least a memory
//! and a pids limit from here, so one guest's leak or fork bomb stays inside it.

use crate::limits::Bound;
use crate::{Limits, ModelError, Size};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDefaults {
    /// Limits for guests whose config leaves a key unset.
    #[serde(default = "default_limits")]
    pub limits: Limits,
    /// Name of the cgroup under which every guest's cgroup lives.
    /// Unset: `hangar` for the host's own root, `hangar-<hash>` for a relocated HANGAR_ROOT.
    #[serde(default)]
    pub cgroup_parent: Option<String>,
    /// Debian mirror for `build -m debootstrap`.
    #[serde(default = "default_mirror")]
    pub mirror: String,
    /// The network new guests get an eth0 on (`none`: only lo).
    #[serde(default = "default_network")]
    pub network: String,
    /// Debian suite for `build -m debootstrap`.
    #[serde(default = "default_suite")]
    pub suite: String,
    /// The pool new guests are built in (unset: the built-in `default` dir pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<crate::pool::PoolName>,
}

fn default_limits() -> Limits {
    let mut l = Limits::default();
    l.memory.max = Some(Bound::At(Size(1 << 30)));
    l.pids.max = Some(Bound::At(1024));
    l
}
fn default_mirror() -> String {
    "http://deb.debian.org/debian".into()
}
fn default_network() -> String {
    "default".into()
}
fn default_suite() -> String {
    "bookworm".into()
}

impl Default for HostDefaults {
    fn default() -> Self {
        HostDefaults {
            limits: default_limits(),
            cgroup_parent: None,
            mirror: default_mirror(),
            suite: default_suite(),
            network: default_network(),
            pool: None,
        }
    }
}

impl HostDefaults {
    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        let d: HostDefaults =
            toml::from_str(text).map_err(|e| ModelError::Toml(e.to_string().replace('\n', " ")))?;
        if let Some(p) = &d.cgroup_parent {
            let ok = !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c))
                && !p.split('/').any(|c| c.is_empty() || c == "." || c == "..");
            if !ok {
                return Err(ModelError::Field {
                    field: "cgroup_parent",
                    why: format!("{p:?} is not a relative cgroup path"),
                });
            }
        }
        // The defaults every guest without a limit of its own gets: checked as a
        // guest's own limits are.
        d.limits.validate()?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_limits_are_checked_as_a_guests_are() {
        let e = super::HostDefaults::from_toml("[limits]\nmemory.max = \"1M\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 4M"), "{e}");
        let e = super::HostDefaults::from_toml("[limits.rlimits]\nnofilez = 10\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an rlimit"), "{e}");
    }

    use super::*;

    #[test]
    fn empty_file_gives_safe_defaults() {
        let d = HostDefaults::from_toml("").unwrap();
        assert!(d.limits.memory.max.is_some() && d.limits.pids.max.is_some());
    }

    #[test]
    fn escaping_cgroup_parent_is_refused() {
        assert!(HostDefaults::from_toml("cgroup_parent = \"../x\"").is_err());
        assert!(HostDefaults::from_toml("cgroup_parent = \"hangar\"").is_ok());
    }
}
