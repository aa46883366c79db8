//! Rate limits against the real kernel (root): TCP transfers between the host and a
//! guest run at the shaped rate in each direction, and unshape removes every trace.
//! Runs in a network namespace of its own (see `link_support`).

mod link_support;

use hangar_model::net::{Cidr, Mac};
use hangar_model::spec::NicPlan;
use hangar_net::link;
use hangar_net::tc;
use link_support::{Lab, in_own_netns, ip_json, tc_json};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const RATE: u64 = 1_250_000; // 10 Mbit/s
const BYTES: usize = 4 << 20; // about 3.4 s at RATE
const GUEST: &str = "10.231.3.2";
const HOST: &str = "10.231.3.1";

/// Bytes per second of a TCP transfer from the host into the guest in `ns`, timed until
/// the guest's receiver has read everything and exited.
fn host_to_guest(lab: &mut Lab, ns: &str) -> f64 {
    lab.spawn_in(ns, &["busybox", "nc", "-l", "-p", "5001"]);
    let mut stream = connect_within(&format!("{GUEST}:5001"), Duration::from_secs(5));
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let start = Instant::now();
    stream.write_all(&vec![0u8; BYTES]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    lab.wait_last(Duration::from_secs(30));
    BYTES as f64 / start.elapsed().as_secs_f64()
}

/// Bytes per second of a TCP transfer from the guest in `ns` to the host, timed by the
/// host's receiver from accepting the connection to its end.
fn guest_to_host(lab: &mut Lab, ns: &str) -> f64 {
    let listener = TcpListener::bind(format!("{HOST}:0")).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let count = (BYTES / 65536).to_string();
    let send =
        format!("dd if=/dev/zero bs=65536 count={count} 2>/dev/null | busybox nc {HOST} {port}");
    lab.spawn_in(ns, &["sh", "-c", &send]);
    let (mut stream, _) = accept_within(&listener, Duration::from_secs(5));
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::with_capacity(BYTES);
    stream.read_to_end(&mut got).unwrap();
    let rate = got.len() as f64 / start.elapsed().as_secs_f64();
    assert_eq!(got.len(), BYTES, "the guest sent less than it should");
    drop(stream);
    lab.wait_last(Duration::from_secs(10));
    rate
}

fn connect_within(addr: &str, limit: Duration) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) => assert!(start.elapsed() < limit, "cannot connect to {addr}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn accept_within(listener: &TcpListener, limit: Duration) -> (TcpStream, std::net::SocketAddr) {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((s, a)) => {
                s.set_nonblocking(false).unwrap();
                return (s, a);
            }
            Err(e) => assert!(start.elapsed() < limit, "no connection from the guest: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn assert_near(what: &str, measured: f64, want: u64) {
    let off = (measured - want as f64).abs() / want as f64;
    println!(
        "{what}: {:.2} Mbit/s (limit {:.2} Mbit/s, {:.1}% off)",
        measured * 8e-6,
        want as f64 * 8e-6,
        off * 100.0
    );
    assert!(
        off < 0.15,
        "{what}: {measured:.0} bytes/s is not within 15% of {want}"
    );
}

/// The qdisc kinds on `dev`.
fn qdisc_kinds(dev: &str) -> Vec<String> {
    let q = tc_json(&["qdisc", "show", "dev", dev]);
    q.as_array()
        .unwrap()
        .iter()
        .map(|q| q["kind"].as_str().unwrap().to_string())
        .collect()
}

fn root_rate(dev: &str) -> Value {
    let q = tc_json(&["qdisc", "show", "dev", dev]);
    q.as_array()
        .unwrap()
        .iter()
        .find(|q| q["root"] == true)
        .unwrap()["options"]["rate"]
        .clone()
}

