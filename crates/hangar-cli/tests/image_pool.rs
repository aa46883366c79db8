//! Image pools end to end: an ext4 image file per guest on a loop device, its size the
//! guest's disk (`df` inside shows it, a write past it fails with ENOSPC and touches
//! nobody else), resized with `hangar set`, snapshots and clones as copies of the image,
//! mounted on use, and nothing left behind by delete. Needs root.

mod common;
use common::{TestHost, wait_for};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

fn df(h: &TestHost) -> Vec<serde_json::Value> {
    serde_json::from_str(&h.ok(&["df", "--format", "json"])).unwrap()
}

fn row(rows: &[serde_json::Value], name: &str) -> serde_json::Value {
    rows.iter().find(|r| r["name"] == name).unwrap().clone()
}

/// The size of `/` as `df -k` inside the guest shows it, in KiB.
fn df_inside(h: &TestHost, guest: &str) -> u64 {
    let out = h.sh(guest, "df -k / | tail -1").1;
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Loop devices whose backing file is under this root.
fn loops(h: &TestHost) -> Vec<String> {
    let out = std::process::Command::new("losetup")
        .args(["-n", "-O", "BACK-FILE", "-l"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| l.starts_with(&*h.root.to_string_lossy()))
        .collect()
}

/// Mount points under this root.
fn mounts(h: &TestHost) -> Vec<String> {
    let root = format!("{}/", h.root.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| p.starts_with(&root) && p.contains("/pools/"))
        .collect()
}

fn pool_dir(h: &TestHost) -> PathBuf {
    h.root.join("var/lib/hangar/pools/im")
}

/// Bytes the host's filesystem gives a file (a sparse image takes what is written).
fn allocated(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Whether hangar may grow a mounted ext4 filesystem here: the kernel wants
/// CAP_SYS_RESOURCE, which some hosts (these development and CI machines among them)
/// keep out of every process's bounding set; hangar then grows a stopped guest's disk.
fn may_resize_online() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    u64::from_str_radix(hex.trim(), 16).unwrap() & (1 << 24) != 0
}

#[test]
fn an_image_pool_gives_each_guest_a_disk_of_its_own_size() {
    require_root!();
    let h = TestHost::new("imgpool");
    h.ok(&["pool", "create", "im", "--driver", "image"]);
    h.build_busybox_in("a", "im", "64M");
    h.ok(&["build", "b", "-m", "busybox", "--pool", "im"]);
    // Without a size, the pool's default, written in the config.
    assert!(h.ok(&["config", "show", "b"]).contains("size = \"10G\""));
    h.started("a");
    h.started("b");
    // df inside the guest shows its own disk: 64M less ext4's own metadata.
    let total = df_inside(&h, "a");
    assert!(
        (56 << 10..=64 << 10).contains(&total),
        "df / in a: {total}K"
    );
    // a fills its disk: the write stops there, and takes no more of the host.
    let (code, out) = h.sh("a", "dd if=/dev/zero of=/big bs=1M 2>&1");
    assert_ne!(code, 0, "a wrote past its disk: {out}");
    assert!(out.contains("No space left on device"), "{out}");
    let image = pool_dir(&h).join("images/a.img");
    // (The host's own extent blocks of the file may count a little above its size.)
    assert!(allocated(&image) <= 65 << 20, "{} bytes", allocated(&image));
    // b, in the same pool, still writes.
    assert_eq!(
        h.sh(
            "b",
            "dd if=/dev/zero of=/f bs=1M count=32 2>/dev/null && echo ok"
        )
        .1
        .trim(),
        "ok"
    );
    let a = row(&df(&h), "a");
    assert_eq!(a["pool"], "im");
    assert_eq!(a["limit"], total << 10);
    assert!(a["percent"].as_f64().unwrap() > 90.0, "{a}");
    // Below its use: refused, nothing changed.
    let err = h.fails(&["set", "a", "disk.size=16M"]);
    assert!(err.contains("below what the guest uses"), "{err}");
    assert!(h.ok(&["config", "show", "a"]).contains("size = \"64M\""));
    // Unlimited makes no sense for a filesystem of its own.
    let err = h.fails(&["set", "a", "disk.size=max"]);
    assert!(err.contains("always has a disk size"), "{err}");
    // Grown: live where the kernel lets hangar resize a mounted ext4, else refused
    // while the guest runs, with the reason, and grown once it is stopped.
    if may_resize_online() {
        h.ok(&["set", "a", "disk.size=128M"]);
    } else {
        eprintln!("NOTE: no CAP_SYS_RESOURCE here: growing a stopped guest's disk instead");
        let err = h.fails(&["set", "a", "disk.size=128M"]);
        assert!(err.contains("CAP_SYS_RESOURCE"), "{err}");
        assert!(h.ok(&["config", "show", "a"]).contains("size = \"64M\""));
        assert_eq!(df_inside(&h, "a"), total, "refused, yet resized");
        h.ok(&["stop", "a", "-t", "2"]);
        h.ok(&["set", "a", "disk.size=128M"]);
        h.started("a");
    }
    assert!(df_inside(&h, "a") > 120 << 10, "{}K", df_inside(&h, "a"));
    assert_eq!(
        h.sh(
            "a",
            "dd if=/dev/zero of=/more bs=1M count=32 2>/dev/null && echo ok"
        )
        .1
        .trim(),
        "ok"
    );
    // Shrinking waits for a stop; then it holds what the guest has.
    let err = h.fails(&["set", "a", "disk.size=100M"]);
    assert!(
        err.contains("shrinks only while its guest is stopped"),
        "{err}"
    );
    assert!(h.ok(&["config", "show", "a"]).contains("size = \"128M\""));
    // What the guest deletes goes back to the host (the volume is mounted with discard).
    h.sh("a", "sync");
    let before = allocated(&image);
    h.sh("a", "rm /big && sync");
    // The loop device's worker punches the holes a moment after the commit that
    // discards the blocks.
    let freed = wait_for(Duration::from_secs(10), || {
        allocated(&image) + (40 << 20) < before
    });
    assert!(freed, "{before} -> {} bytes", allocated(&image));
    h.ok(&["stop", "a", "-t", "2"]);
    h.ok(&["set", "a", "disk.size=100M"]);
    h.started("a");
    let shrunk = df_inside(&h, "a");
    assert!((88 << 10..=100 << 10).contains(&shrunk), "{shrunk}K");
    assert_eq!(
        h.sh("a", "cat /more | wc -c").1.trim(),
        (32 << 20).to_string()
    );
    // A pool holding guests is not deleted; delete takes each guest's image and mount.
    let err = h.fails(&["pool", "delete", "im"]);
    assert!(err.contains("holds guests a, b"), "{err}");
    h.ok(&["delete", "a", "--force"]);
    assert!(!image.exists());
    assert_eq!(mounts(&h).len(), 1, "{:?}", mounts(&h));
    h.ok(&["delete", "b", "--force"]);
    h.ok(&["pool", "delete", "im"]);
    assert_eq!(mounts(&h), Vec::<String>::new());
    assert_eq!(loops(&h), Vec::<String>::new());
    assert!(!pool_dir(&h).exists());
}

#[test]
fn image_pool_snapshots_and_clones_are_copies_of_a_frozen_image() {
    require_root!();
    let h = TestHost::new("imgsnap");
    h.ok(&["pool", "create", "im", "--driver", "image"]);
    h.build_busybox_in("g", "im", "64M");
    h.started("g");
    h.sh("g", "echo before > /etc/marker");
    // The guest writes all along: the snapshot is of a frozen, clean filesystem.
    h.sh(
        "g",
        "(while true; do date >> /var-log; sync; done) >/dev/null 2>&1 &",
    );
    assert_eq!(h.ok(&["snapshot", "create", "g", "first"]).trim(), "first");
    assert_eq!(h.info("g")["paused"], false);
    let snap = pool_dir(&h).join("snapshots/g/first.img");
    let fsck = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&snap)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "the snapshot is not clean: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&h.ok(&["snapshot", "list", "g", "--format", "json"])).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "first");
    h.sh("g", "echo after > /etc/marker; rm -f /bin/ls");
    let err = h.fails(&["snapshot", "restore", "g", "first"]);
    assert!(err.contains("stop it first"), "{err}");
    // A clone of the running guest: its files, its own identity.
    h.ok(&["clone", "g", "g2"]);
    assert_eq!(h.info("g")["state"], "running");
    assert_eq!(h.info("g")["paused"], false);
    let pid = h.started("g2");
    let ctx = h.info("g2")["context"].as_u64().unwrap();
    assert_ne!(ctx, h.info("g")["context"].as_u64().unwrap());
    assert_eq!(common::host_uid_of(pid), ctx as u32 * 65536);
    assert_eq!(h.sh("g2", "cat /etc/marker; hostname").1, "after\ng2\n");
    assert!((56 << 10..=64 << 10).contains(&df_inside(&h, "g2")));
    h.sh("g2", "echo changed > /etc/marker");
    assert_eq!(h.sh("g", "cat /etc/marker").1.trim(), "after");
    // Restored once stopped: the files of the snapshot.
    h.ok(&["kill", "g"]);
    h.ok(&["snapshot", "restore", "g", "first"]);
    h.started("g");
    assert_eq!(h.sh("g", "cat /etc/marker").1.trim(), "before");
    assert_eq!(h.sh("g", "test -e /bin/ls && echo back").1.trim(), "back");
    assert!(!pool_dir(&h).join("images/g.restoring").exists());
    // A guest's snapshots go with it.
    h.ok(&["delete", "g", "--force"]);
    assert!(!snap.exists());
    h.ok(&["delete", "g2", "--force"]);
    h.ok(&["pool", "delete", "im"]);
    assert_eq!(loops(&h), Vec::<String>::new());
}

#[test]
fn an_image_pool_volume_is_mounted_on_use() {
    require_root!();
    let h = TestHost::new("imgmount");
    h.ok(&["pool", "create", "im", "--driver", "image"]);
    h.build_busybox_in("g", "im", "32M");
    let volume = pool_dir(&h).join("guests/g");
    // As a host reboot leaves it: nothing mounted.
    let unmount = || {
        let st = std::process::Command::new("umount")
            .arg(&volume)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(mounts(&h), Vec::<String>::new());
    };
    unmount();
    assert!(row(&df(&h), "g")["limit"].as_u64().unwrap() > 20 << 20);
    unmount();
    h.started("g");
    assert!((24 << 10..=32 << 10).contains(&df_inside(&h, "g")));
    h.ok(&["delete", "g", "--force"]);
    h.ok(&["pool", "delete", "im"]);
    assert_eq!(loops(&h), Vec::<String>::new());
}

#[test]
fn bad_image_pool_input_is_refused_and_changes_nothing() {
    require_root!();
    let h = TestHost::new("imgbad");
    let missing = h.root.join("nope");
    let err = h.fails(&[
        "pool",
        "create",
        "im",
        "--driver",
        "image",
        "--source",
        missing.to_str().unwrap(),
    ]);
    assert!(err.contains("not a directory"), "{err}");
    assert!(!missing.exists());
    let err = h.fails(&["pool", "create", "im", "--driver", "image", "--size", "1G"]);
    assert!(err.contains("no size of its own"), "{err}");
    let err = h.fails(&["pool", "create", "im", "--driver", "zfs"]);
    assert!(err.contains("btrfs or image"), "{err}");
    let pools: Vec<serde_json::Value> =
        serde_json::from_str(&h.ok(&["pool", "list", "--format", "json"])).unwrap();
    assert_eq!(pools.len(), 1, "{pools:?}");
    assert!(!h.root.join("var/lib/hangar/pools/im").exists());
    // A directory of the administrator's: the images go there, and it stays.
    let srv = h.root.join("srv");
    std::fs::create_dir(&srv).unwrap();
    let src = srv.to_str().unwrap();
    h.ok(&["pool", "create", "im", "--driver", "image", "--source", src]);
    let err = h.fails(&[
        "pool", "create", "im2", "--driver", "image", "--source", src,
    ]);
    assert!(err.contains("holds images/ already"), "{err}");
    // Too small for any filesystem, or for the files being built: nothing is left.
    let err = h.fails(&[
        "build",
        "g",
        "-m",
        "busybox",
        "--pool",
        "im",
        "--disk-size",
        "8M",
    ]);
    assert!(err.contains("at least 16M"), "{err}");
    let tree = h.root.join("tree");
    std::fs::create_dir_all(tree.join("sbin")).unwrap();
    let noise: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("data"), noise).unwrap();
    let tar = h.root.join("big.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let err = h.fails(&[
        "build",
        "g",
        "-m",
        "tarball",
        "-t",
        tar.to_str().unwrap(),
        "--pool",
        "im",
        "--disk-size",
        "16M",
    ]);
    assert!(err.contains("do not fit in its disk (16M)"), "{err}");
    assert!(h.list().is_empty());
    assert_eq!(std::fs::read_dir(srv.join("images")).unwrap().count(), 0);
    assert_eq!(mounts(&h), Vec::<String>::new());
    assert_eq!(loops(&h), Vec::<String>::new());
    // Unknown pool.
    let err = h.fails(&["build", "g", "-m", "busybox", "--pool", "nope"]);
    assert!(err.contains("no pool named nope"), "{err}");
    h.ok(&["pool", "delete", "im"]);
    assert!(srv.is_dir());
    assert!(!srv.join("images").exists());
}

