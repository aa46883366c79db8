//! Privileged tests against the running kernel's cgroups.
//!
//! Each test needs root and skips, saying so, without it. Every test works
//! under its own parent cgroup `hangar-test-<pid>-<nanos>-<tag>` and removes
//! it, its guests, its processes and its scratch files in `Drop`, so cleanup
//! also happens when an assertion fails. The tests that time CPU use take a
//! lock so that they do not compete with each other.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hangar_cgroup::{CgroupError, Cgroups, Counters, CpuMax, GuestCgroup, IoMax, Limits};

const MIB: u64 = 1024 * 1024;

/// Whether the effective uid is 0, read from /proc so no unsafe call is needed.
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// One test's parent cgroup, guests, child processes and scratch files, all
/// removed on drop.
struct Fixture {
    cgroups: Cgroups,
    parent: String,
    guests: Vec<GuestCgroup>,
    children: Vec<Child>,
    scratch: Vec<PathBuf>,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Fixture {
            cgroups: Cgroups::probe().expect("probe host cgroups"),
            parent: format!("hangar-test-{}-{nanos}-{tag}", std::process::id()),
            guests: Vec::new(),
            children: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn create(&mut self, limits: &Limits) -> Result<GuestCgroup, CgroupError> {
        self.create_named("7", limits)
    }

    fn create_named(&mut self, name: &str, limits: &Limits) -> Result<GuestCgroup, CgroupError> {
        // Remember the handle first so that a half-created cgroup is removed too.
        self.guests.push(self.cgroups.guest(&self.parent, name));
        self.cgroups.create(&self.parent, name, limits)
    }

    fn spawn(&mut self, command: &mut Command) -> &mut Child {
        self.children.push(command.spawn().expect("spawn child"));
        self.children.last_mut().expect("just pushed")
    }

    /// A path for a scratch file or directory, removed on drop; `dir` is
    /// where it goes.
    fn scratch(&mut self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{}-{name}", self.parent));
        self.scratch.push(path.clone());
        path
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for guest in &self.guests {
            if let Err(e) = guest.remove() {
                eprintln!("cleanup: removing guest cgroup failed: {e}");
            }
        }
        if let Err(e) = self.cgroups.remove_parent(&self.parent) {
            eprintln!("cleanup: removing {} failed: {e}", self.parent);
        }
        for path in &self.scratch {
            let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
        }
    }
}

/// The file holding the guest's memory limit in bytes.
fn memory_limit_file(guest: &GuestCgroup) -> PathBuf {
    let dir = guest.dir_for("memory").expect("memory controller");
    match guest.version() {
        1 => dir.join("memory.limit_in_bytes"),
        _ => dir.join("memory.max"),
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn guest_cgroup_holds_limits_and_removal_kills_its_process() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let mut fx = Fixture::new("life");
    let guest = fx.create(&Limits::default()).expect("create guest cgroup");
    let pid = fx.spawn(Command::new("sleep").arg("30")).id() as i32;

    guest.add_pid(pid).expect("add sleep");
    assert!(guest.pids().unwrap().contains(&pid));
    assert_eq!(guest.stats().unwrap().pids, [pid]);

    guest
        .apply(&Limits {
            pids_max: Some(5),
            ..Limits::default()
        })
        .unwrap();
    assert_eq!(read(guest.dir_for("pids").unwrap().join("pids.max")), "5");
    let limits = Limits {
        memory_max: Some(64 * MIB),
        pids_max: Some(5),
        ..Limits::default()
    };
    guest.apply(&limits).unwrap();
    assert_eq!(read(memory_limit_file(&guest)), (64 * MIB).to_string());
    assert_eq!(guest.stats().unwrap().memory_limit, Some(64 * MIB));

    guest.remove().expect("remove guest cgroup");
    assert!(guest.dirs().iter().all(|d| !d.exists()));
    let status = fx.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(9), "sleep should die of SIGKILL");
    fx.cgroups.remove_parent(&fx.parent).expect("remove parent");
    assert!(
        fx.cgroups
            .parent_dirs(&fx.parent)
            .iter()
            .all(|d| !d.exists())
    );
}

#[test]
fn pids_limit_stops_forks_past_it() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let mut fx = Fixture::new("pids");
    let guest = fx
        .create(&Limits {
            pids_max: Some(3),
            ..Limits::default()
        })
        .unwrap();
    let script = "read x; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait";
    let mut command = Command::new("sh");
    command
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let shell = fx.spawn(&mut command);
    let pid = shell.id() as i32;
    let mut stdin = shell.stdin.take().unwrap();

