//! `Host`: the entry point of the library. Front ends open one and call its operations.

use crate::paths::Paths;
use crate::{Result, store};
use hangar_model::limits::Bound;
use hangar_model::{GuestConfig, HostDefaults, Size};
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
    pub fn limits(&self, cfg: &GuestConfig) -> hangar_model::Limits {
        cfg.limits.or(&self.defaults.limits)
    }

    /// The effective rlimits: (name, soft, hard), None = unlimited.
    pub fn rlimits(&self, cfg: &GuestConfig) -> Vec<(String, Option<u64>, Option<u64>)> {
        self.limits(cfg)
            .rlimits
            .into_iter()
            .map(|(n, r)| (n, r.soft.value(), r.hard.value()))
            .collect()
    }

    /// The effective limits in the cgroup layer's terms.
    pub fn cgroup_limits(&self, cfg: &GuestConfig) -> hangar_cgroup::Limits {
        let l = self.limits(cfg);
        let size = |b: Option<Bound<Size>>| b.and_then(Bound::value).map(|s| s.0);
        hangar_cgroup::Limits {
            memory_max: size(l.memory.max),
            memory_swap_max: size(l.memory.swap),
            pids_max: l.pids.max.and_then(Bound::value),
        }
    }
}
