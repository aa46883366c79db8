//! Which init system a guest boots, and what follows from it: the signal that shuts it
//! down cleanly and whether it manages cgroups of its own.
//!
//! hangar decides this at every start from the guest's files (`hangar-core` looks at
//! what `/sbin/init` resolves to inside the guest), so a guest whose packages switch it
//! from sysvinit to systemd, or back, keeps booting and stopping cleanly.

use crate::Signal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitSystem {
    /// busybox init: SIGUSR2 powers off.
    Busybox,
    /// sysvinit (or an init hangar does not know): SIGPWR runs inittab's `powerwait`.
    Sysvinit,
    /// systemd: SIGRTMIN+3 halts; it needs a cgroup2 tree of its own.
    Systemd,
}

impl InitSystem {
    /// Names the init from the file name `/sbin/init` resolves to inside the guest
    /// (`busybox`, `systemd`, anything else: sysvinit).
    pub fn from_program(file_name: &str) -> InitSystem {
        match file_name {
            "busybox" => InitSystem::Busybox,
            "systemd" => InitSystem::Systemd,
            _ => InitSystem::Sysvinit,
        }
    }

    /// The signal that asks this init for a clean shutdown.
    pub fn stop_signal(self) -> Signal {
        let name = match self {
            InitSystem::Busybox => "SIGUSR2",
            InitSystem::Sysvinit => "SIGPWR",
            InitSystem::Systemd => "SIGRTMIN+3",
        };
        Signal::parse(name).expect("a known signal name")
    }

    /// Whether the init manages cgroups itself and so needs a delegated cgroup2 tree
    /// mounted at /sys/fs/cgroup.
    pub fn wants_cgroups(self) -> bool {
        self == InitSystem::Systemd
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InitSystem::Busybox => "busybox",
            InitSystem::Sysvinit => "sysvinit",
            InitSystem::Systemd => "systemd",
        }
    }
}

impl std::fmt::Display for InitSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_init_has_its_own_stop_signal() {
        assert_eq!(
            InitSystem::from_program("busybox").stop_signal().number(),
            12
        );
        assert_eq!(InitSystem::from_program("init").stop_signal().number(), 30);
        let systemd = InitSystem::from_program("systemd");
        assert_eq!(systemd.stop_signal(), Signal::parse("SIGRTMIN+3").unwrap());
        assert!(systemd.wants_cgroups());
        assert!(!InitSystem::Sysvinit.wants_cgroups());
    }
}
