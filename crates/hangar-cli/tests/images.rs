//! Images end to end: OCI image archives and layouts and docker archives made here by
//! hand (no registry is reachable) from the host's busybox, with two layers and
//! whiteouts; root filesystem tarballs in every compression; `hangar publish` of a
//! running guest and `build --image` on the dir pool and a btrfs pool; `image export`
//! read back by `image import`; and images that are damaged, cut short or lead out of
//! their files, each refused leaving nothing. Needs root.

mod common;
use common::TestHost;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tar stream written entry by entry, names as given (`../x` and `/x` too: the
/// tar crate's own checks would refuse to write the bad archives tests need).
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn entry(
        &mut self,
        kind: tar::EntryType,
        name: &str,
        link: &str,
        (mode, uid, gid): (u32, u64, u64),
        data: &[u8],
    ) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(tar::EntryType::Directory, name, "", (0o755, 0, 0), b"")
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(tar::EntryType::Regular, name, "", (0o644, 0, 0), data)
    }

    fn owned(&mut self, name: &str, data: &[u8], uid: u64, gid: u64) -> &mut Self {
        self.entry(tar::EntryType::Regular, name, "", (0o640, uid, gid), data)
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(tar::EntryType::Symlink, name, target, (0o777, 0, 0), b"")
    }

    fn device(&mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.0.append(&h, &b""[..]).unwrap();
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

const APPLETS: &[&str] = &["sh", "cat", "sleep", "echo", "ls", "stat", "readlink"];

/// Layer 1: busybox and its applets, /etc/a and /etc/b, /opt/x with two files, and
/// a file of guest uid 1000.
fn first_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("the host's /bin/busybox");
    let mut t = Tar::new();
    t.dir("bin/").entry(
        tar::EntryType::Regular,
        "bin/busybox",
        "",
        (0o755, 0, 0),
        &busybox,
    );
    for a in APPLETS {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc/")
        .file("etc/a", b"a1\n")
        .file("etc/b", b"b1\n")
        .dir("opt/")
        .dir("opt/x/")
        .file("opt/x/one", b"1\n")
        .file("opt/x/two", b"2\n")
        .owned("opt/owned", b"mine\n", 1000, 1001)
        .finish()
}

/// Layer 2: /etc/b whited out, /etc/a changed, /opt/x made opaque with a new file.
fn second_layer() -> Vec<u8> {
    Tar::new()
        .dir("etc/")
        .file("etc/.wh.b", b"")
        .file("etc/a", b"a2\n")
        .dir("opt/x/")
        .file("opt/x/.wh..wh..opq", b"")
        .file("opt/x/three", b"3\n")
        .finish()
}

/// What a guest of the two layers holds: the merged layers and the mount points
/// hangar adds.
fn merged_files() -> BTreeSet<String> {
    let mut want: BTreeSet<String> = [
        "bin",
        "bin/busybox",
        "etc",
        "etc/a",
        "opt",
        "opt/owned",
        "opt/x",
        "opt/x/three",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.extend(APPLETS.iter().map(|a| format!("bin/{a}")));
    want
}

const MOUNT_POINTS: &[&str] = &["dev", "proc", "run", "sys", "tmp"];

#[derive(Clone, Copy)]
enum Comp {
    Plain,
    Gzip,
    Zstd,
}

fn compress(data: &[u8], c: Comp) -> Vec<u8> {
    match c {
        Comp::Plain => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

fn run_config() -> serde_json::Value {
    serde_json::json!({
        "Env": ["PATH=/bin", "GREETING=hello world"],
        "Cmd": ["/bin/sh", "-c", "echo started > /ran; exec sleep 1000000"],
        "WorkingDir": "/opt/x",
    })
}

fn image_config(layers: &[Vec<u8>]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": hangar_model::image::host_architecture(),
        "os": "linux",
        "config": run_config(),
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| format!("sha256:{}", sha(l))).collect::<Vec<_>>(),
        },
    }))
    .unwrap()
}

