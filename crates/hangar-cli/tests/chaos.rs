//! Chaos: a long random sequence of operations (build, start, stop, kill, restart, set,
//! attach, detach, exec, delete, pause, unpause, snapshot create/restore/delete,
//! clone, rename) over a dozen guests on two networks and three pools (the dir one, a
//! btrfs one and an image one), while CLIs, monitors, keepers and dnsmasq are SIGKILLed at random. After
//! every step:
//! - every guest is where `list` says (a running guest's init is alive in its cgroup; a
//!   stopped guest's cgroup holds no live process), and no guest is lost (a config
//!   always has its root filesystem, and a rename, even one killed half-way, keeps
//!   the number of guests);
//! - no guest runs twice (one monitor, one init);
//! - every state file parses;
//! - nothing leaked: cgroups, host interfaces, nft guard elements, monitors and mounts
//!   belong to guests `list` says are running (after `hangar repair` when the step killed
//!   something: a killed `start` may leave an empty cgroup, which is repair's to remove).
//!
//! At the end everything is deleted and nothing of the root is left on the host.
//!
//! `HANGAR_CHAOS_STEPS` (default 100, the suite's run; `bench/chaos.sh` runs 1,000) and
//! `HANGAR_CHAOS_SEED` (default: the clock; printed, so a failure can be replayed).
//! Needs root.

mod common;
use common::TestHost;
use common::netns::{leftovers, sh};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const GUESTS: usize = 12;
const NETWORKS: [(&str, &[&str]); 2] = [
    ("lan", &["--ipv4", "10.240.90.1/24"]),
    ("quiet", &["--ipv4", "10.240.91.1/24", "--no-dns"]),
];

/// xorshift64*: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Default)]
struct Tally {
    ops: BTreeMap<&'static str, u32>,
    failed_ops: u32,
    killed_clis: u32,
    killed_monitors: u32,
    killed_inits: u32,
    killed_keepers: u32,
    repairs: u32,
    adopted: u32,
    cleaned: u32,
}

/// SIGKILL `pid` and wait (2 s at most) until it has died, as `kill -9` and a look at
/// `ps` would: the signal is delivered after kill(2) returns, and a repair that ran
/// before would still find the monitor holding its lock.
fn sigkill(pid: i32) -> bool {
    let sent =
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).is_ok();
    if sent {
        let until = Instant::now() + Duration::from_secs(2);
        while alive(i64::from(pid)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    sent
}

/// Pids of processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
        })
        .collect()
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Live processes of guest cgroup `ctx` (the memory hierarchy on v1, the one on v2).
fn cgroup_procs(h: &TestHost, ctx: u64) -> Vec<i64> {
    let parent = h.cgroup_parent();
    ["memory/", ""]
        .iter()
        .map(|h| format!("/sys/fs/cgroup/{h}{parent}/{ctx}/cgroup.procs"))
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| alive(p))
        .collect()
}