    guest.add_pid(pid).expect("add shell before it forks");
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let pids_dir = guest.dir_for("pids").unwrap().to_path_buf();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        peak = peak.max(read(pids_dir.join("pids.current")).parse::<u64>().unwrap());
        if let Some(status) = fx.children[0].try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the shell should give up at the refused fork"
        );
        std::thread::sleep(Duration::from_millis(1));
    };

    // The shell and two sleeps fill the limit; sh gives up at the third fork.
    assert!(!status.success(), "shell exit: {status}");
    assert!(peak <= 3, "pids.current reached {peak}");
    assert_eq!(guest.pids().unwrap().len(), 2, "only two sleeps got in");
    let events = read(pids_dir.join("pids.events"));
    let refused: u64 = events.strip_prefix("max ").unwrap().parse().unwrap();
    assert!(
        refused >= 1,
        "the kernel should count refused forks: {events:?}"
    );
}

#[test]
fn memory_limit_moves_both_ways_under_a_swap_cap() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let mut fx = Fixture::new("swap");
    let capped = |memory| Limits {
        memory_max: Some(memory),
        memory_swap_max: Some(0),
        ..Limits::default()
    };
    let guest = match fx.create(&capped(64 * MIB)) {
        Err(CgroupError::NoSwapAccounting { path }) => {
            eprintln!("SKIP: no swap accounting ({} missing)", path.display());
            return;
        }
        other => other.expect("create with swap cap"),
    };

    // Raising past the current memory+swap cap and lowering again each need
    // the writes in a particular order on cgroup v1.
    guest.apply(&capped(128 * MIB)).expect("raise");
    assert_eq!(read(memory_limit_file(&guest)), (128 * MIB).to_string());
    guest.apply(&capped(32 * MIB)).expect("lower");
    assert_eq!(read(memory_limit_file(&guest)), (32 * MIB).to_string());
}

/// Serialises the tests that measure CPU time, so they do not share the CPUs.
static CPU_TIMING: Mutex<()> = Mutex::new(());

/// A shell spinning on a builtin: one CPU's worth of demand, no forks.
fn busy_loop() -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", "while :; do :; done"]);
    command
}

/// Each guest's CPU use over `span` as a fraction of one CPU, from
/// `counters()`; also the counters at the end.
fn cpu_share_over(guests: &[&GuestCgroup], span: Duration) -> Vec<(f64, u64)> {
    let before: Vec<_> = guests.iter().map(|g| g.counters().unwrap().cpu).collect();
    let start = Instant::now();
    std::thread::sleep(span);
    let elapsed_us = start.elapsed().as_micros() as f64;
    guests
        .iter()
        .zip(before)
        .map(|(g, before)| {
            let after = g.counters().unwrap().cpu;
            let used = (after.usage_us - before.usage_us) as f64;
            (
                used / elapsed_us,
                after.throttled_periods - before.throttled_periods,
            )
        })
        .collect()
}

#[test]
fn cpu_max_of_a_quarter_holds_a_busy_loop_to_a_quarter_of_a_cpu() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let _serial = CPU_TIMING.lock().unwrap_or_else(|e| e.into_inner());
    let mut fx = Fixture::new("cpumax");
    let quarter = Limits {
        cpu_max: Some(CpuMax {
            quota_us: 25_000,
            period_us: 100_000,
        }),
        ..Limits::default()
    };
    let guest = fx.create(&quarter).unwrap();
    let pid = fx.spawn(&mut busy_loop()).id() as i32;
    guest.add_pid(pid).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let (share, throttled) = cpu_share_over(&[&guest], Duration::from_secs(3))[0];

    eprintln!("cpu_max 25000/100000: busy loop used {share:.3} of a CPU, throttled {throttled}x");
    assert!((0.20..=0.30).contains(&share), "share {share:.3}");
    assert!(throttled >= 20, "throttled in {throttled} of ~30 periods");
}

