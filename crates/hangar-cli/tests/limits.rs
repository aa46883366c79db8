//! Resource limits measured from inside and outside guests (VServer lab, part 2).
//! Needs root.

mod common;
use common::{TestHost, wait_for};
use std::time::Duration;

/// The guest's cgroup file `file` in hierarchy `controller` (cgroup v1 here).
fn cgroup_file(h: &TestHost, name: &str, controller: &str, file: &str) -> String {
    let ctx = h.info(name)["context"].as_u64().unwrap();
    let v1 = format!(
        "/sys/fs/cgroup/{controller}/{}/{ctx}/{file}",
        h.cgroup_parent()
    );
    let v2 = format!("/sys/fs/cgroup/{}/{ctx}/{file}", h.cgroup_parent());
    std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether this kernel accounts swap per cgroup (v1's `memory.memsw.*`, v2's
/// `memory.swap.max`): not every machine of this kind boots with it.
fn swap_accounting() -> bool {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let v2_dir = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| format!("/sys/fs/cgroup{p}/memory.swap.max"));
    std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || v2_dir.is_some_and(|f| std::path::Path::new(&f).exists())
}

/// Whether the host has swap in use (a line past the header of /proc/swaps).
fn host_swaps() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .is_ok_and(|s| s.lines().skip(1).any(|l| !l.trim().is_empty()))
}

/// Keeps the stopped guest `name` from swapping, so that going past its memory limit
/// means an OOM kill, and says which path it took: `memory.swap=0` where the kernel
/// accounts swap; where it does not, that setting must be refused with the reason and
/// change nothing, and only a host without swap can show the OOM kill. Returns whether
/// the guest's memory limit is now a hard limit.
fn without_swap(h: &TestHost, name: &str) -> bool {
    if swap_accounting() {
        eprintln!("PATH: swap accounting on: memory.swap=0 keeps {name} from swapping");
        h.ok(&["set", name, "memory.swap=0"]);
        return true;
    }
    let config = std::fs::read_to_string(h.config_file(name)).unwrap();
    let err = h.fails(&["set", name, "memory.swap=0"]);
    assert!(err.contains("swap accounting is off"), "{err}");
    assert_eq!(
        std::fs::read_to_string(h.config_file(name)).unwrap(),
        config
    );
    let hard = !host_swaps();
    eprintln!(
        "PATH: no swap accounting: memory.swap=0 refused with the reason; the host {}",
        if hard {
            "has no swap, so the memory limit is hard"
        } else {
            "swaps, so a guest past its limit swaps instead of being OOM-killed: not asserted"
        }
    );
    hard
}

#[test]
fn a_guest_gets_the_host_default_limits() {
    require_root!();
    let h = TestHost::new("defaults");
    h.build_busybox("g");
    h.started("g");
    assert_eq!(
        cgroup_file(&h, "g", "memory", "memory.limit_in_bytes"),
        (1u64 << 30).to_string()
    );
    assert_eq!(cgroup_file(&h, "g", "pids", "pids.max"), "1024");
}