#[test]
fn what_a_snapshot_killed_half_way_left_frozen_is_thawed_by_the_next_command() {
    require_root!();
    let h = TestHost::new("imgthaw");
    h.ok(&["pool", "create", "im", "--driver", "image"]);
    h.build_busybox_in("g", "im", "32M");
    let volume = pool_dir(&h).join("guests/g");
    // As a snapshot killed while it copied the image leaves it: the guest frozen, and
    // its filesystem too.
    let cut_short = || {
        h.ok(&["pause", "g"]);
        let st = std::process::Command::new("fsfreeze")
            .arg("-f")
            .arg(&volume)
            .status()
            .unwrap();
        assert!(st.success());
    };
    // A freeze succeeds only on a filesystem that is not frozen (a write would hang).
    let thawed = || {
        let freeze = |flag: &str| {
            std::process::Command::new("fsfreeze")
                .arg(flag)
                .arg(&volume)
                .status()
                .unwrap()
                .success()
        };
        freeze("-f") && freeze("-u")
    };
    h.started("g");
    cut_short();
    h.ok(&["unpause", "g"]);
    assert!(thawed(), "unpause left the guest's filesystem frozen");
    assert_eq!(
        h.sh("g", "timeout 5 sh -c 'echo x > /f && sync' && echo ok")
            .1
            .trim(),
        "ok"
    );
    cut_short();
    h.ok(&["stop", "g", "-t", "2"]);
    assert_eq!(h.state("g"), "stopped");
    // A stopped guest's snapshot killed half-way: only its filesystem frozen. The next
    // command that uses the volume thaws it (a start would write into it, and wait for
    // ever, unkillable).
    let st = std::process::Command::new("fsfreeze")
        .arg("-f")
        .arg(&volume)
        .status()
        .unwrap();
    assert!(st.success());
    let mut start = h.cmd(&["start", "g"]).spawn().unwrap();
    let ended = wait_for(Duration::from_secs(20), || {
        start.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = std::process::Command::new("fsfreeze")
            .arg("-u")
            .arg(&volume)
            .status();
    }
    assert!(ended, "start waited on the frozen filesystem");
    assert!(start.wait().unwrap().success());
    assert!(thawed(), "start left the guest's filesystem frozen");
    h.ok(&["stop", "g", "-t", "2"]);
    h.ok(&["delete", "g"]);
    h.ok(&["pool", "delete", "im"]);
    assert_eq!(loops(&h), Vec::<String>::new());
}

/// A rename moves the image and its mount (a volume is a mount point, which rename(2)
/// refuses), every mount stacked at the old place goes, and a delete then leaves no
/// mount, however many were stacked.
#[test]
fn an_image_pool_guest_is_renamed_and_leaves_no_mount_behind() {
    require_root!();
    let h = TestHost::new("imgren");
    h.ok(&["pool", "create", "im", "--driver", "image"]);
    h.build_busybox_in("a", "im", "32M");
    h.started("a");
    h.sh("a", "echo kept > /marker; sync");
    h.ok(&["snapshot", "create", "a", "s"]);
    h.ok(&["kill", "a"]);
    h.ok(&["rename", "a", "b"]);
    let pool = pool_dir(&h);
    assert!(!pool.join("images/a.img").exists() && pool.join("images/b.img").exists());
    assert!(pool.join("snapshots/b/s.img").exists());
    assert!(!pool.join("guests/a").exists(), "a's mount point is left");
    h.started("b");
    assert_eq!(h.sh("b", "cat /marker").1, "kept\n");
    h.ok(&["kill", "b"]);
    // Mounted twice at its place (as a mount cut short may leave it): the rename
    // takes every mount along, none is left at the old place.
    let (from, to) = (pool.join("guests/b"), pool.join("guests/d"));
    let stacked = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&from)
        .arg(&from)
        .status()
        .unwrap();
    assert!(stacked.success());
    h.ok(&["rename", "b", "d"]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts.contains(&format!(" {} ", to.display())),
        "d is not mounted"
    );
    assert!(
        !mounts.contains(&format!(" {} ", from.display())),
        "{} is still mounted",
        from.display()
    );
    h.started("d");
    assert_eq!(h.sh("d", "cat /marker").1, "kept\n");
    h.ok(&["kill", "d"]);
    let stacked = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&to)
        .arg(&to)
        .status()
        .unwrap();
    assert!(stacked.success());
    h.ok(&["delete", "d", "--force"]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&pool.join("guests").display().to_string()),
        "a volume of the pool is still mounted"
    );
    h.ok(&["pool", "delete", "im"]);
    assert_eq!(loops(&h), Vec::<String>::new());
}

