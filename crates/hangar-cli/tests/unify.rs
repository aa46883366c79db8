//! `hangar unify`: identical files of guests in a btrfs pool share their blocks, a
//! write in one guest never changes another's file, and a second run after one guest
//! rewrote its files (as an upgrade does) shares them again. Needs root.

mod common;
use common::TestHost;
use std::path::{Path, PathBuf};

fn unify(h: &TestHost, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["unify"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "json"]);
    serde_json::from_str(&h.ok(&a)).unwrap()
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// Bytes the filesystem at `dir` uses, after a sync.
fn used(dir: &Path) -> u64 {
    let d = std::fs::File::open(dir).unwrap();
    nix::unistd::syncfs(&d).unwrap();
    let s = nix::sys::statvfs::statvfs(dir).unwrap();
    (s.blocks() - s.blocks_free()) * s.fragment_size()
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn two_debian_guests_share_most_of_their_space_and_stay_independent() {
    require_root!();
    let h = TestHost::new("unify");
    h.ok(&["pool", "create", "fast", "--size", "2G"]);
    let pool: PathBuf = h.root.join("var/lib/hangar/pools/fast");
    let empty = used(&pool);
    for g in ["d1", "d2"] {
        h.ok(&[
            "build",
            g,
            "-m",
            "debootstrap",
            "--pool",
            "fast",
            "--network",
            "none",
        ]);
    }
    let two = used(&pool) - empty;
    let bash = |g: &str| h.rootfs(g).join("usr/bin/bash");
    let original = sha256(&bash("d1"));
    assert_eq!(sha256(&bash("d2")), original);

    let first = unify(&h, &["d1", "d2"]);
    assert_eq!(first.len(), 1, "{first:?}");
    let r = &first[0];
    assert_eq!(r["pool"], "fast");
    assert!(num(r, "shared") > 1000, "{r}");
    let after = used(&pool) - empty;
    let freed = two - after;
    println!(
        "unify: two Debian guests used {} MiB, now {} MiB: {} MiB freed ({} reported), {} files shared",
        two >> 20,
        after >> 20,
        freed >> 20,
        num(r, "freed") >> 20,
        num(r, "shared")
    );
    // Most of one guest's space: the second copy is gone but for small files and
    // metadata, which are each guest's own.
    assert!(
        freed * 10 >= two / 2 * 7,
        "freed {freed} of {two} bytes (two guests)"
    );
    assert!(num(r, "freed") * 10 >= freed * 9, "{r}");

    // A write in one guest (bash's bytes changed in place, from inside) leaves the
    // other's file as it was.
    h.started("d1");
    let (code, out) = h.sh(
        "d1",
        "printf XX | dd of=/usr/bin/bash bs=1 seek=4096 conv=notrunc 2>&1",
    );
    assert_eq!(code, 0, "{out}");
    assert_ne!(sha256(&bash("d1")), original, "the write did not land");
    assert_eq!(sha256(&bash("d2")), original, "d2's bash changed with d1's");

    // An upgrade rewrites files whole, with the same contents, into new blocks (dpkg
    // writes FILE.dpkg-new and renames it): the guests drift apart ...
    let (code, out) = h.sh(
        "d1",
        "cd /usr/lib/x86_64-linux-gnu && n=0 && for f in *.so.*; do \
         [ -f \"$f\" ] && [ ! -L \"$f\" ] || continue; \
         cp -p --reflink=never \"$f\" \"$f.dpkg-new\" && mv \"$f.dpkg-new\" \"$f\" && n=$((n+1)); done; echo $n",
    );
    assert_eq!(code, 0, "{out}");
    let rewritten: u64 = out.trim().parse().unwrap();
    assert!(rewritten > 20, "{out}");
    let drifted = used(&pool) - empty;
    assert!(drifted > after + (1 << 20), "the rewrite took no space");
    // ... and a second run brings them together again, the guest still running.
    let second = unify(&h, &["--all"]);
    let r = &second[0];
    assert!(num(r, "shared") >= rewritten, "{r}");
    assert!(num(r, "already") > 1000, "{r}");
    assert!(
        used(&pool) - empty < drifted,
        "nothing freed by the second run"
    );
    assert_eq!(sha256(&bash("d2")), original);
    assert_eq!(h.sh("d1", "echo alive").1.trim(), "alive");
    // A third finds nothing new.
    let third = unify(&h, &["d2", "d1"]);
    assert_eq!(num(&third[0], "shared"), 0, "{:?}", third[0]);
}

#[test]
fn unify_refuses_what_cannot_share_and_changes_nothing() {
    require_root!();
    let h = TestHost::new("unifybad");
    h.ok(&["pool", "create", "fast", "--size", "256M"]);
    h.ok(&["build", "a", "-m", "busybox", "--pool", "fast"]);
    h.build_busybox("b");
    h.build_busybox("c");
    let before = h.snapshot();
    // The dir pool of these machines is on ext4: no shared extents.
    let e = h.fails(&["unify", "b", "c"]);
    assert!(
        e.contains("without shared extents") && e.contains("btrfs"),
        "{e}"
    );
    let e = h.fails(&["unify", "a", "b"]);
    assert!(e.contains("one pool"), "{e}");
    let e = h.fails(&["unify", "a", "nosuch"]);
    assert!(e.contains("nosuch"), "{e}");
    let e = h.fails(&["unify", "a/.."]);
    assert!(e.contains("name"), "{e}");
    assert_eq!(h.snapshot(), before, "a refused unify changed files");
    // --all passes over the pool that cannot share and does the one that can.
    let all = unify(&h, &["--all"]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["pool"], "fast");
}
