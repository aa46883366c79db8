//! A guest's cgroup once it exists: joining, limits, statistics and removal.
//!
//! [`GuestCgroup`] is plain data (its directories and, on v1, the controllers
//! of each directory's hierarchy) so it can be stored with the guest's state.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::counters::{Counter, Counters};
use crate::fsutil::{self, keyed, read_opt, write};
use crate::{CgroupError, Limits, Stats, v1, v2};

/// How long [`GuestCgroup::remove`] keeps killing and retrying a busy cgroup.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause between attempts to remove a busy cgroup.
const REMOVE_RETRY: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Version {
    V1,
    V2,
}

/// One guest's cgroup: a directory per v1 hierarchy, or the one v2 directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestCgroup {
    version: Version,
    dirs: Vec<PathBuf>,
    /// v1: the controllers of each directory's hierarchy (`"cpu,cpuacct"`),
    /// index for index with `dirs`; v2: empty, the one directory has them all.
    controllers: Vec<String>,
}

impl GuestCgroup {
    pub(crate) fn new_v1(dirs: Vec<(String, PathBuf)>) -> GuestCgroup {
        let (controllers, dirs) = dirs.into_iter().unzip();
        GuestCgroup {
            version: Version::V1,
            dirs,
            controllers,
        }
    }

    pub(crate) fn new_v2(dir: PathBuf) -> GuestCgroup {
        GuestCgroup {
            version: Version::V2,
            dirs: vec![dir],
            controllers: Vec::new(),
        }
    }

    /// 1 or 2.
    pub fn version(&self) -> u8 {
        match self.version {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }

    /// The guest's directories; a process joins by writing its pid to
    /// `cgroup.procs` in every one of them.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The directory whose files belong to `controller` (such as `"memory"`):
    /// on v1 the one in that controller's hierarchy, if it is mounted; on v2
    /// the one directory.
    pub fn dir_for(&self, controller: &str) -> Option<&Path> {
        match self.version {
            Version::V2 => self.dirs.first().map(PathBuf::as_path),
            Version::V1 => self
                .controllers
                .iter()
                .zip(&self.dirs)
                .find(|(c, _)| c.split(',').any(|c| c == controller))
                .map(|(_, d)| d.as_path()),
        }
    }

    /// The directory a guest's own cgroup manager may be given: the one v2
    /// directory, or a v1 guest's directory in the hybrid host's cgroup2 tree.
    /// None on a v1 host without cgroup2.
    pub fn delegated_dir(&self) -> Option<&Path> {
        match self.version {
            Version::V2 => self.dirs.first().map(PathBuf::as_path),
            Version::V1 => self.dir_for(crate::UNIFIED),
        }
    }

    /// Delegates the guest's cgroup2 directory to host uid/gid `owner` (its
    /// root user), the way the kernel's cgroup-v2 documentation describes: the
    /// directory and its `cgroup.procs`, `cgroup.threads` and
    /// `cgroup.subtree_control` change owner, so the guest can make cgroups
    /// below it and move its processes between them; every limit file stays
    /// root's, so it cannot raise its own limits. On v1 hosts the limits live in
    /// the controller hierarchies, which are never delegated.
    pub fn delegate(&self, owner: u32) -> Result<(), CgroupError> {
        let dir = self.delegated_dir().ok_or(CgroupError::NoCgroup2)?;
        let chown = |path: &Path| {
            std::os::unix::fs::chown(path, Some(owner), Some(owner)).map_err(|source| {
                CgroupError::Delegate {
                    path: path.to_path_buf(),
                    source,
                }
            })
        };
        chown(dir)?;
        for file in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
            let path = dir.join(file);
            if path.exists() {
                chown(&path)?;
            }
        }
        Ok(())
    }

