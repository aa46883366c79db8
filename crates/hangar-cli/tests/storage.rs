//! Storage pools end to end: a btrfs pool on a loop-backed image the test makes, guests
//! in it with disk limits, `hangar df`, and what is refused. Needs root.

mod common;
use common::{TestHost, wait_for};
use std::time::Duration;

fn df(h: &TestHost) -> Vec<serde_json::Value> {
    serde_json::from_str(&h.ok(&["df", "--format", "json"])).unwrap()
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter().find(|r| r["name"] == name).unwrap()
}

/// Loop devices whose backing file is under this root.
fn loops(h: &TestHost) -> usize {
    let out = std::process::Command::new("losetup")
        .args(["-n", "-O", "BACK-FILE", "-l"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim().starts_with(&*h.root.to_string_lossy()))
        .count()
}

#[test]
fn a_btrfs_pool_limits_each_guest_and_the_others_are_unaffected() {
    require_root!();
    let h = TestHost::new("btrfs");
    h.ok(&["pool", "create", "fast", "--size", "512M"]);
    h.build_busybox_in("a", "fast", "64M");
    h.ok(&["build", "b", "-m", "busybox", "--pool", "fast"]);
    h.build_busybox("c");
    assert!(h.ok(&["config", "show", "a"]).contains("pool = \"fast\""));
    h.started("a");
    h.started("b");
    // a fills its disk: the write stops at its limit.
    let (code, _) = h.sh("a", "dd if=/dev/zero of=/big bs=1M count=200 2>/dev/null");
    assert_ne!(code, 0, "a wrote 200M into a 64M disk");
    let big: u64 = h.sh("a", "stat -c %s /big").1.trim().parse().unwrap();
    assert!(big <= 64 << 20, "a's file grew to {big} bytes");
    // b, in the same pool, still writes; so does the host.
    assert_eq!(
        h.sh(
            "b",
            "dd if=/dev/zero of=/f bs=1M count=32 2>/dev/null && echo ok"
        )
        .1
        .trim(),
        "ok"
    );
    let rows = df(&h);
    let a = row(&rows, "a");
    assert_eq!(a["pool"], "fast");
    assert_eq!(a["limit"], 64u64 << 20);
    assert!(a["used"].as_u64().unwrap() > 60 << 20, "{a}");
    assert!(a["percent"].as_f64().unwrap() > 90.0, "{a}");
    assert_eq!(row(&rows, "b")["limit"], serde_json::Value::Null);
    assert_eq!(row(&rows, "c")["pool"], "default");
    assert!(h.ok(&["df"]).lines().next().unwrap().contains("USE%"));
    // Below its use: refused, nothing changed. Grown live: a writes on.
    let err = h.fails(&["set", "a", "disk.size=1M"]);
    assert!(err.contains("below what the guest uses"), "{err}");
    assert!(h.ok(&["config", "show", "a"]).contains("size = \"64M\""));
    h.ok(&["set", "a", "disk.size=128M"]);
    assert_eq!(row(&df(&h), "a")["limit"], 128u64 << 20);
    assert_eq!(
        h.sh(
            "a",
            "dd if=/dev/zero of=/more bs=1M count=32 2>/dev/null && echo ok"
        )
        .1
        .trim(),
        "ok"
    );
    // The built-in dir pool cannot limit a disk, and says what to do.
    let err = h.fails(&["set", "c", "disk.size=100M"]);
    assert!(err.contains("hangar pool create"), "{err}");
    // A pool holding guests is not deleted; once they are gone, nothing is left.
    let err = h.fails(&["pool", "delete", "fast"]);
    assert!(err.contains("holds guests a, b"), "{err}");
    h.ok(&["delete", "a", "--force"]);
    h.ok(&["delete", "b", "--force"]);
    let subvols = std::process::Command::new("btrfs")
        .args(["subvolume", "list", "-o"])
        .arg(h.root.join("var/lib/hangar/pools/fast/guests"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&subvols.stdout).trim(),
        "",
        "subvolumes left"
    );
    h.ok(&["pool", "delete", "fast"]);
    assert!(!h.root.join("var/lib/hangar/pools/fast.img").exists());
    assert_eq!(loops(&h), 0, "a loop device is left");
    let pools: Vec<serde_json::Value> =
        serde_json::from_str(&h.ok(&["pool", "list", "--format", "json"])).unwrap();
    assert_eq!(pools.len(), 1, "{pools:?}");
}

#[test]
fn bad_pool_input_is_refused_and_changes_nothing() {
    require_root!();
    let h = TestHost::new("badpool");
    let err = h.fails(&["build", "g", "-m", "busybox", "--pool", "nope"]);
    assert!(err.contains("no pool named nope"), "{err}");
    assert!(h.list().is_empty());
    assert!(!h.root.join("var/lib/hangar/guests/g").exists());
    let err = h.fails(&["pool", "create", "tiny", "--size", "1M"]);
    assert!(err.contains("at least 128M"), "{err}");
    let err = h.fails(&["pool", "create", "x", "--source", "/etc/passwd"]);
    assert!(err.contains("not a block device"), "{err}");
    let err = h.fails(&["pool", "create", "default", "--size", "1G"]);
    assert!(err.contains("built-in"), "{err}");
    let err = h.fails(&["pool", "create", "Bad/Name", "--size", "1G"]);
    assert!(err.contains("pool name"), "{err}");
    assert!(h.fails(&["pool", "delete", "default"]).contains("built-in"));
    assert!(h.fails(&["pool", "show", "nope"]).contains("no pool named"));
    // Nothing was made for any of them.
    assert!(
        !h.root.join("var/lib/hangar/pools").exists()
            || std::fs::read_dir(h.root.join("var/lib/hangar/pools"))
                .unwrap()
                .next()
                .is_none()
    );
    assert_eq!(loops(&h), 0);
    // A disk limit asked of the built-in pool at build: refused before anything is made.
    let err = h.fails(&["build", "g", "-m", "busybox", "--disk-size", "64M"]);
    assert!(err.contains("hangar pool create"), "{err}");
    assert!(h.list().is_empty());
}

/// Snapshot a running guest, change it, restore after a stop: on both drivers.
fn snapshot_round_trip(h: &TestHost, guest: &str) {
    h.started(guest);
    h.sh(guest, "echo before > /etc/marker; sync");
    assert_eq!(
        h.ok(&["snapshot", "create", guest, "first"]).trim(),
        "first"
    );
    // The guest ran on, unfrozen.
    assert_eq!(h.info(guest)["paused"], false);
    h.sh(guest, "echo after > /etc/marker; rm -f /bin/ls");
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&h.ok(&["snapshot", "list", guest, "--format", "json"])).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "first");
    let err = h.fails(&["snapshot", "create", guest, "first"]);
    assert!(err.contains("already"), "{err}");
    let err = h.fails(&["snapshot", "restore", guest, "first"]);
    assert!(err.contains("stop it first"), "{err}");
    h.ok(&["kill", guest]);
    h.ok(&["snapshot", "restore", guest, "first"]);
    h.started(guest);
    assert_eq!(h.sh(guest, "cat /etc/marker").1.trim(), "before");
    assert_eq!(h.sh(guest, "test -e /bin/ls && echo back").1.trim(), "back");
    // The snapshot itself stays as it was: restored once more, same files.
    let err = h.fails(&["snapshot", "delete", guest, "nope"]);
    assert!(err.contains("no snapshot named nope"), "{err}");
    h.ok(&["snapshot", "delete", guest, "first"]);
    assert!(h.ok(&["snapshot", "list", guest]).lines().count() == 1);
}

