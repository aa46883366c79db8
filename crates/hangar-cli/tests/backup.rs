//! Backups end to end: `hangar export` and `hangar import` of busybox guests, on the
//! dir pool and a btrfs pool, through files and pipes, and archives that are cut
//! short, damaged, not ours or lead out of the guest. Needs root.

mod common;
use common::TestHost;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn base_of(h: &TestHost, guest: &str) -> u32 {
    h.info(guest)["context"].as_u64().unwrap() as u32 * 65536
}

/// An extended attribute's value with the host ids inside it (a v3 capability's root,
/// an ACL's users and groups) made the guest's own, by taking `base` off.
fn guest_xattr(name: &str, value: &[u8], base: u32) -> String {
    let mut v = value.to_vec();
    let off = |v: &mut Vec<u8>, at: usize| {
        let id = u32::from_le_bytes(v[at..at + 4].try_into().unwrap());
        v[at..at + 4].copy_from_slice(&id.wrapping_sub(base).to_le_bytes());
    };
    if name == "security.capability" && v.len() == 24 {
        off(&mut v, 20);
    }
    if name == "system.posix_acl_access" {
        for at in (4..v.len()).step_by(8) {
            if matches!(v[at], 0x02 | 0x08) {
                off(&mut v, at + 4);
            }
        }
    }
    format!("{name}={}", hex(&v))
}

/// Every file under `rootfs` as the guest sees it: type, mode, guest uid and gid,
/// size, SHA-256 of its contents, symlink target, the first path of its hard links,
/// extended attributes, mtime.
fn listing(rootfs: &Path, base: u32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(rootfs).unwrap().display().to_string();
        let ft = m.file_type();
        let content = if ft.is_file() {
            hex(&Sha256::digest(std::fs::read(&p).unwrap()))
        } else if ft.is_symlink() {
            std::fs::read_link(&p).unwrap().display().to_string()
        } else {
            String::new()
        };
        let first = if !ft.is_dir() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone()
        } else {
            String::new()
        };
        let mut xattrs: Vec<String> = xattr::list(&p)
            .unwrap()
            .map(|n| {
                let v = xattr::get(&p, &n).unwrap().unwrap_or_default();
                guest_xattr(n.to_str().unwrap(), &v, base)
            })
            .collect();
        xattrs.sort();
        out.insert(
            rel,
            format!(
                "{:o} {} {} {} {content} link:{first} {} mtime:{}",
                m.mode(),
                m.uid().wrapping_sub(base),
                m.gid().wrapping_sub(base),
                if ft.is_dir() { 0 } else { m.len() },
                xattrs.join(","),
                m.mtime()
            ),
        );
        if ft.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            stack.extend(names.into_iter().rev());
        }
    }
    out
}

/// A config as a table, without the fields that make a guest's identity.
fn config_sans_identity(h: &TestHost, guest: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(&h.ok(&["config", "show", guest])).unwrap();
    for k in ["name", "context", "hostname", "nic"] {
        t.remove(k);
    }
    t
}

/// Files a guest made that an archive must keep: a user's file, a setuid program, a
/// symlink, a hard link, a fifo; and from the host, as the guest's own tools would
/// have set them, a user.* attribute, a file capability of the guest's namespace and
/// an ACL naming a guest user.
fn make_files(h: &TestHost, guest: &str) {
    let (code, out) = h.sh(
        guest,
        "mkdir -p /home/alice && echo secret > /home/alice/notes && \
         chown -R 1000:1000 /home/alice && chmod 700 /home/alice && \
         cp /bin/busybox /bin/su-copy && chmod 4755 /bin/su-copy && \
         ln -s /home/alice/notes /etc/notes-link && ln /etc/passwd /etc/passwd-hard && \
         mkfifo /run-fifo && echo done",
    );
    assert_eq!((code, out.trim()), (0, "done"));
    let base = base_of(h, guest);
    let rootfs = h.rootfs(guest);
    xattr::set(
        rootfs.join("home/alice/notes"),
        "user.origin",
        b"alice's laptop",
    )
    .unwrap();
    // A v3 capability (cap_net_raw) for the guest's own namespace, as setcap inside
    // the guest writes it: its root is the guest's root, host uid `base`.
    let mut cap = vec![0u8; 24];
    cap[0..4].copy_from_slice(&0x0300_0001u32.to_le_bytes());
    cap[4..8].copy_from_slice(&(1u32 << 13).to_le_bytes());
    cap[20..24].copy_from_slice(&base.to_le_bytes());
    xattr::set(rootfs.join("bin/su-copy"), "security.capability", &cap).unwrap();
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, base + 1000),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(id.to_le_bytes());
    }
    xattr::set(rootfs.join("etc/passwd"), "system.posix_acl_access", &acl).unwrap();
}