/// Guest cgroup directories (context ids) under this root's parent.
fn cgroup_dirs(h: &TestHost) -> Vec<u64> {
    let parent = h.cgroup_parent();
    ["memory/", ""]
        .iter()
        .map(|h| format!("/sys/fs/cgroup/{h}{parent}"))
        .find_map(|p| std::fs::read_dir(p).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn is_pid_ns_init(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}

/// What list says and what the kernel shows agree; no guest twice; state files parse.
fn check_truth(h: &TestHost, rows: &[serde_json::Value]) -> Vec<String> {
    let mut bad = vec![];
    for r in rows {
        let name = r["name"].as_str().unwrap_or_default();
        let ctx = r["context"].as_u64().unwrap_or_default();
        let procs = cgroup_procs(h, ctx);
        let inits = procs.iter().filter(|&&p| is_pid_ns_init(p)).count();
        if r["state"] == "stopped" {
            if !procs.is_empty() {
                bad.push(format!(
                    "{name} is listed stopped but its cgroup holds {procs:?}"
                ));
            }
        } else if let Some(pid) = r["init_pid"].as_i64() {
            if !alive(pid) || !procs.contains(&pid) {
                bad.push(format!(
                    "{name} is listed {} with init {pid}, which is not alive in its cgroup ({procs:?})",
                    r["state"]
                ));
            }
        } else if r["state"] == "running" {
            bad.push(format!("{name} is listed running without an init pid"));
        }
        if inits > 1 {
            bad.push(format!("{name} runs {inits} inits"));
        }
        let spec = h.root.join(format!("run/hangar/guests/{name}/spec.json"));
        let mut monitors = pids_with(&spec.to_string_lossy()).len();
        if monitors > 1 {
            // A monitor that lost the race for the guest's lock (an adopter started by a
            // command while another adopted it) exits at once: count again.
            std::thread::sleep(Duration::from_millis(300));
            monitors = pids_with(&spec.to_string_lossy()).len();
        }
        if monitors > 1 {
            bad.push(format!("{name} has {monitors} monitors"));
        }
        if !h.rootfs(name).join("sbin/init").exists() {
            bad.push(format!("{name} lost its root filesystem"));
        }
    }
    for e in std::fs::read_dir(h.root.join("run/hangar/guests"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let state = e.path().join("state.json");
        if let Ok(bytes) = std::fs::read(&state)
            && serde_json::from_slice::<serde_json::Value>(&bytes).is_err()
        {
            bad.push(format!("{} does not parse", state.display()));
        }
    }
    bad
}

/// Kernel objects and processes of this root that no running guest accounts for.
fn check_leaks(h: &TestHost, rows: &[serde_json::Value]) -> Vec<String> {
    let mut bad = vec![];
    let active: Vec<&serde_json::Value> = rows.iter().filter(|r| r["state"] != "stopped").collect();
    let active_ctx: Vec<u64> = active
        .iter()
        .filter_map(|r| r["context"].as_u64())
        .collect();
    let active_names: Vec<&str> = active.iter().filter_map(|r| r["name"].as_str()).collect();
    for ctx in cgroup_dirs(h) {
        if !active_ctx.contains(&ctx) {
            let who = rows.iter().find(|r| r["context"] == ctx);
            let name = who.and_then(|r| r["name"].as_str()).unwrap_or("?");
            let log =
                std::fs::read_to_string(h.root.join(format!("var/log/hangar/{name}/monitor.log")))
                    .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            let parent = h.cgroup_parent();
            let held: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let d = e.path().join(&parent).join(ctx.to_string());
                    let procs = std::fs::read_to_string(d.join("cgroup.procs")).ok()?;
                    Some(format!(
                        "{}: [{}]",
                        e.file_name().to_string_lossy(),
                        procs.trim()
                    ))
                })
                .collect();
            bad.push(format!(
                "cgroup {ctx} of stopped guest {name} (last exit {}; monitor log ends {tail:?}; \
                 in it: {held:?})",
                who.map_or(serde_json::Value::Null, |r| r["last_exit"].clone())
            ));
        }
    }
    let hash = h.cgroup_parent().replace("hangar-", "");
    let prefix = format!("h{}", &hash[..3]);
    for link in sh("ip -o link show | awk -F': ' '{print $2}'").1.lines() {
        let link = link.split('@').next().unwrap_or_default();
        let Some(rest) = link
            .strip_prefix(&prefix)
            .or_else(|| link.strip_prefix(&format!("ifb{prefix}")))
        else {
            continue;
        };
        // A NIC's host side is <prefix><ctx>-<nic>; bridges are <prefix>b-<net>.
        if let Some((ctx, _)) = rest.split_once('-')
            && let Ok(ctx) = ctx.parse::<u64>()
            && !active_ctx.contains(&ctx)
        {
            bad.push(format!("interface {link} of a stopped guest"));
        }
    }
    let table = format!("hangar_{hash}");
    let guarded = sh(&format!("nft list set inet {table} guarded 2>/dev/null")).1;
    for tag in guarded.split("comment \"").skip(1) {
        let tag = tag.split('"').next().unwrap_or_default();
        let guest = tag.split('.').next().unwrap_or_default();
        if !active_names.contains(&guest) {
            bad.push(format!("guard {tag} of a stopped guest"));
        }
    }
    let guests_dir = h.root.join("run/hangar/guests");
    for pid in pids_with(&format!("{}/", guests_dir.display())) {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let name = cmd
            .split(&format!("{}/", guests_dir.display()))
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_string();
        if cmd.contains("hangar-monitor") && !active_names.contains(&name.as_str()) {
            bad.push(format!("monitor {pid} of stopped guest {name}"));
        }
    }
    let root = h.root.to_string_lossy().to_string();
    let lxcfs = format!("{root}/var/lib/hangar/lxcfs");
    let pool = format!("{root}/var/lib/hangar/pools/fast");
    // An image pool's volumes are mounted on use, whatever their guest's state; a
    // killed build's stays until the next build or delete of its name.
    let images = format!("{root}/var/lib/hangar/pools/img/guests/");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    for line in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        let point = line.split(' ').nth(4).unwrap_or_default();
        let volume_of = point.strip_prefix(&images);
        let guest_volume =
            volume_of.is_some_and(|g| names.contains(&g) || g.starts_with(".build-"));
        if point.starts_with(&format!("{root}/"))
            && point != lxcfs
            && point != pool
            && !guest_volume
        {
            // Its source and how many times the point is mounted, to tell a mount made
            // twice from one not removed.
            let source = line.split(" - ").nth(1).unwrap_or_default();
            bad.push(format!("mount {point} ({source})"));
        }
    }
    bad
}

