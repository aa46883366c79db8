//! Faults: guests outlive their monitor and are adopted by the next command, never run
//! twice, and what ended unwatched is cleaned up by `hangar repair`. Needs root.

mod common;
use common::netns::leftovers;
use common::{TestHost, wait_for};
use std::io::{Read, Write};
use std::time::Duration;

fn sigkill(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
}

/// Kills guest `name`'s monitor and waits until its lock is free (list says so).
fn kill_monitor(h: &TestHost, name: &str) -> i32 {
    let monitor = h.runtime(name)["monitor_pid"].as_i64().unwrap() as i32;
    sigkill(monitor);
    assert!(
        wait_for(Duration::from_secs(5), || h.info(name)["monitor"] == false),
        "{name}'s monitor is still reported"
    );
    monitor
}

/// One HTTP GET from the host to `ip`:80, raw: the page's body.
fn get(ip: &str) -> String {
    let mut s = std::net::TcpStream::connect_timeout(
        &format!("{ip}:80").parse().unwrap(),
        Duration::from_secs(3),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn a_guest_outlives_its_killed_monitor_is_adopted_and_stops_cleanly() {
    require_root!();
    let h = TestHost::new("adopt");
    h.ok(&["network", "create", "lan", "--ipv4", "10.240.77.1/24"]);
    h.ok(&["build", "web", "-m", "busybox", "--network", "lan"]);
    h.build_busybox("other");
    let init = h.started("web");
    h.started("other");
    let ip = h.nic_address("web", "eth0");
    h.sh(
        "web",
        "mkdir -p /www && echo still-serving > /www/index.html && httpd -p 80 -h /www",
    );
    assert_eq!(get(&ip).trim(), "still-serving");

    let lost = kill_monitor(&h, "web");
    // Nothing adopted it yet: a view changes nothing. It runs, answers on its network,
    // and says it has no monitor.
    let row = h.info("web");
    assert_eq!(row["state"], "running");
    assert_eq!(row["init_pid"], init);
    assert!(alive(init));
    assert_eq!(get(&ip).trim(), "still-serving");
    assert_eq!(h.runtime("web")["monitor_pid"], lost);
    assert!(h.ok(&["list"]).contains("running*"), "{}", h.ok(&["list"]));
    // The other guest never noticed.
    assert_eq!(h.info("other")["monitor"], true);

    // The next command adopts it, and says so.
    let out = h
        .cmd(&["exec", "web", "--", "cat", "/www/index.html"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "still-serving");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("a new monitor adopted it"), "{said}");
    assert!(said.contains("console"), "{said}");
    let rt = h.runtime("web");
    assert_ne!(rt["monitor_pid"], lost);
    assert_eq!(rt["adopted"]["lost_monitor"], lost);
    assert_eq!(h.info("web")["monitor"], true);
    assert_eq!(h.info("web")["init_pid"], init);
    // Never two instances: a second start is refused, and the first runs on.
    let refused = h.fails(&["start", "web"]);
    assert!(refused.contains("already running"), "{refused}");
    assert!(alive(init));
    // The adopted guest stops cleanly: its init ran its shutdown (busybox halts), its
    // cgroup and its NIC's guard go, nothing of its network is left.
    h.ok(&["stop", "web"]);
    assert!(!alive(init));
    assert_eq!(h.state("web"), "stopped");
    assert_eq!(h.info("web")["last_exit"], "halted");
    assert!(!h.guest_cgroup_exists("web"));
    let check: serde_json::Value =
        serde_json::from_str(&h.ok(&["network", "check", "--format", "json"])).unwrap();
    assert_eq!(check["stale_guards"], serde_json::json!([]), "{check}");
    assert_eq!(check["stale_links"], serde_json::json!([]), "{check}");
    // And it starts again, watched from its start.
    h.started("web");
    assert_eq!(h.info("web")["monitor"], true);
    assert!(h.runtime("web").get("adopted").is_none());
    h.ok(&["kill", "web"]);
    h.ok(&["kill", "other"]);
    h.ok(&["delete", "web"]);
    h.ok(&["network", "delete", "lan"]);
    assert_eq!(leftovers(&h), "", "links, rules or DNS servers left behind");
}

#[test]
fn a_guest_that_ended_unwatched_is_cleaned_up_by_repair() {
    require_root!();
    let h = TestHost::new("unwatched");
    h.ok(&["network", "create", "lan", "--ipv4", "10.240.78.1/24"]);
    h.ok(&["build", "g", "-m", "busybox", "--network", "lan"]);
    let init = h.started("g");
    kill_monitor(&h, "g");
    sigkill(init as i32);
    assert!(wait_for(Duration::from_secs(5), || h.state("g") == "stopped"));
    // How it ended is not known to anyone.
    assert_eq!(h.info("g")["last_exit"], "monitorlost");
    assert!(h.guest_cgroup_exists("g"), "nothing cleaned up yet");
    let report: serde_json::Value =
        serde_json::from_str(&h.ok(&["repair", "--format", "json"])).unwrap();
    assert_eq!(report["cleaned"], serde_json::json!(["g"]), "{report}");
    assert_eq!(report["adopted"], serde_json::json!([]), "{report}");
    assert!(
        wait_for(Duration::from_secs(5), || !h.guest_cgroup_exists("g")),
        "its cgroup is still there"
    );
    let check: serde_json::Value =
        serde_json::from_str(&h.ok(&["network", "check", "--format", "json"])).unwrap();
    assert_eq!(check["stale_guards"], serde_json::json!([]), "{check}");
    // A second repair finds nothing to do; the guest starts again.
    let again: serde_json::Value =
        serde_json::from_str(&h.ok(&["repair", "--format", "json"])).unwrap();
    assert_eq!(again["cleaned"], serde_json::json!([]), "{again}");
    h.started("g");
    assert_eq!(h.state("g"), "running");
}

/// A monitor killed while it cleans up after its ended guest (it has recorded the
/// exit and says `stopping` with no init until its cgroups are gone) leaves a guest
/// that is listed stopped with that exit, and that repair cleans up after.
#[test]
fn a_monitor_killed_while_cleaning_up_leaves_nothing_repair_cannot_finish() {
    require_root!();
    let h = TestHost::new("midclean");
    h.build_busybox("g");
    let init = h.started("g");
    let mut state = h.runtime("g");
    kill_monitor(&h, "g");
    sigkill(init as i32);
    assert!(wait_for(Duration::from_secs(5), || !alive(init)));
    // What the state file holds while a monitor is in the middle of cleaning up.
    state["state"] = "stopping".into();
    state["init_pid"] = serde_json::Value::Null;
    state["init_start"] = serde_json::Value::Null;
    state["last_exit"] = serde_json::json!({"signaled": 9});
    let file = h.root.join("run/hangar/guests/g/state.json");
    std::fs::write(&file, serde_json::to_vec(&state).unwrap()).unwrap();
    let row = h.info("g");
    assert_eq!(row["state"], "stopped", "{row}");
    assert_eq!(
        row["last_exit"],
        serde_json::json!({"signaled": 9}),
        "{row}"
    );
    assert!(h.guest_cgroup_exists("g"), "nothing cleaned up yet");
    let report: serde_json::Value =
        serde_json::from_str(&h.ok(&["repair", "--format", "json"])).unwrap();
    assert_eq!(report["cleaned"], serde_json::json!(["g"]), "{report}");
    assert!(!h.guest_cgroup_exists("g"), "its cgroup is still there");
    // The exit its monitor had recorded is kept.
    let row = h.info("g");
    assert_eq!(
        row["last_exit"],
        serde_json::json!({"signaled": 9}),
        "{row}"
    );
    h.started("g");
}

#[test]
fn a_guest_whose_state_file_is_lost_is_found_from_its_cgroup_and_not_started_twice() {
    require_root!();
    let h = TestHost::new("lostate");
    h.build_busybox("g");
    let init = h.started("g");
    kill_monitor(&h, "g");
    let state = h.root.join("run/hangar/guests/g/state.json");
    std::fs::write(&state, b"{\"state\": \"runn").unwrap();
    let refused = h.fails(&["start", "g"]);
    assert!(refused.contains("already running"), "{refused}");
    assert!(alive(init));
    // Adopted from its cgroup: the state file names it again.
    assert_eq!(h.info("g")["state"], "running");
    assert_eq!(h.info("g")["init_pid"], init);
    assert_eq!(h.sh("g", "echo alive").1.trim(), "alive");
    h.ok(&["stop", "g"]);
    assert!(!alive(init));
}

#[test]
fn two_roots_never_share_a_context_id_or_host_uids() {
    require_root!();
    let a = TestHost::new("ids-a");
    let b = TestHost::new("ids-b");
    a.build_busybox("g");
    b.build_busybox("g");
    let (ca, cb) = (
        a.info("g")["context"].as_u64().unwrap(),
        b.info("g")["context"].as_u64().unwrap(),
    );
    assert_ne!(ca, cb, "both roots gave context {ca}");
    let (pa, pb) = (a.started("g"), b.started("g"));
    let (ua, ub) = (common::host_uid_of(pa), common::host_uid_of(pb));
    assert!(
        ua.abs_diff(ub) >= 65536,
        "host uid ranges from {ua} and {ub} overlap"
    );
    // Asked for by hand, the other root's id is refused, naming who holds it.
    let err = b.fails(&["build", "h", "-m", "skeleton", "--context", &ca.to_string()]);
    assert!(
        err.contains(&format!(
            "context id {ca} is already used by guest g of hangar root {}",
            a.root.display()
        )),
        "{err}"
    );
    // A config edited by hand behind hangar's back is caught at start.
    b.ok(&["kill", "g"]);
    let file = b.config_file("g");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(&format!("context = {cb}"), &format!("context = {ca}")),
    )
    .unwrap();
    let err = b.fails(&["start", "g"]);
    assert!(
        err.contains("already used by guest g of hangar root"),
        "{err}"
    );
    assert_eq!(b.state("g"), "stopped");
    assert_eq!(a.state("g"), "running");
    // Once the first root deletes its guest, the id is free for the other.
    a.ok(&["delete", "g", "--force"]);
    b.started("g");
    assert_eq!(
        common::host_uid_of(b.info("g")["init_pid"].as_i64().unwrap()),
        (ca * 65536) as u32
    );
}

#[test]
fn damaged_files_are_named_in_errors_and_repair_loses_no_data() {
    require_root!();
    let h = TestHost::new("damaged");
    h.build_busybox("a");
    h.build_busybox("b");
    let init = h.started("a");
    let (fa, fb) = (h.config_file("a"), h.config_file("b"));
    let (good_a, good_b) = (std::fs::read(&fa).unwrap(), std::fs::read(&fb).unwrap());
    // As after a power loss: one config cut short, the other garbage.
    std::fs::write(&fa, &good_a[..good_a.len() / 2]).unwrap();
    std::fs::write(&fb, b"\x00\x17garbage[[[").unwrap();
    let out = h.run(&["list"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&fa.display().to_string()), "{said}");
    assert!(
        said.contains(&format!("it is running (init pid {init})")),
        "{said}"
    );
    assert!(said.contains(&fb.display().to_string()), "{said}");
    let err = h.fails(&["start", "b"]);
    assert!(err.contains(&fb.display().to_string()), "{err}");
    let out = h.run(&["repair"]);
    assert!(
        !out.status.success(),
        "repair cannot mend a config and says so"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&fa.display().to_string()), "{said}");
    // Nothing of the guests was lost, and the running one still runs.
    assert!(h.rootfs("a").join("sbin/init").exists() && h.rootfs("b").join("sbin/init").exists());
    assert!(alive(init));
    std::fs::write(&fa, &good_a).unwrap();
    std::fs::write(&fb, &good_b).unwrap();
    assert_eq!(h.info("a")["state"], "running");
    assert_eq!(h.info("b")["state"], "stopped");
    // A damaged host defaults file stops every command, naming it.
    let defaults = h.root.join("etc/hangar/defaults.toml");
    let good_defaults = std::fs::read(&defaults).unwrap();
    std::fs::write(&defaults, b"network = [").unwrap();
    let err = h.fails(&["list"]);
    assert!(err.contains(&defaults.display().to_string()), "{err}");
    std::fs::write(&defaults, good_defaults).unwrap();
    h.ok(&["stop", "a", "-t", "1"]);
}