/// The files of an OCI image layout of `layers` (uncompressed, and how each is
/// stored), in archive order: `oci-layout`, `index.json`, then the blobs.
fn oci_files(layers: &[(Vec<u8>, Comp)]) -> Vec<(String, Vec<u8>)> {
    let plain: Vec<Vec<u8>> = layers.iter().map(|(l, _)| l.clone()).collect();
    let config = image_config(&plain);
    let mut blobs = vec![];
    let descriptor = |media: &str, bytes: &[u8]| serde_json::json!({"mediaType": media, "digest": format!("sha256:{}", sha(bytes)), "size": bytes.len()});
    let mut layer_descs = vec![];
    for (l, c) in layers {
        let stored = compress(l, *c);
        let media = match c {
            Comp::Plain => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        layer_descs.push(descriptor(media, &stored));
        blobs.push(stored);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layer_descs,
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [descriptor("application/vnd.oci.image.manifest.v1+json", &manifest)],
    }))
    .unwrap();
    blobs.push(config);
    blobs.push(manifest);
    let mut files = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_string(), index),
    ];
    for b in blobs {
        files.push((format!("blobs/sha256/{}", sha(&b)), b));
    }
    files
}

/// What `docker save` writes for `layers` (stored uncompressed): a directory per layer
/// with its `layer.tar`, the config named by its digest, `manifest.json` last.
fn docker_files(layers: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let config = image_config(layers);
    let config_name = format!("{}.json", sha(&config));
    let mut files = vec![];
    let mut paths = vec![];
    for l in layers {
        let p = format!("{}/layer.tar", sha(l));
        files.push((p.clone(), l.clone()));
        paths.push(p);
    }
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["app:1"], "Layers": paths}
    ]))
    .unwrap();
    files.push((config_name, config));
    files.push(("manifest.json".to_string(), manifest));
    files
}

/// `files` as a tar archive, each file's directories before it.
fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut t = Tar::new();
    let mut dirs = BTreeSet::new();
    for (name, data) in files {
        let mut at = String::new();
        for part in name.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            at.push_str(part);
            at.push('/');
            if dirs.insert(at.clone()) {
                t.dir(&at);
            }
        }
        t.file(name, data);
    }
    t.finish()
}

fn oci_archive(layers: &[(Vec<u8>, Comp)]) -> Vec<u8> {
    archive(&oci_files(layers))
}

fn two_layers() -> Vec<(Vec<u8>, Comp)> {
    vec![(first_layer(), Comp::Gzip), (second_layer(), Comp::Zstd)]
}

fn write(h: &TestHost, name: &str, data: &[u8]) -> String {
    let p = h.root.join(name);
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_string()
}