/// `Cpus_allowed_list` of a process.
fn cpus_allowed(pid: i32) -> String {
    let status = read(PathBuf::from(format!("/proc/{pid}/status")));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"));
    line.expect("Cpus_allowed_list").trim().to_owned()
}

#[test]
fn cpu_weights_1_to_2_on_one_pinned_cpu_split_it_1_to_2() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let _serial = CPU_TIMING.lock().unwrap_or_else(|e| e.into_inner());
    let mut fx = Fixture::new("weight");
    let pinned = |weight| Limits {
        cpu_weight: Some(weight),
        cpuset_cpus: Some("0".to_owned()),
        ..Limits::default()
    };
    let light = fx.create_named("light", &pinned(100)).unwrap();
    let heavy = fx.create_named("heavy", &pinned(200)).unwrap();
    let light_pid = fx.spawn(&mut busy_loop()).id() as i32;
    let heavy_pid = fx.spawn(&mut busy_loop()).id() as i32;
    light.add_pid(light_pid).unwrap();
    heavy.add_pid(heavy_pid).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let shares = cpu_share_over(&[&light, &heavy], Duration::from_secs(3));

    let (light_share, heavy_share) = (shares[0].0, shares[1].0);
    let ratio = heavy_share / light_share;
    eprintln!(
        "cpu_weight 100 vs 200 on CPU 0: {light_share:.3} vs {heavy_share:.3} of a CPU, ratio {ratio:.2}"
    );
    assert_eq!(
        (cpus_allowed(light_pid), cpus_allowed(heavy_pid)),
        ("0".into(), "0".into())
    );
    assert!((1.6..=2.4).contains(&ratio), "ratio {ratio:.2}");
    assert!(light_share + heavy_share <= 1.05, "both ran on one CPU");
}

/// A static C program that waits for a byte on stdin, then allocates and
/// touches 64 MiB.
const HOG_C: &str = r#"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char go;
    if (read(0, &go, 1) != 1) return 2;
    size_t size = (size_t)64 << 20;
    char *p = malloc(size);
    if (!p) return 3;
    memset(p, 1, size);
    return 0;
}
"#;

/// Compiles [`HOG_C`] into a scratch directory; `None` without gcc.
fn build_hog(fx: &mut Fixture) -> Option<PathBuf> {
    let dir = fx.scratch(&std::env::temp_dir(), "hog");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hog.c"), HOG_C).unwrap();
    let status = Command::new("gcc")
        .args(["-static", "-O0", "-o", "hog", "hog.c"])
        .current_dir(&dir)
        .status()
        .ok()?;
    assert!(status.success(), "gcc failed: {status}");
    Some(dir.join("hog"))
}

/// Runs the 64 MiB hog in a guest capped at 32 MiB of memory and `swap` of
/// swap; returns its exit status and the guest's counters after it. `None`
/// when a precondition is missing (said on stderr).
fn hog_under_32_mib(tag: &str, swap: u64) -> Option<(std::process::ExitStatus, Counters)> {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return None;
    }
    let mut fx = Fixture::new(tag);
    let Some(hog) = build_hog(&mut fx) else {
        eprintln!("SKIP: gcc is not installed");
        return None;
    };
    let limits = Limits {
        memory_max: Some(32 * MIB),
        memory_swap_max: Some(swap),
        ..Limits::default()
    };
    let guest = match fx.create(&limits) {
        Err(CgroupError::NoSwapAccounting { path }) => {
            eprintln!("SKIP: no swap accounting ({} missing)", path.display());
            return None;
        }
        other => other.expect("create with memory and swap caps"),
    };
    let child = fx.spawn(Command::new(&hog).stdin(Stdio::piped()));
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().unwrap();
    guest.add_pid(pid).expect("add hog before it allocates");
    stdin.write_all(b"go").unwrap();
    drop(stdin);
    let status = wait_for(&mut fx.children[0], Duration::from_secs(10));
    let counters = guest.counters().unwrap();
    eprintln!(
        "64 MiB under memory_max 32 MiB, swap {swap}: {status}, hits memory {} swap {:?}, \
         peak {:?}, oom kills {}",
        counters.memory.hits,
        counters.swap.as_ref().map(|s| s.hits),
        counters.memory.peak,
        counters.oom_kills
    );
    Some((status, counters))
}