#[test]
fn export_delete_import_gives_back_the_same_files_and_config() {
    require_root!();
    let h = TestHost::new("backup");
    h.build_busybox("g");
    h.started("g");
    make_files(&h, "g");
    h.ok(&["stop", "g", "-t", "5"]);
    let before = listing(&h.rootfs("g"), base_of(&h, "g"));
    let cfg_before = config_sans_identity(&h, "g");
    let file = h.root.join("g.hangar");
    h.ok(&["export", "g", file.to_str().unwrap()]);
    assert_eq!(
        std::fs::metadata(&file).unwrap().mode() & 0o777,
        0o600,
        "an archive of a guest's files is for root only"
    );
    h.ok(&["delete", "g"]);
    assert!(h.list().is_empty());
    h.ok(&["import", file.to_str().unwrap()]);
    let after = listing(&h.rootfs("g"), base_of(&h, "g"));
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, l)| after.get(*p) != Some(*l))
        .map(|(p, l)| format!("{p}: {l} -> {:?}", after.get(p)))
        .collect();
    assert!(changed.is_empty(), "{changed:#?}");
    assert_eq!(before.len(), after.len());
    assert!(before["home/alice/notes"].contains(" 1000 1000 "));
    assert!(before["bin/su-copy"].starts_with("104755 "));
    assert!(before["etc/passwd-hard"].contains("link:etc/passwd"));
    assert!(before["home/alice/notes"].contains("user.origin="));
    assert!(before["bin/su-copy"].contains("security.capability="));
    assert_eq!(config_sans_identity(&h, "g"), cfg_before);
    // The guest runs from its archive, as itself.
    let pid = h.started("g");
    assert_eq!(common::host_uid_of(pid), base_of(&h, "g"));
    assert_eq!(
        h.sh(
            "g",
            "cat /home/alice/notes; stat -c '%u %a' /home/alice/notes /bin/su-copy"
        )
        .1,
        "secret\n1000 644\n0 4755\n"
    );
}