/// Every file under `rootfs`: kind, mode, owner as guest ids (`base` taken off),
/// contents' digest or link target.
fn tree(rootfs: &Path, base: u32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let what = if m.is_file() {
            sha(&std::fs::read(&p).unwrap())
        } else if m.file_type().is_symlink() {
            std::fs::read_link(&p).unwrap().display().to_string()
        } else {
            String::new()
        };
        if p != rootfs {
            let rel = p.strip_prefix(rootfs).unwrap().display().to_string();
            out.insert(
                rel,
                format!(
                    "{:o} {} {} {what}",
                    m.mode(),
                    m.uid().wrapping_sub(base),
                    m.gid().wrapping_sub(base)
                ),
            );
        }
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

fn base_of(h: &TestHost, guest: &str) -> u32 {
    h.info(guest)["context"].as_u64().unwrap() as u32 * 65536
}

fn image_rootfs(h: &TestHost, image: &str) -> PathBuf {
    h.root
        .join("var/lib/hangar/images")
        .join(image)
        .join("rootfs")
}

fn images(h: &TestHost) -> Vec<serde_json::Value> {
    serde_json::from_str(&h.ok(&["image", "list", "--format", "json"])).unwrap()
}

fn config(h: &TestHost, guest: &str) -> toml::Table {
    toml::from_str(&h.ok(&["config", "show", guest])).unwrap()
}

/// A guest of the two layers is exactly their merge, its owners shifted, and runs the
/// image's command as init with the image's environment and directory.
fn check_guest_of_two_layers(h: &TestHost, guest: &str) {
    let base = base_of(h, guest);
    let files = tree(&h.rootfs(guest), base);
    let names: BTreeSet<String> = files.keys().cloned().collect();
    let mut want = merged_files();
    want.extend(MOUNT_POINTS.iter().map(|s| s.to_string()));
    assert_eq!(names, want);
    assert_eq!(
        std::fs::read_to_string(h.rootfs(guest).join("etc/a")).unwrap(),
        "a2\n"
    );
    assert_eq!(
        files["opt/owned"],
        format!("100640 1000 1001 {}", sha(b"mine\n"))
    );
    assert_eq!(files["bin/sh"], "120777 0 0 busybox");
    let cfg = config(h, guest);
    assert_eq!(
        cfg["init"].as_array().unwrap().len(),
        3,
        "init is the image's Cmd: {cfg:?}"
    );
    assert_eq!(cfg["init_env"]["GREETING"].as_str(), Some("hello world"));
    assert_eq!(cfg["init_cwd"].as_str(), Some("/opt/x"));
    assert_eq!(cfg["stop"]["signal"].as_str(), Some("SIGTERM"));
    let pid = h.started(guest);
    assert_eq!(common::host_uid_of(pid), base);
    assert!(common::wait_for(std::time::Duration::from_secs(5), || {
        h.sh(guest, "cat /ran").1 == "started\n"
    }));
    let environ = h.ok(&["exec", guest, "--", "cat", "/proc/1/environ"]);
    let env: Vec<&str> = environ.split('\0').filter(|e| !e.is_empty()).collect();
    assert!(env.contains(&"GREETING=hello world"), "{env:?}");
    assert!(env.contains(&"container=hangar"), "{env:?}");
    let paths: Vec<&&str> = env.iter().filter(|e| e.starts_with("PATH=")).collect();
    assert_eq!(paths, [&"PATH=/bin"], "the image's PATH replaces hangar's");
    assert_eq!(
        h.ok(&["exec", guest, "--", "readlink", "/proc/1/cwd"])
            .trim(),
        "/opt/x"
    );
    assert_eq!(
        h.ok(&["exec", guest, "--", "stat", "-c", "%u:%g", "/opt/owned"])
            .trim(),
        "1000:1001"
    );
    h.ok(&["kill", guest]);
}

#[test]
fn an_oci_image_of_two_layers_with_whiteouts_becomes_a_guest_running_its_command() {
    require_root!();
    let h = TestHost::new("oci");
    let file = write(&h, "app.oci.tar", &oci_archive(&two_layers()));
    h.ok(&["image", "import", &file, "app:1"]);
    let list = images(&h);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "app:1");
    assert_eq!(list[0]["source"], "oci");
    assert_eq!(list[0]["config"]["working_dir"], "/opt/x");
    assert!(list[0]["size"].as_u64().unwrap() > 1 << 20, "{list:?}");
    assert!(h.ok(&["image", "list"]).contains("app:1"));
    // The store keeps the guest's own ids.
    let stored = tree(&image_rootfs(&h, "app:1"), 0);
    assert!(stored["opt/owned"].starts_with("100640 1000 1001 "));
    assert_eq!(
        std::fs::metadata(h.root.join("var/lib/hangar/images"))
            .unwrap()
            .mode()
            & 0o777,
        0o700,
        "the store is for root only"
    );
    h.ok(&["build", "g", "--image", "app:1"]);
    check_guest_of_two_layers(&h, "g");
    // The same image as a layout directory gives the same files.
    let dir = h.root.join("app-layout");
    for (name, data) in oci_files(&two_layers()) {
        std::fs::create_dir_all(dir.join(&name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(&name), data).unwrap();
    }
    h.ok(&["image", "import", dir.to_str().unwrap(), "app:dir"]);
    assert_eq!(tree(&image_rootfs(&h, "app:dir"), 0), stored);
    // Deleting the image leaves its guest whole.
    h.ok(&["image", "delete", "app:1"]);
    assert!(!image_rootfs(&h, "app:1").exists());
    h.started("g");
    assert_eq!(h.sh("g", "cat /etc/a").1, "a2\n");
}

#[test]
fn a_docker_archive_of_the_same_layers_gives_the_same_guest() {
    require_root!();
    let h = TestHost::new("docker");
    let file = write(
        &h,
        "app.docker.tar",
        &archive(&docker_files(&[first_layer(), second_layer()])),
    );
    h.ok(&["image", "import", &file, "app"]);
    assert_eq!(images(&h)[0]["source"], "docker-archive");
    h.ok(&["build", "d", "--image", "app"]);
    check_guest_of_two_layers(&h, "d");
}

/// A busybox guest's files as a root filesystem image.
fn busybox_image(h: &TestHost, image: &str) {
    h.build_busybox("src");
    h.ok(&["publish", "src", image]);
    h.ok(&["delete", "src", "--force"]);
}

#[test]
fn an_exported_image_imports_back_whatever_the_tarballs_compression() {
    require_root!();
    let h = TestHost::new("imgexport");
    busybox_image(&h, "base");
    let original = tree(&image_rootfs(&h, "base"), 0);
    let zst = h.root.join("base.tar.zst");
    h.ok(&["image", "export", "base", zst.to_str().unwrap()]);
    let exported = std::fs::read(&zst).unwrap();
    assert_eq!(&exported[..4], &[0x28, 0xb5, 0x2f, 0xfd], "tar + zstd");
    assert!(
        h.fails(&["image", "export", "base", zst.to_str().unwrap()])
            .contains("--force")
    );
    let plain = zstd::decode_all(&exported[..]).unwrap();
    let gz = compress(&plain, Comp::Gzip);
    let xz = std::process::Command::new("xz")
        .args(["-c", "-1"])
        .stdin(std::fs::File::open(write(&h, "base.tar", &plain)).unwrap())
        .output()
        .unwrap()
        .stdout;
    assert_eq!(&xz[..3], b"\xfd7z");
    for (name, bytes) in [
        ("zst", exported.clone()),
        ("plain", plain.clone()),
        ("gz", gz),
        ("xz", xz),
    ] {
        let file = write(&h, &format!("base-{name}"), &bytes);
        h.ok(&["image", "import", &file, &format!("again-{name}")]);
        let info = &images(&h)
            .into_iter()
            .find(|i| i["name"] == format!("again-{name}"))
            .unwrap();
        assert_eq!(info["source"], "tarball");
        assert_eq!(
            tree(&image_rootfs(&h, &format!("again-{name}")), 0),
            original,
            "{name}"
        );
    }
    // A guest of a tarball image boots its /sbin/init (busybox), with its own name.
    h.ok(&["build", "t", "--image", "again-xz"]);
    assert_eq!(config(&h, "t")["init"][0].as_str(), Some("/sbin/init"));
    h.started("t");
    assert_eq!(h.sh("t", "hostname").1, "t\n");
    h.ok(&["stop", "t", "-t", "5"]);
}

#[test]
fn a_published_running_guest_builds_guests_of_their_own_on_both_drivers() {
    require_root!();
    let h = TestHost::new("publish");
    h.build_busybox("src");
    h.started("src");
    let id = "0123456789abcdef0123456789abcdef";
    h.sh(
        "src",
        &format!(
            "mkdir -p /srv && echo payload > /srv/data && echo {id} > /etc/machine-id && sync"
        ),
    );
    h.ok(&["publish", "src", "base:1"]);
    // The source ran on, not left frozen.
    assert_eq!(h.info("src")["state"], "running");
    assert_eq!(h.info("src")["paused"], false);
    let info = &images(&h)[0];
    assert_eq!(info["source"], "publish");
    assert_eq!(info["from"], "src");
    // Stored with the guest's own ids.
    let stored = std::fs::metadata(image_rootfs(&h, "base:1").join("srv/data")).unwrap();
    assert_eq!((stored.uid(), stored.gid()), (0, 0));
    let check = |guest: &str| {
        let pid = h.started(guest);
        assert_eq!(common::host_uid_of(pid), base_of(&h, guest));
        assert_ne!(h.info(guest)["context"], h.info("src")["context"]);
        let out = h
            .sh(guest, "cat /srv/data; hostname; cat /etc/machine-id")
            .1;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..2], ["payload", guest]);
        assert_ne!(lines[2], id, "a guest of an image has its own machine id");
        assert_eq!(lines[2].len(), 32);
    };
    h.ok(&["build", "d", "--image", "base:1"]);
    check("d");
    // btrfs: the pool keeps a read-only copy of the image; guests are snapshots of it.
    h.ok(&["pool", "create", "fast", "--size", "256M"]);
    h.ok(&["build", "b", "--image", "base:1", "--pool", "fast"]);
    h.ok(&[
        "build",
        "b2",
        "--image",
        "base:1",
        "--pool",
        "fast",
        "--disk-size",
        "100M",
    ]);
    let copy = h.root.join("var/lib/hangar/pools/fast/images/base:1");
    let ro = std::process::Command::new("btrfs")
        .args(["property", "get", "-ts"])
        .arg(&copy)
        .arg("ro")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ro.stdout).trim(), "ro=true");
    check("b");
    check("b2");
    h.sh("b2", "echo changed > /srv/data");
    assert_eq!(h.sh("b", "cat /srv/data").1, "payload\n");
    // A running btrfs guest is published from a snapshot, which goes after.
    h.ok(&["publish", "b2", "from-b2"]);
    assert_eq!(h.info("b2")["paused"], false);
    assert_eq!(
        std::fs::read_to_string(image_rootfs(&h, "from-b2").join("srv/data")).unwrap(),
        "changed\n"
    );
    assert!(
        !h.root
            .join("var/lib/hangar/pools/fast/snapshots/b2")
            .exists()
    );
    // Deleting the image takes the pool's copy; its guests stay whole.
    h.ok(&["image", "delete", "base:1"]);
    assert!(!copy.exists());
    assert_eq!(images(&h).len(), 1, "from-b2 stays");
    for g in ["b", "b2", "d"] {
        h.ok(&["kill", g]);
        h.started(g);
    }
    assert_eq!(h.sh("b", "cat /srv/data").1, "payload\n");
    for g in ["b", "b2", "d", "src"] {
        h.ok(&["delete", g, "--force"]);
    }
    h.ok(&["pool", "delete", "fast"]);
}