#[test]
fn memory_max_without_swap_oom_kills_a_process_past_it() {
    let Some((status, counters)) = hog_under_32_mib("oom", 0) else {
        return;
    };

    assert_eq!(status.signal(), Some(9), "the OOM killer should kill it");
    assert!(counters.oom_kills >= 1);
    assert!(counters.memory.peak.unwrap_or(0) <= 32 * MIB);
    assert_eq!(counters.memory.limit, Some(32 * MIB));
}

/// With swap capped at 0, cgroup v1 charges memory+swap first and that is
/// the counter that fails, but recent kernels (seen on 6.18) no longer count
/// `memory.memsw.failcnt` (only the memory counter tracks failures), so this
/// test leaves memory+swap room above memory for the hits to show.
#[test]
fn memory_max_counts_hits_before_the_oom_kill() {
    let Some((status, counters)) = hog_under_32_mib("hits", 16 * MIB) else {
        return;
    };

    assert_eq!(status.signal(), Some(9), "64 MiB fits neither cap");
    assert!(counters.memory.hits > 0, "memory limit hits");
    assert!(counters.oom_kills >= 1);
}

/// Waits for `child` to exit, failing the test after `timeout`.
fn wait_for(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "child still running after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The whole disk (major, minor) holding `path`, as blk-throttle wants it;
/// `None` when the file system is not on a block device.
fn disk_of(path: &Path) -> Option<(u32, u32)> {
    let dev = std::fs::metadata(path).unwrap().dev();
    // glibc's gnu_dev_major and gnu_dev_minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let sys = std::fs::canonicalize(sys).ok()?;
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    let text = read(disk.join("dev"));
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The file holding the guest's write bandwidth limits.
fn write_bps_file(guest: &GuestCgroup) -> PathBuf {
    match guest.version() {
        1 => guest
            .dir_for("blkio")
            .unwrap()
            .join("blkio.throttle.write_bps_device"),
        _ => guest.dir_for("io").unwrap().join("io.max"),
    }
}

#[test]
fn io_max_write_bps_reaches_the_kernel_and_slows_direct_writes() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let mut fx = Fixture::new("io");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = fx.scratch(&dir, "io");
    let Some((major, minor)) = disk_of(&dir) else {
        eprintln!("SKIP: {} is not on a block device", dir.display());
        return;
    };
    let limits = Limits {
        io_max: vec![IoMax {
            major,
            minor,
            write_bps: Some(MIB),
            ..IoMax::default()
        }],
        ..Limits::default()
    };
    let guest = fx.create(&limits).unwrap();
    let limit_line = read(write_bps_file(&guest));
    let script = format!(
        "read x; exec dd if=/dev/zero of={} bs=64k count=48 oflag=direct status=none",
        file.display()
    );
    let child = fx.spawn(
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped()),
    );
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().unwrap();

    guest.add_pid(pid).unwrap();
    let start = Instant::now();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let status = wait_for(&mut fx.children[0], Duration::from_secs(30));
    let took = start.elapsed();
    let io = guest.counters().unwrap().io;
    guest.apply(&Limits::default()).unwrap();

    let written = io.iter().find(|c| (c.major, c.minor) == (major, minor));
    let written = written.map_or(0, |c| c.write_bytes);
    eprintln!(
        "write_bps 1 MiB/s on {major}:{minor}: kernel file {limit_line:?}, \
         3 MiB direct write took {took:.2?}, counted {written} bytes"
    );
    let device = format!("{major}:{minor}");
    let expected = match guest.version() {
        1 => format!("{device} 1048576"),
        _ => format!("{device} rbps=max wbps=1048576 riops=max wiops=max"),
    };
    assert_eq!(limit_line, expected);
    assert!(status.success(), "dd: {status}");
    assert!(took >= Duration::from_secs(2), "took {took:?}");
    assert!(written >= 3 * MIB, "counted {written} bytes");
    assert!(
        !read(write_bps_file(&guest)).contains(&device),
        "limit removed"
    );
}