#[test]
fn snapshots_restore_a_guests_files_in_the_dir_pool_and_a_btrfs_pool() {
    require_root!();
    let h = TestHost::new("snap");
    h.build_busybox("plain");
    snapshot_round_trip(&h, "plain");
    h.ok(&["pool", "create", "fast", "--size", "256M"]);
    h.build_busybox_in("sub", "fast", "100M");
    snapshot_round_trip(&h, "sub");
    // The restored volume kept its disk limit.
    let rows = df(&h);
    assert_eq!(row(&rows, "sub")["limit"], 100u64 << 20);
    // A guest's snapshots go with it.
    h.ok(&["snapshot", "create", "sub", "last"]);
    h.ok(&["snapshot", "create", "plain", "last"]);
    h.ok(&["delete", "sub", "--force"]);
    h.ok(&["delete", "plain", "--force"]);
    assert!(
        !h.root
            .join("var/lib/hangar/pools/fast/snapshots/sub/last")
            .exists()
    );
    assert!(!h.root.join("var/lib/hangar/snapshots/plain/last").exists());
    h.ok(&["pool", "delete", "fast"]);
}

#[test]
fn a_paused_guest_uses_no_cpu_and_runs_on_when_unpaused() {
    require_root!();
    let h = TestHost::new("pause");
    h.build_busybox("g");
    h.started("g");
    h.sh(
        "g",
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; done) >/dev/null 2>&1 &",
    );
    // CPU time charged to the guest's cgroup (in ticks of 10 ms): the loop makes it
    // grow, and it stands still while the guest is frozen.
    let cpu = |h: &TestHost| {
        h.info("g")["user_time_ms"].as_u64().unwrap() + h.info("g")["sys_time_ms"].as_u64().unwrap()
    };
    let before = cpu(&h);
    assert!(
        wait_for(Duration::from_secs(10), || cpu(&h) > before),
        "the guest's loop never ran"
    );
    h.ok(&["pause", "g"]);
    assert_eq!(h.info("g")["paused"], true);
    assert!(h.ok(&["list"]).contains("paused"));
    // A command would stop at once in the frozen guest: refused, saying why.
    assert!(h.fails(&["exec", "g", "--", "true"]).contains("unpause"));
    let frozen_at = cpu(&h);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cpu(&h), frozen_at, "a paused guest used CPU");
    h.ok(&["unpause", "g"]);
    assert_eq!(h.info("g")["paused"], false);
    assert!(
        wait_for(Duration::from_secs(10), || cpu(&h) > frozen_at),
        "the guest did not run on"
    );
    // A paused guest still stops (thawed first).
    h.ok(&["pause", "g"]);
    h.ok(&["stop", "g", "-t", "2"]);
    assert_eq!(h.state("g"), "stopped");
    assert!(h.fails(&["pause", "g"]).contains("not running"));
}

