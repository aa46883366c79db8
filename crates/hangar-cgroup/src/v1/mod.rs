//! The cgroup v1 backend: one directory per mounted controller hierarchy.
//!
//! Hosts on v1 (or "hybrid", with an almost empty cgroup2 beside the v1
//! trees) mount each controller, or a group of them, as its own hierarchy.
//! A guest gets one directory in every hierarchy hangar uses, and a process
//! joins the guest by being added in each.

use std::path::{Path, PathBuf};

use crate::fsutil::{keyed, mkdir, parse_u64, read, read_opt, write};
use crate::guest::GuestCgroup;
use crate::{CgroupError, Stats};

pub(crate) mod counters;
mod limits;

pub(crate) use limits::apply;

/// Controllers hangar uses; a hierarchy with none of them is ignored.
pub const USED_CONTROLLERS: &[&str] = &[
    "memory", "pids", "cpu", "cpuacct", "cpuset", "freezer", "blkio", "devices",
];

/// The unit of `cpuacct.stat`. The kernel reports in USER_HZ, which its ABI
/// fixes at 100 on every architecture hangar runs on.
pub(crate) const USER_HZ: u64 = 100;

/// `memory.limit_in_bytes` at or above this means "no limit". The kernel shows
/// "unlimited" as `PAGE_COUNTER_MAX` pages, 9223372036854771712 with 4 KiB pages.
pub(crate) const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// The mounted v1 hierarchies hangar uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1 {
    hierarchies: Vec<(String, PathBuf)>,
    /// A hybrid host's cgroup2 mount: no controllers, but a tree a guest's own
    /// cgroup manager (systemd) can be given a subtree of.
    unified: Option<PathBuf>,
}

impl V1 {
    /// Keeps the hierarchies, `(controllers, mount point)`, that carry at
    /// least one of [`USED_CONTROLLERS`].
    pub fn new(hierarchies: Vec<(String, PathBuf)>) -> V1 {
        let hierarchies = hierarchies
            .into_iter()
            .filter(|(c, _)| c.split(',').any(|c| USED_CONTROLLERS.contains(&c)))
            .collect();
        V1 {
            hierarchies,
            unified: None,
        }
    }

    /// The hierarchies in use: `(controllers, mount point)`.
    pub fn hierarchies(&self) -> &[(String, PathBuf)] {
        &self.hierarchies
    }

    /// The hybrid host's cgroup2 mount point, if it has one.
    pub fn unified(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    pub(crate) fn set_unified(&mut self, mount: PathBuf) {
        self.unified = Some(mount);
    }

    /// The controller hierarchies, then the unified one (named [`crate::UNIFIED`]).
    pub(crate) fn all_trees(&self) -> impl Iterator<Item = (&str, &Path)> {
        let unified = self.unified.as_deref().map(|u| (crate::UNIFIED, u));
        self.hierarchies
            .iter()
            .map(|(c, m)| (c.as_str(), m.as_path()))
            .chain(unified)
    }

    pub(crate) fn guest(&self, parent: &str, name: &str) -> GuestCgroup {
        let dirs = self
            .all_trees()
            .map(|(c, mount)| (c.to_owned(), mount.join(parent).join(name)))
            .collect();
        GuestCgroup::new_v1(dirs)
    }

    /// Creates `parent/name` in every hierarchy; new cpuset directories
    /// inherit their parent's CPUs and memory nodes.
    pub(crate) fn prepare(&self, parent: &str, name: &str) -> Result<(), CgroupError> {
        for (controllers, mount) in self.all_trees() {
            let mount = mount.to_path_buf();
            let cpuset = controllers.split(',').any(|c| c == "cpuset");
            let mut above = mount.clone();
            for dir in [mount.join(parent), mount.join(parent).join(name)] {
                mkdir(&dir)?;
                if cpuset {
                    inherit_cpuset(&above, &dir)?;
                }
                above = dir;
            }
        }
        Ok(())
    }
}

/// Copies `cpuset.cpus` and `cpuset.mems` from `parent` into `dir` where
/// `dir`'s are empty: a cgroup without CPUs or memory nodes refuses tasks.
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = read_opt(&dir.join(file))?.unwrap_or_default();
        if own.trim().is_empty() {
            let value = read(&parent.join(file))?;
            write(&dir.join(file), value.trim())?;
        }
    }
    Ok(())
}

