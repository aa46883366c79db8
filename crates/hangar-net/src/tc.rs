//! Rate limits of a guest NIC, in bytes per second and seen from the guest, set with
//! `tc` on the NIC's host side (where guest root cannot remove them).
//!
//! - **Guest ingress** (what the guest receives) leaves the host through `host_if`: a TBF
//!   root qdisc on `host_if` queues it to the rate.
//! - **Guest egress** (what the guest sends) arrives on `host_if`'s ingress, where no
//!   qdisc can queue. An ingress qdisc with one match-all u32 filter redirects it
//!   (`action mirred egress redirect`) to an IFB device, whose TBF root qdisc queues it;
//!   the IFB then hands each packet back to `host_if`'s receive path. tc's `police`
//!   action would avoid the IFB, but some kernels lack it, and a policer drops where a
//!   queue delays, which TCP answers with far less than the rate.
//!
//! The IFB is named by [`ifb_name`]: `ifb` + `host_if` (`hg7-eth0` → `ifbhg7-eth0`), or,
//! when that would pass 15 bytes, `ifb` + the first 4 bytes of `host_if` + 8 hex digits
//! of a hash of it. Its alias, `hangar-shaping:<host_if>`, records whose it is: `shape`
//! refuses to take over an IFB that serves another interface, `unshape` deletes only its
//! own, and [`ifb_devices`] lets a leftover check find IFBs whose host side is gone.

use crate::link::{self, check_ifname, fnv1a};
use crate::{NetError, Result, cmd};
use serde::Deserialize;

/// The alias of an IFB made by [`shape`], before the host side's name.
const IFB_ALIAS: &str = "hangar-shaping:";

/// The u32 filter that redirects all of `host_if`'s ingress to its IFB; a fixed handle
/// makes `tc filter replace` idempotent.
const REDIRECT_HANDLE: &str = "800::800";

/// Shortest TBF bucket: a few full-size GSO packets.
const MIN_BURST: u64 = 64 * 1024;

/// The IFB device that shapes what the guest behind `host_if` sends.
pub fn ifb_name(host_if: &str) -> String {
    if host_if.len() <= 12 {
        return format!("ifb{host_if}");
    }
    let head: String = host_if.chars().take_while(char::is_ascii).take(4).collect();
    format!("ifb{head}{:08x}", fnv1a(host_if.as_bytes()) as u32)
}

/// Shape the NIC whose host side is `host_if` to `guest_egress` and `guest_ingress`
/// bytes per second; None removes that direction's shaping. Idempotent, and called
/// again it changes the rates of a running guest in place.
pub fn shape(host_if: &str, guest_egress: Option<u64>, guest_ingress: Option<u64>) -> Result<()> {
    check_ifname("host interface", host_if)?;
    let egress = guest_egress
        .map(|r| tbf_rate(host_if, "egress", r))
        .transpose()?;
    let ingress = guest_ingress
        .map(|r| tbf_rate(host_if, "ingress", r))
        .transpose()?;
    let ifb = ifb_name(host_if);
    check_ifb_owner(&ifb, host_if)?;
    if !link::link_exists(host_if) {
        return Err(NetError::Invalid(format!(
            "cannot shape {host_if}: no such interface (is its guest running?)"
        )));
    }
    match ingress {
        Some(rate) => tbf_replace(host_if, rate)?,
        None => remove_root_tbf(host_if)?,
    }
    match egress {
        Some(rate) => redirect_to_ifb(host_if, &ifb, rate).inspect_err(|_| {
            let _ = remove_redirect(host_if, &ifb);
        }),
        None => remove_redirect(host_if, &ifb),
    }
}

/// Remove all shaping of `host_if`: its qdiscs and its IFB. Idempotent, and works after
/// the host side is gone (a guest's veth dies with its network namespace, its IFB not).
pub fn unshape(host_if: &str) -> Result<()> {
    check_ifname("host interface", host_if)?;
    if link::link_exists(host_if) {
        remove_root_tbf(host_if)?;
    }
    remove_redirect(host_if, &ifb_name(host_if))
}

/// The IFB devices made by [`shape`], each with the host side it shapes (which may be
/// gone: then the IFB is a leftover that `unshape(host_if)` removes).
pub fn ifb_devices() -> Result<Vec<(String, String)>> {
    Ok(link::links()?
        .into_iter()
        .filter(|l| l.kind() == "ifb")
        .filter_map(|l| {
            let owner = l.ifalias.as_deref()?.strip_prefix(IFB_ALIAS)?.to_string();
            Some((l.ifname, owner))
        })
        .collect())
}

/// TBF parameters for `rate` bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tbf {
    bits_per_sec: u64,
    burst: u64,
}

fn tbf_rate(host_if: &str, direction: &str, rate: u64) -> Result<Tbf> {
    let bits_per_sec = rate.checked_mul(8).filter(|_| rate > 0).ok_or_else(|| {
        NetError::Invalid(format!(
            "{host_if}: guest {direction} rate {rate} bytes/s is out of range: give 1 or more \
             (and less than 2^61), or none to remove the limit"
        ))
    })?;
    // A bucket of 20 ms at the rate, so that a fast link is not held back by the timer
    // granularity, and at least a few full-size packets.
    Ok(Tbf {
        bits_per_sec,
        burst: (rate / 50).max(MIN_BURST),
    })
}