#[test]
fn an_import_beside_its_running_original_gets_its_own_identity_and_starts() {
    require_root!();
    let h = TestHost::new("bkclone");
    h.ok(&["network", "create", "lan", "--ipv4", "10.240.97.1/24"]);
    h.ok(&["build", "web", "-m", "busybox", "--network", "lan"]);
    h.started("web");
    h.sh("web", "mkdir -p /srv && echo payload > /srv/data");
    let file = h.root.join("web.hangar");
    let out = h.run(&["export", "web", file.to_str().unwrap()]);
    assert!(out.status.success());
    // On the dir pool the guest was frozen while its files were read, and says so;
    // it runs on, thawed.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web was frozen for"), "{err}");
    assert_eq!(h.info("web")["state"], "running");
    assert_eq!(h.info("web")["paused"], false);
    // The original exists: under its own name, refused, nothing changed.
    let dirs = ["etc/hangar/guests", "var/lib/hangar/guests"];
    let entries = || -> Vec<PathBuf> {
        dirs.iter()
            .flat_map(|d| std::fs::read_dir(h.root.join(d)).unwrap().flatten())
            .map(|e| e.path())
            .collect()
    };
    let files = entries();
    let err = h.fails(&["import", file.to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(entries(), files);
    h.ok(&["import", file.to_str().unwrap(), "web2"]);
    let (a, b) = (h.info("web"), h.info("web2"));
    assert_ne!(a["context"], b["context"]);
    assert_eq!(b["hostname"], "web2");
    let cfg = |g: &str| -> toml::Value { toml::from_str(&h.ok(&["config", "show", g])).unwrap() };
    let (ca, cb) = (cfg("web"), cfg("web2"));
    assert_ne!(ca["nic"][0]["ipv4"], cb["nic"][0]["ipv4"]);
    assert_ne!(ca["nic"][0]["mac"], cb["nic"][0]["mac"]);
    assert_eq!(cb["nic"][0]["network"].as_str(), Some("lan"));
    let pid = h.started("web2");
    assert_eq!(common::host_uid_of(pid), base_of(&h, "web2"));
    assert_eq!(h.sh("web2", "cat /srv/data; hostname").1, "payload\nweb2\n");
    let ip = h.nic_address("web", "eth0");
    let ping = format!("ping -c1 -W2 {ip} >/dev/null && echo ok");
    assert_eq!(h.sh("web2", &ping).1.trim(), "ok");
}

#[test]
fn an_export_to_stdout_pipes_into_an_import_from_stdin() {
    require_root!();
    let h = TestHost::new("bkpipe");
    h.build_busybox("src");
    h.started("src");
    h.sh("src", "echo piped > /etc/marker");
    let mut export = h.cmd(&["export", "src", "-"]);
    let mut export = export
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pipe = export.stdout.take().unwrap();
    let import = h
        .cmd(&["import", "-", "dst"])
        .stdin(Stdio::from(pipe))
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success());
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    // Not a terminal: no progress bar, no chatter.
    assert_eq!(String::from_utf8_lossy(&import.stderr), "");
    assert_eq!(h.info("src")["state"], "running");
    h.started("dst");
    assert_eq!(h.sh("dst", "cat /etc/marker").1, "piped\n");
}

/// Everything an import may leave: the tree of the root (configs, volumes, build
/// dirs) and this root's entries in the host's context registry.
fn traces(h: &TestHost) -> (Vec<PathBuf>, Vec<String>) {
    let registry = std::fs::read_dir("/var/lib/hangar/contexts")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(h.root.to_str().unwrap())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    (h.snapshot(), registry)
}

fn refused(h: &TestHost, file: &Path, why: &str) {
    let before = traces(h);
    let err = h.fails(&["import", file.to_str().unwrap(), "copy"]);
    assert!(err.contains(why), "{}: {err}", file.display());
    assert_eq!(traces(h), before, "{} left something", file.display());
}

#[test]
fn archives_cut_short_damaged_or_not_ours_are_refused_and_leave_nothing() {
    require_root!();
    let h = TestHost::new("bkbad");
    h.build_busybox("g");
    let good = h.root.join("good.hangar");
    h.ok(&["export", "g", good.to_str().unwrap()]);
    let bytes = std::fs::read(&good).unwrap();
    let at = |name: &str, data: &[u8]| {
        let p = h.root.join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    refused(&h, &at("half", &bytes[..bytes.len() / 2]), "cut short");
    refused(&h, &at("tail", &bytes[..bytes.len() - 10]), "cut short");
    for offset in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 40] {
        let mut flipped = bytes.clone();
        flipped[offset] ^= 0x10;
        refused(&h, &at("flipped", &flipped), "damaged");
    }
    refused(&h, &at("text", b"hello, world\n"), "not a hangar export");
    refused(&h, &at("empty", b""), "empty");
    // A tar.zst of something else.
    let mut tar = tar::Builder::new(vec![]);
    let mut hd = tar::Header::new_ustar();
    hd.set_size(3);
    hd.set_cksum();
    tar.append_data(&mut hd, "etc/passwd", &b"x:0"[..]).unwrap();
    let other = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
    refused(&h, &at("other", &other), "not a hangar export");
    refused(&h, &h.root.join("missing"), "No such file");
    // The good one still imports.
    h.ok(&["import", good.to_str().unwrap(), "copy"]);
    assert_eq!(h.list().len(), 2);
}

/// A member of a crafted archive: path, tar type, link target, data.
type Raw<'a> = (&'a [u8], u8, &'a [u8], &'a [u8]);

/// A hangar archive around `members` (name, tar type, link target, data) with a
/// correct checksum, written the way `hangar export` writes one, and the manifest
/// and config of `good`.
fn crafted(h: &TestHost, good: &Path, name: &str, members: &[Raw]) -> PathBuf {
    let bytes = std::fs::read(good).unwrap();
    let mut ar = tar::Archive::new(zstd::Decoder::new(&bytes[..]).unwrap());
    let mut head = vec![];
    for e in ar.entries().unwrap().take(2) {
        let mut e = e.unwrap();
        let mut data = vec![];
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        head.push((e.path().unwrap().into_owned(), data));
    }
    let mut tar = tar::Builder::new(vec![]);
    for (path, data) in &head {
        let mut hd = tar::Header::new_ustar();
        hd.set_size(data.len() as u64);
        hd.set_mode(0o600);
        hd.set_cksum();
        tar.append_data(&mut hd, path, &data[..]).unwrap();
    }
    for (path, kind, link, data) in members {
        let mut hd = tar::Header::new_ustar();
        hd.as_old_mut().name[..path.len()].copy_from_slice(path);
        hd.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        hd.set_entry_type(tar::EntryType::new(*kind));
        hd.set_mode(0o755);
        hd.set_uid(0);
        hd.set_gid(0);
        hd.set_mtime(0);
        hd.set_size(data.len() as u64);
        hd.set_cksum();
        tar.append(&hd, *data).unwrap();
    }
    let digest = hex(&Sha256::digest(tar.get_ref()));
    let mut hd = tar::Header::new_ustar();
    hd.set_size(65);
    hd.set_cksum();
    tar.append_data(
        &mut hd,
        "hangar-export.sha256",
        format!("{digest}\n").as_bytes(),
    )
    .unwrap();
    let raw = tar.into_inner().unwrap();
    let p = h.root.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&zstd::encode_all(&raw[..], 3).unwrap())
        .unwrap();
    p
}

