//! Privileged tests against the running kernel's cgroups.
//!
//! Each test needs root and skips, saying so, without it. Every test works
//! under its own parent cgroup `hangar-test-<pid>-<nanos>-<tag>` and removes
//! it, its guest and its processes in `Drop`, so cleanup also happens when an
//! assertion fails.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hangar_cgroup::{CgroupError, Cgroups, GuestCgroup, Limits};

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

/// One test's parent cgroup, guest and child processes, all removed on drop.
struct Fixture {
    cgroups: Cgroups,
    parent: String,
    guest: Option<GuestCgroup>,
    children: Vec<Child>,
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
            guest: None,
            children: Vec::new(),
        }
    }

    fn create(&mut self, limits: &Limits) -> Result<GuestCgroup, CgroupError> {
        // Remember the handle first so that a half-created cgroup is removed too.
        self.guest = Some(self.cgroups.guest(&self.parent, "7"));
        self.cgroups.create(&self.parent, "7", limits)
    }

    fn spawn(&mut self, command: &mut Command) -> &mut Child {
        self.children.push(command.spawn().expect("spawn child"));
        self.children.last_mut().expect("just pushed")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(guest) = &self.guest {
            if let Err(e) = guest.remove() {
                eprintln!("cleanup: removing guest cgroup failed: {e}");
            }
        }
        if let Err(e) = self.cgroups.remove_parent(&self.parent) {
            eprintln!("cleanup: removing {} failed: {e}", self.parent);
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
    assert_eq!(guest.stats().unwrap().procs, 1);

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
        pids_max: None,
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
