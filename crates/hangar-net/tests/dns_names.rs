//! Privileged: a network's dnsmasq answers guests' names and the host's, from inside a
//! guest network namespace, follows name changes, and is gone after stop.

mod dns_common;

use dns_common::{TestNet, dnsmasqs_in, entries, root_or_skip};
use std::time::Duration;

#[test]
fn guests_resolve_each_other_and_the_host_by_name() {
    if !root_or_skip("guests_resolve_each_other_and_the_host_by_name") {
        return;
    }
    let net = TestNet::new('n', 0);
    net.dns.ensure_running().unwrap();

    net.dns
        .set_hosts(&entries(&[("web", "10.233.0.2"), ("db", "10.233.0.3")]))
        .unwrap();

    assert_eq!(net.resolve("web"), ["10.233.0.2"]);
    assert_eq!(net.resolve("web.hangar"), ["10.233.0.2"]);
    assert_eq!(net.resolve("db.hangar"), ["10.233.0.3"]);
    assert_eq!(net.resolve("host"), ["10.233.0.1"]);
    assert_eq!(net.resolve("gateway.hangar"), ["10.233.0.1"]);
    assert_eq!(net.resolve("nobody.hangar"), Vec::<String>::new());
    assert_eq!(net.resolve("nobody"), Vec::<String>::new());
}

#[test]
fn a_changed_address_is_answered_within_two_seconds() {
    if !root_or_skip("a_changed_address_is_answered_within_two_seconds") {
        return;
    }
    let net = TestNet::new('c', 1);
    net.dns.ensure_running().unwrap();
    net.dns
        .set_hosts(&entries(&[("web", "10.233.1.2"), ("db", "10.233.1.3")]))
        .unwrap();
    assert_eq!(net.resolve("web"), ["10.233.1.2"]);

    net.dns
        .set_hosts(&entries(&[("web", "10.233.1.9"), ("db", "10.233.1.3")]))
        .unwrap();

    // What the table holds can be asked without writing it (a start's check).
    assert!(
        net.dns
            .publishes(&entries(&[("web", "10.233.1.9"), ("db", "10.233.1.3")]))
    );
    assert!(!net.dns.publishes(&entries(&[("web", "10.233.1.2")])));
    assert!(!net.dns.publishes(&entries(&[("mail", "10.233.1.9")])));
    let (answer, took) = net.resolve_until("web.hangar", &["10.233.1.9"], Duration::from_secs(2));
    eprintln!("new address answered after {took:?}");
    assert_eq!(answer, ["10.233.1.9"]);
    assert_eq!(net.resolve("db"), ["10.233.1.3"]);
}

#[test]
fn names_set_before_start_are_answered_at_start() {
    if !root_or_skip("names_set_before_start_are_answered_at_start") {
        return;
    }
    let net = TestNet::new('b', 2);
    net.dns
        .set_hosts(&entries(&[("web", "10.233.2.2")]))
        .unwrap();

    net.dns.ensure_running().unwrap();

    assert_eq!(net.resolve("web.hangar"), ["10.233.2.2"]);
    assert_eq!(net.resolve("host"), ["10.233.2.1"]);
}

#[test]
fn stopped_dns_leaves_no_process_and_no_listener() {
    if !root_or_skip("stopped_dns_leaves_no_process_and_no_listener") {
        return;
    }
    let net = TestNet::new('s', 3);
    net.dns.ensure_running().unwrap();
    net.dns
        .set_hosts(&entries(&[("web", "10.233.3.2")]))
        .unwrap();
    assert_eq!(net.resolve("web"), ["10.233.3.2"]);

    net.dns.stop().unwrap();

    assert!(!net.dns.is_running());
    assert_eq!(dnsmasqs_in(&net.dns.dir), Vec::<u32>::new());
    assert!(!net.dns.pid_file().exists());
    assert_eq!(net.listeners(), "");
    assert_eq!(net.resolve("web"), Vec::<String>::new());
}