/// A directory outside hangar's root that a bad image tries to write into.
struct Canary(PathBuf);

impl Canary {
    fn new() -> Canary {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!("hangar-canary-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&p).unwrap();
        Canary(p)
    }

    fn untouched(&self) -> bool {
        std::fs::read_dir(&self.0).unwrap().next().is_none()
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The store holds nothing: no image, no half-made one.
fn store_is_empty(h: &TestHost) -> bool {
    std::fs::read_dir(h.root.join("var/lib/hangar/images"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn bad_images_are_refused_and_leave_nothing() {
    require_root!();
    let h = TestHost::new("badimg");
    let canary = Canary::new();
    let outside = canary.0.to_str().unwrap().to_string();
    let base = || (first_layer(), Comp::Plain);
    let with = |l: Vec<u8>| oci_archive(&[base(), (l, Comp::Gzip)]);
    let mut digest_broken = oci_files(&[base(), (second_layer(), Comp::Plain)]);
    let blob = digest_broken
        .iter_mut()
        .find(|(_, b)| b.windows(3).any(|w| w == b"a2\n"))
        .unwrap();
    let at = blob.1.windows(3).position(|w| w == b"a2\n").unwrap();
    blob.1[at + 1] = b'9';
    let mut missing = oci_files(&two_layers());
    let second_blob = format!(
        "blobs/sha256/{}",
        sha(&compress(&second_layer(), Comp::Zstd))
    );
    missing.retain(|(n, _)| *n != second_blob);
    let good = oci_archive(&two_layers());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            with(Tar::new().file("../evil", b"x").finish()),
            "`..`",
        ),
        (
            "absolute",
            with(Tar::new().file("/evil", b"x").finish()),
            "absolute",
        ),
        (
            "through a symlink",
            oci_archive(&[
                (Tar::new().symlink("link", &outside).finish(), Comp::Plain),
                (Tar::new().file("link/pwned", b"x").finish(), Comp::Gzip),
            ]),
            "no directory",
        ),
        (
            "hard link out",
            with(
                Tar::new()
                    .entry(
                        tar::EntryType::Link,
                        "evil",
                        "../../etc/passwd",
                        (0o644, 0, 0),
                        b"",
                    )
                    .finish(),
            ),
            "no file made before",
        ),
        (
            "digest",
            archive(&digest_broken),
            "does not match its digest",
        ),
        (
            "cut short",
            good[..good.len() * 2 / 3].to_vec(),
            "cannot be imported",
        ),
        ("missing blob", archive(&missing), "missing"),
        (
            "unknown",
            b"just some text, not an image\n".repeat(40),
            "neither a tar archive",
        ),
        (
            "tarball dotdot",
            Tar::new().dir("./").file("./../evil", b"x").finish(),
            "`..`",
        ),
    ];
    for (what, bytes, needle) in cases {
        let file = write(&h, "bad", &bytes);
        let err = h.fails(&["image", "import", &file, "bad"]);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(
            store_is_empty(&h),
            "{what}: something was left in the store"
        );
        assert!(canary.untouched(), "{what}: a file was written outside");
        assert!(!h.root.join("evil").exists() && !h.root.join("var/lib/hangar/evil").exists());
    }
    // Names and images that are not there.
    let file = write(&h, "good", &good);
    assert!(
        h.fails(&["image", "import", &file, "Bad/Name"])
            .contains("invalid image name")
    );
    assert!(
        h.fails(&["build", "g", "--image", "nope"])
            .contains("no image named nope")
    );
    assert!(h.list().is_empty());
    assert!(
        h.fails(&["image", "delete", "nope"])
            .contains("no image named nope")
    );
    assert!(h.fails(&["build", "g"]).contains("--image"));
    // A device node is left out (said in a note), the harmless ones kept.
    let devices = Tar::new()
        .dir("dev/")
        .device("dev/sda", tar::EntryType::Block, 8, 0)
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .finish();
    let file = write(
        &h,
        "devices",
        &oci_archive(&[base(), (devices, Comp::Plain)]),
    );
    let out = h.run(&["image", "import", &file, "dev"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("device nodes not made: 1"));
    let dev = image_rootfs(&h, "dev").join("dev");
    assert!(!dev.join("sda").exists());
    assert_eq!(
        std::fs::metadata(dev.join("null")).unwrap().rdev(),
        libc::makedev(1, 3)
    );
    // An existing name is refused, the image left as it was.
    let err = h.fails(&["image", "import", &file, "dev"]);
    assert!(err.contains("exists already"), "{err}");
    assert!(dev.join("null").exists());
}
