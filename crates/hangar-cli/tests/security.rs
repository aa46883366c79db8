//! The security battery (tests/security/battery.sh) run inside guests as guest root:
//! every classic escape must be blocked. Needs root and gcc (for the static probe).

mod common;
use common::TestHost;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn security_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/security")
}

/// Compile the static probe into `dir`.
fn build_probe(dir: &Path) -> PathBuf {
    let out = dir.join("probe");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(security_dir().join("probe.c"))
        .status()
        .expect("gcc is needed to build the probe (scripts/setup-host.sh installs it)");
    assert!(st.success(), "compiling probe.c failed");
    out
}

fn run_battery(h: &TestHost, guest: &str) -> String {
    let root = h.rootfs(guest).join("root");
    std::fs::copy(security_dir().join("battery.sh"), root.join("battery.sh")).unwrap();
    std::fs::copy(build_probe(&h.root), root.join("probe")).unwrap();
    let dev = std::fs::metadata("/").unwrap().dev();
    let majmin = format!(
        "{}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    let host_name_before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = h.run(&[
        "exec",
        guest,
        "--",
        "sh",
        "/root/battery.sh",
        &format!("HOST_PID={}", std::process::id()),
        &format!("HOST_DISK_MAJMIN={majmin}"),
        "PROBE=/root/probe",
        "BATTERY_HOSTNAME=escaped",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name_before,
        "the guest renamed the host"
    );
    assert_eq!(
        h.sh(guest, "hostname").1.trim(),
        "escaped",
        "the battery's own hostname change did not happen in the guest"
    );
    assert!(
        out.status.success(),
        "escapes succeeded:\n{}",
        text.lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    text
}

#[test]
fn the_battery_finds_no_escape_from_a_busybox_guest() {
    require_root!();
    let h = TestHost::new("battery-bb");
    h.build_busybox("g");
    h.started("g");
    let out = run_battery(&h, "g");
    let summary = out
        .lines()
        .find(|l| l.starts_with("battery:"))
        .expect("summary line");
    assert!(summary.contains(" 0 failed"), "{summary}");
    assert!(
        out.lines().any(|l| l.starts_with("PASS sys_firmware")),
        "the host's firmware was looked for and hidden:\n{out}"
    );
    // busybox has unshare: the masks were tried from a new mount namespace too.
    assert!(
        out.lines().any(|l| l.starts_with("PASS masks_locked")),
        "the masks were tried, also from a new mount namespace:\n{out}"
    );
    let passed: u32 = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(passed >= 15, "only {passed} checks ran: {summary}");
}

#[test]
fn the_battery_finds_no_escape_from_a_debian_guest() {
    require_root!();
    let h = TestHost::new("battery-deb");
    h.ok(&["build", "deb", "-m", "debootstrap"]);
    h.started("deb");
    // systemd (-m debootstrap's default init) empties /tmp while it boots: let it
    // finish before the battery makes its scratch directory there.
    let (_, state) = h.sh("deb", "timeout 60 systemctl is-system-running --wait");
    eprintln!("systemd in the guest: {}", state.trim());
    let out = run_battery(&h, "deb");
    assert!(
        out.lines()
            .any(|l| l.starts_with("battery:") && l.contains(" 0 failed")),
        "{out}"
    );
    // util-linux's unshare: the masks were tried from a new mount namespace too.
    assert!(
        out.lines().any(|l| l.starts_with("PASS masks_locked")),
        "{out}"
    );
}

/// Device nodes stored in a guest's files (a tarball or rsync build runs as host root
/// and can make them, owned by guest root) do not open inside the guest: its root
/// filesystem is mounted nodev. Its own /dev, a tmpfs of its own, works.
#[test]
fn device_nodes_in_a_guests_files_do_not_open() {
    require_root!();
    let h = TestHost::new("nodev");
    h.build_busybox("g");
    let rootfs = h.rootfs("g");
    let owner = std::fs::metadata(&rootfs).unwrap();
    for (name, kind, major, minor) in [("probe-null", "c", "1", "3"), ("probe-blk", "b", "7", "0")]
    {
        let node = rootfs.join(name);
        let made = Command::new("mknod")
            .args(["-m", "0666"])
            .arg(&node)
            .args([kind, major, minor])
            .status()
            .unwrap();
        assert!(made.success(), "mknod {}", node.display());
        std::os::unix::fs::chown(&node, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    h.started("g");
    let (code, out) = h.sh("g", "echo x > /dev/null && echo devnull-ok");
    assert_eq!((code, out.trim()), (0, "devnull-ok"));
    for node in ["/probe-null", "/probe-blk"] {
        let (code, out) = h.sh("g", &format!("head -c 1 {node} 2>&1; echo rc=$?"));
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("Permission denied") && !out.contains("rc=0"),
            "{node} opened inside the guest: {out}"
        );
    }
}
