//! Fake cgroup trees in temporary directories for tests that run without root.
//!
//! A real cgroupfs creates a controller's files when a directory is made; the
//! fake tree only has the files a test writes, so tests create the ones the
//! kernel would provide before reading them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Cgroups;

/// A directory under the system temp dir, removed with its contents on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hangar-cgroup-test-{}-{n}", std::process::id()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` to `path`, creating the directories above it.
pub(crate) fn put(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("path has a parent")).expect("create dirs");
    fs::write(path, text).expect("write fixture");
}

/// Reads a file the code under test wrote.
pub(crate) fn get(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A v1 layout like this project's development host: one hierarchy per
/// controller plus the named systemd one, with the root cpuset filled in.
pub(crate) fn fake_v1(tmp: &TempDir) -> Cgroups {
    let names = [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio", "systemd",
    ];
    let mut hierarchies = Vec::new();
    for name in names {
        let mount = tmp.path().join(name);
        fs::create_dir_all(&mount).expect("create mount");
        let controllers = if name == "systemd" {
            "name=systemd"
        } else {
            name
        };
        hierarchies.push((controllers.to_owned(), mount));
    }
    put(&tmp.path().join("cpuset/cpuset.cpus"), "0-3\n");
    put(&tmp.path().join("cpuset/cpuset.mems"), "0\n");
    Cgroups::v1_at(hierarchies)
}

/// A v2 root offering the usual controllers, none enabled yet.
pub(crate) fn fake_v2(tmp: &TempDir) -> Cgroups {
    let root = tmp.path().join("unified");
    put(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    put(&root.join("cgroup.subtree_control"), "");
    Cgroups::v2_at(root)
}

/// The kernel's files of a fresh v1 guest `hangar/7` on a host like this
/// project's (BFQ weights, throttling, CFS burst, no swap accounting), at
/// the kernel's defaults.
pub(crate) fn v1_kernel_files(tmp: &TempDir) {
    let unlimited = "9223372036854771712\n";
    let files = [
        ("cpu", "cpu.shares", "1024\n"),
        ("cpu", "cpu.cfs_quota_us", "-1\n"),
        ("cpu", "cpu.cfs_period_us", "100000\n"),
        ("cpu", "cpu.cfs_burst_us", "0\n"),
        ("cpuset", "cpuset.cpus", "\n"),
        ("cpuset", "cpuset.mems", "\n"),
        ("memory", "memory.limit_in_bytes", unlimited),
        ("memory", "memory.soft_limit_in_bytes", unlimited),
        ("pids", "pids.max", "max\n"),
        ("blkio", "blkio.bfq.weight", "100\n"),
        ("blkio", "blkio.throttle.read_bps_device", ""),
        ("blkio", "blkio.throttle.write_bps_device", ""),
        ("blkio", "blkio.throttle.read_iops_device", ""),
        ("blkio", "blkio.throttle.write_iops_device", ""),
    ];
    for (hierarchy, file, text) in files {
        put(
            &tmp.path().join(hierarchy).join("hangar/7").join(file),
            text,
        );
    }
}

/// The kernel's files of a fresh v2 guest `hangar/7` with every controller
/// hangar uses enabled, at the kernel's defaults; returns its directory.
pub(crate) fn v2_kernel_files(tmp: &TempDir) -> PathBuf {
    let dir = tmp.path().join("unified/hangar/7");
    let files = [
        ("memory.max", "max\n"),
        ("memory.high", "max\n"),
        ("memory.swap.max", "max\n"),
        ("pids.max", "max\n"),
        ("cpu.max", "max 100000\n"),
        ("cpu.max.burst", "0\n"),
        ("cpu.weight", "100\n"),
        ("cpuset.cpus", "\n"),
        ("io.max", ""),
        ("io.weight", "default 100\n"),
        ("io.stat", ""),
    ];
    for (file, text) in files {
        put(&dir.join(file), text);
    }
    dir
}
