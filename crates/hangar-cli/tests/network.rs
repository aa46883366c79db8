//! Networks end to end, inside network namespaces the tests create: bridge and NAT
//! networks, routed guests, VLAN isolation, names, anti-spoofing, hot plug, rate limits,
//! and no leftovers. Needs root.

mod common;
use common::TestHost;
use common::netns::{Netns, leftovers, sh};
use std::time::Duration;

/// Whether guest `guest` gets an answer from `addr` (one ping, 2 s).
fn pings(h: &TestHost, guest: &str, addr: &str) -> bool {
    let cmd = format!("ping -c1 -W2 {addr} >/dev/null && echo ok");
    h.sh(guest, &cmd).1.trim() == "ok"
}

fn net(h: &TestHost, name: &str, extra: &[&str]) {
    let mut args = vec!["network", "create", name];
    args.extend_from_slice(extra);
    h.ok(&args);
}

#[test]
fn guests_on_one_bridge_ping_each_other_and_resolve_names() {
    require_root!();
    let h = TestHost::new("bridge");
    {
        net(&h, "lan", &["--ipv4", "10.240.1.1/24"]);
        h.ok(&["build", "a", "-m", "busybox", "--network", "lan"]);
        h.ok(&["build", "b", "-m", "busybox", "--network", "lan"]);
        h.started("a");
        h.started("b");
        let b_ip = h.nic_address("b", "eth0");
        assert!(b_ip.starts_with("10.240.1."), "{b_ip}");
        assert!(pings(&h, "a", &b_ip));
        // Names: the other guest and the host, short and with the domain.
        let (_, out) = h.sh(
            "a",
            "nslookup b 2>&1; nslookup b.hangar 2>&1; nslookup host 2>&1",
        );
        assert!(out.matches(&b_ip).count() >= 2, "{out}");
        assert!(out.contains("10.240.1.1"), "{out}");
        let (_, ipa) = h.sh(
            "a",
            "ip -o addr show | awk '{print $2}' | sort -u | tr '\\n' ' '",
        );
        assert_eq!(ipa.trim(), "eth0 lo");
        h.ok(&["kill", "a"]);
        h.ok(&["kill", "b"]);
        h.ok(&["delete", "a"]);
        h.ok(&["delete", "b"]);
        h.ok(&["network", "delete", "lan"]);
    }
    assert_eq!(
        leftovers(&h),
        "",
        "links, routes, rules or DNS servers left behind"
    );
}