#[test]
fn a_clone_of_a_running_guest_starts_with_its_own_identity_on_both_drivers() {
    require_root!();
    let h = TestHost::new("clone");
    h.ok(&["network", "create", "lan", "--ipv4", "10.240.93.1/24"]);
    h.ok(&["build", "web", "-m", "busybox", "--network", "lan"]);
    h.started("web");
    h.sh("web", "mkdir -p /srv && echo payload > /srv/data && sync");
    h.ok(&["clone", "web", "web2"]);
    // The source ran on, not left frozen.
    assert_eq!(h.info("web")["state"], "running");
    assert_eq!(h.info("web")["paused"], false);
    let (a, b) = (h.info("web"), h.info("web2"));
    assert_ne!(a["context"], b["context"]);
    assert_eq!(b["hostname"], "web2");
    let cfg = |g: &str| -> toml::Value { toml::from_str(&h.ok(&["config", "show", g])).unwrap() };
    let (ca, cb) = (cfg("web"), cfg("web2"));
    assert_ne!(ca["nic"][0]["ipv4"], cb["nic"][0]["ipv4"]);
    assert_ne!(ca["nic"][0]["mac"], cb["nic"][0]["mac"]);
    assert_eq!(cb["nic"][0]["network"].as_str(), Some("lan"));
    let pid = h.started("web2");
    assert_eq!(
        common::host_uid_of(pid),
        b["context"].as_u64().unwrap() as u32 * 65536,
        "the clone runs as its own host uids"
    );
    assert_eq!(h.sh("web2", "cat /srv/data; hostname").1, "payload\nweb2\n");
    assert!(
        h.sh("web2", "cat /etc/hosts")
            .1
            .contains("127.0.1.1\tweb2\n")
    );
    let ip_a = h.nic_address("web", "eth0");
    assert_eq!(
        h.sh(
            "web2",
            &format!("ping -c1 -W2 {ip_a} >/dev/null && echo ok")
        )
        .1
        .trim(),
        "ok"
    );
    // Refused: an existing name, an unknown source.
    assert!(
        h.fails(&["clone", "web", "web2"])
            .contains("already exists")
    );
    assert!(h.fails(&["clone", "nope", "x"]).contains("nope"));
    // On btrfs: a writable snapshot, with the source's disk limit.
    h.ok(&["pool", "create", "fast", "--size", "256M"]);
    h.ok(&[
        "build",
        "b",
        "-m",
        "busybox",
        "--pool",
        "fast",
        "--disk-size",
        "100M",
        "--network",
        "none",
    ]);
    h.started("b");
    h.sh("b", "echo in-b > /etc/marker");
    h.ok(&["clone", "b", "b2"]);
    assert_eq!(row(&df(&h), "b2")["limit"], 100u64 << 20);
    h.started("b2");
    assert_eq!(h.sh("b2", "cat /etc/marker").1.trim(), "in-b");
    // A write in the clone leaves the source as it was.
    h.sh("b2", "echo changed > /etc/marker");
    assert_eq!(h.sh("b", "cat /etc/marker").1.trim(), "in-b");
    for g in ["web", "web2", "b", "b2"] {
        h.ok(&["delete", g, "--force"]);
    }
    h.ok(&["pool", "delete", "fast"]);
    h.ok(&["network", "delete", "lan"]);
}
