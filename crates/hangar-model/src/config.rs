//! The guest configuration: one TOML file per guest, human-readable and editable.
//!
//! Parsing refuses unknown keys (a typo must not silently do nothing) and every value is
//! checked; errors name the field. `GuestConfig::from_toml` is the only way in.

use crate::{ContextId, GuestName, Limits, ModelError, Signal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What runs the guest: a container shares the host kernel; a vm has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Container,
    Vm,
}

impl std::fmt::Display for GuestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestKind::Container => "container",
            GuestKind::Vm => "vm",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestConfig {
    pub name: GuestName,
    pub kind: GuestKind,
    pub context: ContextId,
    pub hostname: String,
    /// Root filesystem; relative paths are inside the guest's directory.
    #[serde(default = "default_rootfs")]
    pub rootfs: PathBuf,
    /// The guest's init command line (pid 1 inside the guest).
    pub init: Vec<String>,
    /// Environment of init besides hangar's own `PATH` and `container=hangar` (a
    /// `PATH` here replaces hangar's): `[init_env]`, `KEY = "VALUE"`. A guest built
    /// from an OCI image gets the image's `Env`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub init_env: BTreeMap<String, String>,
    /// The directory init starts in, inside the guest (default `/`): an OCI image's
    /// `WorkingDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_cwd: Option<String>,
    #[serde(default)]
    pub stop: StopPolicy,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub autostart: Autostart,
    #[serde(default)]
    pub security: Security,
    /// The storage pool its root filesystem lives in; none: the built-in `default`
    /// (plain directories), as for every guest built before pools existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<crate::pool::PoolName>,
    /// Network interfaces besides lo (`[[nic]]` tables).
    #[serde(default, rename = "nic", skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<crate::net::Nic>,
    /// Host directories shared with the guest (`[[dir]]` tables).
    #[serde(default, rename = "dir", skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<crate::dir::SharedDir>,
}

fn default_rootfs() -> PathBuf {
    PathBuf::from("rootfs")
}

/// How a guest is asked to shut down: its init's own signal, then SIGKILL after the timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopPolicy {
    /// The signal to send; None (the default): the one of the init the guest boots,
    /// decided at each start ([`crate::InitSystem::stop_signal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Seconds to wait for a clean shutdown before killing.
    #[serde(default = "default_stop_timeout")]
    pub timeout: u32,
}

fn default_stop_timeout() -> u32 {
    30
}

impl Default for StopPolicy {
    fn default() -> Self {
        StopPolicy {
            signal: None,
            timeout: default_stop_timeout(),
        }
    }
}

/// VServer's `apps/init/mark` and start order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autostart {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_order")]
    pub order: u32,
}

fn default_order() -> u32 {
    50
}

impl Default for Autostart {
    fn default() -> Self {
        Autostart {
            enabled: false,
            order: default_order(),
        }
    }
}

/// Isolation settings. The defaults are the safe ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Run without a user namespace: guest root is host root. Weaker; for compatibility only.
    #[serde(default)]
    pub privileged: bool,
    /// Apply hangar's default seccomp filter.
    #[serde(default = "yes")]
    pub seccomp: bool,
}

fn yes() -> bool {
    true
}

impl Default for Security {
    fn default() -> Self {
        Security {
            privileged: false,
            seccomp: true,
        }
    }
}

impl GuestConfig {
    /// Parse and validate a config file's text.
    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        let cfg: GuestConfig =
            toml::from_str(text).map_err(|e| ModelError::Toml(one_line(&e.to_string())))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a guest config always serialises")
    }

    /// The host uid (and gid) of the guest's root: the first of its context's range,
    /// or the host's root for a privileged guest (no user namespace).
    pub fn root_host_id(&self) -> u32 {
        if self.security.privileged {
            0
        } else {
            self.context.id_base()
        }
    }

    /// Checks that span fields or that serde cannot express.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_hostname(&self.hostname)?;
        let field = |field, why: &str| {
            Err(ModelError::Field {
                field,
                why: why.to_string(),
            })
        };
        if self.kind == GuestKind::Vm {
            return field(
                "kind",
                "vm guests are not supported yet; use kind = \"container\"",
            );
        }
        match self.init.first() {
            None => return field("init", "must name the init program, e.g. [\"/sbin/init\"]"),
            Some(p) if !p.starts_with('/') => {
                return field("init", "the init program must be an absolute path");
            }
            _ => {}
        }
        if self.init.iter().any(|a| a.contains('\0')) {
            return field("init", "arguments must not contain NUL bytes");
        }
        for (k, v) in &self.init_env {
            validate_env(k, v).map_err(|why| ModelError::Field {
                field: "init_env",
                why: why.to_string(),
            })?;
        }
        if let Some(d) = &self.init_cwd {
            validate_cwd(d).map_err(|why| ModelError::Field {
                field: "init_cwd",
                why: why.to_string(),
            })?;
        }
        if !(1..=3600).contains(&self.stop.timeout) {
            return field("stop.timeout", "must be 1 to 3600 seconds");
        }
        if self.stop.signal.is_some_and(|s| s.number() == 9) {
            return field(
                "stop.signal",
                "SIGKILL is no clean shutdown; `hangar kill` does that",
            );
        }
        self.limits.validate()?;
        crate::net::validate_nics(&self.nics)?;
        crate::dir::validate_dirs(&self.dirs)?;
        if self.rootfs.as_os_str().is_empty() {
            return field("rootfs", "must not be empty");
        }
        Ok(())
    }
}