fn tc(args: &[&str]) -> Result<String> {
    cmd::run("tc", args, None)
}

fn tbf_replace(dev: &str, t: Tbf) -> Result<()> {
    let rate = format!("{}bit", t.bits_per_sec);
    let burst = t.burst.to_string();
    let args = [
        "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst,
    ];
    tc(&[&args[..], &["latency", "50ms"]].concat()).map(drop)
}

#[derive(Debug, Deserialize)]
struct Qdisc {
    kind: String,
    #[serde(default)]
    root: bool,
}

fn qdiscs(dev: &str) -> Result<Vec<Qdisc>> {
    let out = tc(&["-json", "qdisc", "show", "dev", dev])?;
    serde_json::from_str(&out).map_err(|e| NetError::Command {
        command: format!("tc -json qdisc show dev {dev}"),
        stderr: format!("unreadable JSON output: {e}"),
    })
}

/// Remove the root TBF of `dev`, if it has one (any other root qdisc is not ours).
fn remove_root_tbf(dev: &str) -> Result<()> {
    if qdiscs(dev)?.iter().any(|q| q.root && q.kind == "tbf") {
        tc(&["qdisc", "del", "dev", dev, "root"])?;
    }
    Ok(())
}

fn check_ifb_owner(ifb: &str, host_if: &str) -> Result<()> {
    let Some(l) = link::link_show(ifb)? else {
        return Ok(());
    };
    let alias = l.ifalias.as_deref().unwrap_or("");
    if l.kind() == "ifb" && alias.strip_prefix(IFB_ALIAS) == Some(host_if) {
        return Ok(());
    }
    Err(NetError::Invalid(format!(
        "cannot shape {host_if}: its IFB name {ifb} is taken by another interface ({}, \
         alias {alias:?}): delete or rename that interface",
        l.kind()
    )))
}

fn redirect_to_ifb(host_if: &str, ifb: &str, rate: Tbf) -> Result<()> {
    if link::link_show(ifb)?.is_none() {
        let alias = format!("{IFB_ALIAS}{host_if}");
        cmd::ip(&["link", "add", "name", ifb, "type", "ifb"])?;
        cmd::ip(&["link", "set", "dev", ifb, "alias", &alias])?;
    }
    cmd::ip(&["link", "set", "dev", ifb, "up"])?;
    tbf_replace(ifb, rate)?;
    tc(&[
        "qdisc", "replace", "dev", host_if, "handle", "ffff:", "ingress",
    ])?;
    let filter = [
        "filter", "replace", "dev", host_if, "parent", "ffff:", "protocol", "all",
    ];
    let rule = [
        "prio",
        "1",
        "handle",
        REDIRECT_HANDLE,
        "u32",
        "match",
        "u32",
        "0",
        "0",
    ];
    let action = ["action", "mirred", "egress", "redirect", "dev", ifb];
    tc(&[&filter[..], &rule, &action].concat()).map(drop)
}

/// Remove `host_if`'s ingress qdisc (with its filter) and the IFB, where they exist.
fn remove_redirect(host_if: &str, ifb: &str) -> Result<()> {
    if link::link_exists(host_if) && qdiscs(host_if)?.iter().any(|q| q.kind == "ingress") {
        tc(&["qdisc", "del", "dev", host_if, "ingress"])?;
    }
    let ours = |l: &link::Link| {
        l.kind() == "ifb"
            && l.ifalias.as_deref().and_then(|a| a.strip_prefix(IFB_ALIAS)) == Some(host_if)
    };
    match link::link_show(ifb)? {
        Some(l) if ours(&l) => link::link_delete(ifb),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifb_names_prefix_short_host_sides() {
        assert_eq!(ifb_name("hg7-eth0"), "ifbhg7-eth0");
        assert_eq!(ifb_name("abcdefghijkl"), "ifbabcdefghijkl");
    }

    #[test]
    fn ifb_names_of_long_host_sides_fit_and_differ() {
        let a = ifb_name("h1a2-32767-eth0");
        let b = ifb_name("h1a2-32767-eth1");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("ifbh1a2"), "{a}");
        assert_ne!(a, b);
        assert!(link::valid_ifname(&a));
    }

    #[test]
    fn rates_become_bits_with_a_bucket_of_20ms_or_64k() {
        let slow = tbf_rate("hg7-eth0", "egress", 1_250_000).unwrap();
        assert_eq!(
            slow,
            Tbf {
                bits_per_sec: 10_000_000,
                burst: MIN_BURST
            }
        );
        let fast = tbf_rate("hg7-eth0", "egress", 125_000_000).unwrap();
        assert_eq!(fast.burst, 2_500_000);
    }

    #[test]
    fn zero_and_huge_rates_are_refused_naming_the_nic() {
        let e = shape("hg7-eth0", Some(0), None).unwrap_err().to_string();
        assert!(
            e.contains("hg7-eth0: guest egress rate 0 bytes/s is out of range"),
            "{e}"
        );
        let e = shape("hg7-eth0", None, Some(u64::MAX))
            .unwrap_err()
            .to_string();
        assert!(e.contains("guest ingress rate"), "{e}");
    }
}
