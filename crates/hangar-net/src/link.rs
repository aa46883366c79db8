//! Links on the host: a network's bridge, and a guest NIC's veth pair from the host side
//! into the guest's network namespace and back out.
//!
//! A guest NIC is a veth pair. Its host side (`host_if`, a name the caller chooses) stays
//! on the host; its guest side is created directly inside the guest's network namespace
//! (what `ip link add name eth0 address MAC type veth peer name HOST_IF netns <ours>`
//! run there does), already carrying its final name, MAC and MTU. So there is no
//! temporary name on the host to collide with, and a failure leaves either the whole
//! pair or nothing. A NIC is plugged and unplugged through netlink from this process
//! (`rtnl.rs`): a socket made inside the guest's namespace configures the guest side,
//! one on the host the host side, and no `ip` or `nsenter` runs. Bridges and 802.1Q
//! devices on an uplink go through netlink the same way.
//!
//! Two ways to connect a NIC:
//! - **bridged**: the host side is a port of a bridge; the guest's addresses are on the
//!   bridge's subnet and its default routes go via the given gateways.
//! - **routed** (OpenVZ's venet): no bridge and no shared L2 segment. The host routes
//!   each guest address (/32, /128) to the host side. Inside the guest every address is
//!   a host address (the given prefix length is not used, so the guest never expects
//!   neighbours on the link) and the default routes, when the NIC carries them, go via
//!   fixed link-local gateways, [`ROUTED_GATEWAY_V4`] (`onlink`) and
//!   [`ROUTED_GATEWAY_V6`], the only gateways a routed NIC takes. The host side owns both
//!   gateway addresses itself (169.254.0.1/32 scope link, fe80::1/64), so it answers the
//!   guest's ARP and neighbour solicitations whatever the host's routing table says;
//!   proxy ARP alone would answer only for addresses the host routes out of another
//!   interface, which 169.254.0.1 often is not. Every routed host side has the same two
//!   addresses, which is fine for link-scope addresses. proxy_arp is on as well, so a
//!   guest whose admin adds an on-link route (or a wider prefix) still gets answers for
//!   anything the host can route. No NDP proxy entries are needed: the guest's only IPv6
//!   neighbour is fe80::1. Reaching the guests' addresses from the host's LAN (proxy ARP
//!   or NDP on the uplink) is the network's business, not the NIC's.

use crate::rtnl::{self, Rtnl};
use crate::{NetError, Result, cmd};
use hangar_model::net::{Cidr, Mac, ROUTED_GATEWAY_V4, ROUTED_GATEWAY_V6};
use hangar_model::spec::NicPlan;
use serde::Deserialize;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// Can `name` be an interface name? 1 to 15 bytes, not `.` or `..`, and none of the bytes
/// the kernel refuses (`/`, `:`, whitespace, NUL) or that `ip -batch` would read as a
/// quote, escape or comment (`"`, `'`, `\`, `#`), nor control characters.
pub fn valid_ifname(name: &str) -> bool {
    let bad = |b: u8| {
        b.is_ascii_whitespace()
            || b.is_ascii_control()
            || matches!(b, b'/' | b':' | b'"' | b'\'' | b'\\' | b'#')
    };
    (1..=15).contains(&name.len()) && name != "." && name != ".." && !name.bytes().any(bad)
}

/// `valid_ifname`, as an error saying which name and what is allowed.
pub(crate) fn check_ifname(what: &str, name: &str) -> Result<()> {
    if valid_ifname(name) {
        return Ok(());
    }
    Err(NetError::Invalid(format!(
        "{what} {name:?} is not a valid interface name: use 1-15 characters without \
         whitespace, quotes, '/', ':', '\\' or '#', other than . and .."
    )))
}

