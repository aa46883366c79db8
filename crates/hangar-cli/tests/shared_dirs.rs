//! Shared directories end to end: a host directory shared by two running guests (one
//! from its config at start, one attached live), owners on both sides, read-only,
//! detach, restart, and the ways out of a guest that must stay shut. Needs root.

mod common;
use common::TestHost;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A host directory under the test's root owned by host uid 1000, holding `f` (uid
/// 1000), with a sibling file no guest may see.
fn host_share(h: &TestHost) -> PathBuf {
    let share = h.root.join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("f"), "from the host\n").unwrap();
    for p in [&share, &share.join("f")] {
        std::os::unix::fs::chown(p, Some(1000), Some(1000)).unwrap();
    }
    std::fs::write(h.root.join("sibling"), "next to the share\n").unwrap();
    share
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Lines of the host's mount table that name `p`.
fn host_mounts_of(p: &Path) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(s(p)))
        .count()
}

#[test]
fn a_directory_shared_at_start_and_live_keeps_its_owners_on_both_sides() {
    require_root!();
    let h = TestHost::new("shdir");
    let share = host_share(&h);
    h.build_busybox("a");
    h.build_busybox("b");
    // a gets it from its config, at start.
    let out = h.run(&["attach", "a", "dir", s(&share), "/home/u"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot mount idmapped"), "{err}");
        assert!(!h.ok(&["config", "show", "a"]).contains("[[dir]]"));
        eprintln!(
            "PATH: {} cannot be idmapped here: refused, {err}",
            share.display()
        );
        return;
    }
    eprintln!(
        "PATH: {} can be idmapped: shared by idmapped bind mounts",
        share.display()
    );
    assert!(
        h.ok(&["config", "show", "a"])
            .contains("path = \"/home/u\"")
    );
    h.started("a");
    h.started("b");
    // b gets it live, read-only. A writable one on a mount without nosuid (the test
    // root's) is attached with a note on what guest root's files are on the host.
    let out = h.run(&["attach", "b", "dir", s(&share), "/home/u", "readonly"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let out = h.run(&["attach", "b", "dir", s(&share), "/srv/rw"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without nosuid"),
        "{out:?}"
    );
    h.ok(&["detach", "b", "dir", "/srv/rw"]);
    for g in ["a", "b"] {
        assert_eq!(
            h.sh(g, "stat -c %u:%g /home/u/f").1.trim(),
            "1000:1000",
            "{g}"
        );
    }
    // Guest uid 1000 of a writes; b sees the file as 1000's, and so does the host.
    let (code, _) = h.sh(
        "a",
        "echo 'u:x:1000:1000::/:/bin/sh' >> /etc/passwd && su u -c 'echo from-a > /home/u/new'",
    );
    assert_eq!(code, 0);
    assert_eq!(
        h.sh("b", "cat /home/u/new; stat -c %u /home/u/new").1,
        "from-a\n1000\n"
    );
    assert_eq!(std::fs::metadata(share.join("new")).unwrap().uid(), 1000);
    // Read-only in b: writes fail with EROFS, and root cannot remount it writable.
    let out = h
        .sh(
            "b",
            "echo x > /home/u/no 2>&1; mount -o remount,rw /home/u 2>&1 && echo REMOUNTED; \
             mount -o remount,bind,rw /home/u 2>&1 && echo REMOUNTED; touch /home/u/no 2>&1",
        )
        .1;
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("REMOUNTED"), "{out}");
    assert!(!share.join("no").exists());
    // No way up: above the shared directory is the guest's own tree.
    let up = h.sh("a", "ls -A /home/u/..; ls -A /home/u/../..").1;
    assert!(up.contains("u\n") && up.contains("bin"), "{up}");
    assert!(!up.contains("sibling") && !up.contains("share"), "{up}");
    // Unmounted from a new mount namespace of guest root's own, it shows the guest's
    // own empty directory, nothing of the host's; the guest's namespace keeps it.
    let below = h
        .sh(
            "a",
            "unshare -m sh -c 'umount /home/u; ls -A /home/u; echo end'",
        )
        .1;
    assert_eq!(below, "end\n", "{below}");
    assert_eq!(h.sh("a", "cat /home/u/f").1, "from the host\n");
    // Kept by a restart, the live one too (it is in b's config).
    h.ok(&["restart", "a"]);
    h.ok(&["restart", "b"]);
    assert_eq!(h.sh("a", "cat /home/u/new").1, "from-a\n");
    assert!(h.sh("b", "touch /home/u/no 2>&1").1.contains("Read-only"));
    // Detached live: gone from b and from its config; the host's files stay.
    h.ok(&["detach", "b", "dir", "/home/u"]);
    assert_ne!(h.sh("b", "test -e /home/u/f").0, 0);
    assert!(!h.ok(&["config", "show", "b"]).contains("[[dir]]"));
    assert!(share.join("f").exists() && share.join("new").exists());
    assert_eq!(h.sh("a", "cat /home/u/f").1, "from the host\n");
    h.ok(&["detach", "a", "dir", "/home/u"]);
    assert_ne!(h.sh("a", "test -e /home/u/f").0, 0);
}

#[test]
fn escapes_and_bad_input_are_refused_and_change_nothing() {
    require_root!();
    let h = TestHost::new("shdirbad");
    let share = host_share(&h);
    h.build_busybox("g");
    h.build_busybox("o");
    h.started("g");
    let (code, _) = h.sh(
        "g",
        "ln -s /../../../.. /up && ln -s /proc/1/root /magic && mkdir /real && touch /afile",
    );
    assert_eq!(code, 0);
    std::os::unix::fs::symlink(h.root.join("var/lib/hangar"), h.root.join("state-link")).unwrap();
    std::fs::write(h.root.join("a-file"), "").unwrap();
    let config = std::fs::read_to_string(h.config_file("g")).unwrap();
    let mounts = h.sh("g", "cat /proc/self/mountinfo").1;
    let etc = h.root.join("etc/hangar");
    let other = h.rootfs("o");
    let link = h.root.join("state-link");
    let missing = h.root.join("missing");
    let file = h.root.join("a-file");
    let cases = [
        ("/", "/x", "would give the guest the whole host"),
        ("/proc", "/x", "/proc is the host kernel's"),
        (s(&etc), "/x", "hangar's configuration"),
        (s(&other), "/x", "hangar's guests and state"),
        (s(&h.root), "/x", "it holds hangar's"),
        (s(&link), "/x", "hangar's guests and state"),
        ("relative", "/x", "must be an absolute path"),
        (s(&missing), "/x", "does not exist"),
        (s(&file), "/x", "is not a directory"),
        (s(&share), "/x/../etc", "\"..\" component"),
        (s(&share), "x", "must be an absolute path"),
        (s(&share), "/", "whole root"),
        (s(&share), "/proc/x", "in /proc"),
        (s(&share), "/dev/x", "in /dev"),
        (s(&share), "/up/tmp", "/up is a symbolic link"),
        (s(&share), "/magic", "/magic is a symbolic link"),
        (
            s(&share),
            "/afile",
            "/afile in the guest is not a directory",
        ),
    ];
    for (host_path, path, needle) in cases {
        let err = h.fails(&["attach", "g", "dir", host_path, path]);
        assert!(err.contains(needle), "{host_path} {path}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // Attached once; the same place again, or inside it, is refused.
    h.ok(&["attach", "g", "dir", s(&share), "/real"]);
    let err = h.fails(&["attach", "g", "dir", s(&share), "/real"]);
    assert!(err.contains("attached at /real already"), "{err}");
    let err = h.fails(&["attach", "g", "dir", s(&share), "/real/sub"]);
    assert!(err.contains("overlaps"), "{err}");
    h.ok(&["detach", "g", "dir", "/real"]);
    for path in ["/real", "/nothing"] {
        let err = h.fails(&["detach", "g", "dir", path]);
        assert!(
            err.contains(&format!("no shared directory at {path}")),
            "{err}"
        );
    }
    // Nothing changed: the config, the guest's mounts, the host's.
    assert_eq!(std::fs::read_to_string(h.config_file("g")).unwrap(), config);
    assert_eq!(h.sh("g", "cat /proc/self/mountinfo").1, mounts);
    assert_eq!(host_mounts_of(&share), 0);
    assert_eq!(h.sh("g", "ls -A /real").1, "");
}

#[test]
fn a_filesystem_that_cannot_be_idmapped_is_refused_with_its_name() {
    require_root!();
    let h = TestHost::new("shdirov");
    let ov = h.root.join("ov");
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(ov.join(d)).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        ov.join("lower").display(),
        ov.join("upper").display(),
        ov.join("work").display()
    );
    let merged = ov.join("merged");
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts, s(&merged)])
        .status()
        .unwrap();
    assert!(st.success(), "mounting an overlayfs to share");
    h.build_busybox("g");
    let out = h.run(&["attach", "g", "dir", s(&merged), "/ov"]);
    if out.status.success() {
        eprintln!("PATH: this kernel idmaps overlayfs: it is shared like any directory");
        h.started("g");
        assert_eq!(h.sh("g", "stat -c %u /ov").1.trim(), "0");
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("PATH: overlayfs cannot be idmapped here: refused with the reason");
    assert!(err.contains("is on overlayfs"), "{err}");
    assert!(err.contains("ext4, btrfs, xfs or tmpfs"), "{err}");
    assert!(!h.ok(&["config", "show", "g"]).contains("[[dir]]"));
}

#[test]
fn a_privileged_guest_gets_a_plain_bind() {
    require_root!();
    let h = TestHost::new("shdirpriv");
    let share = host_share(&h);
    h.ok(&["build", "p", "-m", "busybox", "--privileged"]);
    h.started("p");
    h.ok(&["attach", "p", "dir", s(&share), "/srv/share"]);
    let line = h.sh("p", "grep ' /srv/share ' /proc/self/mountinfo").1;
    assert!(line.contains("nosuid,nodev"), "{line}");
    assert!(!line.contains("idmapped"), "{line}");
    assert_eq!(h.sh("p", "stat -c %u /srv/share/f").1.trim(), "1000");
    h.ok(&["detach", "p", "dir", "/srv/share"]);
    assert_ne!(h.sh("p", "test -e /srv/share/f").0, 0);
}
