//! hangar's cgroup v2 backend on a real unified hierarchy, inside a QEMU virtual machine.
//!
//! This host (and CI) is cgroup v1/hybrid: its cgroup2 mount has no controllers, so the
//! v2 backend can only be exercised elsewhere. `tests/vm/run.sh` boots Debian's cloud
//! kernel under QEMU (TCG) with an initramfs holding this build's `hangar` and
//! `hangar-monitor`, mounts cgroup2 alone at /sys/fs/cgroup, and runs a scenario there:
//! - `tests/vm/scenario-smoke.sh`: a busybox guest limited to 20M and 32 pids is built,
//!   started, inspected from the VM's side, made to allocate 30 MiB, and stopped;
//! - `tests/vm/scenario-limits.sh`: the resource-control checks of `limits.rs` on v2,
//!   driven through hangar's CLI only: limits set while stopped, the OOM kill, CPU
//!   bandwidth at 25% and (set live) 50%, a live memory change, a fork bomb against
//!   pids.max, CPU weights 100:200 on one CPU, `hangar limits`, and lxcfs's
//!   /proc/meminfo when the host has lxcfs to put into the VM.
//!
//! The scenario's report (its "key: value" lines) is checked here; running the VM and
//! reading the report is `common/vm.rs`, shared with `vlan_vm.rs`. Needs root (the
//! initramfs holds device nodes) and qemu-system-x86_64; the smoke run takes about half
//! a minute, the limits run one to one and a half (more when the host is busy).

mod common;

use common::vm::run_scenario;
use std::path::Path;

#[test]
fn cgroup_v2_limits_guests_inside_a_vm() {
    let Some(out) = run_scenario("scenario-smoke.sh") else {
        return;
    };
    let stdout = &out.stdout;
    let r = out.report();
    let get = |k: &str| r.get(k);

    // The VM's /sys/fs/cgroup is the unified hierarchy, so hangar probed cgroup v2.
    assert!(
        get("cgroup-fs").starts_with("cgroup2 "),
        "cgroup-fs: {}",
        get("cgroup-fs")
    );
    // hangar enabled the controllers it needs, in the root and in its parent.
    for c in ["memory", "pids"] {
        for k in [
            "root-subtree-control",
            "parent-subtree-control",
            "guest-controllers",
        ] {
            assert!(
                get(k).split(' ').any(|w| w == c),
                "{k} lacks {c}: {}",
                get(k)
            );
        }
    }
    // The guest's cgroup is <root>/hangar-<hash>/<ctx>, with the config's limits.
    let cg = get("guest-cgroup");
    let ctx = get("context");
    assert!(
        cg.starts_with("/sys/fs/cgroup/hangar") && cg.ends_with(&format!("/{ctx}")),
        "guest-cgroup: {cg}"
    );
    assert_eq!(get("memory.max"), "20971520", "20M");
    assert_eq!(get("pids.max"), "32");
    // The guest's processes are in it: its init as the VM sees it...
    assert_eq!(get("init-in-guest-cgroup"), "yes");
    let rel = cg.trim_start_matches("/sys/fs/cgroup");
    assert_eq!(get("init-pid-cgroup"), format!("0::{rel}"));
    // ...and an exec'd command, which sees the root of its own cgroup namespace.
    assert!(
        stdout.contains("\nin guest\n0::/\n"),
        "exec did not report 'in guest' and cgroup 0::/"
    );
    // 30 MiB under 20M: killed by the guest's cgroup (SIGKILL: 128 + 9) part way,
    // while the VM, the guest and its monitor carried on.
    assert!(stdout.contains("eat: 1 MiB\n"), "eat never ran");
    assert!(
        !stdout.contains("eat: done"),
        "eat allocated all 30 MiB under a 20M limit"
    );
    assert_eq!(get("eat-exit"), "137", "eat should die of SIGKILL");
    let oom_kill: u64 = get("oom_kill").parse().expect("oom_kill count");
    assert!(oom_kill >= 1, "memory.events oom_kill = {oom_kill}");
    assert_eq!(get("host-alive-after-oom"), "yes");
    assert!(
        stdout.contains("ok guest-alive-after-oom: 0"),
        "the guest did not answer after the OOM kill"
    );
    assert_eq!(get("state-after-oom"), "running");
    // 40 sleeps against pids.max 32: refused forks are counted.
    let pids_max: u64 = get("pids-max-events").parse().expect("pids.events max");
    assert!(pids_max >= 1, "pids.events max = {pids_max}");
    // Stopping removes the guest's cgroup.
    assert_eq!(get("guest-cgroup-after-stop"), "gone");
    // And the scenario's own checks all passed.
    assert!(
        !stdout.lines().any(|l| l.starts_with("FAIL ")),
        "the scenario reported failures"
    );
    assert_eq!(get("exit-status"), "0");
    assert!(out.success, "tests/vm/run.sh: {}", out.status);
}

