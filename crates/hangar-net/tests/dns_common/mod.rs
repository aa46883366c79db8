//! The harness of the privileged DNS tests: a throw-away network — a bridge with a host
//! address, and a guest network namespace plugged into it by a veth pair — whose Drop
//! stops its dnsmasq and deletes everything it created, also when a test fails.
//! Queries go only to the bridge address made here, from inside that namespace.

#![allow(dead_code)] // each test binary uses part of the harness

use hangar_net::dns::Dns;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// True when running as root; otherwise prints why the test is skipped.
pub fn root_or_skip(test: &str) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        eprintln!("SKIP: {test} needs root (it creates bridges, network namespaces and a dnsmasq)");
    }
    root
}

pub struct TestNet {
    pub bridge: String,
    pub veth: String,
    pub netns: String,
    /// `10.233.N` for the host (`.1`) and the guest namespace (`.2`).
    pub prefix: String,
    pub dns: Dns,
}

impl TestNet {
    /// A network `10.233.<subnet>.0/24`; `tag` and `subnet` must differ between the
    /// tests of one binary, which run in parallel.
    pub fn new(tag: char, subnet: u8) -> TestNet {
        let id = std::process::id();
        let prefix = format!("10.233.{subnet}");
        let bridge = format!("hgdns{tag}{}", id % 10000);
        let net = TestNet {
            veth: format!("hgdv{tag}{}", id % 10000),
            netns: format!("hgdns-{tag}-{id}"),
            dns: Dns {
                network: format!("test-{tag}"),
                interface: bridge.clone(),
                listen: vec![format!("{prefix}.1")],
                domain: "hangar".to_string(),
                dir: std::env::temp_dir().join(format!("hangar-dns-test-{tag}-{id}")),
            },
            bridge,
            prefix,
        };
        net.remove(); // leftovers of an earlier run that shared our pid
        net.create(); // on a panic here, Drop removes what was made
        net
    }

    fn create(&self) {
        let (br, veth, ns, p) = (&self.bridge, &self.veth, &self.netns, &self.prefix);
        ip(&["link", "add", br, "type", "bridge"]);
        ip(&["addr", "add", &format!("{p}.1/24"), "dev", br]);
        ip(&["link", "set", br, "up"]);
        ip(&["netns", "add", ns]);
        ip(&[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&["link", "set", veth, "master", br, "up"]);
        ip(&["-n", ns, "addr", "add", &format!("{p}.2/24"), "dev", "eth0"]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }

    fn remove(&self) {
        let _ = self.dns.stop();
        for pid in dnsmasqs_in(&self.dns.dir) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = fs::remove_dir_all(&self.dns.dir);
    }

    pub fn host_address(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// The addresses `name` resolves to, asked from the guest namespace of the server
    /// at `server` (busybox nslookup: A and AAAA); empty when there is no answer.
    pub fn resolve_at(&self, name: &str, server: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "busybox",
                "nslookup",
                name,
                server,
            ])
            .output()
            .expect("run busybox nslookup");
        // Answers follow a `Name:` line; the `Address:` lines before it are the server.
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .skip_while(|l| !l.starts_with("Name:"))
            .filter_map(|l| l.strip_prefix("Address:"))
            .map(|a| a.trim().to_string())
            .collect()
    }

    /// [`Self::resolve_at`] the network's IPv4 host address.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        self.resolve_at(name, &self.host_address())
    }

    /// Resolve `name` until the answer is `expected` or `timeout` has passed; the last
    /// answer and how long it took.
    pub fn resolve_until(
        &self,
        name: &str,
        expected: &[&str],
        timeout: Duration,
    ) -> (Vec<String>, Duration) {
        let start = Instant::now();
        loop {
            let answer = self.resolve(name);
            if answer == expected || start.elapsed() > timeout {
                return (answer, start.elapsed());
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// UDP sockets listening on port 53 of the host address (from `ss`).
    pub fn listeners(&self) -> String {
        let out = Command::new("ss")
            .args([
                "-H",
                "-l",
                "-u",
                "-n",
                "src",
                &format!("{}:53", self.host_address()),
            ])
            .output()
            .expect("run ss");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.remove();
    }
}

pub fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect()
}

/// Every dnsmasq whose command line names `dir`, found independently of the library.
pub fn dnsmasqs_in(dir: &Path) -> Vec<u32> {
    let dir = dir.display().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            let program = cmdline.split('\0').next().unwrap_or("");
            PathBuf::from(program)
                .file_name()
                .is_some_and(|n| n == "dnsmasq")
                && cmdline.contains(&dir)
        })
        .collect()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
