//! Privileged integration tests of the build methods: each fills a fresh directory
//! with real tools (busybox-static, tar, rsync, debootstrap) and checks the result.
//!
//! Run as root. The debootstrap test downloads from deb.debian.org unless its
//! cache (/var/tmp/hangar-test-cache) already holds the result; it skips, saying
//! so, when not run as root. Every test removes its directories, even on failure.

use hangar_core::build::{BuildContext, BuildError, BuildOutcome, Method, populate};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Where the debootstrap test keeps its cache, shared by the tests of one CI run.
const DEBOOTSTRAP_CACHE: &str = "/var/tmp/hangar-test-cache";
const MIRROR: &str = "http://deb.debian.org/debian";

/// A directory of this test's own, removed on drop (also when the test panics).
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hangar-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A new empty directory `name` inside the scratch directory.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        fs::create_dir(&dir).unwrap();
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `populate` and returns its result with the progress lines it reported.
fn build(
    method: &Method,
    rootfs: &Path,
    cache_dir: Option<&Path>,
) -> (Result<BuildOutcome, BuildError>, Vec<String>) {
    let mut lines = Vec::new();
    let mut progress = |l: &str| lines.push(l.to_string());
    let mut cx = BuildContext {
        hostname: "guest1",
        cache_dir,
        progress: &mut progress,
    };
    let result = populate(method, rootfs, &mut cx);
    (result, lines)
}

