//! An image pool's live resize inside the QEMU test machine: growing a mounted ext4
//! takes CAP_SYS_RESOURCE, which this host (and CI) keeps out of every process's
//! bounding set, so `image_pool.rs` can only show a stopped guest's disk grown; the
//! VM's root has it.
//!
//! `tests/vm/scenario-image.sh` makes an image pool, a busybox guest with a 64M disk,
//! writes 40M into it and grows its disk to 128M while it runs, then tries to shrink it
//! live, and deletes everything. The VM carries the host's mount, umount, e2fsprogs and
//! cp and loads `loop` (the scenario's `vm-tools` and `vm-modules` lines).
//!
//! Needs root and qemu-system-x86_64 (`common/vm.rs`); takes about 20 s under TCG.

mod common;

use common::vm::run_scenario;

#[test]
fn an_image_pool_guest_grows_live_inside_a_vm() {
    let Some(out) = run_scenario("scenario-image.sh") else {
        return;
    };
    let r = out.report();
    let kib = |k: &str| -> u64 { r.get(k).parse().unwrap_or_else(|_| panic!("{k}")) };
    // The VM's root may resize a mounted ext4: this is the live path.
    assert_eq!(r.get("cap-sys-resource"), "1");
    assert!(
        (56 << 10..=64 << 10).contains(&kib("df-before")),
        "df-before"
    );
    // Grown while the guest ran: df inside shows it, what it held is whole, and it
    // writes into the new room.
    assert_eq!(r.get("set-live"), "0");
    assert!(
        (120 << 10..=128 << 10).contains(&kib("df-after")),
        "df-after"
    );
    assert_eq!(r.get("data-after"), (40u64 << 20).to_string());
    assert_eq!(r.get("config-size"), "128M");
    assert_eq!(r.get("write-after"), "0");
    // A shrink waits for a stop.
    assert_eq!(r.get("shrink-live"), "1");
    assert_eq!(r.get("pool-delete"), "0");
    assert_eq!(r.get("loops-left"), "0");
    assert_eq!(r.get("mounts-left"), "0");
    assert!(out.success, "the scenario failed ({})", out.status);
}