/// One entry of `ip -json -details link show`, as far as hangar reads it.
#[derive(Debug, Deserialize)]
pub(crate) struct Link {
    pub ifname: String,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
    #[serde(default)]
    pub ifalias: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LinkInfo {
    #[serde(default)]
    pub info_kind: Option<String>,
}

impl Link {
    /// The link's kind (`veth`, `bridge`, `ifb`, ...); `device` for plain hardware.
    pub fn kind(&self) -> &str {
        self.linkinfo
            .as_ref()
            .and_then(|l| l.info_kind.as_deref())
            .unwrap_or("device")
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(command: &str, out: &str) -> Result<T> {
    serde_json::from_str(out).map_err(|e| NetError::Command {
        command: command.to_string(),
        stderr: format!("unreadable JSON output: {e}"),
    })
}

fn is_missing_device(e: &NetError) -> bool {
    matches!(e, NetError::Command { stderr, .. }
        if stderr.contains("does not exist") || stderr.contains("Cannot find device"))
}

/// The link named `name` on the host, or None (asked through netlink first, so a
/// missing link costs no `ip` run).
pub(crate) fn link_show(name: &str) -> Result<Option<Link>> {
    if !link_exists(name) {
        return Ok(None);
    }
    match cmd::ip(&["-json", "-details", "link", "show", "dev", name]) {
        Ok(out) => {
            let links: Vec<Link> = parse_json("ip -json -details link show", &out)?;
            Ok(links.into_iter().next())
        }
        Err(e) if is_missing_device(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every link on the host, with details.
pub(crate) fn links() -> Result<Vec<Link>> {
    let out = cmd::ip(&["-json", "-details", "link", "show"])?;
    parse_json("ip -json -details link show", &out)
}

/// `ip link del dev NAME`, where a link that vanished meanwhile counts as deleted.
pub(crate) fn link_delete(name: &str) -> Result<()> {
    match cmd::ip(&["link", "del", "dev", name]) {
        Err(e) if !is_missing_device(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Does the host have an interface named `name`?
pub fn link_exists(name: &str) -> bool {
    valid_ifname(name) && matches!(Rtnl::host().and_then(|mut r| r.link(name)), Ok(Some(_)))
}

/// FNV-1a, for names and MACs that must be stable across runs.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The MAC of bridge `name`: stable and locally administered. A bridge without a MAC of
/// its own takes the lowest of its ports', so it would change as guests come and go, and
/// the guests' neighbour entries for their gateway would go stale each time.
fn bridge_mac(name: &str) -> String {
    let b = fnv1a(format!("hangar-bridge:{name}").as_bytes()).to_le_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

/// Whether bridge `name` exists, is up, has every address of `want` and MTU `mtu`: the
/// common case at every start, answered through netlink.
fn bridge_is_ready(name: &str, want: &[Cidr], mtu: Option<u32>) -> Result<bool> {
    let mut host = Rtnl::host()?;
    let Some(link) = host.link(name)? else {
        return Ok(false);
    };
    if link.kind != "bridge" || !link.up || mtu.is_some_and(|m| link.mtu != Some(m)) {
        return Ok(false);
    }
    let have = host.addresses(name, link.index)?;
    Ok(want.iter().all(|c| have.contains(c)))
}

/// Create bridge `name` if missing (idempotent), give it `want` (v4 and v6; those it
/// has are kept, and so are any others, which an admin may have put there), set its MTU
/// (checked with the network's config) and bring it up. A new bridge gets a fixed MAC
/// derived from its name.
pub fn bridge_ensure(name: &str, want: &[Cidr], mtu: Option<u32>) -> Result<()> {
    check_ifname("bridge", name)?;
    if bridge_is_ready(name, want, mtu)? {
        return Ok(());
    }
    let mut host = Rtnl::host()?;
    let index = match host.link(name)? {
        Some(l) if l.kind != "bridge" => {
            return Err(NetError::Invalid(format!(
                "{name} exists and is a {}, not a bridge: rename or delete it, or choose \
                 another network name",
                l.kind
            )));
        }
        Some(l) => l.index,
        None => {
            let mac = Mac::parse(&bridge_mac(name)).expect("bridge_mac makes valid MACs");
            let made = host.run(&rtnl::bridge(name, mac.0));
            // Another hangar may have created it meanwhile; then it is there, and fine.
            match host.link(name)? {
                Some(l) if l.kind == "bridge" => l.index,
                _ => return Err(made.err().unwrap_or_else(|| gone_meanwhile(name))),
            }
        }
    };
    let have = host.addresses(name, index)?;
    let mut reqs: Vec<rtnl::Request> = want
        .iter()
        .filter(|c| !have.contains(c))
        // IPv6 without DAD: without carrier (no port yet) it would stay tentative.
        .map(|c| rtnl::address(name, index, c, false))
        .collect();
    if let Some(m) = mtu {
        reqs.push(rtnl::mtu(name, index, m));
    }
    reqs.push(rtnl::up(name, index, None));
    host.run_all(&reqs)
}

fn gone_meanwhile(name: &str) -> NetError {
    NetError::Invalid(format!("{name} vanished while it was being set up"))
}

/// Delete link `name` of kind `kind` (idempotent); a link of another kind is refused,
/// saying what it is.
fn delete_kind(name: &str, kind: &str, what: &str) -> Result<()> {
    let mut host = Rtnl::host()?;
    match host.link(name)? {
        None => Ok(()),
        Some(l) if l.kind != kind => Err(NetError::Invalid(format!(
            "{name} is a {}, not {what}: not deleting it",
            l.kind
        ))),
        Some(l) => match host.run(&rtnl::delete(name, l.index)) {
            Err(NetError::Command { stderr, .. }) if stderr.contains("No such device") => Ok(()),
            r => r,
        },
    }
}

/// Delete bridge `name` (idempotent). Refuses to delete a link that is not a bridge.
pub fn bridge_delete(name: &str) -> Result<()> {
    check_ifname("bridge", name)?;
    delete_kind(name, "bridge", "a bridge")
}

/// Carry VLAN `vid` on `uplink`: the 802.1Q device `name` on it (tagging what leaves,
/// taking in what carries the tag), made a port of `bridge`, the VLAN's own bridge,
/// and brought up. Idempotent; a `name` that is anything else is refused. On a kernel
/// without 802.1Q devices the error says so.
pub fn uplink_vlan_ensure(name: &str, uplink: &str, vid: u16, bridge: &str) -> Result<()> {
    check_ifname("VLAN device", name)?;
    check_ifname("uplink", uplink)?;
    check_ifname("bridge", bridge)?;
    if !(1..=4094).contains(&vid) {
        return Err(NetError::Invalid(format!("VLAN id {vid}: use 1 to 4094")));
    }
    let mut host = Rtnl::host()?;
    let missing = |what: &str, n: &str| NetError::Invalid(format!("{what} {n} does not exist"));
    let up_index = host
        .link(uplink)?
        .ok_or_else(|| missing("uplink", uplink))?
        .index;
    let br_index = host
        .link(bridge)?
        .ok_or_else(|| missing("bridge", bridge))?
        .index;
    let index = match host.link(name)? {
        Some(l) if l.kind == "vlan" && l.vlan_id == Some(vid) && l.lower == Some(up_index) => {
            l.index
        }
        Some(l) => {
            return Err(NetError::Invalid(format!(
                "{name} exists and is a {} other than VLAN {vid} on {uplink}: delete it",
                l.kind
            )));
        }
        None => {
            match host.run(&rtnl::vlan(name, (uplink, up_index), vid)) {
                // The kernel's answer when it has no such link kind.
                Err(NetError::Command { stderr, .. })
                    if stderr.contains("Operation not supported") =>
                {
                    return Err(NetError::Invalid(format!(
                        "VLAN {vid} cannot be tagged on uplink {uplink}: this kernel has no \
                         802.1Q VLAN devices (CONFIG_VLAN_8021Q, module 8021q); load the \
                         module, or use VLANs on a network without an uplink"
                    )));
                }
                r => r?,
            }
            host.link(name)?.ok_or_else(|| gone_meanwhile(name))?.index
        }
    };
    host.run(&rtnl::up(name, index, Some((bridge, br_index))))
}

/// Delete the 802.1Q device `name` (idempotent). Refuses a link that is not a VLAN
/// device.
pub fn uplink_vlan_delete(name: &str) -> Result<()> {
    check_ifname("VLAN device", name)?;
    delete_kind(name, "vlan", "a VLAN device")
}

/// A [`NicPlan`] checked against the host, before anything is changed.
struct Plan<'a> {
    nic: &'a NicPlan,
    /// The bridge's name and index.
    bridge: Option<(&'a str, u32)>,
}

fn plan<'a>(host: &mut Rtnl, ns: &Netns, nic: &'a NicPlan) -> Result<Plan<'a>> {
    check_ifname("host interface", &nic.host_if)?;
    check_ifname("guest interface", &nic.guest_if)?;
    nic.check().map_err(|e| NetError::Invalid(e.to_string()))?;
    let owner = format!("nic {}", nic.host_if);
    let bridge = match &nic.bridge {
        Some(b) => Some((b.as_str(), check_bridge(host, &owner, b)?)),
        None => None,
    };
    if host.link(&nic.host_if)?.is_some() {
        return Err(NetError::Invalid(format!(
            "{} already exists on the host: unplug that NIC first",
            nic.host_if
        )));
    }
    if !Path::new(&ns.path).exists() {
        return Err(gone(ns, nic));
    }
    Ok(Plan { nic, bridge })
}

/// The index of bridge `bridge`, which must exist.
fn check_bridge(host: &mut Rtnl, owner: &str, bridge: &str) -> Result<u32> {
    check_ifname("bridge", bridge)?;
    match host.link(bridge)? {
        Some(l) if l.kind == "bridge" => Ok(l.index),
        Some(l) => Err(NetError::Invalid(format!(
            "{owner}: {bridge} is a {}, not a bridge",
            l.kind
        ))),
        None => Err(NetError::Invalid(format!(
            "{owner}: bridge {bridge} does not exist: bring its network up first"
        ))),
    }
}

fn gone(ns: &Netns, nic: &NicPlan) -> NetError {
    NetError::Invalid(format!(
        "cannot plug {} into {}: it has exited (is the guest running?)",
        nic.host_if, ns.owner
    ))
}

/// The network namespace a NIC is plugged into, as a path that `nsenter --net=` opens.
pub struct Netns<'fd> {
    path: String,
    /// Whose it is, for messages: "process 123".
    owner: String,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl Netns<'static> {
    /// The namespace of process `pid`, through `/proc/PID/ns/net`. Right only while
    /// `pid` cannot be reused by another process: the caller's own unreaped child, or a
    /// test process it owns. Otherwise pin the namespace with [`Netns::held`].
    pub fn of_process(pid: i32) -> Netns<'static> {
        Netns {
            path: format!("/proc/{pid}/ns/net"),
            owner: format!("process {pid}"),
            _fd: PhantomData,
        }
    }
}

impl<'fd> Netns<'fd> {
    /// A namespace the caller holds open (`/proc/PID/ns/net` opened once the process
    /// was known to be the right one): it stays that namespace whatever happens to the
    /// process, so a NIC can never land in a later process that reused the pid. The
    /// tools reach it as `/proc/<our pid>/fd/<fd>`.
    pub fn held(fd: BorrowedFd<'fd>, owner: &str) -> Netns<'fd> {
        Netns {
            path: format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd()),
            owner: owner.to_string(),
            _fd: PhantomData,
        }
    }
}

/// Plug a NIC into network namespace `ns`: create the veth pair (the peer inside the
/// guest, see the module docs), then inside the guest the addresses (IPv6 without
/// DAD), link up and default routes (the routes go onto a link without carrier, which
/// the kernel allows), then the host side (bridge port, or routes and gateway
/// addresses when routed). On failure the host side is deleted, and its peer goes with
/// it.
pub fn nic_plug(ns: &Netns, nic: &NicPlan) -> Result<()> {
    let mut host = Rtnl::host()?;
    let plan = plan(&mut host, ns, nic)?;
    let (mut guest, home) = Rtnl::in_netns(&ns.path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => gone(ns, nic),
        _ => NetError::Command {
            command: format!("entering the network namespace of {}", ns.owner),
            stderr: e.to_string(),
        },
    })?;
    let pair = rtnl::veth(&nic.guest_if, nic.mac.0, nic.mtu, &nic.host_if, &home);
    guest.run(&pair).map_err(|e| pair_error(e, ns, nic))?;
    let mut rest = || -> Result<()> {
        let index = |r: &mut Rtnl, name: &str| -> Result<u32> {
            r.link(name)?.map(|l| l.index).ok_or_else(|| {
                NetError::Invalid(format!("{name} vanished while it was being plugged"))
            })
        };
        let g = index(&mut guest, &nic.guest_if)?;
        guest
            .run_all(&guest_requests(&plan, g))
            .map_err(|e| inside(e, &ns.owner))?;
        let h = index(&mut host, &nic.host_if)?;
        configure_host(&mut host, &plan, h)
    };
    rest().inspect_err(|_| {
        let _ = nic_unplug(&nic.host_if);
    })
}

/// Why the pair could not be made (then nothing was).
fn pair_error(e: NetError, ns: &Netns, nic: &NicPlan) -> NetError {
    match &e {
        NetError::Command { stderr, .. }
            if stderr.contains("No such file") || stderr.contains("No such process") =>
        {
            gone(ns, nic)
        }
        NetError::Command { stderr, .. } if stderr.contains("File exists") => {
            NetError::Invalid(format!(
                "cannot plug {}: the guest ({}) already has an interface named {} \
                 (or {} appeared on the host meanwhile)",
                nic.host_if, ns.owner, nic.guest_if, nic.host_if
            ))
        }
        _ => inside(e, &ns.owner),
    }
}

/// A failure inside a guest's namespace, saying whose.
fn inside(e: NetError, owner: &str) -> NetError {
    match e {
        NetError::Command { command, stderr } => NetError::Command {
            command,
            stderr: format!("{stderr} (inside the network namespace of {owner})"),
        },
        e => e,
    }
}

fn configure_host(host: &mut Rtnl, plan: &Plan, index: u32) -> Result<()> {
    let h = &plan.nic.host_if;
    let mut reqs = Vec::new();
    if plan.nic.routed {
        if plan.nic.addrs.iter().any(Cidr::is_v4) {
            let gw = Cidr::V4(ROUTED_GATEWAY_V4, 32);
            reqs.push(rtnl::address(h, index, &gw, true));
            write_sysctl(&format!("net/ipv4/conf/{h}/proxy_arp"), "1")?;
        }
        if plan.nic.addrs.iter().any(|a| !a.is_v4()) {
            let gw = Cidr::V6(ROUTED_GATEWAY_V6, 64);
            reqs.push(rtnl::address(h, index, &gw, false));
        }
    }
    reqs.push(rtnl::up(h, index, plan.bridge));
    if plan.nic.routed {
        for a in &plan.nic.addrs {
            reqs.push(rtnl::route(&host_route(a), None, h, index, false));
        }
    }
    host.run_all(&reqs)
}

/// `a` as a host address: /32 or /128.
fn host_route(a: &Cidr) -> Cidr {
    match *a {
        Cidr::V4(a, _) => Cidr::V4(a, 32),
        Cidr::V6(a, _) => Cidr::V6(a, 128),
    }
}

/// The guest side's addresses, link state and default routes.
fn guest_requests(plan: &Plan, index: u32) -> Vec<rtnl::Request> {
    let g = &plan.nic.guest_if;
    let mut reqs = Vec::new();
    for a in &plan.nic.addrs {
        let addr = if plan.nic.routed { host_route(a) } else { *a };
        reqs.push(rtnl::address(g, index, &addr, false));
    }
    reqs.push(rtnl::up(g, index, None));
    for gw in &plan.nic.gateways {
        let default = match gw {
            IpAddr::V4(_) => Cidr::V4(std::net::Ipv4Addr::UNSPECIFIED, 0),
            IpAddr::V6(_) => Cidr::V6(std::net::Ipv6Addr::UNSPECIFIED, 0),
        };
        // The routed IPv4 gateway is on no subnet of the guest's.
        let onlink = plan.nic.routed && gw.is_ipv4();
        reqs.push(rtnl::route(&default, Some(*gw), g, index, onlink));
    }
    reqs
}

/// Remove a NIC: delete its host side (the peer in the guest goes with it, and so do
/// the host's routes to a routed NIC's addresses, which the kernel drops with their
/// device). Idempotent; refuses to delete a link that is not a veth.
pub fn nic_unplug(host_if: &str) -> Result<()> {
    check_ifname("host interface", host_if)?;
    let mut host = Rtnl::host()?;
    match host.link(host_if)? {
        None => Ok(()),
        Some(l) if l.kind != "veth" => Err(NetError::Invalid(format!(
            "{host_if} is a {}, not a guest NIC's veth: not deleting it",
            l.kind
        ))),
        Some(l) => match host.run(&rtnl::delete(host_if, l.index)) {
            // Gone meanwhile (its guest's namespace went away): what we wanted.
            Err(NetError::Command { stderr, .. }) if stderr.contains("No such device") => Ok(()),
            r => r,
        },
    }
}

/// Names of the host's interfaces that start with `prefix` (leftover checks).
pub fn links_with_prefix(prefix: &str) -> Result<Vec<String>> {
    let out = cmd::ip(&["-json", "link", "show"])?;
    let links: Vec<Link> = parse_json("ip -json link show", &out)?;
    Ok(links
        .into_iter()
        .map(|l| l.ifname)
        .filter(|n| n.starts_with(prefix))
        .collect())
}

fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = PathBuf::from("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(|source| NetError::Io {
        what: "cannot write",
        path,
        source,
    })
}

/// Let the host route between its interfaces: net.ipv4.ip_forward=1 and
/// net.ipv6.conf.all.forwarding=1 (the latter only where the kernel has IPv6). Note that
/// with IPv6 forwarding on, interfaces with accept_ra=1 ignore router advertisements: a
/// host that configures its uplink by SLAAC needs accept_ra=2 there.
pub fn enable_forwarding() -> Result<()> {
    write_sysctl("net/ipv4/ip_forward", "1")?;
    if Path::new("/proc/sys/net/ipv6").exists() {
        write_sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_style_names_are_valid() {
        for n in [
            "eth0",
            "hg7-eth0",
            "h1a2-32767-eth",
            "a",
            "br.100",
            "hgb-lan",
        ] {
            assert!(valid_ifname(n), "{n}");
        }
    }

    #[test]
    fn names_the_kernel_or_ip_batch_refuse_are_invalid() {
        let long = "a".repeat(16);
        for n in [
            "", ".", "..", "a/b", "a:b", "a b", "a\tb", "a\nb", "a#b", "a\"b", "a'b", &long,
        ] {
            assert!(!valid_ifname(n), "{n:?}");
        }
    }

    #[test]
    fn a_bad_name_is_refused_with_the_name() {
        let e = check_ifname("bridge", "has space").unwrap_err().to_string();
        assert!(
            e.contains("bridge \"has space\" is not a valid interface name"),
            "{e}"
        );
    }

    #[test]
    fn bridge_macs_are_stable_unicast_and_local() {
        let m = bridge_mac("hgb-lan");
        assert_eq!(m, bridge_mac("hgb-lan"));
        assert_ne!(m, bridge_mac("hgb-dmz"));
        assert!(m.starts_with("02:"), "{m}");
        assert!(hangar_model::net::Mac::parse(&m).is_ok());
    }

    #[test]
    fn routed_host_routes_are_host_addresses() {
        assert_eq!(
            host_route(&Cidr::parse("10.1.2.3/24").unwrap()).to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            host_route(&Cidr::parse("fd00::5/64").unwrap()).to_string(),
            "fd00::5/128"
        );
    }

    #[test]
    fn uplink_vlans_outside_1_to_4094_or_with_bad_names_are_refused_before_anything_runs() {
        for (name, uplink, vid, needle) in [
            ("hgq0-lan", "eth1", 0, "use 1 to 4094"),
            ("hgq4095-lan", "eth1", 4095, "use 1 to 4094"),
            ("hgq10-lan", "eth/1", 10, "not a valid interface name"),
            ("hg-too-long-name", "eth1", 10, "not a valid interface name"),
        ] {
            let e = uplink_vlan_ensure(name, uplink, vid, "hgv10-lan")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{name} {uplink} {vid}: {e}");
        }
    }
}
