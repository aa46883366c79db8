//! The cgroup v2 backend: one unified tree, one directory per guest.
//!
//! A controller's files only appear in a cgroup once its parent enables the
//! controller in `cgroup.subtree_control`, so creating a guest enables the
//! controllers hangar uses from the root down to the hangar parent.

use std::path::{Path, PathBuf};

use crate::fsutil::{keyed, mkdir, parse_max, read_opt, write};
use crate::guest::GuestCgroup;
use crate::{CgroupError, Stats};

pub(crate) mod counters;
mod limits;

pub(crate) use limits::apply;

/// Controllers hangar enables for its guests, where the host offers them.
pub const USED_CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "io", "cpuset"];

/// The unified cgroup tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2 {
    root: PathBuf,
}

impl V2 {
    /// A backend rooted at `root`, normally `/sys/fs/cgroup`.
    pub fn new(root: PathBuf) -> V2 {
        V2 { root }
    }

    /// The root of the tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn guest(&self, parent: &str, name: &str) -> GuestCgroup {
        GuestCgroup::new_v2(self.root.join(parent).join(name))
    }

    /// Enables the used controllers in the root and in `parent`, then creates
    /// `parent/name`.
    pub(crate) fn prepare(&self, parent: &str, name: &str) -> Result<(), CgroupError> {
        let available_file = self.root.join("cgroup.controllers");
        let available = read_opt(&available_file)?.unwrap_or_default();
        let wanted: Vec<&str> = USED_CONTROLLERS
            .iter()
            .copied()
            .filter(|c| available.split_whitespace().any(|a| a == *c))
            .collect();
        // What the root enables is exactly what the parent can offer its children.
        let in_root = enable(&self.root, &wanted)?;
        let parent_dir = self.root.join(parent);
        mkdir(&parent_dir)?;
        let for_guest: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|c| in_root.iter().any(|e| e == c))
            .collect();
        enable(&parent_dir, &for_guest)?;
        mkdir(&parent_dir.join(name))
    }
}

/// Enables `wanted` controllers for the children of `dir`, writing only the
/// missing ones (a write to the root can fail where it is not ours to change,
/// so do not write when there is nothing to do). Returns what is enabled after.
fn enable(dir: &Path, wanted: &[&str]) -> Result<Vec<String>, CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let mut enabled: Vec<String> = read_opt(&path)?
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !enabled.iter().any(|e| e == w))
        .collect();
    if !missing.is_empty() {
        let value: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
        write(&path, &value.join(" "))?;
        enabled.extend(missing.iter().map(|c| (*c).to_owned()));
    }
    Ok(enabled)
}

/// Reads a v2 guest's figures; controllers that are not enabled read as zero.
pub(crate) fn stats(guest: &GuestCgroup) -> Result<Stats, CgroupError> {
    let mut stats = Stats::default();
    let Some(dir) = guest.dirs().first() else {
        return Ok(stats);
    };
    let path = dir.join("cpu.stat");
    if let Some(text) = read_opt(&path)? {
        stats.cpu_user_us = keyed(&path, &text, "user_usec")?.unwrap_or(0);
        stats.cpu_system_us = keyed(&path, &text, "system_usec")?.unwrap_or(0);
    }
    let path = dir.join("memory.stat");
    if let Some(text) = read_opt(&path)? {
        stats.memory_rss = keyed(&path, &text, "anon")?.unwrap_or(0);
    }
    let path = dir.join("memory.max");
    if let Some(text) = read_opt(&path)? {
        stats.memory_limit = parse_max(&path, &text)?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use crate::testutil::{TempDir, fake_v2, get, put};
    use crate::{Limits, Stats};

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn create_enables_used_controllers_in_root_and_parent() {
        let tmp = TempDir::new();
        let guest = fake_v2(&tmp)
            .create("hangar", "7", &Limits::default())
            .unwrap();
        let root = tmp.path().join("unified");
        let expected = "+memory +pids +cpu +io +cpuset";
        assert_eq!(get(&root.join("cgroup.subtree_control")), expected);
        assert_eq!(get(&root.join("hangar/cgroup.subtree_control")), expected);
        assert_eq!(guest.dirs(), [root.join("hangar/7")]);
        assert!(guest.exists());
    }

    #[test]
    fn controllers_already_enabled_are_not_written_again() {
        let tmp = TempDir::new();
        let cgroups = fake_v2(&tmp);
        let root = tmp.path().join("unified");
        put(&root.join("cgroup.subtree_control"), "cpu io memory pids\n");
        cgroups.create("hangar", "7", &Limits::default()).unwrap();
        assert_eq!(get(&root.join("cgroup.subtree_control")), "+cpuset");
        assert_eq!(
            get(&root.join("hangar/cgroup.subtree_control")),
            "+memory +pids +cpu +io +cpuset"
        );
    }

    #[test]
    fn controllers_the_host_lacks_are_not_enabled() {
        let tmp = TempDir::new();
        let cgroups = fake_v2(&tmp);
        let root = tmp.path().join("unified");
        put(&root.join("cgroup.controllers"), "cpu memory\n");
        cgroups.create("hangar", "7", &Limits::default()).unwrap();
        assert_eq!(
            get(&root.join("hangar/cgroup.subtree_control")),
            "+memory +cpu"
        );
    }

    #[test]
    fn stats_read_cpu_stat_anon_and_limits() {
        let tmp = TempDir::new();
        let guest = fake_v2(&tmp).guest("hangar", "7");
        let dir = tmp.path().join("unified/hangar/7");
        put(&dir.join("cgroup.procs"), "100\n");
        put(
            &dir.join("cpu.stat"),
            "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 0\n",
        );
        put(
            &dir.join("memory.stat"),
            "anon 1048576\nfile 4096\nanon_thp 0\n",
        );
        put(&dir.join("memory.max"), "67108864\n");
        put(&dir.join("pids.current"), "1\n");
        put(&dir.join("pids.max"), "5\n");
        let expected = Stats {
            pids: vec![100],
            cpu_user_us: 2000,
            cpu_system_us: 1000,
            memory_rss: MIB,
            memory_limit: Some(64 * MIB),
        };
        assert_eq!(guest.stats().unwrap(), expected);
    }

    #[test]
    fn stats_without_memory_and_pids_controllers_read_as_zero() {
        let tmp = TempDir::new();
        let guest = fake_v2(&tmp).guest("hangar", "7");
        put(&tmp.path().join("unified/hangar/7/cgroup.procs"), "");
        assert_eq!(guest.stats().unwrap(), Stats::default());
    }
}
