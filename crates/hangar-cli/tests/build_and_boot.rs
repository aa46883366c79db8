//! Every build method, through the CLI, ends in a guest that boots (or, for skeleton,
//! in a clear error until a system is put in it). Needs root.

mod common;
use common::{TestHost, wait_for};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn tarball_of_a_guest_builds_a_guest_that_boots() {
    require_root!();
    let h = TestHost::new("tarball");
    h.build_busybox("src");
    let tar = h.root.join("src.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tar)
        .arg("-C")
        .arg(h.rootfs("src"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    h.ok(&[
        "build",
        "copy",
        "-m",
        "tarball",
        "--",
        "-t",
        tar.to_str().unwrap(),
    ]);
    let pid = h.started("copy");
    let base = h.info("copy")["context"].as_u64().unwrap() as u32 * 65536;
    assert_eq!(common::host_uid_of(pid), base);
    assert_eq!(h.sh("copy", "cat /proc/1/comm").1.trim(), "init");
    // The tarball's (shifted) owners became the new guest's.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(h.rootfs("copy").join("etc/passwd"))
            .unwrap()
            .uid(),
        base
    );
}

#[test]
fn rsync_of_a_guest_builds_a_guest_that_boots_without_its_dev() {
    require_root!();
    let h = TestHost::new("rsync");
    h.build_busybox("src");
    std::fs::write(h.rootfs("src").join("dev/leftover"), "x").unwrap();
    let src = format!("{}", h.rootfs("src").display());
    h.ok(&["build", "copy", "-m", "rsync", "--source", &src]);
    assert!(!h.rootfs("copy").join("dev/leftover").exists());
    h.started("copy");
    assert_eq!(h.sh("copy", "hostname").1.trim(), "copy");
}

#[test]
fn a_skeleton_guest_refuses_to_start_until_it_has_an_init() {
    require_root!();
    let h = TestHost::new("skeleton");
    h.ok(&["build", "empty", "-m", "skeleton"]);
    assert!(h.config_file("empty").exists());
    let err = h.fails(&["start", "empty"]);
    assert!(err.contains("has no /sbin/init"), "{err}");
    assert_eq!(h.state("empty"), "stopped");
}

#[test]
fn an_interrupted_build_leaves_no_guest_and_can_be_redone() {
    require_root!();
    let h = TestHost::new("interrupt");
    // A mirror that accepts connections and never answers: debootstrap hangs in its
    // first download, so the build is caught half way.
    let mirror = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/debian", mirror.local_addr().unwrap());
    let mut build = h.cmd(&["build", "g", "-m", "debootstrap", "--mirror", &url]);
    let build = std::os::unix::process::CommandExt::process_group(&mut build, 0)
        .spawn()
        .unwrap();
    let group = nix::unistd::Pid::from_raw(-(build.id() as i32));
    assert!(wait_for(Duration::from_secs(10), || h
        .root
        .join("var/lib/hangar/guests/.build-g")
        .exists()));
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(group, nix::sys::signal::SIGKILL).unwrap();
    drop(build);
    assert!(h.list().is_empty(), "a half guest is listed");
    h.build_busybox("g");
    assert!(!h.root.join("var/lib/hangar/guests/.build-g").exists());
    assert_eq!(h.list().len(), 1);
}

#[test]
fn a_debian_guest_boots_sysvinit_and_stops_cleanly() {
    require_root!();
    let h = TestHost::new("debian");
    h.ok(&[
        "build",
        "deb",
        "-m",
        "debootstrap",
        "--",
        "-d",
        "bookworm",
        "--init",
        "sysvinit",
    ]);
    h.started("deb");
    let (code, out) = h.sh(
        "deb",
        "cat /etc/debian_version; cat /proc/1/comm; dpkg -S /sbin/init",
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("12"), "{out}");
    assert_eq!(lines[1], "init");
    assert!(lines[2].starts_with("sysvinit-core"), "{out}");
    // The boot scripts finish (no rc process left) before we ask for a shutdown.
    assert!(wait_for(Duration::from_secs(30), || !h
        .sh("deb", "ps -e -o comm=")
        .1
        .lines()
        .any(|l| l == "rc" || l == "startpar")));
    let t = Instant::now();
    h.ok(&["stop", "deb", "--timeout", "30"]);
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "stop took {:?}: sysvinit did not shut down on its own",
        t.elapsed()
    );
    assert_eq!(h.runtime("deb")["last_exit"], "halted");
}

#[test]
fn debian_12_and_13_systemd_guests_boot_to_running_reboot_and_stop_quickly() {
    require_root!();
    // Debian 12 has systemd 252, Debian 13 systemd 257 (which wants cgroup2).
    for (suite, version) in [("bookworm", "12"), ("trixie", "13")] {
        eprintln!("PATH: Debian {version} ({suite})");
        systemd_guest_boots_reboots_and_stops(suite, version);
    }
}

fn systemd_guest_boots_reboots_and_stops(suite: &str, version: &str) {
    let h = TestHost::new(&format!("systemd-{suite}"));
    // systemd is -m debootstrap's default init.
    h.ok(&["build", "sd", "-m", "debootstrap", "--", "-d", suite]);
    assert!(!h.ok(&["config", "show", "sd"]).contains("signal"));
    h.started("sd");
    assert_eq!(h.systemd_state("sd"), "running");
    let (_, out) = h.sh(
        "sd",
        "cat /proc/1/comm; systemd-detect-virt; grep ^0:: /proc/1/cgroup; \
         systemctl is-active systemd-journald systemd-logind dbus console-getty",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "systemd",
            "container-other",
            "0::/init.scope",
            "active",
            "active",
            "active",
            "active"
        ],
        "{out}"
    );
    // The limits stay the host's: the guest's memory limit is the default.
    let ctx = h.info("sd")["context"].as_u64().unwrap();
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/{ctx}/memory.limit_in_bytes",
        h.cgroup_parent()
    ));
    if let Ok(limit) = limit {
        assert_eq!(limit.trim(), (1u64 << 30).to_string());
    }
    assert!(
        h.ok(&["logs", "sd"])
            .contains(&format!("Welcome to Debian GNU/Linux {version}"))
    );

    // A reboot from inside brings it back, booted again.
    let before = h.runtime("sd")["init_pid"].as_i64().unwrap();
    h.sh("sd", "systemctl reboot");
    assert!(
        wait_for(Duration::from_secs(30), || h.runtime("sd")["init_pid"]
            .as_i64()
            .is_some_and(|p| p != before)
            && h.state("sd") == "running"),
        "no reboot: {}",
        h.runtime("sd")
    );
    assert_eq!(h.systemd_state("sd"), "running");
    assert_eq!(h.runtime("sd")["reboots"], 1);

    // `hangar stop` sends SIGRTMIN+3: systemd halts cleanly, well within 10 s.
    let t = Instant::now();
    h.ok(&["stop", "sd"]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(h.runtime("sd")["last_exit"], "halted");
    assert!(h.ok(&["logs", "sd"]).contains("Halting system."));
    // The cgroups systemd made in its delegated tree go with the guest's own.
    let unified = format!("/sys/fs/cgroup/unified/{}/{ctx}", h.cgroup_parent());
    assert!(
        !std::path::Path::new(&unified).exists(),
        "{unified} left behind"
    );
}
