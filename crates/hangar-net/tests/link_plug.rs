//! Guest NICs against the real kernel (root): bridged guests reach each other, a routed
//! guest is reached at its own address through the host, and nothing is left behind.
//! Every test runs in a network namespace of its own (see `link_support`).

mod link_support;

use hangar_model::net::{Cidr, Mac, ROUTED_GATEWAY_V4, ROUTED_GATEWAY_V6};
use hangar_model::spec::NicPlan;
use hangar_net::link;
use link_support::{Lab, in_own_netns, ip_json};
use serde_json::Value;

fn nic(
    host_if: &str,
    mac: &str,
    bridge: Option<&str>,
    addrs: &[&str],
    gateways: &[&str],
) -> NicPlan {
    NicPlan {
        host_if: host_if.into(),
        guest_if: "eth0".into(),
        mac: Mac::parse(mac).expect("a test MAC"),
        bridge: bridge.map(str::to_string),
        addrs: addrs.iter().map(|a| cidr(a)).collect(),
        gateways: gateways
            .iter()
            .map(|g| g.parse().expect("a test gateway"))
            .collect(),
        mtu: None,
        routed: false,
        egress: None,
        ingress: None,
    }
}

fn cidr(s: &str) -> Cidr {
    Cidr::parse(s).expect("a test address")
}

/// `local/prefixlen` of every address in `ip -json addr` output.
fn cidrs(addr_json: &Value) -> Vec<String> {
    let infos = addr_json[0]["addr_info"].as_array().unwrap();
    // Entries a filter (`scope global`) left out are empty objects.
    let cidr = |a: &Value| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"]));
    infos.iter().filter_map(cidr).collect()
}

