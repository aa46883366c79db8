//! hangar's cgroup v2 backend on a real unified hierarchy, inside a QEMU virtual machine.
//!
//! This host (and CI) is cgroup v1/hybrid: its cgroup2 mount has no controllers, so the
//! v2 backend can only be exercised elsewhere. `tests/vm/run.sh` boots Debian's cloud
//! kernel under QEMU (TCG) with an initramfs holding this build's `hangar` and
//! `hangar-monitor`, mounts cgroup2 alone at /sys/fs/cgroup, and runs
//! `tests/vm/scenario-smoke.sh` there: a busybox guest limited to 20M and 32 pids is
//! built, started, inspected from the VM's side, made to allocate 30 MiB, and stopped.
//! The scenario's report (its "key: value" lines) is checked here. Needs root (the
//! initramfs holds device nodes) and qemu-system-x86_64; takes about half a minute.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The first value of each "key: value" line of the scenario's report.
fn report(out: &str) -> HashMap<&str, &str> {
    let mut map = HashMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once(": ") {
            if !k.contains(' ') {
                map.entry(k).or_insert(v.trim());
            }
        }
    }
    map
}

#[test]
fn cgroup_v2_limits_guests_inside_a_vm() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: this test needs root (it boots a VM from an initramfs with device nodes)");
        return;
    }
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "SKIP: qemu-system-x86_64 is missing (scripts/setup-host.sh installs qemu-system-x86)"
        );
        return;
    }
    let hangar = Path::new(env!("CARGO_BIN_EXE_hangar"));
    let bin_dir = hangar.parent().expect("the hangar binary's directory");
    assert!(
        bin_dir.join("hangar-monitor").exists(),
        "{} is missing: build the workspace (cargo build --workspace) first",
        bin_dir.join("hangar-monitor").display()
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let started = Instant::now();
    let out = Command::new(repo.join("tests/vm/run.sh"))
        .arg(repo.join("tests/vm/scenario-smoke.sh"))
        .arg(bin_dir)
        .stdin(Stdio::null())
        .output()
        .expect("running tests/vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The whole story, for whoever reads the test log: the harness's own progress
    // (kernel, initramfs, boot) and then everything the scenario did inside the VM.
    eprintln!(
        "=== tests/vm/run.sh ({}, {:.1}s) ===\n{stderr}",
        out.status,
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "=== scenario output, from inside the VM ===\n{stdout}=== end of scenario output ==="
    );

    let r = report(&stdout);
    let get = |k: &str| -> &str {
        r.get(k).copied().unwrap_or_else(|| {
            panic!("the scenario reported no '{k}:' line (see its output above)")
        })
    };

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
    assert!(out.status.success(), "tests/vm/run.sh: {}", out.status);
}