#[test]
fn a_nat_guest_reaches_the_host_side_and_a_port_forward_reaches_its_service() {
    require_root!();
    let h = TestHost::new("nat");
    net(&h, "natnet", &[]);
    h.ok(&["build", "web", "-m", "busybox", "--network", "natnet"]);
    h.started("web");
    let gw = h.ok(&["network", "show", "natnet"]);
    let v: serde_json::Value = serde_json::from_str(&gw).unwrap();
    let host_ip = v["network"]["ipv4"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(pings(&h, "web", &host_ip));
    // A client outside: its own network namespace wired to the host.
    let ns = format!("hgt-nat-{}", std::process::id());
    let _ns = Netns::new(&ns, "10.241.9.1/24", "10.241.9.2/24");
    h.sh(
        "web",
        "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -p 80 -h /www",
    );
    let netfile = h.root.join("etc/hangar/networks/natnet.toml");
    let mut text = std::fs::read_to_string(&netfile).unwrap();
    text.push_str(
        "\n[[forwards]]\nproto = \"tcp\"\nhost_port = 18080\nguest = \"web\"\nguest_port = 80\n",
    );
    std::fs::write(&netfile, text).unwrap();
    h.ok(&["network", "check", "--repair"]);
    // (busybox's wget -T crashes; bound it from outside.)
    // Masqueraded out through the host to another host.
    assert!(pings(&h, "web", "10.241.9.2"));
    // Its own name at its address in /etc/hosts.
    let web_ip = h.nic_address("web", "eth0");
    assert!(
        h.sh("web", "cat /etc/hosts")
            .1
            .lines()
            .any(|l| l.starts_with(&format!("{web_ip} web")))
    );
    let (_, page) = sh(&format!(
        "ip netns exec {ns} timeout 5 busybox wget -qO- http://10.241.9.1:18080/"
    ));
    assert_eq!(page.trim(), "hello-from-web");
}

#[test]
fn a_routed_guest_is_reachable_at_its_own_address_from_another_host() {
    require_root!();
    let h = TestHost::new("routed");
    h.ok(&[
        "build",
        "r",
        "-m",
        "busybox",
        "--nic",
        "mode=routed,ip=10.242.7.7/32",
    ]);
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    h.started("r");
    let ns = format!("hgt-rt-{}", std::process::id());
    let _ns = Netns::new(&ns, "10.242.9.1/24", "10.242.9.2/24");
    let (ok, out) = sh(&format!(
        "ip netns exec {ns} busybox ping -c1 -W2 10.242.7.7"
    ));
    std::fs::write("/proc/sys/net/ipv4/ip_forward", forwarding).unwrap();
    assert!(ok, "{out}");
    let (_, inside) = h.sh("r", "ip -o -4 addr show eth0");
    assert!(inside.contains("10.242.7.7/32"), "{inside}");
}

#[test]
fn guests_on_different_vlans_cannot_reach_each_other() {
    require_root!();
    let h = TestHost::new("vlan");
    net(&h, "vl", &["--kind", "bridge", "--no-dns"]);
    for (g, vlan, ip) in [
        ("a7", 7, "10.243.0.1/24"),
        ("b7", 7, "10.243.0.2/24"),
        ("c8", 8, "10.243.0.3/24"),
    ] {
        h.ok(&[
            "build",
            g,
            "-m",
            "busybox",
            "--nic",
            &format!("network=vl,vlan={vlan},ip={ip}"),
        ]);
        h.started(g);
    }
    assert!(pings(&h, "a7", "10.243.0.2"), "same VLAN");
    assert!(!pings(&h, "a7", "10.243.0.3"), "across VLANs");
}

#[test]
fn a_guest_using_another_guests_ip_or_mac_gets_nothing_through() {
    require_root!();
    let h = TestHost::new("spoof");
    net(&h, "sp", &["--ipv4", "10.244.0.1/24", "--no-dns"]);
    for (g, ip) in [
        ("a", "10.244.0.2/24"),
        ("b", "10.244.0.3/24"),
        ("c", "10.244.0.4/24"),
    ] {
        h.ok(&[
            "build",
            g,
            "-m",
            "busybox",
            "--nic",
            &format!("network=sp,ip={ip}"),
        ]);
        h.started(g);
    }
    assert!(pings(&h, "a", "10.244.0.4"));
    // a takes b's address: its packets are dropped.
    h.sh(
        "a",
        "ip addr flush dev eth0 && ip addr add 10.244.0.3/24 dev eth0",
    );
    assert!(!pings(&h, "a", "10.244.0.4"), "spoofed IP got through");
    // a keeps its address but takes b's MAC: dropped too.
    let b_mac = h
        .sh("b", "cat /sys/class/net/eth0/address")
        .1
        .trim()
        .to_string();
    h.sh("a", &format!("ip addr flush dev eth0 && ip addr add 10.244.0.2/24 dev eth0 && ip link set eth0 address {b_mac}"));
    assert!(!pings(&h, "a", "10.244.0.4"), "spoofed MAC got through");
}

#[test]
fn a_nic_attached_and_detached_on_a_running_guest() {
    require_root!();
    let h = TestHost::new("hotplug");
    net(&h, "hp", &["--ipv4", "10.245.0.1/24", "--no-dns"]);
    h.ok(&["build", "g", "-m", "busybox", "--network", "none"]);
    h.started("g");
    assert_eq!(h.sh("g", "ls /sys/class/net | tr '\\n' ' '").1.trim(), "lo");
    h.ok(&["attach", "g", "nic", "network=hp", "name=eth1"]);
    assert!(pings(&h, "g", "10.245.0.1"));
    h.ok(&["detach", "g", "nic", "eth1"]);
    assert_eq!(h.sh("g", "ls /sys/class/net | tr '\\n' ' '").1.trim(), "lo");
    assert!(!h.ok(&["config", "show", "g"]).contains("eth1"));
}

/// Seconds to move `bytes` over TCP: the sender writes all, half-closes, and waits for
/// the receiver to close (it has then read everything).
fn timed_send(mut stream: std::net::TcpStream, bytes: usize) -> f64 {
    use std::io::{Read, Write};
    let t = std::time::Instant::now();
    let chunk = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = vec![];
    let _ = stream.read_to_end(&mut rest);
    t.elapsed().as_secs_f64()
}

#[test]
fn a_10_mbit_rate_limit_is_measured_within_15_percent() {
    require_root!();
    let h = TestHost::new("qos");
    net(&h, "qs", &["--ipv4", "10.246.0.1/24", "--no-dns"]);
    h.ok(&[
        "build",
        "g",
        "-m",
        "busybox",
        "--nic",
        "network=qs,ingress=10mbit,egress=10mbit",
    ]);
    h.started("g");
    let ip = h.nic_address("g", "eth0");
    // Guest ingress: the host sends 4 MB to a sink in the guest.
    // (stdin kept open: nc must not end before the socket does)
    h.sh(
        "g",
        "(sleep 60 | nc -l -p 5001 > /dev/null) >/dev/null 2>&1 &",
    );
    std::thread::sleep(Duration::from_millis(300));
    let stream = std::net::TcpStream::connect_timeout(
        &format!("{ip}:5001").parse().unwrap(),
        Duration::from_secs(3),
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mbit = 4_000_000.0 * 8.0 / timed_send(stream, 4_000_000) / 1e6;
    assert!(
        (8.5..=11.5).contains(&mbit),
        "guest ingress measured {mbit:.2} Mbit/s"
    );
    // Guest egress: the guest sends 4 MB to the host, which times what arrives.
    let listener = std::net::TcpListener::bind("10.246.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sender = h
        .cmd(&[
            "exec",
            "g",
            "--",
            "sh",
            "-c",
            &format!("dd if=/dev/zero bs=100000 count=40 2>/dev/null | nc -w 2 10.246.0.1 {port}"),
        ])
        .spawn()
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut got, mut first, mut last) = (0usize, None, std::time::Instant::now());
    while got < 4_000_000 {
        use std::io::Read;
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert_with(std::time::Instant::now);
        got += n;
        last = std::time::Instant::now();
    }
    drop(sender);
    let secs = (last - first.unwrap()).as_secs_f64();
    let mbit = got as f64 * 8.0 / secs / 1e6;
    assert_eq!(got, 4_000_000);
    assert!(
        (8.5..=11.5).contains(&mbit),
        "guest egress measured {mbit:.2} Mbit/s"
    );
    // Changed live with hangar set: the guest's ingress shaping goes away.
    let host_if = format!(
        "h{}{}-eth0",
        &h.cgroup_parent()["hangar-".len()..][..3],
        h.info("g")["context"]
    );
    assert!(
        sh(&format!("tc qdisc show dev {host_if}"))
            .1
            .contains("tbf")
    );
    // `net.ingress` names the guest's only NIC.
    h.ok(&["set", "g", "net.ingress=max"]);
    let (_, qdisc) = sh(&format!("tc qdisc show dev {host_if}"));
    assert!(!qdisc.contains("tbf"), "{qdisc}");
}

#[test]
fn new_guests_join_the_default_nat_network_unless_the_host_defaults_say_none() {
    require_root!();
    let h = TestHost::new("defaultnet");
    // The harness's defaults say none: only lo.
    h.build_busybox("plain");
    assert!(!h.ok(&["config", "show", "plain"]).contains("[[nic]]"));
    // Without that line, a guest gets eth0 on the default NAT network, created on first use.
    std::fs::remove_file(h.root.join("etc/hangar/defaults.toml")).unwrap();
    h.build_busybox("netted");
    assert!(
        h.ok(&["config", "show", "netted"])
            .contains("network = \"default\"")
    );
    h.started("netted");
    let gw = serde_json::from_str::<serde_json::Value>(&h.ok(&["network", "show", "default"]))
        .unwrap()["network"]["ipv4"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(pings(&h, "netted", &gw));
}

#[test]
fn network_check_finds_and_repairs_what_a_crashed_monitor_left() {
    require_root!();
    let h = TestHost::new("netcheck");
    net(&h, "ck", &["--ipv4", "10.248.0.1/24", "--no-dns"]);
    h.ok(&[
        "build",
        "g",
        "-m",
        "busybox",
        "--nic",
        "network=ck,egress=10mbit",
    ]);
    h.ok(&["build", "ok", "-m", "busybox", "--network", "ck"]);
    h.started("g");
    h.started("ok");
    let clean = h.ok(&["network", "check", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&clean).unwrap();
    assert!(
        v["stale_links"].as_array().unwrap().is_empty()
            && v["stale_guards"].as_array().unwrap().is_empty(),
        "{clean}"
    );
    // The monitor dies, then its guest (which outlives a monitor) without one to clean
    // up: its guard and shaping device stay.
    let monitor = h.runtime("g")["monitor_pid"].as_i64().unwrap() as i32;
    let init = h.runtime("g")["init_pid"].as_i64().unwrap() as i32;
    for pid in [monitor, init] {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    }
    assert!(common::wait_for(Duration::from_secs(5), || h.state("g") == "stopped"));
    let found: serde_json::Value =
        serde_json::from_str(&h.ok(&["network", "check", "--format", "json"])).unwrap();
    assert_eq!(
        found["stale_guards"],
        serde_json::json!(["g.eth0"]),
        "{found}"
    );
    assert!(
        found["stale_links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("ifb")),
        "{found}"
    );
    h.ok(&["network", "check", "--repair"]);
    let after: serde_json::Value =
        serde_json::from_str(&h.ok(&["network", "check", "--format", "json"])).unwrap();
    assert!(
        after["stale_links"].as_array().unwrap().is_empty()
            && after["stale_guards"].as_array().unwrap().is_empty(),
        "{after}"
    );
    // The running neighbour kept its guard and its network.
    assert!(pings(&h, "ok", "10.248.0.1"));
    assert!(sh("nft list ruleset").1.contains("ok.eth0"));
}

/// A pid from a file of network `net`'s DNS directory: `dnsmasq.pid`, or a field of
/// the keeper's `keeper-state.json`.
fn dns_pid(h: &TestHost, net: &str, what: &str) -> i32 {
    let dir = h.root.join("run/hangar/networks").join(net);
    if what == "dnsmasq" {
        let text = std::fs::read_to_string(dir.join("dnsmasq.pid")).unwrap_or_default();
        return text.trim().parse().unwrap_or(0);
    }
    let state = std::fs::read(dir.join("keeper-state.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&state).unwrap_or_default();
    v[what].as_i64().unwrap_or(0) as i32
}

fn sigkill(pid: i32) {
    assert!(pid > 0);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
}

#[test]
fn a_dead_dnsmasq_is_restarted_at_once_and_a_dead_keeper_is_repaired() {
    require_root!();
    let h = TestHost::new("dnskeep");
    {
        net(&h, "dk", &["--ipv4", "10.249.0.1/24"]);
        h.ok(&["build", "a", "-m", "busybox", "--network", "dk"]);
        h.started("a");
        let a_ip = h.nic_address("a", "eth0");
        let resolves = || h.sh("a", "nslookup a.hangar 2>&1").1.contains(&a_ip);
        assert!(resolves());
        let dns_down = || {
            let v: serde_json::Value =
                serde_json::from_str(&h.ok(&["network", "check", "--format", "json"])).unwrap();
            v["dns_down"].clone()
        };
        assert_eq!(dns_down(), serde_json::json!([]));

        // dnsmasq dies: its keeper starts it again at once, with the guests' names.
        let first = dns_pid(&h, "dk", "dnsmasq");
        sigkill(first);
        assert!(
            common::wait_for(Duration::from_secs(5), || {
                let now = dns_pid(&h, "dk", "dnsmasq");
                now != first && now == dns_pid(&h, "dk", "dnsmasq_pid")
            }),
            "dnsmasq was not restarted"
        );
        assert!(common::wait_for(Duration::from_secs(5), resolves));
        assert_eq!(dns_pid(&h, "dk", "restarts"), 1);

        // The keeper dies: dnsmasq keeps serving, check reports the missing keeper and
        // repair starts a new one, which watches the same dnsmasq.
        let serving = dns_pid(&h, "dk", "dnsmasq");
        sigkill(dns_pid(&h, "dk", "keeper_pid"));
        assert!(common::wait_for(Duration::from_secs(5), || dns_down()
            == serde_json::json!(["dk (keeper)"])));
        assert!(resolves());
        h.ok(&["network", "check", "--repair"]);
        assert_eq!(dns_down(), serde_json::json!([]));
        assert_eq!(dns_pid(&h, "dk", "dnsmasq"), serving);
        sigkill(serving);
        assert!(common::wait_for(Duration::from_secs(5), || {
            let now = dns_pid(&h, "dk", "dnsmasq_pid");
            now != serving && now != 0
        }));
        assert!(common::wait_for(Duration::from_secs(5), resolves));

        h.ok(&["kill", "a"]);
        h.ok(&["delete", "a"]);
        h.ok(&["network", "delete", "dk"]);
    }
    assert_eq!(
        leftovers(&h),
        "",
        "links, routes, rules, DNS servers or keepers left behind"
    );
}

#[test]
fn guests_reach_each_other_over_ipv6() {
    require_root!();
    let h = TestHost::new("ipv6");
    net(
        &h,
        "six",
        &[
            "--ipv4",
            "10.250.0.1/24",
            "--ipv6",
            "fd42:250::1/64",
            "--no-dns",
        ],
    );
    h.ok(&["build", "a", "-m", "busybox", "--network", "six"]);
    h.ok(&["build", "b", "-m", "busybox", "--network", "six"]);
    h.started("a");
    h.started("b");
    let cfg = std::fs::read_to_string(h.config_file("b")).unwrap();
    let v: toml::Value = toml::from_str(&cfg).unwrap();
    let b6 = v["nic"][0]["ipv6"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(b6.starts_with("fd42:250::"), "{b6}");
    // DAD may hold a fresh address for a moment.
    assert!(common::wait_for(Duration::from_secs(5), || h
        .sh("a", &format!("ping -6 -c1 -W1 {b6} >/dev/null && echo ok"))
        .1
        .trim()
        == "ok"));
    assert!(common::wait_for(Duration::from_secs(5), || h
        .sh("a", "ping -6 -c1 -W1 fd42:250::1 >/dev/null && echo ok")
        .1
        .trim()
        == "ok"));
}

/// The host's whole network state: interface names, the routes of every table, the
/// nftables ruleset. Only meaningful in a test that runs alone (`.config/nextest.toml`).
fn host_network_state() -> String {
    let links = sh("ip -o link show | awk -F': ' '{print $2}' | sort").1;
    let routes = sh("ip -4 route show table all; ip -6 route show table all").1;
    let rules = sh("nft list ruleset").1;
    format!("links:\n{links}\nroutes:\n{routes}\nruleset:\n{rules}")
}

#[test]
fn the_host_is_as_before_after_every_kind_of_network_use() {
    require_root!();
    let before = host_network_state();
    {
        let h = TestHost::new("asbefore");
        net(&h, "n1", &["--ipv4", "10.252.0.1/24"]);
        net(
            &h,
            "b1",
            &[
                "--kind",
                "bridge",
                "--ipv4",
                "10.252.1.1/24",
                "--ipv6",
                "fd00:252:1::1/64",
            ],
        );
        h.ok(&[
            "build",
            "a",
            "-m",
            "busybox",
            "--nic",
            "network=n1,egress=20mbit,ingress=20mbit",
            "--nic",
            "network=b1,name=eth1",
        ]);
        h.ok(&[
            "build",
            "v",
            "-m",
            "busybox",
            "--nic",
            "network=b1,vlan=9,ip=10.252.1.9/24",
        ]);
        h.ok(&[
            "build",
            "r",
            "-m",
            "busybox",
            "--nic",
            "mode=routed,ip=10.252.7.7/32",
        ]);
        let file = h.root.join("etc/hangar/networks/n1.toml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text += "\n[[forwards]]\nhost_port = 18452\nguest = \"a\"\nguest_port = 80\n";
        std::fs::write(&file, text).unwrap();
        let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        for g in ["a", "v", "r"] {
            h.started(g);
        }
        h.ok(&["network", "check", "--repair"]);
        assert!(sh("nft list ruleset").1.contains("18452"));
        h.ok(&["network", "forward", "add", "n1", "18453", "a:22"]);
        h.ok(&[
            "network", "forward", "add", "n1", "18454", "a:53", "--proto", "udp",
        ]);
        h.ok(&["network", "forward", "remove", "n1", "18453"]);
        h.ok(&["attach", "v", "nic", "network=n1", "name=eth2"]);
        h.ok(&["set", "a", "nic.eth0.egress=5mbit"]);
        // With two NICs, the short form must say which.
        let err = h.fails(&["set", "a", "net.egress=5mbit"]);
        assert!(
            err.contains("eth0, eth1") && err.contains("nic.NAME.egress"),
            "{err}"
        );
        h.ok(&["detach", "v", "nic", "eth2"]);
        // A monitor killed, then its guest: its leftovers are for network check to remove.
        let monitor = h.runtime("r")["monitor_pid"].as_i64().unwrap() as i32;
        let init = h.runtime("r")["init_pid"].as_i64().unwrap() as i32;
        sigkill(monitor);
        sigkill(init);
        assert!(common::wait_for(Duration::from_secs(5), || h.state("r") == "stopped"));
        h.ok(&["network", "check", "--repair"]);
        h.ok(&["stop", "a"]);
        h.ok(&["kill", "v"]);
        for g in ["a", "v", "r"] {
            h.ok(&["delete", g]);
        }
        h.ok(&["network", "delete", "n1"]);
        h.ok(&["network", "delete", "b1"]);
        std::fs::write("/proc/sys/net/ipv4/ip_forward", forwarding).unwrap();
    }
    let after = host_network_state();
    let gone: Vec<&str> = before.lines().filter(|l| !after.contains(l)).collect();
    let new: Vec<&str> = after.lines().filter(|l| !before.contains(l)).collect();
    assert!(
        before == after,
        "the host's network state changed:\n--- gone\n{}\n--- new\n{}",
        gone.join("\n"),
        new.join("\n")
    );
}

/// This root's `inet` nftables table, as `nft` lists it.
fn nft_table(h: &TestHost) -> String {
    let table = h.cgroup_parent().replace("hangar-", "hangar_");
    sh(&format!("nft list table inet {table}")).1
}

/// The guest's default routes, one `via GATEWAY dev IF` per line.
fn default_routes(h: &TestHost, guest: &str) -> String {
    h.sh(
        guest,
        "ip -4 route show default | awk '{print $2, $3, $4, $5}'",
    )
    .1
    .trim()
    .to_string()
}

#[test]
fn a_port_forward_added_on_the_command_line_reaches_its_service_until_removed() {
    require_root!();
    let h = TestHost::new("fwd");
    net(&h, "fwnet", &[]);
    h.ok(&["build", "web", "-m", "busybox", "--network", "fwnet"]);
    h.started("web");
    h.sh(
        "web",
        "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -p 80 -h /www",
    );
    let ns = format!("hgt-fwd-{}", std::process::id());
    let _ns = Netns::new(&ns, "10.247.9.1/24", "10.247.9.2/24");
    let fetch = || {
        sh(&format!(
            "ip netns exec {ns} timeout 5 busybox wget -qO- http://10.247.9.1:18081/"
        ))
        .1
    };

    h.ok(&["network", "forward", "add", "fwnet", "18081", "web:80"]);
    assert_eq!(fetch().trim(), "hello-from-web");
    assert!(nft_table(&h).contains("fwnet:tcp:18081"));
    let shown: serde_json::Value =
        serde_json::from_str(&h.ok(&["network", "show", "fwnet"])).unwrap();
    assert_eq!(
        shown["network"]["forwards"],
        serde_json::json!([{"proto": "tcp", "host_port": 18081, "guest": "web", "guest_port": 80}])
    );
    // The NIC the forward goes through stays while the forward does.
    let netfile = h.root.join("etc/hangar/networks/fwnet.toml");
    let err = h.fails(&["detach", "web", "nic", "eth0"]);
    assert!(
        err.contains("port forward tcp 18081 -> web:80 of network fwnet goes to web through eth0")
            && err.contains("hangar network forward remove fwnet 18081"),
        "{err}"
    );

    h.ok(&["network", "forward", "remove", "fwnet", "18081"]);
    assert_ne!(fetch().trim(), "hello-from-web");
    assert!(!nft_table(&h).contains("18081"), "{}", nft_table(&h));
    assert!(
        !std::fs::read_to_string(&netfile)
            .unwrap()
            .contains("forwards")
    );
    let err = h.fails(&["network", "forward", "remove", "fwnet", "18081"]);
    assert!(
        err.contains("network fwnet has no forward of tcp port 18081"),
        "{err}"
    );
}

#[test]
fn a_subnet_the_host_already_routes_is_refused_and_nothing_is_made() {
    require_root!();
    let h = TestHost::new("subnetclash");
    let other = TestHost::new("subnetclash2");
    net(&h, "first", &["--ipv4", "10.236.0.1/24", "--no-dns"]);
    let before = [leftovers(&h), leftovers(&other)];
    // Inside the first network (its bridge's route is the host's), from this root
    // and from another root, and a NAT network wider than it.
    for (host, args) in [
        (&h, ["second", "--ipv4", "10.236.0.129/25"]),
        (&other, ["second", "--ipv4", "10.236.0.1/24"]),
        (&other, ["second", "--ipv4", "10.236.0.1/16"]),
    ] {
        let mut cmd = vec!["network", "create"];
        cmd.extend_from_slice(&args);
        let err = host.fails(&cmd);
        assert!(
            err.contains("overlaps 10.236.0.0/24, which this host already routes"),
            "{args:?}: {err}"
        );
        assert!(!host.root.join("etc/hangar/networks/second.toml").exists());
    }
    assert_eq!(
        [leftovers(&h), leftovers(&other)],
        before,
        "a refused network left something"
    );
    // Beside it is fine.
    net(&other, "beside", &["--ipv4", "10.236.1.1/24", "--no-dns"]);
}

#[test]
fn a_guest_with_a_nic_reboots_again_and_again_with_its_network() {
    require_root!();
    let h = TestHost::new("nicreboot");
    net(&h, "rb", &["--ipv4", "10.233.0.1/24", "--no-dns"]);
    h.ok(&["build", "g", "-m", "busybox", "--network", "rb"]);
    h.started("g");
    // Each reboot plugs the NIC again. (The old network namespace, and its veth with
    // it, goes away asynchronously; with a busy guest, sshd's in the systemd tests,
    // slowly enough that the old host side was still there: the monitor removes it.)
    for round in 1..=5u64 {
        let before = h.runtime("g")["init_pid"].as_i64();
        h.sh("g", "reboot");
        assert!(
            common::wait_for(Duration::from_secs(20), || {
                // The state file names the new init before its NICs are plugged (so a
                // monitor dying then leaves it adoptable): wait until it runs.
                h.runtime("g")["reboots"].as_u64() == Some(round)
                    && h.runtime("g")["state"] == "running"
                    && h.runtime("g")["init_pid"]
                        .as_i64()
                        .is_some_and(|p| Some(p) != before)
            }),
            "reboot {round}: {}; monitor log: {}",
            h.runtime("g"),
            std::fs::read_to_string(h.root.join("var/log/hangar/g/monitor.log"))
                .unwrap_or_default()
        );
        assert!(
            pings(&h, "g", "10.233.0.1"),
            "no network after reboot {round}"
        );
    }
}

#[test]
fn a_build_on_a_full_network_says_so_and_builds_nothing() {
    require_root!();
    let h = TestHost::new("fullnet");
    // A /30: the host's address and one guest's.
    net(&h, "tiny", &["--ipv4", "10.234.0.1/30", "--no-dns"]);
    h.ok(&["build", "one", "-m", "busybox", "--network", "tiny"]);
    let err = h.fails(&["build", "two", "-m", "busybox", "--network", "tiny"]);
    assert!(
        err.contains("no free address left in 10.234.0.0/30: the network is full")
            && err.contains("hangar network create"),
        "{err}"
    );
    assert_eq!(h.list().len(), 1, "a guest was built on a full network");
    assert!(!h.root.join("var/lib/hangar/guests/two").exists());
}

#[test]
fn bad_port_forwards_are_refused_and_leave_the_network_files_unchanged() {
    require_root!();
    let h = TestHost::new("badfwd");
    net(&h, "fa", &["--ipv4", "10.251.0.1/24", "--no-dns"]);
    net(&h, "fb", &["--ipv4", "10.238.0.1/24", "--no-dns"]);
    h.ok(&["build", "web", "-m", "busybox", "--network", "fa"]);
    h.ok(&["build", "db", "-m", "busybox", "--network", "fb"]);
    h.ok(&["build", "lonely", "-m", "busybox", "--network", "none"]);
    h.ok(&["network", "forward", "add", "fb", "18082", "db:5432"]);
    let files = ["fa", "fb"].map(|n| h.root.join(format!("etc/hangar/networks/{n}.toml")));
    let before = files.clone().map(|f| std::fs::read(f).unwrap());
    let table_before = nft_table(&h);

    for (args, why) in [
        (vec!["fa", "8080", "nobody:80"], "no guest named nobody"),
        (
            vec!["fa", "8080", "lonely:80"],
            "guest lonely has no IPv4 address on network fa",
        ),
        (vec!["nonet", "8080", "web:80"], "no network named nonet"),
        (
            vec!["fa", "0", "web:80"],
            "forwards.host_port: \"0\": use a port from 1 to 65535",
        ),
        (
            vec!["fa", "70000", "web:80"],
            "forwards.host_port: \"70000\": use a port from 1 to 65535",
        ),
        (
            vec!["fa", "8080", "web:80", "--proto", "sctp"],
            "forwards.proto: \"sctp\": use tcp or udp",
        ),
        (
            vec!["fa", "18082", "web:80"],
            "tcp port 18082 is already forwarded on network fb (tcp 18082 -> db:5432)",
        ),
        (
            vec!["fb", "18082", "db:80"],
            "tcp port 18082 is already forwarded on network fb",
        ),
    ] {
        let mut cmd = vec!["network", "forward", "add"];
        cmd.extend(&args);
        let err = h.fails(&cmd);
        assert!(err.contains(why), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }

    let after = files.clone().map(|f| std::fs::read(f).unwrap());
    assert_eq!(before, after);
    assert_eq!(table_before, nft_table(&h));
    // A rule left without its entry (the file edited by hand): the kernel side refuses
    // the port, and the file gets its old bytes back.
    h.ok(&["network", "forward", "add", "fb", "18085", "db:80"]);
    std::fs::write(&files[1], &before[1]).unwrap();
    let err = h.fails(&["network", "forward", "add", "fa", "18085", "web:80"]);
    assert!(err.contains("port ipv4 tcp 18085 is already used"), "{err}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), before[0]);
    // The same port over the other protocol is another forward.
    h.ok(&[
        "network", "forward", "add", "fa", "18082", "web:53", "--proto", "udp",
    ]);
}

#[test]
fn deleting_a_guest_removes_the_port_forwards_to_it_and_says_so() {
    require_root!();
    let h = TestHost::new("delfwd");
    net(&h, "fd", &["--ipv4", "10.253.0.1/24", "--no-dns"]);
    h.ok(&["build", "web", "-m", "busybox", "--network", "fd"]);
    h.ok(&["build", "keep", "-m", "busybox", "--network", "fd"]);
    h.ok(&["network", "forward", "add", "fd", "18083", "web:80"]);
    h.ok(&["network", "forward", "add", "fd", "18084", "keep:80"]);
    assert!(nft_table(&h).contains("fd:tcp:18083"));

    let out = h.run(&["delete", "web"]);

    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("removed port forward tcp 18083 -> web:80 of network fd with web"),
        "{err}"
    );
    let netfile = std::fs::read_to_string(h.root.join("etc/hangar/networks/fd.toml")).unwrap();
    assert!(
        !netfile.contains("18083") && netfile.contains("18084"),
        "{netfile}"
    );
    let table = nft_table(&h);
    assert!(
        !table.contains("fd:tcp:18083") && table.contains("fd:tcp:18084"),
        "{table}"
    );
    h.ok(&["network", "check", "--repair"]);
}

#[test]
fn a_nic_with_an_explicit_gateway_carries_the_default_route_via_it() {
    require_root!();
    let h = TestHost::new("gateway");
    net(&h, "ga", &["--ipv4", "10.254.1.1/24", "--no-dns"]);
    net(&h, "gb", &["--ipv4", "10.254.2.1/24", "--no-dns"]);
    // eth1 would get the default route via gb's host address, but eth0 gives one.
    h.ok(&[
        "build",
        "g",
        "-m",
        "busybox",
        "--nic",
        "network=ga,ip=10.254.1.5/24,gateway=10.254.1.254",
        "--nic",
        "network=gb",
    ]);
    // eth0 says none: the default route goes via eth1's network.
    h.ok(&[
        "build",
        "n",
        "-m",
        "busybox",
        "--nic",
        "network=ga,gateway=none",
        "--nic",
        "network=gb",
    ]);
    // Two NICs with automatic gateways: the first carries the default route.
    h.ok(&[
        "build",
        "two",
        "-m",
        "busybox",
        "--nic",
        "network=ga",
        "--nic",
        "network=gb",
    ]);
    h.started("g");
    h.started("n");
    h.started("two");

    assert_eq!(default_routes(&h, "g"), "via 10.254.1.254 dev eth0");
    assert_eq!(default_routes(&h, "n"), "via 10.254.2.1 dev eth1");
    assert_eq!(default_routes(&h, "two"), "via 10.254.1.1 dev eth0");
    assert!(
        h.ok(&["config", "show", "g"])
            .contains("gateway = \"10.254.1.254\"")
    );
    // Attached live with a gateway of its own, a NIC takes the default route over.
    h.ok(&[
        "attach",
        "two",
        "nic",
        "network=gb,name=eth2,gateway=10.254.2.254",
    ]);
    assert_eq!(default_routes(&h, "two"), "via 10.254.2.254 dev eth2");
}

#[test]
fn bad_gateways_are_refused_and_leave_the_config_unchanged() {
    require_root!();
    let h = TestHost::new("badgw");
    net(&h, "gc", &["--ipv4", "10.254.3.1/24", "--no-dns"]);
    h.ok(&[
        "build",
        "g",
        "-m",
        "busybox",
        "--nic",
        "network=gc,gateway=10.254.3.254",
    ]);
    let before = std::fs::read(h.config_file("g")).unwrap();

    for (items, why) in [
        (
            "network=gc,ip=10.254.3.7/24,gateway=10.9.9.9",
            "nic.gateway: 10.9.9.9 is not on nic eth1's subnet 10.254.3.0/24",
        ),
        (
            "network=gc,gateway=fd00::1",
            "nic.gateway: fd00::1 is not an IPv4 address",
        ),
        (
            "network=gc,ip=10.254.3.7/24,gateway=10.254.3.7",
            "nic.gateway: 10.254.3.7 is nic eth1's own address",
        ),
        (
            "network=gc,gateway6=10.254.3.1",
            "nic.gateway6: 10.254.3.1 is not an IPv6 address",
        ),
        ("network=gc,gateway=router", "write an address like"),
        (
            "network=gc,gateway=10.254.3.253",
            "nics eth0 and eth1 both give one",
        ),
    ] {
        let err = h.fails(&["attach", "g", "nic", items]);
        assert!(err.contains(why), "{items}: {err}");
    }
    let err = h.fails(&[
        "build",
        "b",
        "-m",
        "busybox",
        "--nic",
        "network=gc,gateway=10.9.9.9",
    ]);

    assert!(err.contains("is not on nic eth0's subnet"), "{err}");
    assert!(!h.config_file("b").exists());
    assert_eq!(before, std::fs::read(h.config_file("g")).unwrap());
}

#[test]
fn hand_edited_forwards_block_no_start_and_check_finds_both_kinds_of_stray() {
    require_root!();
    let h = TestHost::new("fwstray");
    net(&h, "fw", &["--ipv4", "10.237.0.1/24", "--no-dns"]);
    h.ok(&["build", "a", "-m", "busybox", "--network", "fw"]);
    h.ok(&["build", "b", "-m", "busybox", "--network", "fw"]);
    h.ok(&["network", "forward", "add", "fw", "18460", "a:80"]);
    // By hand: the forward to a goes from the file (its rule stays behind), and one to
    // a guest that does not exist comes in.
    let file = h.root.join("etc/hangar/networks/fw.toml");
    let mut cfg: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let ghost: toml::Table =
        toml::from_str("host_port = 18461\nguest = \"ghost\"\nguest_port = 80\n").unwrap();
    cfg.insert(
        "forwards".into(),
        toml::Value::Array(vec![toml::Value::Table(ghost)]),
    );
    std::fs::write(&file, toml::to_string(&cfg).unwrap()).unwrap();

    // The forward without a guest keeps no one from starting, and gets no rule.
    h.started("b");
    let ruleset = sh("nft list ruleset").1;
    assert!(!ruleset.contains("18461"), "{ruleset}");
    let check = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["network", "check", "--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&h.ok(&all)).unwrap()
    };
    let found = check(&[]);
    assert_eq!(found["stale_forwards"], serde_json::json!(["fw:tcp:18460"]));
    assert_eq!(
        found["forwards_without_target"],
        serde_json::json!(["tcp 18461 -> ghost:80 of network fw"])
    );
    check(&["--repair"]);
    assert!(!sh("nft list ruleset").1.contains("18460"));
    let after = check(&[]);
    assert_eq!(after["stale_forwards"], serde_json::json!([]));
    assert_eq!(
        after["forwards_without_target"],
        found["forwards_without_target"]
    );
}

/// Whether this kernel makes 802.1Q VLAN devices (it has none where this was written).
fn kernel_has_8021q(parent: &str) -> bool {
    let probe = format!("hgtq{}", std::process::id() % 100_000);
    let made = sh(&format!(
        "ip link add link {parent} name {probe} type vlan id 4000"
    ))
    .0;
    if made {
        let _ = sh(&format!("ip link del {probe}"));
    }
    made
}

#[test]
fn an_uplinked_bridge_carries_untagged_guests_and_vlans_tagged_or_refused() {
    require_root!();
    let h = TestHost::new("uplink");
    // The "physical network": a namespace behind a veth pair whose host end is the uplink.
    let ns = Netns {
        name: format!("hgt-up-{}", std::process::id()),
    };
    let uplink = format!("hgtu{}", std::process::id() % 100_000);
    for c in [
        format!("ip netns add {}", ns.name),
        format!(
            "ip link add {uplink} type veth peer name eth0 netns {}",
            ns.name
        ),
        format!("ip link set {uplink} up"),
        format!("ip -n {} addr add 10.254.0.1/24 dev eth0", ns.name),
        format!("ip -n {} link set eth0 up", ns.name),
    ] {
        let (ok, out) = sh(&c);
        assert!(ok, "{c}: {out}");
    }
    net(
        &h,
        "upl",
        &["--kind", "bridge", "--uplink", &uplink, "--no-dns"],
    );
    h.ok(&[
        "build",
        "a",
        "-m",
        "busybox",
        "--nic",
        "network=upl,ip=10.254.0.2/24",
    ]);
    h.started("a");
    assert!(pings(&h, "a", "10.254.0.1"), "untagged, through the uplink");
    h.ok(&[
        "build",
        "v",
        "-m",
        "busybox",
        "--nic",
        "network=upl,vlan=12,ip=10.254.0.3/24",
    ]);
    let vlan_links = || sh("ip -o link show | grep -E ': h[0-9a-f]{3}[vq]12-upl' || true").1;
    if kernel_has_8021q(&uplink) {
        // Tagged: v's VLAN reaches the uplink as VLAN 12, never untagged.
        h.started("v");
        assert!(vlan_links().contains("@"), "{}", vlan_links());
        assert!(
            !pings(&h, "v", "10.254.0.1"),
            "VLAN 12 must not reach the untagged segment"
        );
    } else {
        let err = h.fails(&["start", "v"]);
        assert!(err.contains("802.1Q"), "{err}");
        assert_eq!(h.state("v"), "stopped");
        assert_eq!(vlan_links(), "", "a failed start left VLAN links");
    }
    h.ok(&["kill", "a"]);
    h.ok(&["delete", "a"]);
    h.ok(&["delete", "--force", "v"]);
    h.ok(&["network", "delete", "upl"]);
    assert_eq!(vlan_links(), "");
    assert!(
        sh(&format!("ip link show {uplink}")).0,
        "the uplink itself stays"
    );
}

/// `hangar config edit NAME` with an "editor" that runs `sed -i EXPR` on the file,
/// starting from the saved config (not from the draft a refused edit keeps).
fn edit_with_sed(h: &TestHost, name: &str, expr: &str) -> std::process::Output {
    let draft = h.root.join(format!("etc/hangar/guests/.{name}.edit.toml"));
    let _ = std::fs::remove_file(draft);
    let editor = h.root.join("editor.sh");
    std::fs::write(&editor, format!("#!/bin/sh\nsed -i '{expr}' \"$1\"\n")).unwrap();
    h.cmd(&["config", "edit", name])
        .env("EDITOR", format!("sh {}", editor.display()))
        .output()
        .unwrap()
}

#[test]
fn a_config_edit_cannot_take_another_guests_address_or_mac() {
    require_root!();
    let h = TestHost::new("nicedit");
    net(&h, "ed", &["--ipv4", "10.247.0.1/24", "--no-dns"]);
    h.ok(&["build", "a", "-m", "busybox", "--network", "ed"]);
    h.ok(&["build", "b", "-m", "busybox", "--network", "ed"]);
    let a_ip = h.nic_address("a", "eth0");
    let b_ip = h.nic_address("b", "eth0");
    let a_mac = h
        .ok(&["config", "show", "a"])
        .lines()
        .find_map(|l| l.strip_prefix("mac = ").map(str::to_string))
        .unwrap();
    let before = std::fs::read_to_string(h.config_file("b")).unwrap();
    for (expr, needle) in [
        (
            format!("s|^ipv4 = .*|ipv4 = \"{a_ip}/24\"|"),
            "already used by a".to_string(),
        ),
        (
            "s|^ipv4 = .*|ipv4 = \"10.247.0.1/24\"|".to_string(),
            "already used by the host".to_string(),
        ),
        (format!("s|^mac = .*|mac = {a_mac}|"), "is a's".to_string()),
        (
            "s|^network = .*|network = \"nosuch\"|".to_string(),
            "no network nosuch".to_string(),
        ),
        (
            "s|^ipv4 = .*|ipv4 = \"10.99.0.5/24\"|".to_string(),
            "is not in network ed".to_string(),
        ),
    ] {
        let out = edit_with_sed(&h, "b", &expr);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(&needle),
            "{expr}: {err}"
        );
        assert_eq!(std::fs::read_to_string(h.config_file("b")).unwrap(), before);
    }
    // A free address is taken, and is the guest's at its next start.
    let out = edit_with_sed(&h, "b", &format!("s|{b_ip}/24|10.247.0.77/24|"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.started("b");
    assert!(
        h.sh("b", "ip -o -4 addr show eth0")
            .1
            .contains("10.247.0.77/24")
    );
}

#[test]
fn a_copy_of_a_routed_guest_gets_the_address_it_is_given_or_goes_without_the_nic() {
    require_root!();
    let h = TestHost::new("routedcopy");
    net(
        &h,
        "cp",
        &["--kind", "bridge", "--no-dns", "--ipv4", "10.242.26.1/24"],
    );
    h.ok(&[
        "build",
        "mx",
        "-m",
        "busybox",
        "--nic",
        "mode=routed,ip=10.242.25.1/32",
        "--nic",
        "network=cp",
    ]);
    let archive = h.root.join("mx.hangar");
    let archive = archive.to_str().unwrap();
    h.ok(&["export", "mx", archive]);
    let before = h.snapshot();
    // Its address was given by hand: a copy is refused up front, told what to do.
    for (err, copy) in [
        (h.fails(&["clone", "mx", "mx2"]), "the clone"),
        (h.fails(&["import", archive, "mx3"]), "the imported mx3"),
    ] {
        assert!(
            err.contains("NIC eth0 of mx is routed to 10.242.25.1/32")
                && err.contains(&format!("give {copy} its own with --nic eth0:ip=ADDR/32"))
                && err.contains("--nic eth0:none"),
            "{err}"
        );
    }
    // The host routes an address to one NIC only.
    let err = h.fails(&["clone", "mx", "mx2", "--nic", "eth0:ip=10.242.25.1/32"]);
    assert!(
        err.contains("10.242.25.1 is already routed to mx's NIC eth0"),
        "{err}"
    );
    let err = h.fails(&["import", archive, "mx3", "--nic", "eth9:none"]);
    assert!(
        err.contains("mx has no NIC eth9 (its NICs: eth0, eth1)"),
        "{err}"
    );
    assert_eq!(h.snapshot(), before, "a refused copy left something");

    // Given its own, or told to go without the NIC, it is made; a bridged NIC's
    // address may be chosen too, else it is the next free one.
    h.ok(&[
        "clone",
        "mx",
        "mx2",
        "--nic",
        "eth0:ip=10.242.25.2/32",
        "--nic",
        "eth1:ip=10.242.26.50/24",
    ]);
    h.ok(&["import", archive, "mx3", "--nic", "eth0:none"]);
    assert_eq!(h.nic_address("mx2", "eth0"), "10.242.25.2");
    assert_eq!(h.nic_address("mx2", "eth1"), "10.242.26.50");
    h.started("mx2");
    let (_, inside) = h.sh("mx2", "ip -o -4 addr show");
    assert!(
        inside.contains("10.242.25.2/32") && inside.contains("10.242.26.50/24"),
        "{inside}"
    );
    let mx3: toml::Value = toml::from_str(&h.ok(&["config", "show", "mx3"])).unwrap();
    let nics = mx3["nic"].as_array().unwrap();
    assert_eq!(nics.len(), 1, "{nics:?}");
    assert_eq!(nics[0]["name"].as_str(), Some("eth1"));
    assert_eq!(h.nic_address("mx3", "eth1"), "10.242.26.3");
}
