//! The cgroup layer for hangar guests.
//!
//! Every guest lives in its own cgroup, named after its context id, under one
//! hangar parent cgroup: `<parent>/<name>`. Two backends sit behind the closed
//! enum [`Cgroups`]: cgroup v2 (one unified tree) and cgroup v1 (one tree per
//! mounted controller hierarchy, so one directory per hierarchy per guest).
//! [`Cgroups::probe`] picks the backend from the host's mounts;
//! [`Cgroups::v1_at`] and [`Cgroups::v2_at`] take explicit roots so the code
//! can be tested against a fake tree in a temporary directory.
//!
//! Once created, a guest's cgroup is a plain [`GuestCgroup`] value (its
//! directories and their controllers) that can be stored with the guest's state
//! and used later to add processes, change [`Limits`], read [`Stats`] and
//! [`Counters`], and remove it.

#![forbid(unsafe_code)]

mod counters;
mod error;
mod fsutil;
mod guest;
mod limits;
mod mountinfo;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod testutil;

use std::path::PathBuf;

pub use counters::{Counter, Counters, CpuCounters, IoCounter};
pub use error::CgroupError;
pub use guest::GuestCgroup;
pub use limits::{CpuMax, DEFAULT_PERIOD_US, DEFAULT_WEIGHT, IoMax, Limits};
pub use mountinfo::{MOUNTINFO, from_mountinfo};

/// What a v1 guest calls its directory in a hybrid host's cgroup2 tree, among
/// its per-controller directories ([`GuestCgroup::dir_for`]).
pub const UNIFIED: &str = "unified";

/// The host's cgroup backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// Legacy or hybrid hosts: one hierarchy per controller (or group of controllers).
    V1(v1::V1),
    /// Unified hierarchy.
    V2(v2::V2),
}

/// Usage figures of one guest: what `hangar list` shows, read with as few files as
/// possible (a list of a thousand guests reads these a thousand times). The pids
/// controller's figures and the rest are in [`Counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// The processes (not threads) in the guest's cgroup.
    pub pids: Vec<i32>,
    /// CPU time spent in user mode, in microseconds.
    pub cpu_user_us: u64,
    /// CPU time spent in kernel mode, in microseconds.
    pub cpu_system_us: u64,
    /// Anonymous (resident, not file-backed) memory in bytes.
    pub memory_rss: u64,
    /// Memory limit in bytes, `None` when unlimited.
    pub memory_limit: Option<u64>,
}

impl Cgroups {
    /// Probes the running host by reading `/proc/self/mountinfo`: v2 when
    /// `/sys/fs/cgroup` itself is cgroup2, else the mounted v1 hierarchies.
    pub fn probe() -> Result<Cgroups, CgroupError> {
        let text = fsutil::read(std::path::Path::new(MOUNTINFO))?;
        from_mountinfo(&text)
    }

    /// A v1 backend with explicit hierarchies: `(controllers, mount point)`,
    /// controllers comma separated as in `"cpu,cpuacct"`. Hierarchies without
    /// a controller hangar uses (such as `name=systemd`) are left out.
    pub fn v1_at(hierarchies: Vec<(String, PathBuf)>) -> Cgroups {
        Cgroups::V1(v1::V1::new(hierarchies))
    }

    /// A v2 backend rooted at `root` (normally `/sys/fs/cgroup`).
    pub fn v2_at(root: PathBuf) -> Cgroups {
        Cgroups::V2(v2::V2::new(root))
    }

    /// 1 or 2.
    pub fn version(&self) -> u8 {
        match self {
            Cgroups::V1(_) => 1,
            Cgroups::V2(_) => 2,
        }
    }

    /// Creates the guest's cgroup `parent/name`, or reuses it if it exists,
    /// sets up the parent as needed and applies `limits`.
    ///
    /// On v1, new cpuset directories get `cpuset.cpus` and `cpuset.mems` from
    /// their parent (an empty cpuset cannot take tasks). On v2, the available
    /// controllers among memory, pids, cpu, io and cpuset are enabled in the
    /// root's and the parent's `cgroup.subtree_control`. If setting up or applying
    /// the limits fails on a cgroup this call created, it is removed again.
    pub fn create(
        &self,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<GuestCgroup, CgroupError> {
        validate_name(parent)?;
        validate_name(name)?;
        let guest = self.guest(parent, name);
        let existed = guest.exists();
        let prepared = match self {
            Cgroups::V1(v1) => v1.prepare(parent, name),
            Cgroups::V2(v2) => v2.prepare(parent, name),
        };
        if let Err(e) = prepared.and_then(|()| guest.apply(limits)) {
            if !existed {
                // Best effort: the first error is the one worth reporting.
                let _ = guest.remove();
            }
            return Err(e);
        }
        Ok(guest)
    }

    /// A handle to the guest cgroup `parent/name`; computes paths only.
    ///
    /// The names must be ones [`Cgroups::create`] accepts (plain names, see
    /// [`validate_name`]); this is not checked here, so do not pass
    /// unchecked input.
    pub fn guest(&self, parent: &str, name: &str) -> GuestCgroup {
        debug_assert!(validate_name(parent).is_ok() && validate_name(name).is_ok());
        match self {
            Cgroups::V1(v1) => v1.guest(parent, name),
            Cgroups::V2(v2) => v2.guest(parent, name),
        }
    }

    /// The directories of the hangar parent cgroup (v1: one per hierarchy).
    pub fn parent_dirs(&self, parent: &str) -> Vec<PathBuf> {
        match self {
            Cgroups::V1(v1) => v1.all_trees().map(|(_, m)| m.join(parent)).collect(),
            Cgroups::V2(v2) => vec![v2.root().join(parent)],
        }
    }

    /// Removes the hangar parent cgroup once no guest cgroup is left in it.
    /// Missing directories are fine; processes are never killed here.
    pub fn remove_parent(&self, parent: &str) -> Result<(), CgroupError> {
        validate_name(parent)?;
        for dir in self.parent_dirs(parent) {
            guest::rmdir(&dir)?;
        }
        Ok(())
    }

    /// Whether the backend has nowhere to put guests (v1 without a usable hierarchy).
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Cgroups::V1(v1) => v1.hierarchies().is_empty(),
            Cgroups::V2(_) => false,
        }
    }
}

/// Checks that `name` is a plain cgroup name: non-empty, at most 255 bytes, made
/// of ASCII letters, digits, `-`, `_` and `.`, and not starting with `.`. This
/// keeps paths inside the hangar subtree and clear of the kernel's own files.
pub fn validate_name(name: &str) -> Result<(), CgroupError> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain && !name.is_empty() && name.len() <= 255 && !name.starts_with('.') {
        Ok(())
    } else {
        Err(CgroupError::InvalidName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_accepted() {
        for name in ["7", "hangar", "hangar-3fa2c1", "a_b.c"] {
            assert!(validate_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn names_that_could_escape_or_clash_are_refused() {
        for name in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "x\0"] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn limits_refuse_unknown_fields() {
        let err = serde_json::from_str::<Limits>(r#"{"memory_maxx": 1}"#);
        assert!(err.is_err());
    }
}
