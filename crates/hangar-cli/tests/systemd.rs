//! systemd guests as an administrator uses them: Debian's packages installed with apt
//! through the default NAT network, served to another host and logged into over ssh,
//! brought back by a restart and a reboot; a sysvinit guest that apt switches to
//! systemd; memory and pids limits that hold while systemd runs on. Needs root, and
//! the Debian mirror (apt runs inside the guests).

mod common;
use common::netns::{Netns, sh};
use common::{TestHost, wait_for};
use std::time::{Duration, Instant};

/// apt-get in guest `name`, without questions; panics with apt's output on failure.
fn apt(h: &TestHost, name: &str, args: &str) {
    let (code, out) = h.sh(
        name,
        &format!(
            "export DEBIAN_FRONTEND=noninteractive; apt-get -q update >/dev/null 2>&1; \
             apt-get -q -y -o Dpkg::Options::=--force-confold {args} 2>&1"
        ),
    );
    assert_eq!(code, 0, "apt-get {args} in {name}:\n{out}");
}

#[test]
fn a_systemd_guest_gets_nginx_and_ssh_with_apt_and_keeps_them_across_restart_and_reboot() {
    require_root!();
    let h = TestHost::new("sdapt");
    h.ok(&["build", "web", "-m", "debootstrap", "--network", "default"]);
    h.started("web");
    assert_eq!(h.systemd_state("web"), "running");
    apt(&h, "web", "install openssh-server nginx-light");
    let ip = h.nic_address("web", "eth0");

    // A key of the host's root, authorized in the guest.
    // In the test's root: removed with it, also when the test fails.
    let keys = h.root.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("id");
    let (ok, out) = sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f {}",
        key.display()
    ));
    assert!(ok, "{out}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (code, _) = h.sh(
        "web",
        &format!(
            "mkdir -p -m 700 /root/.ssh && echo '{}' > /root/.ssh/authorized_keys",
            public.trim()
        ),
    );
    assert_eq!(code, 0);
    let ssh = |cmd: &str| {
        sh(&format!(
            "timeout 20 ssh -i {} -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@{ip} '{cmd}'",
            key.display()
        ))
    };
    // Another host reaches nginx through a port forward; the host at its address.
    let ns = format!("hgt-sd-{}", std::process::id());
    let _client = Netns::new(&ns, "10.235.9.1/24", "10.235.9.2/24");
    h.ok(&["network", "forward", "add", "default", "18090", "web:80"]);
    let check = |when: &str| {
        assert_eq!(h.systemd_state("web"), "running", "{when}");
        let (_, page) = sh(&format!("timeout 5 busybox wget -qO- http://{ip}/"));
        assert!(page.contains("Welcome to nginx"), "{when}: {page}");
        let (_, page) = sh(&format!(
            "ip netns exec {ns} timeout 5 busybox wget -qO- http://10.235.9.1:18090/"
        ));
        assert!(
            page.contains("Welcome to nginx"),
            "{when}, forwarded: {page}"
        );
        // A login: logind gives it a session of its own.
        let (ok, out) = ssh("hostname; loginctl show-session $XDG_SESSION_ID -p Active");
        assert!(ok, "{when}: ssh: {out}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["web", "Active=yes"],
            "{when}"
        );
    };
    check("after apt");
    h.ok(&["restart", "web"]);
    check("after hangar restart");
    let before = h.runtime("web")["init_pid"].as_i64();
    let _ = ssh("systemctl reboot");
    assert!(
        wait_for(Duration::from_secs(60), || {
            h.runtime("web")["init_pid"].as_i64() != before && h.state("web") == "running"
        }),
        "no reboot: {}; monitor log: {}",
        h.runtime("web"),
        std::fs::read_to_string(h.root.join("var/log/hangar/web/monitor.log")).unwrap_or_default()
    );
    check("after a reboot from inside");
    let t = Instant::now();
    h.ok(&["stop", "web"]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_sysvinit_guest_that_apt_switches_to_systemd_boots_again() {
    require_root!();
    let h = TestHost::new("sdswitch");
    h.ok(&[
        "build",
        "old",
        "-m",
        "debootstrap",
        "--network",
        "default",
        "--",
        "--init",
        "sysvinit",
    ]);
    h.started("old");
    assert_eq!(h.sh("old", "cat /proc/1/comm").1.trim(), "init");
    apt(&h, "old", "install systemd-sysv");
    h.ok(&["restart", "old"]);
    assert_eq!(h.sh("old", "cat /proc/1/comm").1.trim(), "systemd");
    assert_eq!(h.systemd_state("old"), "running");
    // Stopped with systemd's own signal, found at this start.
    let t = Instant::now();
    h.ok(&["stop", "old"]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(h.runtime("old")["last_exit"], "halted");
}

#[test]
fn memory_and_pids_limits_hold_in_a_systemd_guest_and_systemd_survives_them() {
    require_root!();
    let h = TestHost::new("sdlimits");
    h.ok(&["build", "sd", "-m", "debootstrap"]);
    h.ok(&["set", "sd", "memory.max=96M", "pids.max=200"]);
    h.started("sd");
    assert_eq!(h.systemd_state("sd"), "running");
    // lxcfs shows the limit, and a 160 MB allocation is OOM-killed inside the guest.
    assert_eq!(
        h.sh("sd", "free -m | awk '/^Mem:/ {print $2}'").1.trim(),
        "96"
    );
    let out = h.run(&[
        "exec",
        "sd",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=160M",
        "count=1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Fewer tasks, live: a burst of 300 sleeps meets pids.max; systemd goes on.
    h.ok(&["set", "sd", "pids.max=100"]);
    // (The shell may itself die of a refused fork: the kernel's counters tell.)
    h.sh(
        "sd",
        "for i in $(seq 300); do sleep 5 2>/dev/null & done; kill $(jobs -p) 2>/dev/null",
    );
    let report: serde_json::Value =
        serde_json::from_str(&h.ok(&["limits", "sd", "--format", "json"])).unwrap();
    let pids = &report["counters"]["pids"];
    eprintln!("pids: {pids}");
    assert!(pids["hits"].as_u64().unwrap() > 0, "{pids}");
    assert!(pids["peak"].as_u64().unwrap_or(100) <= 100, "{pids}");
    assert_eq!(report["oom_kills"].as_u64(), Some(1), "{report}");
    assert_eq!(h.systemd_state("sd"), "running");
}