#[test]
fn cgroup_v2_resource_control_inside_a_vm() {
    let Some(out) = run_scenario("scenario-limits.sh") else {
        return;
    };
    let stdout = &out.stdout;
    let r = out.report();
    let get = |k: &str| r.get(k);
    let num = |k: &str| -> f64 {
        get(k)
            .parse()
            .unwrap_or_else(|_| panic!("{k}: '{}' is not a number", get(k)))
    };

    assert!(
        get("cgroup-fs").starts_with("cgroup2 "),
        "cgroup-fs: {}",
        get("cgroup-fs")
    );
    // Set while the guest was stopped, applied at its start (cpu.max 25% is a 25 ms
    // quota per 100 ms period).
    assert_eq!(get("memory.max"), "20971520", "20M");
    assert_eq!(get("memory.swap.max"), "0");
    assert_eq!(get("pids.max"), "64");
    assert_eq!(get("cpu.max"), "25000 100000");

    // 30 MiB under 20M: OOM-killed inside the guest, which runs on.
    assert_eq!(get("eat-exit"), "137", "eat should die of SIGKILL");
    assert!(
        !stdout.contains("eat: done"),
        "eat allocated all 30 MiB under a 20M limit"
    );
    let oom_kill: u64 = get("oom_kill")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("oom_kill count");
    assert!(oom_kill >= 1, "memory.events oom_kill = {oom_kill}");
    assert!(
        stdout.contains("ok guest-alive-after-oom: 0"),
        "the guest did not answer after the OOM kill"
    );
    assert_eq!(get("state-after-oom"), "running");

    // CPU bandwidth, measured from hangar's own counter over 4 s. Under TCG the guest's
    // clock (and so the CFS period timer and the cgroup's CPU time) follows the host's
    // real time, so a quota holds as it does on metal: the issue's ±5 points are kept.
    // Seen in 6 runs, on a busy 2-CPU host: 0.243-0.262 and 0.485-0.515.
    let share25 = num("cpu-share-25");
    assert!(
        (0.20..=0.30).contains(&share25),
        "at cpu.max 25% the guest used {:.1}% of a CPU ({})",
        share25 * 100.0,
        get("cpu-share-25-raw")
    );
    assert_eq!(get("cpu.max-after-set"), "50000 100000");
    let share50 = num("cpu-share-50");
    assert!(
        (0.45..=0.55).contains(&share50),
        "after a live set to 50% the guest used {:.1}% of a CPU ({})",
        share50 * 100.0,
        get("cpu-share-50-raw")
    );

    // Memory raised live.
    assert_eq!(get("memory.max-after-set"), "67108864", "64M");

    // 100 sleeps against pids.max 64: forks refused (counted), never more than 64.
    let pids_max_events = num("pids-events-max");
    assert!(
        pids_max_events >= 1.0,
        "pids.events max = {pids_max_events}"
    );
    let pids_current = num("pids-current");
    assert!(
        (32.0..=64.0).contains(&pids_current),
        "pids.current = {pids_current} with 100 sleeps started under pids.max 64"
    );
    assert!(
        stdout.contains("ok guest-alive-after-bomb: 0"),
        "the guest did not answer after the fork bomb"
    );

    // `hangar limits` as a table: the live limits, the hits, the OOM kill.
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "$ hangar limits g")
        .skip(1)
        .take_while(|l| !l.starts_with("ok ") && !l.starts_with("FAIL "))
        .collect();
    let row = |name: &str| -> Vec<&str> {
        table
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in `hangar limits g`: {table:#?}"))
            .split_whitespace()
            .collect()
    };
    assert!(
        table.first().is_some_and(|l| l.starts_with("RESOURCE")),
        "{table:#?}"
    );
    assert_eq!(row("memory")[3], "64.0M", "{table:#?}");
    assert_eq!(row("pids")[3], "64", "{table:#?}");
    assert!(row("pids")[4].parse::<u64>().unwrap() >= 1, "{table:#?}");
    assert_eq!(row("cpu")[3], "50%", "{table:#?}");
    assert!(row("cpu")[4].parse::<u64>().unwrap() >= 1, "{table:#?}");
    assert!(table.contains(&"oom kills: 1"), "{table:#?}");

    // cpu.weight 100 against 200, both pinned to CPU 0 and busy: about 1:2. Seen: 1.82-2.16.
    let ratio = num("weight-ratio");
    assert!(
        (1.6..=2.4).contains(&ratio),
        "heavy:light = {ratio:.2} (shares of one CPU: heavy {}, light {})",
        get("weight-heavy"),
        get("weight-light")
    );

    // /proc inside the guest from lxcfs, when the host has lxcfs to carry into the VM
    // (tests/vm/build-initramfs.sh copies it; scripts/setup-host.sh installs it).
    if Path::new("/usr/bin/lxcfs").exists() {
        assert!(get("lxcfs").starts_with("yes"), "lxcfs: {}", get("lxcfs"));
        assert_eq!(get("meminfo-memtotal"), "20480 kB", "MemTotal at 20M");
        assert_eq!(
            get("meminfo-memtotal-after-set"),
            "65536 kB",
            "MemTotal after the live set to 64M"
        );
    } else {
        eprintln!("NOTE: no /usr/bin/lxcfs on this host: /proc/meminfo in the VM not checked");
    }

    assert!(
        !stdout.lines().any(|l| l.starts_with("FAIL ")),
        "the scenario reported failures"
    );
    assert_eq!(get("exit-status"), "0");
    assert!(out.success, "tests/vm/run.sh: {}", out.status);
}