    /// Whether any of the guest's directories exists (a partly created or
    /// partly removed cgroup counts, so that callers know to remove it).
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.is_dir())
    }

    /// Moves process `pid` (all its threads) into the guest's cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        // The kernel reads 0 as "the writer itself", which would move the manager.
        if pid <= 0 {
            return Err(CgroupError::InvalidPid { pid });
        }
        let value = pid.to_string();
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &value)?;
        }
        Ok(())
    }

    /// The processes in the guest's cgroup, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(dir) = self.procs_dir() else {
            return Ok(Vec::new());
        };
        let path = dir.join("cgroup.procs");
        fsutil::parse_procs(&path, &fsutil::read(&path)?)
    }

    /// Changes the guest's limits; works while it runs.
    pub fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        match self.version {
            Version::V1 => v1::apply(self, limits),
            Version::V2 => v2::apply(self, limits),
        }
    }

    /// Reads the guest's usage figures.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let pids = self.pids()?;
        let stats = match self.version {
            Version::V1 => v1::stats(self)?,
            Version::V2 => v2::stats(self)?,
        };
        Ok(Stats { pids, ..stats })
    }

    /// Reads the guest's counters: usage, peaks, limits and limit hits of
    /// memory, swap and pids, CPU time and throttling, I/O per device and
    /// OOM kills. Controllers that are not there read as zero.
    pub fn counters(&self) -> Result<Counters, CgroupError> {
        match self.version {
            Version::V1 => v1::counters::counters(self),
            Version::V2 => v2::counters::counters(self),
        }
    }

    /// Freezes (`true`) or thaws the guest's processes, and waits until the kernel
    /// says it is done (a freeze completes once every task has stopped, which takes
    /// a moment with many tasks; 5 s at most). v1: the freezer hierarchy's
    /// `freezer.state`; v2: `cgroup.freeze` and `cgroup.events`.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let (file, value, done_file, done) = match self.version {
            Version::V1 => {
                let dir = self
                    .dir_for("freezer")
                    .ok_or(CgroupError::MissingController {
                        limit: "pause",
                        controller: "freezer",
                    })?;
                let v = if frozen { "FROZEN" } else { "THAWED" };
                (
                    dir.join("freezer.state"),
                    v,
                    dir.join("freezer.state"),
                    v.to_string(),
                )
            }
            Version::V2 => {
                let dir = self.dirs.first().ok_or(CgroupError::MissingController {
                    limit: "pause",
                    controller: "freezer",
                })?;
                let v = if frozen { "1" } else { "0" };
                (
                    dir.join("cgroup.freeze"),
                    v,
                    dir.join("cgroup.events"),
                    format!("frozen {v}"),
                )
            }
        };
        write(&file, value)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = read_opt(&done_file)?.unwrap_or_default();
            if now.lines().any(|l| l.trim() == done) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::Busy {
                    path: done_file,
                    waited_ms: 5000,
                });
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether the guest is frozen now (paused).
    pub fn frozen(&self) -> bool {
        match self.version {
            Version::V1 => self
                .dir_for("freezer")
                .and_then(|d| read_opt(&d.join("freezer.state")).ok().flatten())
                .is_some_and(|s| s.trim() == "FROZEN"),
            Version::V2 => self
                .dirs
                .first()
                .and_then(|d| read_opt(&d.join("cgroup.events")).ok().flatten())
                .is_some_and(|s| s.lines().any(|l| l.trim() == "frozen 1")),
        }
    }

    /// Removes the guest's cgroup directories (not the parent's), nested
    /// cgroups first. Processes still inside are killed with SIGKILL (v2:
    /// through `cgroup.kill` where the kernel has it) and removal is retried
    /// for up to two seconds. Directories that are already gone are fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        if !self.exists() {
            return Ok(());
        }
        // Frozen tasks cannot die, so thaw them before killing anything.
        if let Some(dir) = self
            .dir_for("freezer")
            .filter(|_| self.version == Version::V1)
        {
            v1::thaw(dir)?;
        }
        if let Some(dir) = self.procs_dir() {
            self.kill_all(dir)?;
        }
        let start = Instant::now();
        for dir in &self.dirs {
            self.remove_tree(dir, start)?;
        }
        Ok(())
    }

    /// Removes `dir` and the cgroups nested in it, killing what keeps them busy.
    fn remove_tree(&self, dir: &Path, start: Instant) -> Result<(), CgroupError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(CgroupError::Read {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.remove_tree(&entry.path(), start)?;
            }
        }
        loop {
            match fs::remove_dir(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) => {
                    if start.elapsed() >= REMOVE_TIMEOUT {
                        return Err(CgroupError::Busy {
                            path: dir.to_path_buf(),
                            waited_ms: start.elapsed().as_millis(),
                        });
                    }
                    self.kill_all(dir)?;
                    thread::sleep(REMOVE_RETRY);
                }
                Err(source) => {
                    return Err(CgroupError::RemoveDir {
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }

    /// Sends SIGKILL to every process in cgroup `dir`.
    fn kill_all(&self, dir: &Path) -> Result<(), CgroupError> {
        let kill_file = dir.join("cgroup.kill");
        if self.version == Version::V2 && kill_file.exists() {
            // cgroup.kill also reaches nested cgroups and cannot race with forks.
            return write(&kill_file, "1");
        }
        let procs = dir.join("cgroup.procs");
        let Some(text) = read_opt(&procs)? else {
            return Ok(());
        };
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        for pid in fsutil::parse_procs(&procs, &text)? {
            // Never signal 0 or negative pids (process groups), nor ourselves.
            if pid <= 0 || pid == me {
                continue;
            }
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Kill {
                        pid,
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The directory whose `cgroup.procs` lists the guest's processes; `None`
    /// only for a v1 host without any usable hierarchy.
    fn procs_dir(&self) -> Option<&Path> {
        self.dir_for("pids")
            .or_else(|| self.dir_for("memory"))
            .or_else(|| self.dirs.first().map(PathBuf::as_path))
    }
}

/// Removes one empty cgroup directory; a missing one is fine.
pub(crate) fn rmdir(dir: &Path) -> Result<(), CgroupError> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CgroupError::RemoveDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Writes a limit in the `max`-or-number form shared by `pids.max` (v1 and
/// v2) and the v2 memory files. `None` resets to `max` if the file exists.
pub(crate) fn write_max(path: &Path, value: Option<u64>) -> Result<(), CgroupError> {
    match value {
        Some(v) => write(path, &v.to_string()),
        None if path.exists() => write(path, "max"),
        None => Ok(()),
    }
}

/// Writes a CFS bandwidth limit (through `bandwidth`) and the burst in
/// `burst_file` in an order the kernel accepts: it refuses a burst above the
/// quota, so a smaller burst goes in before the quota and a larger one after.
/// No burst is 0. A missing burst file is left alone (the checks have already
/// refused a burst where the kernel has none).
pub(crate) fn with_burst(
    burst_file: &Path,
    burst: Option<u64>,
    bandwidth: impl FnOnce() -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    let Some(current) = read_opt(burst_file)? else {
        return bandwidth();
    };
    let current = fsutil::parse_u64(burst_file, &current)?;
    let wanted = burst.unwrap_or(0);
    if wanted < current {
        write(burst_file, &wanted.to_string())?;
    }
    bandwidth()?;
    if wanted > current {
        write(burst_file, &wanted.to_string())?;
    }
    Ok(())
}

/// The pids counter of a pids controller directory (the same files on v1
/// and v2): `pids.current`, `pids.peak` where the kernel has it (6.12+),
/// `pids.max`, and refused forks from `pids.events`.
pub(crate) fn pids_counter(dir: &Path) -> Result<Counter, CgroupError> {
    let (current, limit) = pids_stats(dir)?;
    let peak = read_opt(&dir.join("pids.peak"))?;
    let events = dir.join("pids.events");
    let hits = match read_opt(&events)? {
        Some(text) => keyed(&events, &text, "max")?.unwrap_or(0),
        None => 0,
    };
    Ok(Counter {
        current,
        peak: peak
            .map(|text| fsutil::parse_u64(&dir.join("pids.peak"), &text))
            .transpose()?,
        limit,
        hits,
    })
}

/// Reads `pids.current` and `pids.max` from a pids controller directory.
pub(crate) fn pids_stats(dir: &Path) -> Result<(u64, Option<u64>), CgroupError> {
    let current = dir.join("pids.current");
    let max = dir.join("pids.max");
    Ok((
        fsutil::parse_u64(&current, &fsutil::read(&current)?)?,
        fsutil::parse_max(&max, &fsutil::read(&max)?)?,
    ))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::testutil::{TempDir, fake_v1, fake_v2, get, put};
    use crate::{CgroupError, GuestCgroup};

    #[test]
    fn remove_of_a_cgroup_never_created_succeeds() {
        let tmp = TempDir::new();
        let guest = fake_v1(&tmp).guest("hangar", "7");
        guest.remove().unwrap();
        assert!(!guest.exists());
    }

    #[test]
    fn remove_is_idempotent_and_takes_nested_cgroups_first() {
        // The fake tree's directories are kept empty: cgroupfs lets rmdir
        // remove a cgroup's control files, a plain directory does not.
        let tmp = TempDir::new();
        let guest = fake_v1(&tmp).guest("hangar", "7");
        for dir in guest.dirs() {
            fs::create_dir_all(dir.join("nested/deeper")).unwrap();
        }
        guest.remove().unwrap();
        guest.remove().unwrap();
        assert!(guest.dirs().iter().all(|d| !d.exists()));
        assert!(
            tmp.path().join("memory/hangar").is_dir(),
            "parent must stay"
        );
    }

    #[test]
    fn remove_parent_removes_the_empty_parent_dirs() {
        let tmp = TempDir::new();
        let cgroups = fake_v2(&tmp);
        fs::create_dir_all(tmp.path().join("unified/hangar")).unwrap();
        cgroups.remove_parent("hangar").unwrap();
        cgroups.remove_parent("hangar").unwrap();
        assert!(!tmp.path().join("unified/hangar").exists());
    }

    #[test]
    fn add_pid_writes_to_every_dir() {
        let tmp = TempDir::new();
        let guest = fake_v1(&tmp).guest("hangar", "7");
        for dir in guest.dirs() {
            fs::create_dir_all(dir).unwrap();
        }
        guest.add_pid(1234).unwrap();
        assert!(
            guest
                .dirs()
                .iter()
                .all(|d| get(&d.join("cgroup.procs")) == "1234")
        );
    }

    #[test]
    fn add_pid_refuses_pids_that_mean_the_caller() {
        let tmp = TempDir::new();
        let guest = fake_v2(&tmp).guest("hangar", "7");
        let err = guest.add_pid(0).unwrap_err();
        assert!(matches!(err, CgroupError::InvalidPid { pid: 0 }), "{err}");
    }

    #[test]
    fn pids_come_from_the_pids_hierarchy() {
        let tmp = TempDir::new();
        let guest = fake_v1(&tmp).guest("hangar", "7");
        put(
            &tmp.path().join("pids/hangar/7/cgroup.procs"),
            "30\n10\n20\n",
        );
        put(&tmp.path().join("memory/hangar/7/cgroup.procs"), "99\n");
        assert_eq!(guest.pids().unwrap(), vec![10, 20, 30]);
    }

    #[test]
    fn dir_for_finds_comounted_controllers() {
        let tmp = TempDir::new();
        let mount = tmp.path().join("cpu,cpuacct");
        let cgroups = crate::Cgroups::v1_at(vec![("cpu,cpuacct".into(), mount.clone())]);
        let guest = cgroups.guest("hangar", "7");
        assert_eq!(
            guest.dir_for("cpuacct"),
            Some(mount.join("hangar/7").as_path())
        );
        assert_eq!(guest.dir_for("memory"), None);
    }

    /// Runs `with_burst` from burst `before` to `wanted` and returns the
    /// burst file's content at the moment the bandwidth was written.
    fn burst_seen_by_bandwidth(before: &str, wanted: Option<u64>) -> (String, String) {
        let tmp = TempDir::new();
        let burst = tmp.path().join("cpu.max.burst");
        put(&burst, before);
        let mut seen = String::new();
        super::with_burst(&burst, wanted, || {
            seen = get(&burst);
            Ok(())
        })
        .unwrap();
        (seen, get(&burst))
    }

    #[test]
    fn smaller_burst_goes_in_before_the_quota_larger_after() {
        assert_eq!(
            burst_seen_by_bandwidth("5000\n", Some(1000)),
            ("1000".into(), "1000".into())
        );
        assert_eq!(
            burst_seen_by_bandwidth("5000\n", None),
            ("0".into(), "0".into())
        );
        assert_eq!(
            burst_seen_by_bandwidth("1000\n", Some(5000)),
            ("1000\n".into(), "5000".into())
        );
        assert_eq!(
            burst_seen_by_bandwidth("0\n", None),
            ("0\n".into(), "0\n".into())
        );
    }

    #[test]
    fn missing_burst_file_only_writes_the_bandwidth() {
        let tmp = TempDir::new();
        let burst = tmp.path().join("cpu.cfs_burst_us");
        let mut called = false;
        super::with_burst(&burst, None, || {
            called = true;
            Ok(())
        })
        .unwrap();
        assert!(called && !burst.exists());
    }

    #[test]
    fn guest_cgroup_survives_a_json_round_trip() {
        let tmp = TempDir::new();
        let guest = fake_v1(&tmp).guest("hangar", "7");
        let json = serde_json::to_string(&guest).unwrap();
        let back: GuestCgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, guest);
        assert_eq!(back.version(), 1);
    }
}