/// Run hangar with `args`, SIGKILLing it after `kill_after` if it still runs then.
/// Returns whether it succeeded, whether it was killed, and what it said on stderr.
fn run_op(h: &TestHost, args: &[String], kill_after: Option<Duration>) -> (bool, bool, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = h.root.join("chaos-op.err");
    let mut child = h
        .cmd(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&err).unwrap_or_default();
    if let Some(after) = kill_after {
        let until = Instant::now() + after;
        while Instant::now() < until {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
            let _ = child.wait();
            return (false, true, said());
        }
    }
    // A step that hangs is a finding too: 60 s at most.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s.success(), false, said());
        }
        assert!(Instant::now() < until, "hangar {args:?} hung for 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn keeper_pids(h: &TestHost) -> Vec<i32> {
    let root = h.root.to_string_lossy().to_string();
    let mut pids = pids_with(&format!("--lxcfs {root}/"));
    pids.extend(pids_with(&format!("--dns {root}/")));
    pids.extend(pids_with(&format!("dnsmasq --conf-file={root}/")));
    pids
}

#[test]
fn random_operations_and_kills_break_no_invariant() {
    require_root!();
    let steps: usize = std::env::var("HANGAR_CHAOS_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("HANGAR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("chaos: {steps} steps, seed {seed} (HANGAR_CHAOS_SEED={seed} replays it)");
    let h = TestHost::new("chaos");
    for (net, args) in NETWORKS {
        let mut a = vec!["network", "create", net];
        a.extend_from_slice(args);
        h.ok(&a);
    }
    // A btrfs pool for some of the guests (snapshots and clones take its fast path).
    h.ok(&["pool", "create", "fast", "--size", "2G"]);
    // And an image pool: each of its guests a filesystem of its own on a loop device.
    h.ok(&["pool", "create", "img", "--driver", "image"]);
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let started = Instant::now();
    let mut violations: Vec<String> = vec![];
    for step in 0..steps {
        let rows = h.list();
        let exists = |n: &str| rows.iter().any(|r| r["name"] == n);
        let name = format!("g{}", rng.below(GUESTS));
        let nic = format!("eth{}", 1 + rng.below(2));
        let net = NETWORKS[rng.below(2)].0;
        let snap = format!("s{}", rng.below(2));
        let other = format!("g{}", rng.below(GUESTS));
        let (kind, args): (&'static str, Vec<String>) = match rng.below(120) {
            _ if !exists(&name) => {
                let mut a = vec!["build".into(), name.clone(), "-m".into(), "busybox".into()];
                if rng.chance(70) {
                    a.extend(["--network".into(), net.into()]);
                }
                match rng.below(10) {
                    0..=3 => a.extend([
                        "--pool".into(),
                        "fast".into(),
                        "--disk-size".into(),
                        "256M".into(),
                    ]),
                    4..=5 => a.extend([
                        "--pool".into(),
                        "img".into(),
                        "--disk-size".into(),
                        "32M".into(),
                    ]),
                    _ => {}
                }
                ("build", a)
            }
            100..=104 => {
                let verb = if rng.chance(50) { "pause" } else { "unpause" };
                (verb, vec![verb.into(), name.clone()])
            }
            105..=109 => (
                "snapshot",
                vec!["snapshot".into(), "create".into(), name.clone(), snap],
            ),
            110..=112 => (
                "restore",
                vec!["snapshot".into(), "restore".into(), name.clone(), snap],
            ),
            113..=115 => (
                "unsnapshot",
                vec!["snapshot".into(), "delete".into(), name.clone(), snap],
            ),
            116..=117 => ("clone", vec!["clone".into(), name.clone(), other]),
            118..=119 => ("rename", vec!["rename".into(), name.clone(), other]),
            0..=19 => ("start", vec!["start".into(), name.clone()]),
            20..=27 => (
                "stop",
                vec!["stop".into(), name.clone(), "-t".into(), "1".into()],
            ),
            28..=39 => ("kill", vec!["kill".into(), name.clone()]),
            40..=44 => (
                "restart",
                vec!["restart".into(), name.clone(), "-t".into(), "1".into()],
            ),
            45..=54 => (
                "exec",
                vec!["exec".into(), name.clone(), "--".into(), "true".into()],
            ),
            55..=61 => {
                let item = if rng.chance(50) {
                    format!("memory.max={}M", 64 + rng.below(512))
                } else {
                    format!("pids.max={}", 64 + rng.below(512))
                };
                ("set", vec!["set".into(), name.clone(), item])
            }
            62..=67 => (
                "attach",
                vec![
                    "attach".into(),
                    name.clone(),
                    "nic".into(),
                    format!("network={net}"),
                    format!("name={nic}"),
                ],
            ),
            68..=72 => (
                "detach",
                vec!["detach".into(), name.clone(), "nic".into(), nic.clone()],
            ),
            73..=77 => (
                "delete",
                vec!["delete".into(), name.clone(), "--force".into()],
            ),
            78..=89 => ("kill-monitor", vec![]),
            _ => ("kill-keeper", vec![]),
        };
        *t.ops.entry(kind).or_default() += 1;
        let before = rows.len();
        let mut killed = false;
        let mut said = String::new();
        match kind {
            "kill-monitor" => {
                let active: Vec<(i32, i32)> = rows
                    .iter()
                    .filter(|r| r["state"] != "stopped" && r["monitor"] == true)
                    .filter_map(|r| {
                        let f = h.root.join(format!(
                            "run/hangar/guests/{}/state.json",
                            r["name"].as_str()?
                        ));
                        let v: serde_json::Value =
                            serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
                        Some((
                            v["monitor_pid"].as_i64()? as i32,
                            v["init_pid"].as_i64()? as i32,
                        ))
                    })
                    .collect();
                let victim = (!active.is_empty()).then(|| active[rng.below(active.len())]);
                if let Some((monitor, init)) = victim
                    && sigkill(monitor)
                {
                    t.killed_monitors += 1;
                    killed = true;
                    // Sometimes the guest dies too, unwatched: repair cleans up after it.
                    if rng.chance(30) && sigkill(init) {
                        t.killed_inits += 1;
                    }
                }
            }
            "kill-keeper" => {
                let keepers = keeper_pids(&h);
                if !keepers.is_empty() && sigkill(keepers[rng.below(keepers.len())]) {
                    t.killed_keepers += 1;
                    killed = true;
                }
            }
            _ => {
                let kill_after = rng
                    .chance(15)
                    .then(|| Duration::from_millis(rng.below(40) as u64));
                let (ok, was_killed, stderr) = run_op(&h, &args, kill_after);
                said = stderr;
                if was_killed {
                    t.killed_clis += 1;
                    killed = true;
                } else if !ok {
                    t.failed_ops += 1;
                }
            }
        }
        let mut rows = h.list();
        let said = said.trim();
        // A rename (finished, failed or killed half-way and then finished or undone by
        // this `list`) keeps every guest: one name or the other, never both or none.
        if kind == "rename" && rows.len() != before {
            violations.push(format!(
                "step {step} (rename {name}: {said:?}): {before} guests before, {} after",
                rows.len()
            ));
        }
        let mut truth = check_truth(&h, &rows);
        if !truth.is_empty() {
            // A process SIGKILLed a moment ago may still have been alive when `list`
            // looked (a signal is delivered after kill(2) returns): what list says must
            // hold when asked again, not at an instant before.
            std::thread::sleep(Duration::from_millis(300));
            rows = h.list();
            truth = check_truth(&h, &rows);
        }
        for v in truth {
            violations.push(format!("step {step} ({kind} {name}: {said:?}): {v}"));
        }
        let rows = if killed {
            t.repairs += 1;
            let out = h.run(&["repair", "--format", "json"]);
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            t.adopted += r["adopted"].as_array().map_or(0, |a| a.len() as u32);
            t.cleaned += r["cleaned"].as_array().map_or(0, |a| a.len() as u32);
            if !out.status.success() {
                violations.push(format!(
                    "step {step} ({kind} {name}): repair failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            h.list()
        } else {
            rows
        };
        for v in check_leaks(&h, &rows) {
            violations.push(format!("step {step} ({kind} {name}: {said:?}): {v}"));
        }
        if violations.len() > 20 {
            break;
        }
    }
    let elapsed = started.elapsed();
    // The end: every guest goes, then the networks; nothing of the root stays.
    for r in h.list() {
        h.ok(&["delete", r["name"].as_str().unwrap(), "--force"]);
    }
    for (net, _) in NETWORKS {
        h.ok(&["network", "delete", net]);
    }
    h.ok(&["pool", "delete", "fast"]);
    h.ok(&["pool", "delete", "img"]);
    let left = leftovers(&h);
    println!(
        "chaos: {steps} steps in {:.1} s ({:.0} ms a step); ops {:?}; failed (refused) ops {}; \
         killed: {} CLIs, {} monitors (and {} of their inits), {} keepers/dnsmasq; repairs {} (adopted {}, cleaned {}); \
         violations {}; left on the host: {}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / steps.max(1) as f64,
        t.ops,
        t.failed_ops,
        t.killed_clis,
        t.killed_monitors,
        t.killed_inits,
        t.killed_keepers,
        t.repairs,
        t.adopted,
        t.cleaned,
        violations.len(),
        if left.is_empty() { "nothing" } else { &left }
    );
    assert!(
        violations.is_empty(),
        "seed {seed}:\n{}",
        violations.join("\n")
    );
    assert_eq!(left, "", "seed {seed}: left on the host");
}