#[test]
fn archives_with_paths_leading_out_of_the_guest_are_refused() {
    require_root!();
    let h = TestHost::new("bkpath");
    h.build_busybox("g");
    let good = h.root.join("good.hangar");
    h.ok(&["export", "g", good.to_str().unwrap()]);
    let outside = h.root.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out = outside.to_str().unwrap().as_bytes();
    let rootfs: Raw = (b"volume/rootfs", b'5', b"", b"");
    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        (
            "dotdot",
            vec![rootfs, (b"volume/rootfs/../../../../evil", b'0', b"", b"x")],
            "`..`",
        ),
        (
            "absolute",
            vec![rootfs, (b"/tmp/evil", b'0', b"", b"x")],
            "absolute",
        ),
        (
            "through-symlink",
            vec![
                rootfs,
                (b"volume/rootfs/up", b'2', out, b""),
                (b"volume/rootfs/up/evil", b'0', b"", b"x"),
            ],
            "symlink",
        ),
        (
            "hardlink-out",
            vec![rootfs, (b"volume/rootfs/pw", b'1', b"/etc/passwd", b"")],
            "hard link",
        ),
        (
            "stranger",
            vec![rootfs, (b"hangar-export.json", b'0', b"", b"{}")],
            "second manifest",
        ),
    ];
    for (name, members, why) in cases {
        let file = crafted(&h, &good, name, &members);
        refused(&h, &file, why);
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside the guest"
    );
    // The same builder with harmless members imports: what was refused was the path.
    // Its /etc/hostname leads to a host file: renamed, the guest gets its new
    // hostname, but never in that host file.
    let victim = outside.join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    let victim_path = victim.to_str().unwrap().as_bytes();
    let file = crafted(
        &h,
        &good,
        "fine",
        &[
            rootfs,
            (b"volume/rootfs/sbin", b'5', b"", b""),
            (b"volume/rootfs/sbin/init", b'0', b"", b"#!/bin/sh\n"),
            (b"volume/rootfs/etc", b'5', b"", b""),
            (b"volume/rootfs/etc/hostname", b'2', victim_path, b""),
        ],
    );
    let out = h.run(&["import", file.to_str().unwrap(), "copy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The link is followed as the guest would follow it: inside its own root.
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    assert_eq!(h.info("copy")["hostname"], "copy");
}

#[test]
fn bad_export_and_import_input_is_refused_and_changes_nothing() {
    require_root!();
    let h = TestHost::new("bkinput");
    h.build_busybox("g");
    let file = h.root.join("g.hangar");
    let f = file.to_str().unwrap();
    let before = traces(&h);
    assert!(
        h.fails(&["export", "nope", f])
            .contains("no guest named nope")
    );
    assert!(!file.exists(), "a failed export left its file");
    std::fs::write(&file, b"keep me").unwrap();
    let err = h.fails(&["export", "g", f]);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let err = h.fails(&["export", "g", h.root.to_str().unwrap()]);
    assert!(err.contains("is a directory"), "{err}");
    h.ok(&["export", "g", f, "--force"]);
    let tmp: Vec<_> = std::fs::read_dir(&h.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(tmp.is_empty(), "partial files left: {tmp:?}");
    let mut before = before;
    before.0.push(file.clone());
    before.0.sort();
    assert_eq!(traces(&h), before);
    let err = h.fails(&["import", f, "g", "--pool", "nope"]);
    assert!(err.contains("already exists"), "{err}");
    let err = h.fails(&["import", f, "other", "--pool", "nope"]);
    assert!(err.contains("no pool named nope"), "{err}");
    let ctx = h.info("g")["context"].to_string();
    let err = h.fails(&["import", f, "other", "--context", &ctx]);
    assert!(err.contains("already used"), "{err}");
    let err = h.fails(&["import", f, "Bad_Name"]);
    assert!(err.contains("invalid guest name"), "{err}");
    assert_eq!(traces(&h), before);
}

#[test]
fn a_btrfs_guest_and_its_snapshots_come_back_and_move_to_the_dir_pool() {
    require_root!();
    let h = TestHost::new("bkbtrfs");
    h.ok(&["pool", "create", "fast", "--size", "256M"]);
    h.build_busybox_in("b", "fast", "100M");
    h.started("b");
    h.sh("b", "echo first > /etc/marker");
    h.ok(&["snapshot", "create", "b", "s1"]);
    h.sh("b", "echo second > /etc/marker");
    let snaps = |g: &str| -> Vec<serde_json::Value> {
        serde_json::from_str(&h.ok(&["snapshot", "list", g, "--format", "json"])).unwrap()
    };
    let s1 = snaps("b");
    let file = h.root.join("b.hangar");
    let out = h.run(&["export", "b", file.to_str().unwrap(), "--snapshots"]);
    assert!(out.status.success());
    // Read from a snapshot of its own, taken in an instant and gone after.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("frozen"));
    assert_eq!(h.info("b")["paused"], false);
    let left: Vec<_> = std::fs::read_dir(h.root.join("var/lib/hangar/pools/fast/snapshots/b"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["s1"]);
    h.ok(&["delete", "b", "--force"]);
    h.ok(&["import", file.to_str().unwrap()]);
    assert!(h.ok(&["config", "show", "b"]).contains("pool = \"fast\""));
    let df: Vec<serde_json::Value> =
        serde_json::from_str(&h.ok(&["df", "--format", "json"])).unwrap();
    assert_eq!(
        df.iter().find(|r| r["name"] == "b").unwrap()["limit"],
        100u64 << 20
    );
    assert_eq!(snaps("b"), s1);
    h.started("b");
    assert_eq!(h.sh("b", "cat /etc/marker").1, "second\n");
    h.ok(&["kill", "b"]);
    h.ok(&["snapshot", "restore", "b", "s1"]);
    h.started("b");
    assert_eq!(h.sh("b", "cat /etc/marker").1, "first\n");
    // Into the dir pool, under another name, snapshots and all.
    h.ok(&["import", file.to_str().unwrap(), "d", "--pool", "default"]);
    assert!(!h.ok(&["config", "show", "d"]).contains("pool ="));
    assert_eq!(snaps("d"), s1);
    h.started("d");
    assert_eq!(h.sh("d", "cat /etc/marker; hostname").1, "second\nd\n");
    h.ok(&["kill", "d"]);
    h.ok(&["snapshot", "restore", "d", "s1"]);
    h.started("d");
    assert_eq!(h.sh("d", "cat /etc/marker").1, "first\n");
    for g in ["b", "d"] {
        h.ok(&["delete", g, "--force"]);
    }
    h.ok(&["pool", "delete", "fast"]);
}

#[test]
fn an_unprivileged_import_gets_no_host_device_and_no_host_wide_capability() {
    require_root!();
    let h = TestHost::new("bkdev");
    h.build_busybox("g");
    // What an archive may hold (made here from the host, as a tarball build could):
    // a block device node, a harmless character device, a capability for every user
    // namespace (version 2).
    let rootfs = h.rootfs("g");
    let base = base_of(&h, "g");
    let mk = |name: &str, kind: nix::sys::stat::SFlag, major: u64, minor: u64| {
        let p = rootfs.join(name);
        nix::sys::stat::mknod(
            &p,
            kind,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(major, minor),
        )
        .unwrap();
        std::os::unix::fs::lchown(&p, Some(base), Some(base)).unwrap();
    };
    mk("disk", nix::sys::stat::SFlag::S_IFBLK, 7, 200);
    mk("null", nix::sys::stat::SFlag::S_IFCHR, 1, 3);
    let v2 = [
        0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    xattr::set(rootfs.join("bin/busybox"), "security.capability", &v2).unwrap();
    let file = h.root.join("g.hangar");
    h.ok(&["export", "g", file.to_str().unwrap()]);
    let out = h.run(&["import", file.to_str().unwrap(), "copy"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("device nodes in the archive not made: 1 "),
        "{err}"
    );
    let copy = h.rootfs("copy");
    assert!(!copy.join("disk").exists(), "a block device node was made");
    let null = std::fs::symlink_metadata(copy.join("null")).unwrap();
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    let cap = xattr::get(copy.join("bin/busybox"), "security.capability")
        .unwrap()
        .unwrap();
    assert_eq!(cap.len(), 24, "still a capability for every namespace");
    assert_eq!(&cap[20..], &base_of(&h, "copy").to_le_bytes());
    assert_eq!(&cap[4..20], &v2[4..20]);
}
