//! A guest NIC from plan to wire and back: veth, shaping, anti-spoofing guard. Used by
//! the monitor when init starts and by `hangar attach/detach` on a running guest.

use crate::nft::Nft;
use crate::{Result, link, tc};
use hangar_model::spec::NicPlan;

/// The guard tag of one NIC of a guest: `<guest>.<nic>` (guest names have no dots).
pub fn guard_tag(guest: &str, plan: &NicPlan) -> String {
    format!("{guest}.{}", plan.guest_if)
}

/// Plug `plan` into network namespace `ns` (the guest's: see [`link::Netns`]). On
/// failure nothing of it is left.
pub fn plug(ns: &link::Netns, plan: &NicPlan, guest: &str, nft_tag: Option<&str>) -> Result<()> {
    link::nic_plug(ns, plan)?;
    let rest = || -> Result<()> {
        if plan.egress.is_some() || plan.ingress.is_some() {
            tc::shape(&plan.host_if, plan.egress, plan.ingress)?;
        }
        // The guard's transaction makes the tables too, when they are missing.
        Nft::new(nft_tag).guard(
            &guard_tag(guest, plan),
            &plan.host_if,
            &plan.mac,
            &plan.addrs,
        )
    };
    rest().inspect_err(|_| {
        let _ = unplug(plan, guest, nft_tag);
    })
}

/// Remove what [`plug`] made (idempotent): guard, veth, shaping. The veth goes before
/// the shaping: its ingress qdisc goes with it, leaving only the IFB to remove.
pub fn unplug(plan: &NicPlan, guest: &str, nft_tag: Option<&str>) -> Result<()> {
    Nft::new(nft_tag).unguard_nic(
        &guard_tag(guest, plan),
        &plan.host_if,
        &plan.mac,
        &plan.addrs,
    )?;
    link::nic_unplug(&plan.host_if)?;
    tc::unshape(&plan.host_if)
}

/// What stays on the host after a guest's network namespace is gone (the veth went with
/// it): guards and IFB devices.
pub fn after_exit(plan: &NicPlan, guest: &str, nft_tag: Option<&str>) -> Result<()> {
    unplug(plan, guest, nft_tag)
}
