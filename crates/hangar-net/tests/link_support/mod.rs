//! Harness of hangar-net's privileged tests (links and shaping against the real kernel).
//!
//! Each test runs in a network namespace of its own: [`in_own_netns`] runs the test
//! binary again, for just that test, under `unshare --net`. That namespace plays the
//! host, so the tests never touch the real host's interfaces, routes or forwarding
//! switches, and tests running at the same time cannot see each other's links. Guests
//! are named namespaces (`hgtest-<pid>-<n>`) with a `sleep` in each. A [`Lab`] records
//! everything a test makes and its `Drop` removes it all again, also when the test
//! failed (the private namespace would take the links with it anyway, but the named
//! namespaces and the processes would outlive it).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Set (to the test's name) in the re-run test binary that is inside its namespace.
const INNER: &str = "HANGAR_NET_TEST_INNER";

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// Run `body` as test `name` (the test function's name) in a network namespace of its
/// own; skip, saying so, unless we are root.
pub fn in_own_netns(name: &str, body: impl FnOnce()) {
    if std::env::var(INNER).as_deref() == Ok(name) {
        body();
        return;
    }
    if !is_root() {
        eprintln!("SKIP: needs root (network namespaces, links, tc)");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, name)
        .stdin(Stdio::null())
        .output()
        .expect("running unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "test {name} failed in its network namespace"
    );
    assert!(
        stdout.contains("1 passed"),
        "test {name} did not run in its network namespace"
    );
}

/// `program args...`, which must succeed; returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip args...` on the (test) host, as JSON.
pub fn ip_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run("ip", &[&["-json"], args].concat())).unwrap()
}

/// `tc -json args...` on the (test) host.
pub fn tc_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run("tc", &[&["-json"], args].concat())).unwrap()
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// What one test made; dropping it removes all of it.
#[derive(Default)]
pub struct Lab {
    netns: Vec<String>,
    links: Vec<String>,
    children: Vec<Child>,
    sysctls: Vec<(PathBuf, String)>,
}

impl Lab {
    pub fn new() -> Lab {
        Lab::default()
    }

    /// A new named network namespace, with `lo` up.
    pub fn netns(&mut self) -> String {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("hgtest-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        self.netns.push(name.clone());
        self.exec(&name, &["ip", "link", "set", "lo", "up"]);
        name
    }

    /// A "guest": a new namespace with a process in it; returns (namespace, pid).
    pub fn guest(&mut self) -> (String, i32) {
        let ns = self.netns();
        let child = self.spawn_in(&ns, &["sleep", "60"]);
        let pid = child_pid(child);
        // `ip netns exec` enters the namespace, then execs sleep: wait for the exec, so
        // that the pid's network namespace is the guest's and not still ours.
        let comm = format!("/proc/{pid}/comm");
        wait_for(|| std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep"));
        (ns, pid)
    }

    /// Remember link `name` (bridge, veth host side, IFB) for removal.
    pub fn link(&mut self, name: &str) {
        self.links.push(name.to_string());
    }

    /// Remember sysctl `key` (`net/ipv4/ip_forward`) to restore its current value.
    pub fn keep_sysctl(&mut self, key: &str) {
        let path = PathBuf::from("/proc/sys").join(key);
        let value = std::fs::read_to_string(&path).unwrap();
        self.sysctls.push((path, value));
    }

    /// Run `args` in namespace `ns`; returns its output whatever its exit status.
    pub fn exec_output(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Run `args` in namespace `ns`, which must succeed; returns stdout.
    pub fn exec(&self, ns: &str, args: &[&str]) -> String {
        run("ip", &[&["netns", "exec", ns], args].concat())
    }

    /// `ip -json args...` in namespace `ns`.
    pub fn ip_json_in(&self, ns: &str, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.exec(ns, &[&["ip", "-json"], args].concat())).unwrap()
    }

    /// Does one ping from `ns` to `addr` come back?
    pub fn pings(&self, ns: &str, addr: &str) -> bool {
        self.exec_output(ns, &["busybox", "ping", "-c", "1", "-W", "3", addr])
            .status
            .success()
    }

    /// Start `args` in namespace `ns` (stdin a pipe held open, output discarded); it is
    /// killed when the lab is dropped.
    pub fn spawn_in(&mut self, ns: &str, args: &[&str]) -> &mut Child {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    /// Wait for the last spawned process to exit, at most `limit`.
    pub fn wait_last(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = self.children.last_mut().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "process {} still runs after {limit:?}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn child_pid(child: &Child) -> i32 {
    i32::try_from(child.id()).unwrap()
}

/// Poll `cond` every 5 ms for up to 5 s.
pub fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "condition not met within 5 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for l in self.links.iter().rev() {
            let _ = Command::new("ip")
                .args(["link", "del", "dev", l])
                .stderr(Stdio::null())
                .status();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for (path, value) in self.sysctls.iter().rev() {
            let _ = std::fs::write(path, value);
        }
    }
}