/// Limits that set every field but swap and pids, with a CFS quota and burst
/// and 1000 read operations per second on `major:minor`.
fn all_limits(major: u32, minor: u32, quota_us: u64, burst_us: u64) -> Limits {
    Limits {
        memory_max: Some(64 * MIB),
        memory_high: Some(48 * MIB),
        cpu_max: Some(CpuMax {
            quota_us,
            period_us: 100_000,
        }),
        cpu_burst_us: Some(burst_us),
        cpu_weight: Some(300),
        cpuset_cpus: Some("0".to_owned()),
        io_weight: Some(300),
        io_max: vec![IoMax {
            major,
            minor,
            read_iops: Some(1000),
            ..IoMax::default()
        }],
        ..Limits::default()
    }
}

#[test]
fn every_v1_limit_reaches_its_kernel_file_and_none_resets_it() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let mut fx = Fixture::new("files");
    if fx.cgroups.version() != 1 {
        eprintln!("SKIP: checks cgroup v1 file names, this host is v2");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let Some((major, minor)) = disk_of(&dir) else {
        eprintln!("SKIP: {} is not on a block device", dir.display());
        return;
    };
    let mut first = all_limits(major, minor, 50_000, 50_000);
    // A quota below the current burst: the burst has to go down first.
    let mut second = all_limits(major, minor, 20_000, 10_000);
    let guest = fx.create(&Limits::default()).unwrap();
    let file = |controller, name| read(guest.dir_for(controller).unwrap().join(name));
    // I/O weights exist only with BFQ (or CFQ, before Linux 5.0): which one,
    // if any, and the value 300 and the default become in its scale.
    let blkio = guest.dir_for("blkio").unwrap();
    let weight = [
        ("blkio.bfq.weight", "300", "100"),
        ("blkio.weight", "1000", "500"),
    ]
    .into_iter()
    .find(|(name, _, _)| blkio.join(name).exists());
    let snapshot = || {
        [
            file("memory", "memory.soft_limit_in_bytes"),
            file("cpu", "cpu.cfs_quota_us"),
            file("cpu", "cpu.cfs_burst_us"),
            file("cpu", "cpu.shares"),
            file("cpuset", "cpuset.cpus"),
            weight.map_or_else(|| "no weight file".to_owned(), |(w, _, _)| file("blkio", w)),
            file("blkio", "blkio.throttle.read_iops_device"),
        ]
    };
    let (weight_set, weight_reset) = match weight {
        Some((name, set, reset)) => {
            eprintln!("PATH: this kernel has {name}: io_weight is applied and reset");
            (set, reset)
        }
        None => {
            eprintln!(
                "PATH: no I/O weight file in {} (no BFQ or CFQ scheduler): io_weight \
                 must be refused with the scheduler named, and change nothing",
                blkio.display()
            );
            let before = snapshot();
            let err = guest.apply(&first).unwrap_err();
            assert!(
                matches!(
                    &err,
                    CgroupError::Unsupported {
                        limit: "io_weight",
                        ..
                    }
                ) && err.to_string().contains("BFQ"),
                "{err}"
            );
            assert_eq!(snapshot(), before, "a refused io_weight changed nothing");
            first.io_weight = None;
            second.io_weight = None;
            ("no weight file", "no weight file")
        }
    };
    guest.apply(&first).expect("every limit");
    let set = snapshot();
    guest.apply(&second).expect("lower quota and burst");
    let lowered = snapshot();
    guest.apply(&Limits::default()).expect("reset");
    let reset = snapshot();

    let parent_cpus = read(PathBuf::from("/sys/fs/cgroup/cpuset/cpuset.cpus"));
    let device = format!("{major}:{minor} 1000");
    let unlimited = "9223372036854771712";
    assert_eq!(
        set,
        [
            &(48 * MIB).to_string(),
            "50000",
            "50000",
            "3072",
            "0",
            weight_set,
            &device
        ]
    );
    assert_eq!(lowered[1..3], ["20000", "10000"]);
    assert_eq!(
        reset,
        [unlimited, "-1", "0", "1024", &parent_cpus, weight_reset, ""]
    );
    assert_eq!(file("cpu", "cpu.cfs_period_us"), "100000");
}