fn gateways(route_json: &Value) -> Vec<String> {
    let routes = route_json.as_array().unwrap();
    routes
        .iter()
        .filter_map(|r| r["gateway"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn bridged_guests_reach_each_other_and_unplug_leaves_nothing() {
    in_own_netns(
        "bridged_guests_reach_each_other_and_unplug_leaves_nothing",
        || {
            let mut lab = Lab::new();
            let (ns1, pid1) = lab.guest();
            let (ns2, pid2) = lab.guest();
            lab.link("hgtbr0");
            lab.link("hgt1-eth0");
            lab.link("hgt2-eth0");
            let gws = ["10.231.0.1", "fd00:231::1"];
            let mut a = nic(
                "hgt1-eth0",
                "02:00:00:23:10:01",
                Some("hgtbr0"),
                &["10.231.0.11/24", "fd00:231::11/64"],
                &gws,
            );
            a.mtu = Some(1400);
            let b = nic(
                "hgt2-eth0",
                "02:00:00:23:10:02",
                Some("hgtbr0"),
                &["10.231.0.12/24", "fd00:231::12/64"],
                &gws,
            );

            link::bridge_ensure(
                "hgtbr0",
                &[cidr("10.231.0.1/24"), cidr("fd00:231::1/64")],
                None,
            )
            .unwrap();
            link::bridge_ensure(
                "hgtbr0",
                &[cidr("10.231.0.1/24"), cidr("fd00:231::1/64")],
                None,
            )
            .unwrap();
            link::nic_plug(&link::Netns::of_process(pid1), &a).unwrap();
            link::nic_plug(&link::Netns::of_process(pid2), &b).unwrap();

            assert!(
                lab.pings(&ns1, "10.231.0.12"),
                "guest 1 cannot ping guest 2 over IPv4"
            );
            assert!(
                lab.pings(&ns2, "fd00:231::11"),
                "guest 2 cannot ping guest 1 over IPv6"
            );
            assert!(
                lab.pings(&ns1, "10.231.0.1"),
                "guest 1 cannot ping the host's bridge"
            );
            let eth0 = lab.ip_json_in(&ns1, &["addr", "show", "dev", "eth0"]);
            assert_eq!(eth0[0]["address"], "02:00:00:23:10:01");
            assert_eq!(eth0[0]["mtu"], 1400);
            let addrs = cidrs(&eth0);
            assert!(addrs.contains(&"10.231.0.11/24".to_string()), "{addrs:?}");
            assert!(addrs.contains(&"fd00:231::11/64".to_string()), "{addrs:?}");
            let v4 = gateways(&lab.ip_json_in(&ns1, &["route", "show", "default"]));
            let v6 = gateways(&lab.ip_json_in(&ns1, &["-6", "route", "show", "default"]));
            assert_eq!(
                (v4, v6),
                (
                    vec!["10.231.0.1".to_string()],
                    vec!["fd00:231::1".to_string()]
                )
            );
            assert_eq!(
                ip_json(&["link", "show", "dev", "hgt1-eth0"])[0]["master"],
                "hgtbr0"
            );
            let bridge_addrs = cidrs(&ip_json(&["addr", "show", "dev", "hgtbr0"]));
            assert_eq!(
                bridge_addrs
                    .iter()
                    .filter(|a| a.as_str() == "10.231.0.1/24")
                    .count(),
                1
            );

            link::nic_unplug("hgt1-eth0").unwrap();
            link::nic_unplug("hgt1-eth0").unwrap();
            assert!(!link::link_exists("hgt1-eth0"));
            let guest_links = lab.ip_json_in(&ns1, &["link", "show"]);
            let names: Vec<&str> = guest_links
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["ifname"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["lo"]);
            assert_eq!(
                link::links_with_prefix("hgt").unwrap(),
                ["hgtbr0", "hgt2-eth0"]
            );
            link::nic_unplug("hgt2-eth0").unwrap();
            link::bridge_delete("hgtbr0").unwrap();
            link::bridge_delete("hgtbr0").unwrap();
            assert!(link::links_with_prefix("hgt").unwrap().is_empty());
        },
    );
}

#[test]
fn routed_guest_is_reached_from_another_host_at_its_own_address() {
    in_own_netns(
        "routed_guest_is_reached_from_another_host_at_its_own_address",
        || {
            let mut lab = Lab::new();
            lab.keep_sysctl("net/ipv4/ip_forward");
            lab.keep_sysctl("net/ipv6/conf/all/forwarding");
            let (guest_ns, pid) = lab.guest();
            let other = lab.netns();
            lab.link("hgt3-eth0");
            lab.link("hgt-up");
            let mut routed = nic(
                "hgt3-eth0",
                "02:00:00:23:10:03",
                None,
                &["10.231.1.10/32", "fd00:231:1::10/64"],
                &["169.254.0.1", "fe80::1"],
            );
            routed.routed = true;
            // The "other host": a plain veth pair to the test host, routes to the guest via it.
            link_support::run(
                "ip",
                &[
                    "link", "add", "name", "hgt-up", "type", "veth", "peer", "name", "up0",
                    "netns", &other,
                ],
            );
            link_support::run("ip", &["addr", "add", "10.231.2.1/24", "dev", "hgt-up"]);
            link_support::run(
                "ip",
                &["addr", "add", "fd00:231:2::1/64", "dev", "hgt-up", "nodad"],
            );
            link_support::run("ip", &["link", "set", "hgt-up", "up"]);
            lab.exec(
                &other,
                &["ip", "addr", "add", "10.231.2.2/24", "dev", "up0"],
            );
            lab.exec(
                &other,
                &[
                    "ip",
                    "addr",
                    "add",
                    "fd00:231:2::2/64",
                    "dev",
                    "up0",
                    "nodad",
                ],
            );
            lab.exec(&other, &["ip", "link", "set", "up0", "up"]);
            lab.exec(
                &other,
                &["ip", "route", "add", "10.231.1.10/32", "via", "10.231.2.1"],
            );
            lab.exec(
                &other,
                &[
                    "ip",
                    "route",
                    "add",
                    "fd00:231:1::10/128",
                    "via",
                    "fd00:231:2::1",
                ],
            );

            link::enable_forwarding().unwrap();
            link::nic_plug(&link::Netns::of_process(pid), &routed).unwrap();

            assert_eq!(
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                    .unwrap()
                    .trim(),
                "1"
            );
            assert!(
                lab.pings(&other, "10.231.1.10"),
                "the other host cannot ping the routed guest over IPv4"
            );
            assert!(
                lab.pings(&other, "fd00:231:1::10"),
                "the other host cannot ping the routed guest over IPv6"
            );
            assert!(
                lab.pings(&guest_ns, "10.231.2.2"),
                "the routed guest cannot ping the other host"
            );
            let host_route = ip_json(&["route", "show", "10.231.1.10/32"]);
            assert_eq!(host_route[0]["dev"], "hgt3-eth0");
            let addrs = cidrs(&lab.ip_json_in(
                &guest_ns,
                &["addr", "show", "dev", "eth0", "scope", "global"],
            ));
            assert_eq!(addrs, ["10.231.1.10/32", "fd00:231:1::10/128"]);
            let v4 = gateways(&lab.ip_json_in(&guest_ns, &["route", "show", "default"]));
            let v6 = gateways(&lab.ip_json_in(&guest_ns, &["-6", "route", "show", "default"]));
            assert_eq!(
                (v4, v6),
                (
                    vec![ROUTED_GATEWAY_V4.to_string()],
                    vec![ROUTED_GATEWAY_V6.to_string()]
                )
            );

            link::nic_unplug("hgt3-eth0").unwrap();
            assert_eq!(
                ip_json(&["route", "show", "10.231.1.10/32"]),
                serde_json::json!([])
            );
            assert_eq!(
                ip_json(&["-6", "route", "show", "fd00:231:1::10/128"]),
                serde_json::json!([])
            );
            assert!(!link::link_exists("hgt3-eth0"));
        },
    );
}

#[test]
fn plugging_into_an_exited_process_fails_and_leaves_no_host_side() {
    in_own_netns(
        "plugging_into_an_exited_process_fails_and_leaves_no_host_side",
        || {
            let mut lab = Lab::new();
            lab.link("hgt4-eth0");
            // An exited process kept as a zombie (not reaped until the end): its pid
            // cannot be reused meanwhile, so the plug cannot land in someone else's
            // namespace (a reaped pid can be a new guest's a moment later).
            let mut gone = std::process::Command::new("true").spawn().unwrap();
            let pid = i32::try_from(gone.id()).unwrap();
            let stat = format!("/proc/{pid}/stat");
            while !std::fs::read_to_string(&stat).unwrap().contains(") Z ") {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }

            let err = link::nic_plug(
                &link::Netns::of_process(pid),
                &nic(
                    "hgt4-eth0",
                    "02:00:00:23:10:04",
                    None,
                    &["10.231.4.2/24"],
                    &[],
                ),
            )
            .unwrap_err();

            gone.wait().unwrap();
            assert!(err.to_string().contains("has exited"), "{err}");
            assert!(!link::link_exists("hgt4-eth0"));
            assert!(link::links_with_prefix("hgt").unwrap().is_empty());
        },
    );
}

#[test]
fn a_held_namespace_gets_the_nic_even_after_its_process_is_gone() {
    in_own_netns(
        "a_held_namespace_gets_the_nic_even_after_its_process_is_gone",
        || {
            let mut lab = Lab::new();
            lab.link("hgt9-eth0");
            // The namespace is opened while its process lives; the process then exits
            // and is reaped, so its pid is free for anyone. The held descriptor still
            // names the namespace, and the NIC goes there and nowhere else.
            let ns = lab.netns();
            let mut sleeper = std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "sleep", "60"])
                .spawn()
                .unwrap();
            let pid = i32::try_from(sleeper.id()).unwrap();
            let comm = format!("/proc/{pid}/comm");
            while !std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let held = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
            sleeper.kill().unwrap();
            sleeper.wait().unwrap();
            assert!(!std::path::Path::new(&comm).exists());

            let target = link::Netns::held(std::os::fd::AsFd::as_fd(&held), "test namespace");
            link::nic_plug(
                &target,
                &nic(
                    "hgt9-eth0",
                    "02:00:00:23:10:09",
                    None,
                    &["10.231.9.2/24"],
                    &[],
                ),
            )
            .unwrap();

            let inside = lab.exec_output(&ns, &["ip", "-j", "-4", "addr", "show", "dev", "eth0"]);
            let inside: Value = serde_json::from_slice(&inside.stdout).unwrap();
            assert_eq!(cidrs(&inside), ["10.231.9.2/24"]);
            assert!(link::link_exists("hgt9-eth0"));
            link::nic_unplug("hgt9-eth0").unwrap();
        },
    );
}

#[test]
fn plug_failing_inside_the_guest_removes_the_host_side() {
    in_own_netns(
        "plug_failing_inside_the_guest_removes_the_host_side",
        || {
            let mut lab = Lab::new();
            let (ns, pid) = lab.guest();
            lab.link("hgt5-eth0");
            // A guest without IPv6: its new eth0 refuses the IPv6 address, after the pair exists.
            lab.exec(
                &ns,
                &[
                    "sysctl",
                    "-q",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            );
            let v6 = nic(
                "hgt5-eth0",
                "02:00:00:23:10:05",
                None,
                &["10.231.5.2/24", "fd00:231:5::2/64"],
                &[],
            );

            let err = link::nic_plug(&link::Netns::of_process(pid), &v6)
                .unwrap_err()
                .to_string();

            assert!(
                err.contains("`ip addr add fd00:231:5::2/64 dev eth0 nodad` failed"),
                "{err}"
            );
            assert!(
                err.contains(&format!("inside the network namespace of process {pid}")),
                "{err}"
            );
            assert!(!link::link_exists("hgt5-eth0"));
        },
    );
}

#[test]
fn a_gateway_off_the_nics_subnets_is_refused_before_anything_changes() {
    in_own_netns(
        "a_gateway_off_the_nics_subnets_is_refused_before_anything_changes",
        || {
            let mut lab = Lab::new();
            let (_ns, pid) = lab.guest();
            lab.link("hgt7-eth0");
            let bad = nic(
                "hgt7-eth0",
                "02:00:00:23:10:07",
                None,
                &["10.231.7.2/24"],
                &["192.0.2.1"],
            );

            let err = link::nic_plug(&link::Netns::of_process(pid), &bad)
                .unwrap_err()
                .to_string();

            assert!(
                err.contains("gateway 192.0.2.1 is on none of the NIC's subnets"),
                "{err}"
            );
            assert!(!link::link_exists("hgt7-eth0"));
        },
    );
}

#[test]
fn unplug_and_bridge_delete_refuse_links_of_another_kind() {
    in_own_netns(
        "unplug_and_bridge_delete_refuse_links_of_another_kind",
        || {
            let mut lab = Lab::new();
            lab.link("hgtbr6");
            lab.link("hgt6-eth0");
            link::bridge_ensure("hgtbr6", &[], Some(1400)).unwrap();
            link_support::run(
                "ip",
                &[
                    "link",
                    "add",
                    "name",
                    "hgt6-eth0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "hgt6-peer",
                ],
            );

            let unplug = link::nic_unplug("hgtbr6").unwrap_err().to_string();
            let delete = link::bridge_delete("hgt6-eth0").unwrap_err().to_string();
            let ensure = link::bridge_ensure("hgt6-eth0", &[], None)
                .unwrap_err()
                .to_string();

            assert!(
                unplug.contains("hgtbr6 is a bridge, not a guest NIC's veth"),
                "{unplug}"
            );
            assert!(
                delete.contains("hgt6-eth0 is a veth, not a bridge"),
                "{delete}"
            );
            assert!(
                ensure.contains("hgt6-eth0 exists and is a veth, not a bridge"),
                "{ensure}"
            );
            assert!(link::link_exists("hgtbr6") && link::link_exists("hgt6-eth0"));
            assert_eq!(ip_json(&["link", "show", "dev", "hgtbr6"])[0]["mtu"], 1400);
        },
    );
}