/// Reads a v1 guest's figures; controllers that are not mounted read as zero.
pub(crate) fn stats(guest: &GuestCgroup) -> Result<Stats, CgroupError> {
    let mut stats = Stats::default();
    if let Some(dir) = guest.dir_for("cpuacct") {
        let path = dir.join("cpuacct.stat");
        let text = read(&path)?;
        let micros_per_tick = 1_000_000 / USER_HZ;
        stats.cpu_user_us = keyed(&path, &text, "user")?.unwrap_or(0) * micros_per_tick;
        stats.cpu_system_us = keyed(&path, &text, "system")?.unwrap_or(0) * micros_per_tick;
    }
    if let Some(dir) = guest.dir_for("memory") {
        let path = dir.join("memory.stat");
        let text = read(&path)?;
        // total_rss includes nested cgroups; kernels without hierarchy only have rss.
        let rss = match keyed(&path, &text, "total_rss")? {
            Some(rss) => Some(rss),
            None => keyed(&path, &text, "rss")?,
        };
        stats.memory_rss = rss.unwrap_or(0);
        let path = dir.join("memory.limit_in_bytes");
        let limit = parse_u64(&path, &read(&path)?)?;
        stats.memory_limit = (limit < V1_UNLIMITED_FROM).then_some(limit);
    }
    Ok(stats)
}

/// Thaws a freezer cgroup so that its tasks can receive SIGKILL.
pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    let path = dir.join("freezer.state");
    match read_opt(&path)? {
        Some(state) if state.trim() != "THAWED" => write(&path, "THAWED"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{TempDir, fake_v1, get, put};
    use crate::{Limits, Stats};

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn create_makes_a_dir_in_each_used_hierarchy() {
        let tmp = TempDir::new();
        let guest = fake_v1(&tmp)
            .create("hangar", "7", &Limits::default())
            .unwrap();
        let dirs: Vec<_> = guest
            .dirs()
            .iter()
            .map(|d| d.strip_prefix(tmp.path()).unwrap())
            .collect();
        let expected = [
            "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio",
        ]
        .map(|h| std::path::PathBuf::from(h).join("hangar/7"));
        assert_eq!(dirs, expected);
        assert!(guest.exists());
        assert!(!tmp.path().join("systemd/hangar").exists());
    }

    #[test]
    fn create_copies_cpuset_from_parent_into_new_dirs() {
        let tmp = TempDir::new();
        fake_v1(&tmp)
            .create("hangar", "7", &Limits::default())
            .unwrap();
        for dir in ["cpuset/hangar", "cpuset/hangar/7"] {
            assert_eq!(get(&tmp.path().join(dir).join("cpuset.cpus")), "0-3");
            assert_eq!(get(&tmp.path().join(dir).join("cpuset.mems")), "0");
        }
    }

    #[test]
    fn stats_convert_ticks_and_read_total_rss() {
        let tmp = TempDir::new();
        let guest = fake_v1(&tmp).guest("hangar", "7");
        let root = tmp.path();
        put(&root.join("pids/hangar/7/cgroup.procs"), "41\n42\n");
        put(&root.join("pids/hangar/7/pids.current"), "3\n");
        put(&root.join("pids/hangar/7/pids.max"), "max\n");
        put(
            &root.join("cpuacct/hangar/7/cpuacct.stat"),
            "user 250\nsystem 75\n",
        );
        put(
            &root.join("memory/hangar/7/memory.stat"),
            "cache 4096\nrss 8192\ntotal_cache 4096\ntotal_rss 12288\n",
        );
        put(
            &root.join("memory/hangar/7/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        let expected = Stats {
            pids: vec![41, 42],
            cpu_user_us: 2_500_000,
            cpu_system_us: 750_000,
            memory_rss: 12288,
            memory_limit: None,
        };
        assert_eq!(guest.stats().unwrap(), expected);
    }

    #[test]
    fn stats_fall_back_to_rss_and_read_a_set_limit() {
        let tmp = TempDir::new();
        let cgroups = crate::Cgroups::v1_at(vec![("memory".into(), tmp.path().join("memory"))]);
        let dir = tmp.path().join("memory/hangar/7");
        put(&dir.join("cgroup.procs"), "");
        put(&dir.join("memory.stat"), "cache 0\nrss 8192\n");
        put(&dir.join("memory.limit_in_bytes"), "67108864\n");
        let stats = cgroups.guest("hangar", "7").stats().unwrap();
        assert_eq!(
            (stats.memory_rss, stats.memory_limit),
            (8192, Some(64 * MIB))
        );
    }
}