/// An entry of init's environment: a key without `=` or NUL (not `container`, which
/// hangar sets: systemd and others tell a container by it), a value without NUL.
pub fn validate_env(key: &str, value: &str) -> Result<(), &'static str> {
    if key.is_empty() || key.contains(['=', '\0']) {
        return Err("a variable's name must be non-empty, without '=' or NUL bytes");
    }
    if key == "container" {
        return Err("`container` is hangar's own (container=hangar): leave it out");
    }
    if value.contains('\0') {
        return Err("a value must not contain NUL bytes");
    }
    Ok(())
}

/// init's starting directory: an absolute path inside the guest, without NUL bytes.
pub fn validate_cwd(dir: &str) -> Result<(), &'static str> {
    if !dir.starts_with('/') || dir.contains('\0') {
        return Err("must be an absolute path inside the guest, without NUL bytes");
    }
    Ok(())
}

/// Hostnames per RFC 1123, at most 64 bytes (the kernel's limit).
pub fn validate_hostname(h: &str) -> Result<(), ModelError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    };
    if h.is_empty() || h.len() > 64 || !h.split('.').all(label_ok) {
        return Err(ModelError::Hostname(h.to_string()));
    }
    Ok(())
}

/// toml's messages span several lines with a source excerpt; the CLI wants one line.
fn one_line(s: &str) -> String {
    let mut parts = s.lines().map(str::trim).filter(|l| {
        !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
    });
    let mut out = parts.next().unwrap_or_default().to_string();
    for p in parts {
        if !p.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(": ");
            out.push_str(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "web"
kind = "container"
context = 7
hostname = "web.example.org"
init = ["/sbin/init"]

[stop]
signal = "SIGUSR2"
timeout = 10

[limits]
memory.max = "512M"
pids.max = 256
cpu.max = "25%"
rlimits.nofile = 4096
"#;

    #[test]
    fn a_good_config_parses_and_round_trips() {
        let c = GuestConfig::from_toml(GOOD).unwrap();
        assert_eq!(c.context.get(), 7);
        assert_eq!(
            c.limits.memory.max,
            Some(crate::limits::Bound::At(crate::Size(512 << 20)))
        );
        assert_eq!(c.stop.signal.map(Signal::number), Some(12));
        assert!(!c.security.privileged && c.security.seccomp);
        assert_eq!(GuestConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn init_env_and_cwd_are_checked() {
        let with = |extra: &str| GuestConfig::from_toml(&format!("{GOOD}\n{extra}\n"));
        let c = GuestConfig::from_toml(&GOOD.replace(
            "init = [\"/sbin/init\"]",
            "init = [\"/sbin/init\"]\ninit_cwd = \"/srv\"",
        ))
        .unwrap();
        assert_eq!(c.init_cwd.as_deref(), Some("/srv"));
        let c = with("[init_env]\nPATH = \"/bin\"\nA_B = \"x=y\"").unwrap();
        assert_eq!(c.init_env["A_B"], "x=y");
        assert_eq!(GuestConfig::from_toml(&c.to_toml()).unwrap(), c);
        for bad in [
            "[init_env]\n\"A=B\" = \"x\"",
            "[init_env]\n\"\" = \"x\"",
            "[init_env]\ncontainer = \"docker\"",
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("init_env"), "{bad}: {e}");
        }
        let e = GuestConfig::from_toml(&GOOD.replace(
            "init = [\"/sbin/init\"]",
            "init = [\"/sbin/init\"]\ninit_cwd = \"srv\"",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("init_cwd"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = GuestConfig::from_toml(&format!("{GOOD}\nmemroy = 3\n")).unwrap_err();
        assert!(e.to_string().contains("memroy"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (GOOD.replace("\"512M\"", "\"lots\""), "lots"),
            (GOOD.replace("\"25%\"", "\"fast\""), "fast"),
            (GOOD.replace("nofile", "nofiles"), "nofiles"),
            (GOOD.replace("context = 7", "context = 1"), "context"),
            (GOOD.replace("\"/sbin/init\"", "\"sbin/init\""), "init"),
            (GOOD.replace("timeout = 10", "timeout = 0"), "stop.timeout"),
            (GOOD.replace("web.example.org", "bad_host"), "bad_host"),
            (GOOD.replace("name = \"web\"", "name = \"../x\""), "../x"),
            (GOOD.replace("\"SIGUSR2\"", "\"SIGKILL\""), "stop.signal"),
        ];
        for (text, needle) in cases {
            let e = GuestConfig::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