/// A build killed after its volume was mounted under the guest's name and before its
/// config was written leaves a mounted filesystem (and its loop device) that belongs to
/// no guest: `hangar repair` unmounts it, its files kept, and the next build of the
/// name makes a new one.
#[test]
fn repair_unmounts_the_volume_a_killed_build_left() {
    require_root!();
    let h = TestHost::new("imgleft");
    h.ok(&["pool", "create", "im", "--driver", "image"]);
    h.build_busybox_in("x", "im", "32M");
    // As the build would have left it just before its commit point.
    std::fs::remove_file(h.config_file("x")).unwrap();
    let volume = pool_dir(&h).join("guests/x");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {} ", volume.display()))
    };
    assert!(mounted());
    let report: serde_json::Value =
        serde_json::from_str(&h.ok(&["repair", "--format", "json"])).unwrap();
    assert_eq!(
        report["unmounted"],
        serde_json::json!([volume.display().to_string()]),
        "{report}"
    );
    assert!(!mounted(), "still mounted after repair");
    assert!(pool_dir(&h).join("images/x.img").exists(), "its files went");
    let again: serde_json::Value =
        serde_json::from_str(&h.ok(&["repair", "--format", "json"])).unwrap();
    assert_eq!(again["unmounted"], serde_json::json!([]), "{again}");
    h.build_busybox_in("x", "im", "32M");
    h.started("x");
    h.ok(&["delete", "x", "--force"]);
    h.ok(&["pool", "delete", "im"]);
    assert_eq!(loops(&h), Vec::<String>::new());
}