fn outcome(init_system: hangar_model::InitSystem) -> BuildOutcome {
    BuildOutcome {
        init: vec!["/sbin/init".into()],
        init_system,
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap()
}

fn mode(path: impl AsRef<Path>) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn entries(dir: impl AsRef<Path>) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn tar_create(dir: &Path, archive: &Path) {
    let status = Command::new("tar")
        .arg("-czf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn busybox_guest_runs_its_own_busybox() {
    let s = Scratch::new("busybox");
    let rootfs = s.dir("rootfs");

    let (result, progress) = build(&Method::Busybox, &rootfs, None);

    assert_eq!(result.unwrap(), outcome(hangar_model::InitSystem::Busybox));
    assert!(progress.iter().any(|l| l.contains("busybox applets")));
    let ran = Command::new(rootfs.join("bin/busybox"))
        .arg("true")
        .status();
    assert!(ran.unwrap().success());
    let sh = Command::new(rootfs.join("bin/sh"))
        .args(["-c", "echo hello"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sh.stdout), "hello\n");
    assert!(rootfs.join("bin/sh").is_symlink());
    assert!(rootfs.join("sbin/init").is_symlink());
    assert_eq!(
        fs::read_link(rootfs.join("var/run")).unwrap(),
        Path::new("../run")
    );
    assert!(read(rootfs.join("etc/passwd")).starts_with("root:x:0:0:root:/root:/bin/sh\n"));
    assert!(read(rootfs.join("etc/shadow")).starts_with("root:*:"));
    assert!(read(rootfs.join("etc/inittab")).contains("::sysinit:/etc/init.d/rcS\n"));
    assert!(read(rootfs.join("etc/inittab")).contains("::shutdown:/etc/init.d/rcK\n"));
    assert!(!active_line_contains(
        &read(rootfs.join("etc/inittab")),
        "getty"
    ));
    assert_eq!(read(rootfs.join("etc/hostname")), "guest1\n");
    assert!(read(rootfs.join("etc/hosts")).contains("127.0.1.1\tguest1\n"));
    assert_eq!(mode(rootfs.join("etc/init.d/rcS")), 0o755);
    assert_eq!(mode(rootfs.join("etc/shadow")), 0o600);
    assert_eq!(mode(rootfs.join("tmp")), 0o1777);
    assert_eq!(entries(rootfs.join("dev")), Vec::<String>::new());
}

#[test]
fn busybox_rcs_starts_scripts_in_order_and_rck_stops_them_in_reverse() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: chroot and unshare need root");
        return;
    }
    let s = Scratch::new("busybox-rc");
    let rootfs = s.dir("rootfs");
    build(&Method::Busybox, &rootfs, None).0.unwrap();
    for name in ["S10first", "S20second"] {
        let script = format!("#!/bin/sh\necho {name} $1 >> /var/log/rc.log\n");
        let path = rootfs.join("etc/init.d").join(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Chrooted, as the scripts name guest paths; in a UTS namespace of its own,
    // as rcS sets the hostname.
    let run = |script: &str| {
        let status = Command::new("unshare")
            .arg("--uts")
            .arg("chroot")
            .arg(&rootfs)
            .arg(script)
            .status()
            .unwrap();
        assert!(status.success());
    };

    run("/etc/init.d/rcS");
    run("/etc/init.d/rcK");

    assert_eq!(
        read(rootfs.join("var/log/rc.log")),
        "S10first start\nS20second start\nS20second stop\nS10first stop\n"
    );
}

#[test]
fn tarball_of_a_busybox_tree_round_trips() {
    let s = Scratch::new("tarball");
    let (tree, rootfs) = (s.dir("tree"), s.dir("rootfs"));
    build(&Method::Busybox, &tree, None).0.unwrap();
    let archive = s.0.join("busybox.tar.gz");
    tar_create(&tree, &archive);

    let (result, _) = build(&Method::Tarball { file: archive }, &rootfs, None);

    assert_eq!(result.unwrap(), outcome(hangar_model::InitSystem::Busybox));
    assert!(
        Command::new(rootfs.join("bin/busybox"))
            .arg("true")
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        fs::read_link(rootfs.join("sbin/init")).unwrap(),
        Path::new("../bin/busybox")
    );
    assert_eq!(
        read(rootfs.join("etc/inittab")),
        read(tree.join("etc/inittab"))
    );
    assert_eq!(mode(rootfs.join("etc/shadow")), 0o600);
    assert_eq!(mode(rootfs.join("tmp")), 0o1777);
}

#[test]
fn tarball_that_does_not_exist_is_refused_and_rootfs_untouched() {
    let s = Scratch::new("tarball-missing");
    let rootfs = s.dir("rootfs");
    let file = s.0.join("nonexistent.tar");

    let (result, _) = build(&Method::Tarball { file }, &rootfs, None);

    assert!(matches!(result, Err(BuildError::NoArchive { .. })));
    assert_eq!(entries(&rootfs), Vec::<String>::new());
}

#[test]
fn tarball_without_sbin_init_is_refused() {
    let s = Scratch::new("tarball-noinit");
    let (tree, rootfs) = (s.dir("tree"), s.dir("rootfs"));
    fs::create_dir(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/hostname"), "x\n").unwrap();
    let archive = s.0.join("etc-only.tar.gz");
    tar_create(&tree, &archive);

    let (result, _) = build(&Method::Tarball { file: archive }, &rootfs, None);

    let err = result.unwrap_err();
    assert!(matches!(err, BuildError::NoInit { .. }));
    assert!(
        err.to_string()
            .ends_with("holds no /sbin/init: is it a root filesystem?")
    );
}

#[test]
fn rsync_never_copies_dev_proc_or_tmp_contents() {
    let s = Scratch::new("rsync");
    let (tree, rootfs) = (s.dir("tree"), s.dir("rootfs"));
    build(&Method::Busybox, &tree, None).0.unwrap();
    nix::unistd::mkfifo(
        &tree.join("dev/initctl"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    fs::write(tree.join("dev/not-a-device"), "x").unwrap();
    fs::create_dir(tree.join("dev/pts")).unwrap();
    fs::write(tree.join("proc/cpuinfo"), "x").unwrap();
    fs::write(tree.join("tmp/junk"), "x").unwrap();
    fs::hard_link(tree.join("etc/group"), tree.join("etc/group-")).unwrap();

    let source = tree.to_string_lossy().into_owned();
    let (result, _) = build(&Method::Rsync { source }, &rootfs, None);

    assert_eq!(result.unwrap(), outcome(hangar_model::InitSystem::Busybox));
    assert_eq!(entries(rootfs.join("dev")), Vec::<String>::new());
    assert_eq!(entries(rootfs.join("proc")), Vec::<String>::new());
    assert_eq!(entries(rootfs.join("tmp")), Vec::<String>::new());
    assert_eq!(mode(rootfs.join("tmp")), 0o1777);
    assert!(
        Command::new(rootfs.join("bin/busybox"))
            .arg("true")
            .status()
            .unwrap()
            .success()
    );
    let group = fs::metadata(rootfs.join("etc/group")).unwrap();
    assert_eq!(group.nlink(), 2);
}

#[test]
fn rsync_from_a_missing_directory_is_refused() {
    let s = Scratch::new("rsync-missing");
    let rootfs = s.dir("rootfs");
    let source = s.0.join("nonexistent").to_string_lossy().into_owned();

    let (result, _) = build(&Method::Rsync { source }, &rootfs, None);

    assert!(matches!(result, Err(BuildError::NoSource { .. })));
    assert_eq!(entries(&rootfs), Vec::<String>::new());
}

#[test]
fn skeleton_is_the_layout_only() {
    let s = Scratch::new("skeleton");
    let rootfs = s.dir("rootfs");

    let (result, _) = build(&Method::Skeleton, &rootfs, None);

    assert_eq!(result.unwrap(), outcome(hangar_model::InitSystem::Sysvinit));
    let layout = [
        "bin", "dev", "etc", "proc", "root", "run", "sys", "tmp", "var",
    ];
    assert_eq!(entries(&rootfs), layout);
    assert!(layout.iter().all(|d| entries(rootfs.join(d)).is_empty()));
    assert_eq!(mode(rootfs.join("tmp")), 0o1777);
    assert_eq!(mode(rootfs.join("root")), 0o700);
}

#[test]
fn build_into_a_non_empty_directory_is_refused() {
    let s = Scratch::new("nonempty");
    let rootfs = s.dir("rootfs");
    fs::write(rootfs.join("precious"), "x").unwrap();

    let (result, _) = build(&Method::Busybox, &rootfs, None);

    assert!(matches!(result, Err(BuildError::RootfsNotEmpty { .. })));
    assert_eq!(entries(&rootfs), ["precious"]);
}

/// Whether any line of `text` that is not a comment contains `needle`.
fn active_line_contains(text: &str, needle: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains(needle))
}

/// Whether `dir` holds a start link (`S??NAME`) for `script`.
fn starts(dir: &Path, script: &str) -> bool {
    entries(dir)
        .iter()
        .any(|l| l.starts_with('S') && l.get(3..) == Some(script))
}

fn check_debootstrapped(rootfs: &Path) {
    let status = read(rootfs.join("var/lib/dpkg/status"));
    assert!(status.contains("Package: sysvinit-core\nStatus: install ok installed\n"));
    let inittab = read(rootfs.join("etc/inittab"));
    assert!(inittab.contains("\npf::powerwait:/sbin/shutdown -h -t1 now\n"));
    assert!(inittab.contains("\nid:2:initdefault:\n"));
    assert!(!active_line_contains(&inittab, "getty"));
    assert!(!starts(&rootfs.join("etc/rcS.d"), "hwclock.sh"));
    assert!(!starts(&rootfs.join("etc/rcS.d"), "checkroot.sh"));
    assert!(!starts(&rootfs.join("etc/rcS.d"), "mountall.sh"));
    assert!(!starts(&rootfs.join("etc/rc2.d"), "hwclock.sh"));
    assert!(starts(&rootfs.join("etc/rcS.d"), "hostname.sh"));
    assert!(!active_line_contains(&read(rootfs.join("etc/fstab")), "/"));
    assert_eq!(read(rootfs.join("etc/hostname")), "guest1\n");
    assert_eq!(entries(rootfs.join("dev")), Vec::<String>::new());
    assert!(rootfs.join("usr/bin/ps").exists());
    assert!(rootfs.join("usr/bin/ip").exists() || rootfs.join("bin/ip").exists());
}

#[test]
fn debootstrap_bookworm_boots_sysvinit_without_ttys_and_reuses_its_cache() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: debootstrap needs root");
        return;
    }
    let s = Scratch::new("debootstrap");
    let (first, second) = (s.dir("first"), s.dir("second"));
    let cache = Path::new(DEBOOTSTRAP_CACHE);
    let method = Method::Debootstrap {
        suite: "bookworm".into(),
        mirror: MIRROR.into(),
        include: Vec::new(),
        init: hangar_model::InitSystem::Sysvinit,
    };

    let started = Instant::now();
    let (result, progress) = build(&method, &first, Some(cache));
    let first_took = started.elapsed();
    let started = Instant::now();
    let (again, _) = build(&method, &second, Some(cache));
    let second_took = started.elapsed();

    let cached = progress
        .iter()
        .any(|l| l.starts_with("I: unpacking cached"));
    eprintln!("debootstrap: first build {first_took:?} (cached: {cached}), second {second_took:?}");
    assert_eq!(
        result.unwrap(),
        outcome(hangar_model::InitSystem::Sysvinit),
        "{}",
        progress.join("\n")
    );
    assert_eq!(again.unwrap(), outcome(hangar_model::InitSystem::Sysvinit));
    check_debootstrapped(&first);
    check_debootstrapped(&second);
    assert_eq!(
        read(first.join("etc/debian_version")),
        read(second.join("etc/debian_version"))
    );
    // One cache, two machines: each has a machine id of its own.
    let ids = [&first, &second].map(|r| read(r.join("etc/machine-id")));
    assert!(ids.iter().all(|id| id.trim().len() == 32), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}
