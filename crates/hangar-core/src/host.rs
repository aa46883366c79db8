//! `Host`: the entry point of the library. Front ends open one and call its operations.

use crate::paths::Paths;
use crate::{Result, store};
use hangar_model::{GuestConfig, HostDefaults};
use std::path::PathBuf;

pub struct Host {
    pub paths: Paths,
    pub defaults: HostDefaults,
}

impl Host {
    /// Open the host rooted at `root` (or `HANGAR_ROOT`, or `/`).
    pub fn open(root: Option<PathBuf>) -> Result<Host> {
        let paths = Paths::from_env(root);
        let defaults = store::load_defaults(&paths)?;
        Ok(Host { paths, defaults })
    }

    /// The cgroup every guest's cgroup lives under.
    pub fn cgroup_parent(&self) -> String {
        self.defaults
            .cgroup_parent
            .clone()
            .unwrap_or_else(|| self.paths.default_cgroup_parent())
    }

    pub fn cgroups(&self) -> Result<hangar_cgroup::Cgroups> {
        Ok(hangar_cgroup::Cgroups::probe()?)
    }

    /// The guest's cgroup handle (whether or not it exists now).
    pub fn guest_cgroup(&self, cfg: &GuestConfig) -> Result<hangar_cgroup::GuestCgroup> {
        Ok(self
            .cgroups()?
            .guest(&self.cgroup_parent(), &cfg.context.to_string()))
    }

    /// Effective limits: the guest's own, or the host defaults.
    pub fn limits(&self, cfg: &GuestConfig) -> hangar_cgroup::Limits {
        let l = cfg.limits.or(&self.defaults.limits);
        hangar_cgroup::Limits {
            memory_max: l.memory.map(|s| s.0),
            memory_swap_max: l.swap.map(|s| s.0),
            pids_max: l.pids,
        }
    }
}