#[test]
fn the_seed_malloc_test_kills_inside_the_guest_and_everything_survives() {
    require_root!();
    let h = TestHost::new("malloc");
    h.build_busybox("g");
    h.ok(&["set", "g", "memory.max=20M"]);
    if !without_swap(&h, "g") {
        return;
    }
    h.started("g");
    // dd's 30 MB block buffer is allocated and filled: more than the guest may hold.
    let out = h.run(&[
        "exec",
        "g",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=30M",
        "count=1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(128 + 9),
        "dd was not OOM-killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.state("g"), "running");
    assert_eq!(h.sh("g", "echo still here").1.trim(), "still here");
    // A smaller allocation fits.
    assert_eq!(
        h.run(&[
            "exec",
            "g",
            "--",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=8M",
            "count=1"
        ])
        .status
        .code(),
        Some(0)
    );
}

#[test]
fn with_an_address_space_limit_the_allocation_fails_cleanly() {
    require_root!();
    let h = TestHost::new("aslimit");
    h.build_busybox("g");
    h.ok(&["set", "g", "memory.max=20M", "as=24M"]);
    h.started("g");
    let out = h.run(&[
        "exec",
        "g",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=30M",
        "count=1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("memory") || err.contains("alloc"), "{err}");
}

#[test]
fn set_changes_limits_of_a_running_guest_at_once() {
    require_root!();
    let h = TestHost::new("setlive");
    h.build_busybox("g");
    let hard_limit = without_swap(&h, "g");
    h.started("g");
    h.ok(&[
        "set",
        "g",
        "memory.max=64M",
        "pids.max=40",
        "nofile=256:512",
    ]);
    assert_eq!(
        cgroup_file(&h, "g", "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(&h, "g", "pids", "pids.max"), "40");
    assert_eq!(
        h.sh("g", "ulimit -n; ulimit -Hn")
            .1
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["256", "512"]
    );
    assert!(
        h.sh("g", "cat /proc/1/limits")
            .1
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains("256") && l.contains("512"))
    );
    assert!(h.ok(&["config", "show", "g"]).contains("64M"));
    if !hard_limit {
        return;
    }
    // The new memory limit is measured: 48 MB no longer fits after lowering to 32M.
    assert_eq!(
        h.run(&[
            "exec",
            "g",
            "--",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=48M",
            "count=1"
        ])
        .status
        .code(),
        Some(0)
    );
    h.ok(&["set", "g", "memory.max=32M"]);
    assert_eq!(
        h.run(&[
            "exec",
            "g",
            "--",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=48M",
            "count=1"
        ])
        .status
        .code(),
        Some(137)
    );
}

#[test]
fn bad_limits_are_refused_and_nothing_changes() {
    require_root!();
    let h = TestHost::new("setbad");
    h.build_busybox("g");
    h.started("g");
    let before = std::fs::read_to_string(h.config_file("g")).unwrap();
    let mem_before = cgroup_file(&h, "g", "memory", "memory.limit_in_bytes");
    for (item, needle) in [
        ("memory.max=lots", "lots"),
        ("cpu.weight=0", "cpu.weight"),
        ("memroy.max=1G", "memroy"),
        ("nofile=9:3", "nofile"),
    ] {
        let err = h.fails(&["set", "g", "memory.max=64M", item]);
        assert!(err.contains(needle), "{item}: {err}");
    }
    assert_eq!(std::fs::read_to_string(h.config_file("g")).unwrap(), before);
    assert_eq!(
        cgroup_file(&h, "g", "memory", "memory.limit_in_bytes"),
        mem_before
    );
}

#[test]
fn a_fork_bomb_stops_at_pids_max_and_the_host_stays_responsive() {
    require_root!();
    let h = TestHost::new("forkbomb");
    h.build_busybox("g");
    h.ok(&["set", "g", "pids.max=30"]);
    h.started("g");
    // The classic exponential bomb; each copy also leaves a sleeper behind so
    // the cgroup stays busy for a while after the copies give up. Bounded in
    // time from outside by a kill of the guest.
    h.sh(
        "g",
        "bomb() { sleep 60 & bomb | bomb & }; (bomb) >/dev/null 2>&1 &",
    );
    let pids = |h: &TestHost| {
        let v: serde_json::Value =
            serde_json::from_str(&h.ok(&["limits", "g", "--format", "json"])).unwrap();
        v["counters"]["pids"].clone()
    };
    // The kernel counts refused forks (hits) and keeps the peak: the bomb
    // reached the limit and never went past it.
    assert!(
        wait_for(Duration::from_secs(10), || pids(&h)["hits"]
            .as_u64()
            .unwrap_or(0)
            > 0),
        "the bomb never reached pids.max: {}",
        pids(&h)
    );
    let p = pids(&h);
    assert!(p["current"].as_u64().unwrap() <= 30, "{p}");
    if let Some(peak) = p["peak"].as_u64() {
        assert_eq!(peak, 30, "{p}");
    }
    // The guest itself still answers once the copies have given up.
    assert!(wait_for(Duration::from_secs(10), || h
        .run(&["exec", "g", "--", "true"])
        .status
        .success()));
    // The host still forks and answers.
    let t = std::time::Instant::now();
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    h.ok(&["kill", "g"]);
}

/// CPU time of the guest's cgroup (µs), from `hangar limits --format json`.
fn cpu_usage_us(h: &TestHost, name: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&h.ok(&["limits", name, "--format", "json"])).unwrap();
    v["counters"]["cpu"]["usage_us"].as_u64().unwrap()
}

/// Share of one CPU the guest used over `secs` seconds.
fn measured_share(h: &TestHost, name: &str, secs: u64) -> f64 {
    let (a, t) = (cpu_usage_us(h, name), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    (cpu_usage_us(h, name) - a) as f64 / t.elapsed().as_micros() as f64
}

#[test]
fn cpu_max_25_percent_is_measured_from_the_host() {
    require_root!();
    let h = TestHost::new("cpumax");
    h.build_busybox("g");
    h.ok(&["set", "g", "cpu.max=25%"]);
    h.started("g");
    h.sh("g", "(while :; do :; done) >/dev/null 2>&1 &");
    std::thread::sleep(Duration::from_millis(500));
    let share = measured_share(&h, "g", 3);
    assert!(
        (0.20..=0.30).contains(&share),
        "the guest used {:.1}% of a CPU",
        share * 100.0
    );
    // Raised live: the same loop now gets about half a CPU.
    h.ok(&["set", "g", "cpu.fill_rate=1", "cpu.interval=2"]);
    let share = measured_share(&h, "g", 3);
    assert!(
        (0.45..=0.55).contains(&share),
        "after set, the guest used {:.1}% of a CPU",
        share * 100.0
    );
    let report = h.ok(&["limits", "g"]);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("cpu") && l.contains("50%")),
        "{report}"
    );
}

#[test]
fn cpu_weights_share_a_busy_cpu_one_to_two() {
    require_root!();
    let h = TestHost::new("cpuweight");
    h.build_busybox("light");
    h.build_busybox("heavy");
    h.ok(&["set", "light", "cpu.weight=100", "cpu.pin=0"]);
    h.ok(&["set", "heavy", "cpu.weight=200", "cpu.pin=0"]);
    h.started("light");
    h.started("heavy");
    for g in ["light", "heavy"] {
        h.sh(g, "(while :; do :; done) >/dev/null 2>&1 &");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (a0, b0) = (cpu_usage_us(&h, "light"), cpu_usage_us(&h, "heavy"));
    std::thread::sleep(Duration::from_secs(3));
    let (a, b) = (
        cpu_usage_us(&h, "light") - a0,
        cpu_usage_us(&h, "heavy") - b0,
    );
    let ratio = b as f64 / a as f64;
    assert!(
        (1.6..=2.4).contains(&ratio),
        "heavy:light = {ratio:.2} ({b} vs {a} µs)"
    );
}

#[test]
fn proc_inside_a_limited_guest_tells_the_truth() {
    require_root!();
    let h = TestHost::new("virtproc");
    h.build_busybox("g");
    h.ok(&["set", "g", "memory.max=20M", "cpu.pin=0"]);
    let no_swap = without_swap(&h, "g");
    h.started("g");
    let (code, out) = h.sh("g", "grep -E '^(MemTotal|SwapTotal)' /proc/meminfo; cut -d' ' -f1 /proc/uptime; nproc; grep -c ^processor /proc/cpuinfo");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["MemTotal:", "20480", "kB"]
    );
    if no_swap {
        assert_eq!(lines[1].split_whitespace().nth(1), Some("0"), "{out}");
    }
    let uptime: f64 = lines[2].parse().unwrap();
    assert!(
        uptime < 10.0,
        "uptime {uptime}: counts from the host's boot, not the guest's start"
    );
    assert_eq!(lines[3], "1", "nproc");
    assert_eq!(lines[4], "1", "processors in /proc/cpuinfo");
}

#[test]
fn the_guest_keeps_its_proc_when_lxcfs_restarts() {
    require_root!();
    let h = TestHost::new("lxcfsrestart");
    h.build_busybox("g");
    h.ok(&["set", "g", "memory.max=20M"]);
    h.started("g");
    let (_, lxcfs, _) = h.lxcfs().expect("an lxcfs keeper runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(lxcfs), nix::sys::signal::SIGKILL).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || h
            .lxcfs()
            .is_some_and(|(_, _, restarts)| restarts >= 1)),
        "lxcfs was not restarted"
    );
    assert!(
        wait_for(Duration::from_secs(10), || h
            .sh("g", "grep MemTotal /proc/meminfo")
            .1
            .contains("20480")),
        "meminfo after the restart: {}",
        h.sh("g", "grep MemTotal /proc/meminfo 2>&1").1
    );
}

#[test]
fn free_in_a_debian_guest_agrees_with_the_limit() {
    require_root!();
    let h = TestHost::new("debfree");
    h.ok(&["build", "deb", "-m", "debootstrap"]);
    h.ok(&["set", "deb", "memory.max=20M"]);
    h.started("deb");
    let (_, out) = h.sh("deb", "free -k | awk '/^Mem:/ {print $2}'");
    assert_eq!(out.trim(), "20480");
}

#[test]
fn io_limits_reach_the_kernel_by_device_path_or_number() {
    require_root!();
    let h = TestHost::new("iolimit");
    h.build_busybox("g");
    h.started("g");
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let write_bps = format!("io.write_bps={major}:{minor}:1M");
    let line = format!("{major}:{minor} 1048576");
    // I/O weights exist only with the BFQ scheduler (CFQ before Linux 5.0).
    let weight = [
        "blkio.bfq.weight",
        "blkio.weight",
        "io.weight",
        "io.bfq.weight",
    ]
    .into_iter()
    .find(|f| !cgroup_file(&h, "g", "blkio", f).is_empty());
    match weight {
        Some(file) => {
            eprintln!("PATH: this kernel has {file}: io.weight is applied");
            h.ok(&["set", "g", &write_bps, "io.weight=300"]);
            let value = cgroup_file(&h, "g", "blkio", file);
            assert!(
                ["300", "1000", "default 300"].contains(&value.as_str()),
                "{file}: {value:?}"
            );
        }
        None => {
            eprintln!(
                "PATH: no I/O weight file (no BFQ): io.weight is refused with the \
                 scheduler named, and nothing of the same command is applied"
            );
            let config = std::fs::read_to_string(h.config_file("g")).unwrap();
            let err = h.fails(&["set", "g", &write_bps, "io.weight=300"]);
            assert!(
                err.contains("io_weight") && err.contains("BFQ I/O scheduler"),
                "{err}"
            );
            assert_eq!(std::fs::read_to_string(h.config_file("g")).unwrap(), config);
            assert!(
                !cgroup_file(&h, "g", "blkio", "blkio.throttle.write_bps_device").contains(&line),
                "the bandwidth limit of the refused command was applied"
            );
            // A stopped guest is refused the same, not left unable to start.
            h.ok(&["kill", "g"]);
            let err = h.fails(&["set", "g", "io.weight=300"]);
            assert!(err.contains("BFQ I/O scheduler"), "{err}");
            assert_eq!(std::fs::read_to_string(h.config_file("g")).unwrap(), config);
            h.started("g");
            h.ok(&["set", "g", &write_bps]);
        }
    }
    let v1 = cgroup_file(&h, "g", "blkio", "blkio.throttle.write_bps_device");
    let v2 = cgroup_file(&h, "g", "io", "io.max");
    assert!(
        v1.contains(&line) || v2.contains(&format!("{major}:{minor} rbps=max wbps=1048576")),
        "v1: {v1:?} v2: {v2:?}"
    );
    // Removing the limit resets it in the kernel.
    h.ok(&["set", "g", &format!("io.write_bps={major}:{minor}:max")]);
    assert!(!cgroup_file(&h, "g", "blkio", "blkio.throttle.write_bps_device").contains(&line));
    assert!(
        h.fails(&["set", "g", "io.write_bps=/etc/passwd:1M"])
            .contains("not a block device")
    );
}

/// The 1-minute load average and the running/total field of a guest's /proc/loadavg.
fn loadavg(h: &TestHost, name: &str) -> (f64, String) {
    let (_, out) = h.sh(name, "cat /proc/loadavg");
    let fields: Vec<&str> = out.split_whitespace().collect();
    (
        fields[0].parse().unwrap_or_else(|_| panic!("{out}")),
        fields[3].to_string(),
    )
}

#[test]
fn each_guest_sees_its_own_load_average() {
    require_root!();
    let h = TestHost::new("loadavg");
    h.build_busybox("busy");
    h.build_busybox("idle");
    h.started("busy");
    h.started("idle");
    // One shell loop burning a CPU for 20 s in one guest; nothing in the other.
    let mut burner = h
        .cmd(&[
            "exec",
            "busy",
            "--",
            "sh",
            "-c",
            "timeout 25 sh -c 'while :; do :; done'",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let (busy, busy_tasks) = loadavg(&h, "busy");
    let (idle, idle_tasks) = loadavg(&h, "idle");
    // busybox's top reads /proc/loadavg (its uptime asks sysinfo(2), the host's).
    let (_, top) = h.sh("busy", "top -bn1 | grep 'Load average'");
    let _ = burner.kill();
    let _ = burner.wait();
    eprintln!("busy: {busy} {busy_tasks}; idle: {idle} {idle_tasks}; top: {top}");
    // After 20 s of one runnable task, the 1-minute average is 1 - e^(-20/60) = 0.28
    // (lxcfs samples every few seconds, so a little less).
    assert!((0.15..0.6).contains(&busy), "busy guest's load {busy}");
    assert!(
        busy_tasks.starts_with('1') || busy_tasks.starts_with('2'),
        "{busy_tasks}"
    );
    assert_eq!(idle, 0.0, "the idle guest sees someone else's load");
    assert!(idle_tasks.starts_with("0/"), "{idle_tasks}");
    assert!(top.contains(&format!("Load average: {busy:.2}")), "{top}");
}