#[test]
fn shaped_transfers_run_at_the_rate_both_ways_and_unshape_removes_it() {
    in_own_netns(
        "shaped_transfers_run_at_the_rate_both_ways_and_unshape_removes_it",
        || {
            let mut lab = Lab::new();
            let (ns, pid) = lab.guest();
            let ifb = tc::ifb_name("hgt8-eth0");
            lab.link("hgtbr8");
            lab.link("hgt8-eth0");
            lab.link(&ifb);
            let host = Cidr::parse(&format!("{HOST}/24")).unwrap();
            link::bridge_ensure("hgtbr8", &[host], None).unwrap();
            let nic = NicPlan {
                host_if: "hgt8-eth0".into(),
                guest_if: "eth0".into(),
                mac: Mac::parse("02:00:00:23:10:08").unwrap(),
                bridge: Some("hgtbr8".into()),
                addrs: vec![Cidr::parse(&format!("{GUEST}/24")).unwrap()],
                gateways: vec![],
                mtu: None,
                routed: false,
                egress: None,
                ingress: None,
            };
            link::nic_plug(&link::Netns::of_process(pid), &nic).unwrap();

            tc::shape("hgt8-eth0", None, Some(RATE)).unwrap();
            tc::shape("hgt8-eth0", None, Some(RATE)).unwrap();
            assert_near(
                "guest ingress (host to guest)",
                host_to_guest(&mut lab, &ns),
                RATE,
            );
            assert_eq!(root_rate("hgt8-eth0"), RATE);
            assert!(!link::link_exists(&ifb));

            tc::shape("hgt8-eth0", Some(RATE), None).unwrap();
            assert_near(
                "guest egress (guest to host)",
                guest_to_host(&mut lab, &ns),
                RATE,
            );
            assert_eq!(qdisc_kinds("hgt8-eth0"), ["noqueue", "ingress"]);
            assert_eq!(root_rate(&ifb), RATE);
            assert_eq!(
                tc::ifb_devices().unwrap(),
                [(ifb.clone(), "hgt8-eth0".to_string())]
            );

            tc::shape("hgt8-eth0", Some(2 * RATE), Some(3 * RATE)).unwrap();
            assert_eq!(root_rate(&ifb), 2 * RATE);
            assert_eq!(root_rate("hgt8-eth0"), 3 * RATE);

            tc::unshape("hgt8-eth0").unwrap();
            tc::unshape("hgt8-eth0").unwrap();
            assert_eq!(qdisc_kinds("hgt8-eth0"), ["noqueue"]);
            assert!(!link::link_exists(&ifb));
            assert!(
                lab.pings(&ns, HOST),
                "the guest lost its link after unshape"
            );
        },
    );
}

#[test]
fn unshape_removes_the_ifb_after_the_guest_took_its_veth_away() {
    in_own_netns(
        "unshape_removes_the_ifb_after_the_guest_took_its_veth_away",
        || {
            let mut lab = Lab::new();
            let (_ns, pid) = lab.guest();
            let ifb = tc::ifb_name("hgt9-eth0");
            lab.link("hgt9-eth0");
            lab.link(&ifb);
            let nic = NicPlan {
                host_if: "hgt9-eth0".into(),
                guest_if: "eth0".into(),
                mac: Mac::parse("02:00:00:23:10:09").unwrap(),
                bridge: None,
                addrs: vec![],
                gateways: vec![],
                mtu: None,
                routed: false,
                egress: None,
                ingress: None,
            };
            link::nic_plug(&link::Netns::of_process(pid), &nic).unwrap();
            tc::shape("hgt9-eth0", Some(RATE), None).unwrap();
            link::nic_unplug("hgt9-eth0").unwrap();

            tc::unshape("hgt9-eth0").unwrap();

            assert!(!link::link_exists(&ifb));
            assert!(
                ip_json(&["link", "show", "type", "ifb"])
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|l| l["ifname"] != ifb.as_str())
            );
        },
    );
}

#[test]
fn shaping_refuses_an_ifb_name_taken_by_another_interface() {
    in_own_netns(
        "shaping_refuses_an_ifb_name_taken_by_another_interface",
        || {
            let mut lab = Lab::new();
            let ifb = tc::ifb_name("hgt10-eth0");
            lab.link("hgt10-eth0");
            lab.link(&ifb);
            link_support::run(
                "ip",
                &[
                    "link",
                    "add",
                    "name",
                    "hgt10-eth0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "hgt10-peer",
                ],
            );
            link_support::run("ip", &["link", "set", "dev", "hgt10-eth0", "up"]);
            link_support::run("ip", &["link", "add", "name", &ifb, "type", "ifb"]);

            let err = tc::shape("hgt10-eth0", Some(RATE), None)
                .unwrap_err()
                .to_string();
            tc::unshape("hgt10-eth0").unwrap();

            assert!(
                err.contains(&format!(
                    "its IFB name {ifb} is taken by another interface (ifb, alias \"\")"
                )),
                "{err}"
            );
            assert!(
                link::link_exists(&ifb),
                "unshape deleted an IFB that is not its own"
            );
            assert_eq!(qdisc_kinds("hgt10-eth0"), ["noqueue"]);
        },
    );
}
