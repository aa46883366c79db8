//! Test harness for end-to-end tests of the `hangar` binary against the real kernel.
//!
//! Each `TestHost` is a private `HANGAR_ROOT` in a temporary directory. Dropping it
//! kills every guest it started, removes its cgroups (the guests' and their parent) and
//! deletes the directory, also when the test failed. `vm` runs a `tests/vm` scenario in
//! the QEMU test machine instead, and reads its report.
#![allow(dead_code)]

pub mod netns;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Skip (with a message saying why) unless we are root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: this test needs root (namespaces, cgroups, mounts)");
            return;
        }
    };
}

pub struct TestHost {
    pub root: PathBuf,
}

pub fn hangar_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hangar"))
}

fn monitor_bin() -> PathBuf {
    let p = hangar_bin().with_file_name("hangar-monitor");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo build --workspace) first",
        p.display()
    );
    p
}

/// Shared cache of slow downloads (debootstrap) for one test run.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HANGAR_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp/hangar-test-cache".into())
}

impl TestHost {
    pub fn new(tag: &str) -> TestHost {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let root =
            std::env::temp_dir().join(format!("hangar-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(root.join("etc/hangar")).unwrap();
        // Guests of most tests need no network; network tests ask for one.
        std::fs::write(
            root.join("etc/hangar/defaults.toml"),
            "network = \"none\"\n",
        )
        .unwrap();
        TestHost { root }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(hangar_bin());
        c.args(args)
            .env("HANGAR_ROOT", &self.root)
            .env("HANGAR_MONITOR", monitor_bin())
            .env("HANGAR_CACHE_DIR", cache_dir())
            .stdin(Stdio::null());
        c
    }

    /// Run hangar; return its output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running hangar")
    }

    /// Run hangar and insist that it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hangar {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run hangar and insist that it fails; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "hangar {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `hangar exec NAME -- sh -c SCRIPT`, returning (exit code, stdout).
    pub fn sh(&self, name: &str, script: &str) -> (i32, String) {
        let out = self.run(&["exec", name, "--", "sh", "-c", script]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub fn list(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["list", "--format", "json"])).expect("list --format json")
    }

    pub fn info(&self, name: &str) -> serde_json::Value {
        self.list()
            .into_iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in list"))
    }

    pub fn state(&self, name: &str) -> String {
        self.info(name)["state"].as_str().unwrap().to_string()
    }

    /// The monitor's runtime state file.
    pub fn runtime(&self, name: &str) -> serde_json::Value {
        let p = self
            .root
            .join(format!("run/hangar/guests/{name}/state.json"));
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    /// Guest `name`'s root filesystem on the host: in the built-in pool, or in the
    /// btrfs pool its config names.
    pub fn rootfs(&self, name: &str) -> PathBuf {
        let pool = std::fs::read_to_string(self.config_file(name))
            .ok()
            .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
            .and_then(|v| v.get("pool").and_then(|p| p.as_str()).map(str::to_string));
        match pool {
            Some(p) => self
                .root
                .join(format!("var/lib/hangar/pools/{p}/guests/{name}/rootfs")),
            None => self
                .root
                .join(format!("var/lib/hangar/guests/{name}/rootfs")),
        }
    }

    pub fn config_file(&self, name: &str) -> PathBuf {
        self.root.join(format!("etc/hangar/guests/{name}.toml"))
    }

    pub fn build_busybox(&self, name: &str) {
        self.ok(&["build", name, "-m", "busybox"]);
    }

    /// A busybox guest in pool `pool`, its disk `size`.
    pub fn build_busybox_in(&self, name: &str, pool: &str, size: &str) {
        self.ok(&[
            "build",
            name,
            "-m",
            "busybox",
            "--pool",
            pool,
            "--disk-size",
            size,
        ]);
    }

    pub fn started(&self, name: &str) -> i64 {
        self.ok(&["start", name]);
        self.info(name)["init_pid"].as_i64().expect("init pid")
    }

    /// Guest `guest`'s IPv4 address on NIC `nic`, from its config.
    pub fn nic_address(&self, guest: &str, nic: &str) -> String {
        let cfg = std::fs::read_to_string(self.config_file(guest)).unwrap();
        let v: toml::Value = toml::from_str(&cfg).unwrap();
        let nics = v["nic"].as_array().unwrap();
        let n = nics
            .iter()
            .find(|n| n["name"].as_str() == Some(nic))
            .unwrap();
        n["ipv4"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }

    /// Waits (60 s at most) for systemd in guest `name` to finish booting; returns what
    /// `systemctl is-system-running` says then, and the failed units if any. Right
    /// after a start, systemd may not have made its socket yet: asked again until it
    /// answers.
    pub fn systemd_state(&self, name: &str) -> String {
        let mut out = String::new();
        wait_for(Duration::from_secs(60), || {
            out = self
                .sh(
                    name,
                    "timeout 50 systemctl is-system-running --wait; \
                     systemctl --failed --no-legend --plain | cut -d' ' -f1",
                )
                .1;
            !out.trim().is_empty() && !out.contains("starting") && !out.contains("offline")
        });
        out.trim().to_string()
    }

    /// Whether any directory of guest `name`'s cgroup exists (in any hierarchy).
    pub fn guest_cgroup_exists(&self, name: &str) -> bool {
        let ctx = self.info(name)["context"].as_u64().unwrap();
        let parent = self.cgroup_parent();
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .chain([PathBuf::from("/sys/fs/cgroup")])
            .any(|h| h.join(&parent).join(ctx.to_string()).is_dir())
    }

    pub fn cgroup_parent(&self) -> String {
        hangar_core::paths::Paths::new(&self.root).default_cgroup_parent()
    }

    /// Every file of this host's tree, for "nothing changed" checks.
    pub fn snapshot(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        let mut stack = vec![self.root.clone()];
        while let Some(p) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.starts_with(self.root.join("var/lib/hangar/locks")) {
                        continue;
                    }
                    out.push(path.clone());
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push(path);
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// Poll `f` until it returns true or `limit` passes.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

pub fn host_uid_of(pid: i64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn remove_cgroup_tree(dir: &Path) {
    // A guest outlives its monitor: whatever still runs in the tree goes first.
    for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl TestHost {
    /// The lxcfs keeper of this root: (keeper pid, lxcfs pid, restarts), if one runs.
    pub fn lxcfs(&self) -> Option<(i32, i32, u64)> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.root.join("run/hangar/lxcfs.json")).ok()?)
                .ok()?;
        Some((
            v["keeper_pid"].as_i64()? as i32,
            v["lxcfs_pid"].as_i64()? as i32,
            v["restarts"].as_u64()?,
        ))
    }

    /// Networks of this root go with their bridges, DNS services and nft tables.
    fn remove_networks(&self) {
        let nets = self.root.join("etc/hangar/networks");
        let names: Vec<String> = std::fs::read_dir(&nets)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(str::to_string)
            })
            .collect();
        if let Ok(rd) = std::fs::read_dir(self.root.join("etc/hangar/guests")) {
            for g in rd.flatten().filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(str::to_string)
            }) {
                let _ = self.cmd(&["delete", "--force", &g]).output();
            }
        }
        for n in names {
            let _ = self.cmd(&["network", "delete", &n]).output();
        }
        let tag = self.cgroup_parent().replace("hangar-", "hangar_");
        for family in ["inet", "bridge"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &tag])
                .output();
        }
    }

    /// Last resort after a failed test: SIGKILL every process whose command line names
    /// a path under this root (a DNS keeper or dnsmasq that a failed `network delete`
    /// left running).
    fn kill_strays(&self) {
        // With the slash: another root may extend this one's name.
        let root = format!("{}/", self.root.to_string_lossy());
        for pid in std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmdline).contains(&root)
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
    }

    fn stop_lxcfs(&self) {
        if let Some((keeper, lxcfs, _)) = self.lxcfs() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(keeper),
                nix::sys::signal::SIGTERM,
            );
            let gone = wait_for(Duration::from_secs(5), || {
                !std::path::Path::new(&format!("/proc/{keeper}")).exists()
                    || std::fs::read_to_string(format!("/proc/{keeper}/stat"))
                        .is_ok_and(|s| s.contains(") Z "))
            });
            if !gone {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(lxcfs),
                    nix::sys::signal::SIGKILL,
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(keeper),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
        let mp = self.root.join("var/lib/hangar/lxcfs");
        if std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .contains(mp.to_str().unwrap_or("-"))
        {
            let _ = Command::new("umount").arg("-l").arg(&mp).status();
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Ok(out) = self.cmd(&["list", "--format", "json"]).output() {
            let rows: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            for g in rows.iter().filter(|g| g["state"] != "stopped") {
                let _ = self
                    .cmd(&["kill", g["name"].as_str().unwrap_or_default()])
                    .output();
            }
        }
        self.remove_networks();
        // Kill any monitor still holding a lock under this root (e.g. a test killed the CLI).
        if let Ok(rd) = std::fs::read_dir(self.root.join("run/hangar/guests")) {
            for e in rd.flatten() {
                if let Ok(spec) = std::fs::read(e.path().join("state.json")) {
                    let v: serde_json::Value = serde_json::from_slice(&spec).unwrap_or_default();
                    if let Some(pid) = v["monitor_pid"].as_i64() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::SIGKILL,
                        );
                    }
                }
            }
        }
        self.stop_lxcfs();
        self.kill_strays();
        // Storage pools a test left mounted (their loop devices go with the mounts).
        let root = format!("{}/", self.root.display());
        let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            // A frozen filesystem (an image pool's volume a failed test left frozen)
            // would outlive its unmount, with its loop device: thawed first.
            let _ = Command::new("fsfreeze").args(["-u", &p]).output();
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // Loop devices still on a file under this root (an image pool's volume that a
        // failed command left attached without a mount): detached, or, while a
        // lazily unmounted filesystem still uses one, set to go with its last user.
        if let Ok(out) = Command::new("losetup")
            .args(["-n", "-O", "NAME,BACK-FILE", "-l"])
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((dev, file)) = line.trim().split_once(' ')
                    && file.trim().starts_with(&root)
                {
                    let _ = Command::new("losetup").args(["-d", dev]).output();
                }
            }
        }
        let parent = self.cgroup_parent();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let d = e.path().join(&parent);
                if d.exists() {
                    remove_cgroup_tree(&d);
                }
            }
        }
        let d = PathBuf::from("/sys/fs/cgroup").join(&parent);
        if d.exists() {
            remove_cgroup_tree(&d);
        }
        let _ = std::fs::remove_dir_all(&self.root);
        // This root's entries in the host-wide context registry (stale without the
        // root, but a test leaves nothing behind).
        for e in std::fs::read_dir("/var/lib/hangar/contexts")
            .into_iter()
            .flatten()
            .flatten()
        {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap_or_default())
                    .unwrap_or_default();
            if v["root"].as_str() == self.root.to_str() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