/// `tests/vm/scenario-delegate.sh`: a guest whose init manages its own cgroups (hangar
/// takes it for systemd) on a real cgroup v2 host: its delegated tree, `hangar exec`
/// into it once the init moved to `init.scope` and enabled controllers below, the
/// limits still the host's, its own load average, and nothing left after a kill.
#[test]
fn a_guest_managing_its_own_cgroups_gets_a_delegated_tree_inside_a_vm() {
    let Some(out) = run_scenario("scenario-delegate.sh") else {
        return;
    };
    let r = out.report();
    let get = |k: &str| r.get(k);
    // cgroup2's magic number: the guest sees a cgroup2 tree, rooted at its own cgroup.
    assert_eq!(get("d-cgroup-fs"), "63677270");
    assert_eq!(get("d-init-cgroup"), "0::/init.scope");
    for c in ["pids", "memory"] {
        assert!(
            get("d-subtree-control").split(' ').any(|w| w == c),
            "the guest could not enable {c} for its children: {}",
            get("d-subtree-control")
        );
    }
    // A command joins where init is: the top cgroup now takes no process.
    assert_eq!(get("d-exec-cgroup"), "0::/init.scope");
    // The guest cannot raise its own limit, and the limit holds.
    assert_ne!(get("d-write-memory-max-rc"), "0");
    assert_eq!(get("d-memory-max"), "20971520");
    assert_eq!(get("d-eat-rc"), "137", "eat should die of SIGKILL");
    assert_eq!(get("d-state-after-eat"), "running");
    let load = get("d-loadavg");
    if load.starts_with("no lxcfs") {
        eprintln!("PATH: the VM image carries no lxcfs: the load average is not checked");
    } else {
        eprintln!("PATH: lxcfs in the VM: the guest's own load average");
        let one: f64 = load.split(' ').next().unwrap().parse().unwrap();
        assert!(one >= 0.08, "12 s of a busy loop, loadavg {load}");
    }
    assert_eq!(get("d-cgroup-after-kill"), "gone");
    assert!(out.success, "tests/vm/run.sh: {}", out.status);
}
