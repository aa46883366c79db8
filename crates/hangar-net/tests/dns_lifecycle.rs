//! Privileged: starting and stopping a network's dnsmasq is idempotent, a changed
//! configuration restarts it, and an address that is not on the bridge is refused.

mod dns_common;

use dns_common::{TestNet, dnsmasqs_in, root_or_skip};
use std::fs;
use std::process::Command;

fn pid_in_file(net: &TestNet) -> String {
    fs::read_to_string(net.dns.pid_file())
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn ensure_running_twice_keeps_one_dnsmasq() {
    if !root_or_skip("ensure_running_twice_keeps_one_dnsmasq") {
        return;
    }
    let net = TestNet::new('t', 10);
    net.dns.ensure_running().unwrap();
    let first = dnsmasqs_in(&net.dns.dir);

    net.dns.ensure_running().unwrap();

    assert_eq!(first.len(), 1);
    assert_eq!(dnsmasqs_in(&net.dns.dir), first);
    assert_eq!(pid_in_file(&net), first[0].to_string());
    assert!(net.dns.is_running());
}

#[test]
fn a_new_listen_address_restarts_dnsmasq_on_it() {
    if !root_or_skip("a_new_listen_address_restarts_dnsmasq_on_it") {
        return;
    }
    let mut net = TestNet::new('r', 11);
    net.dns.ensure_running().unwrap();
    let before = dnsmasqs_in(&net.dns.dir);
    let v6 = Command::new("ip")
        .args(["addr", "add", "fd00:233:11::1/64", "dev", &net.bridge])
        .status();
    assert!(v6.unwrap().success());
    net.dns.listen.push("fd00:233:11::1".to_string());

    net.dns.ensure_running().unwrap();

    let after = dnsmasqs_in(&net.dns.dir);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    assert_eq!(net.resolve("host"), ["10.233.11.1", "fd00:233:11::1"]);
}

#[test]
fn stop_when_stopped_is_fine() {
    if !root_or_skip("stop_when_stopped_is_fine") {
        return;
    }
    let net = TestNet::new('p', 12);
    net.dns.ensure_running().unwrap();

    net.dns.stop().unwrap();
    net.dns.stop().unwrap();

    assert!(!net.dns.is_running());
}

#[test]
fn a_stale_pid_file_naming_another_process_is_not_trusted() {
    if !root_or_skip("a_stale_pid_file_naming_another_process_is_not_trusted") {
        return;
    }
    let net = TestNet::new('f', 13);
    fs::create_dir_all(&net.dns.dir).unwrap();
    fs::write(net.dns.pid_file(), format!("{}\n", std::process::id())).unwrap();
    assert!(!net.dns.is_running());

    net.dns.ensure_running().unwrap();
    net.dns.stop().unwrap();

    assert_eq!(dnsmasqs_in(&net.dns.dir), Vec::<u32>::new());
}

#[test]
fn a_listen_address_not_on_the_bridge_is_refused() {
    if !root_or_skip("a_listen_address_not_on_the_bridge_is_refused") {
        return;
    }
    let mut net = TestNet::new('a', 14);
    net.dns.listen = vec!["10.233.99.1".to_string()];

    let err = net.dns.ensure_running().unwrap_err();

    assert!(err.to_string().contains("10.233.99.1 is not on"), "{err}");
    assert!(!net.dns.is_running());
}
