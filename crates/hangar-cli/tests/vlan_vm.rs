//! 802.1Q VLAN tagging on a bridge network's uplink, end to end, inside the QEMU test
//! machine: this host's kernel (and CI's) has no 802.1Q devices, the VM's kernel has
//! the `8021q` module.
//!
//! `tests/vm/scenario-vlan.sh` makes a veth pair up0/sw0 in the VM, with sw0 in a
//! namespace playing the switch (untagged 10.1.0.1/24, VLAN 10 10.1.10.1/24, VLAN 20
//! 10.1.20.1/24), creates `lan` (kind bridge, uplink up0) and four busybox guests: u
//! untagged, a on VLAN 10, b on VLAN 20 with an address of VLAN 10's subnet, c on VLAN
//! 20. It pings across the uplink, lists the 802.1Q devices hangar made on up0, then
//! stops, deletes and removes everything and lists what is left. The VM carries the
//! host's iproute2, nft and nsenter for hangar (the scenario's `vm-tools` line).
//!
//! Needs root and qemu-system-x86_64 (`common/vm.rs`); takes about 70-80 s under TCG.

mod common;

use common::vm::run_scenario;

#[test]
fn vlan_nics_on_an_uplinked_bridge_are_tagged_inside_a_vm() {
    let Some(out) = run_scenario("scenario-vlan.sh") else {
        return;
    };
    let r = out.report();

    // hangar's children run the host's tools, not busybox's applets of the same names.
    assert!(r.get("ip").starts_with("ip utility, iproute2"), "ip");
    assert!(
        r.get("nsenter-ip").starts_with("ip utility, iproute2"),
        "`nsenter --net=... ip` must run iproute2's ip"
    );
    for m in ["8021q", "bridge", "veth", "nf_tables"] {
        assert!(
            r.get("modules").split(' ').any(|l| l == m),
            "module {m} is not loaded: {}",
            r.get("modules")
        );
    }
    let prefix = r.get("link-prefix");
    assert_eq!(r.get("bridge"), format!("{prefix}b-lan"));

    // Every guest started, so a failed ping below is isolation, not a guest that is down.
    for g in ["u", "a", "b", "c"] {
        assert_eq!(r.get(&format!("build-{g}")), "ok", "build {g}");
        assert_eq!(r.get(&format!("start-{g}")), "ok", "start {g}");
    }

    // Through the uplink: untagged to the switch's untagged address, tagged to the
    // switch's interface of the same VLAN.
    assert_eq!(r.get("u-ping-switch"), "ok", "untagged u -> 10.1.0.1");
    assert_eq!(r.get("a-ping-switch10"), "ok", "VLAN 10 a -> 10.1.10.1");
    assert_eq!(r.get("c-ping-switch20"), "ok", "VLAN 20 c -> 10.1.20.1");
    assert_eq!(r.get("switch20-ping-c"), "ok", "switch's VLAN 20 -> c");
    // b has an address of VLAN 10's subnet but sits on VLAN 20: only the tags keep it
    // from VLAN 10, both ways.
    assert_eq!(r.get("b-ping-switch10"), "fail", "VLAN 20 b -> 10.1.10.1");
    assert_eq!(r.get("switch10-ping-b"), "fail", "switch's VLAN 10 -> b");
    // Guests on different VLANs do not meet, in the same subnet or another one.
    assert_eq!(r.get("a-ping-b"), "fail", "VLAN 10 a -> VLAN 20 b");
    assert_eq!(r.get("a-ping-c"), "fail", "VLAN 10 a -> VLAN 20 c");
    // And the switch heard each guest on the interface of its VLAN: u untagged, a
    // tagged 10, c tagged 20; b (no VLAN 10 host answered it) not at all.
    assert_eq!(
        r.get("switch-heard"),
        "10.1.0.2@sw0 10.1.10.2@sw0.10 10.1.20.2@sw0.20"
    );

    // One 802.1Q device per VLAN on the uplink, each in its VLAN's bridge.
    assert_eq!(r.get("vlan-devices"), "2");
    for id in [10, 20] {
        assert_eq!(
            r.get(&format!("vlan-device-{id}")),
            format!("{prefix}q{id}-lan on up0, master {prefix}v{id}-lan")
        );
    }

    // Nothing of hangar's is left, and the uplink is free again.
    assert_eq!(r.get("links-left"), "none");
    assert_eq!(r.get("vlan-devices-left"), "none");
    assert_eq!(r.get("uplink-after-delete"), "present, master none");

    assert!(
        !out.stdout.lines().any(|l| l.starts_with("FAIL ")),
        "the scenario reported failures"
    );
    assert_eq!(r.get("exit-status"), "0");
    assert!(out.success, "tests/vm/run.sh: {}", out.status);
}
