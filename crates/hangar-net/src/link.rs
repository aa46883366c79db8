//! Links on the host: a network's bridge, and a guest NIC's veth pair from the host side
//! into the guest's network namespace and back out.
//!
//! A guest NIC is a veth pair. Its host side (`host_if`, a name the caller chooses) stays
//! on the host; its guest side is created directly inside the guest's network namespace
//! (`nsenter --net=NS ip link add name eth0 address MAC type veth peer name HOST_IF
//! netns <our pid>`), already carrying its final name, MAC and MTU. So there is no
//! temporary name on the host to collide with, and a failure leaves either the whole
//! pair or nothing. The same `ip -batch` run inside the guest (`cmd::ip_batch_in`)
//! then configures the guest side; one more on the host configures the host side.
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

use crate::{NetError, Result, cmd};
use hangar_model::net::{Cidr, parse_mac};
use serde::Deserialize;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// The IPv4 default gateway of a routed guest (`onlink`), owned by the host side.
pub const ROUTED_GATEWAY_V4: &str = "169.254.0.1";
/// The IPv6 default gateway of a routed guest, owned by the host side.
pub const ROUTED_GATEWAY_V6: &str = "fe80::1";

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
    /// The lower device (a VLAN device's parent).
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
    #[serde(default)]
    pub ifalias: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LinkInfo {
    #[serde(default)]
    pub info_kind: Option<String>,
    #[serde(default)]
    pub info_data: Option<serde_json::Value>,
}

impl Link {
    /// The link's kind (`veth`, `bridge`, `ifb`, ...); `device` for plain hardware.
    pub fn kind(&self) -> &str {
        self.linkinfo
            .as_ref()
            .and_then(|l| l.info_kind.as_deref())
            .unwrap_or("device")
    }

    /// A VLAN device's id.
    fn vlan_id(&self) -> Option<u64> {
        self.linkinfo
            .as_ref()?
            .info_data
            .as_ref()?
            .get("id")?
            .as_u64()
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

/// The link named `name` on the host, or None.
pub(crate) fn link_show(name: &str) -> Result<Option<Link>> {
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
    valid_ifname(name) && matches!(link_show(name), Ok(Some(_)))
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

fn parse_cidr(owner: &str, s: &str) -> Result<Cidr> {
    Cidr::parse(s).map_err(|e| NetError::Invalid(format!("{owner}: {e}")))
}

fn check_mtu(owner: &str, mtu: Option<u32>) -> Result<()> {
    match mtu {
        Some(m) if !(68..=65535).contains(&m) => Err(NetError::Invalid(format!(
            "{owner}: mtu {m} is out of range: use 68-65535 (1280 or more with IPv6)"
        ))),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
struct AddrEntry {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
    #[serde(default)]
    linkinfo: Option<LinkInfo>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    mtu: Option<u32>,
}

/// An `addr_info` entry; those a filter left out are empty objects.
#[derive(Debug, Deserialize)]
struct AddrInfo {
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    prefixlen: Option<u8>,
}

/// The addresses on link `name`.
fn addresses(name: &str) -> Result<Vec<Cidr>> {
    let out = cmd::ip(&["-json", "addr", "show", "dev", name])?;
    let entries: Vec<AddrEntry> = parse_json("ip -json addr show", &out)?;
    let infos = entries.into_iter().flat_map(|e| e.addr_info);
    let cidr = |a: AddrInfo| Cidr::parse(&format!("{}/{}", a.local?, a.prefixlen?)).ok();
    Ok(infos.filter_map(cidr).collect())
}

/// Whether bridge `name` exists, is up, has every address of `want` and MTU `mtu`: the
/// common case at every start, answered by one `ip` run.
fn bridge_is_ready(name: &str, want: &[Cidr], mtu: Option<u32>) -> Result<bool> {
    let out = match cmd::ip(&["-json", "-details", "addr", "show", "dev", name]) {
        Ok(out) => out,
        Err(e) if is_missing_device(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    let entries: Vec<AddrEntry> = parse_json("ip -json -details addr show", &out)?;
    let Some(e) = entries.into_iter().next() else {
        return Ok(false);
    };
    let is_bridge = e.linkinfo.as_ref().and_then(|l| l.info_kind.as_deref()) == Some("bridge");
    let have: Vec<Cidr> = e
        .addr_info
        .into_iter()
        .filter_map(|a| Cidr::parse(&format!("{}/{}", a.local?, a.prefixlen?)).ok())
        .collect();
    Ok(is_bridge
        && e.flags.iter().any(|f| f == "UP")
        && mtu.is_none_or(|m| e.mtu == Some(m))
        && want.iter().all(|c| have.contains(c)))
}

/// Create bridge `name` if missing (idempotent), give it `addrs` (CIDR, v4 and v6; those
/// it has are kept, and so are any others, which an admin may have put there), set its
/// MTU and bring it up. A new bridge gets a fixed MAC derived from its name.
pub fn bridge_ensure(name: &str, addrs: &[String], mtu: Option<u32>) -> Result<()> {
    check_ifname("bridge", name)?;
    let owner = format!("bridge {name}");
    let want = addrs
        .iter()
        .map(|a| parse_cidr(&owner, a))
        .collect::<Result<Vec<_>>>()?;
    check_mtu(&owner, mtu)?;
    if bridge_is_ready(name, &want, mtu)? {
        return Ok(());
    }
    match link_show(name)? {
        Some(l) if l.kind() != "bridge" => {
            return Err(NetError::Invalid(format!(
                "{name} exists and is a {}, not a bridge: rename or delete it, or choose \
                 another network name",
                l.kind()
            )));
        }
        Some(_) => {}
        None => {
            let mac = bridge_mac(name);
            let made = cmd::ip(&[
                "link", "add", "name", name, "address", &mac, "type", "bridge",
            ]);
            // Another hangar may have created it meanwhile; then it is there, and fine.
            if let Err(e) = made
                && !matches!(link_show(name)?, Some(l) if l.kind() == "bridge")
            {
                return Err(e);
            }
        }
    }
    let have = addresses(name)?;
    for c in want.iter().filter(|c| !have.contains(c)) {
        let cidr = c.to_string();
        let mut args = vec!["addr", "add", cidr.as_str(), "dev", name];
        if !c.is_v4() {
            // Without carrier (no port yet) an address would stay tentative until DAD ran.
            args.push("nodad");
        }
        cmd::ip(&args)?;
    }
    if let Some(m) = mtu {
        cmd::ip(&["link", "set", "dev", name, "mtu", &m.to_string()])?;
    }
    cmd::ip(&["link", "set", "dev", name, "up"])?;
    Ok(())
}

/// Delete bridge `name` (idempotent). Refuses to delete a link that is not a bridge.
pub fn bridge_delete(name: &str) -> Result<()> {
    check_ifname("bridge", name)?;
    match link_show(name)? {
        None => Ok(()),
        Some(l) if l.kind() != "bridge" => Err(NetError::Invalid(format!(
            "{name} is a {}, not a bridge: not deleting it",
            l.kind()
        ))),
        Some(_) => link_delete(name),
    }
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
    match link_show(name)? {
        Some(l)
            if l.kind() == "vlan"
                && l.vlan_id() == Some(u64::from(vid))
                && l.link.as_deref() == Some(uplink) => {}
        Some(l) => {
            return Err(NetError::Invalid(format!(
                "{name} exists and is a {} other than VLAN {vid} on {uplink}: delete it",
                l.kind()
            )));
        }
        None => {
            let id = vid.to_string();
            let made = cmd::ip(&[
                "link", "add", "link", uplink, "name", name, "type", "vlan", "id", &id,
            ]);
            match made {
                Err(NetError::Command { stderr, .. }) if stderr.contains("Unknown device type") => {
                    return Err(NetError::Invalid(format!(
                        "VLAN {vid} cannot be tagged on uplink {uplink}: this kernel has no \
                         802.1Q VLAN devices (CONFIG_VLAN_8021Q, module 8021q); load the \
                         module, or use VLANs on a network without an uplink"
                    )));
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
    }
    let up = cmd::ip(&["link", "set", "dev", name, "master", bridge, "up"]);
    up.map(drop)
}

/// Delete the 802.1Q device `name` (idempotent). Refuses a link that is not a VLAN
/// device.
pub fn uplink_vlan_delete(name: &str) -> Result<()> {
    check_ifname("VLAN device", name)?;
    match link_show(name)? {
        None => Ok(()),
        Some(l) if l.kind() != "vlan" => Err(NetError::Invalid(format!(
            "{name} is a {}, not a VLAN device: not deleting it",
            l.kind()
        ))),
        Some(_) => link_delete(name),
    }
}

/// One guest NIC, as [`nic_plug`] creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSetup {
    /// Host side veth name, at most 15 bytes (`hg7-eth0`).
    pub host_if: String,
    /// The name inside the guest (`eth0`).
    pub guest_if: String,
    /// The guest side's MAC (`02:xx:...`).
    pub mac: String,
    /// Bridge to attach the host side to (bridged NICs).
    pub bridge: Option<String>,
    /// Guest addresses, CIDR, v4 and/or v6.
    pub addrs: Vec<String>,
    /// Default gateways inside the guest, v4 and/or v6: none, one or both families.
    /// A routed NIC takes only [`ROUTED_GATEWAY_V4`] and [`ROUTED_GATEWAY_V6`]. They
    /// replace a default route the guest already has (a NIC attached to carry it).
    pub gateways: Vec<String>,
    pub mtu: Option<u32>,
    /// Routed (venet style, see the module docs) instead of bridged.
    pub routed: bool,
}

/// A `NicSetup` checked and parsed, before anything is changed.
struct Plan<'a> {
    nic: &'a NicSetup,
    addrs: Vec<Cidr>,
    gateways: Vec<IpAddr>,
}

fn plan<'a>(ns: &Netns, nic: &'a NicSetup) -> Result<Plan<'a>> {
    check_ifname("host interface", &nic.host_if)?;
    check_ifname("guest interface", &nic.guest_if)?;
    let owner = format!("nic {}", nic.host_if);
    parse_mac(&nic.mac).map_err(|e| NetError::Invalid(format!("{owner}: {e}")))?;
    check_mtu(&owner, nic.mtu)?;
    let addrs = nic
        .addrs
        .iter()
        .map(|a| parse_cidr(&owner, a))
        .collect::<Result<Vec<_>>>()?;
    let gateways = nic
        .gateways
        .iter()
        .map(|g| {
            g.parse::<IpAddr>().map_err(|_| {
                NetError::Invalid(format!(
                    "{owner}: gateway {g:?} is not an address: write it like 10.77.0.1 or fd77::1"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if nic.routed && nic.bridge.is_some() {
        return Err(NetError::Invalid(format!(
            "{owner}: a routed NIC has no bridge: drop the bridge or the routed mode"
        )));
    }
    if nic.routed {
        check_routed_gateways(&owner, &gateways)?;
    } else {
        check_gateways(&owner, &gateways, &addrs)?;
    }
    if let Some(b) = &nic.bridge {
        check_bridge(&owner, b)?;
    }
    if link_show(&nic.host_if)?.is_some() {
        return Err(NetError::Invalid(format!(
            "{} already exists on the host: unplug that NIC first",
            nic.host_if
        )));
    }
    if !Path::new(&ns.path).exists() {
        return Err(gone(ns, nic));
    }
    Ok(Plan {
        nic,
        addrs,
        gateways,
    })
}

/// Each gateway must be on one of the NIC's subnets (or IPv6 link-local), or the
/// kernel would refuse the route only after the NIC exists.
fn check_gateways(owner: &str, gateways: &[IpAddr], addrs: &[Cidr]) -> Result<()> {
    for gw in gateways {
        let (host, link_local) = match gw {
            IpAddr::V4(a) => (Cidr::V4(*a, 32), false),
            IpAddr::V6(a) => (Cidr::V6(*a, 128), a.segments()[0] & 0xffc0 == 0xfe80),
        };
        if !link_local && !addrs.iter().any(|c| c.contains(&host)) {
            return Err(NetError::Invalid(format!(
                "{owner}: gateway {gw} is on none of the NIC's subnets: give an address in its \
                 subnet, or another gateway"
            )));
        }
    }
    Ok(())
}

/// A routed NIC's default routes go via the host side's link-local addresses only.
fn check_routed_gateways(owner: &str, gateways: &[IpAddr]) -> Result<()> {
    let allowed = [ROUTED_GATEWAY_V4, ROUTED_GATEWAY_V6];
    if gateways
        .iter()
        .any(|g| !allowed.contains(&g.to_string().as_str()))
    {
        return Err(NetError::Invalid(format!(
            "{owner}: a routed NIC's default routes go via the host side: its gateways are \
             {ROUTED_GATEWAY_V4} and {ROUTED_GATEWAY_V6}, or none"
        )));
    }
    Ok(())
}

fn check_bridge(owner: &str, bridge: &str) -> Result<()> {
    check_ifname("bridge", bridge)?;
    match link_show(bridge)? {
        Some(l) if l.kind() == "bridge" => Ok(()),
        Some(l) => Err(NetError::Invalid(format!(
            "{owner}: {bridge} is a {}, not a bridge",
            l.kind()
        ))),
        None => Err(NetError::Invalid(format!(
            "{owner}: bridge {bridge} does not exist: bring its network up first"
        ))),
    }
}

fn gone(ns: &Netns, nic: &NicSetup) -> NetError {
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
/// guest, see the module docs), configure the host side (bridge port, or routes and
/// gateway addresses when routed), then inside the guest the addresses (IPv6 without
/// DAD), link up, default routes. On failure the host side is deleted, and its peer
/// goes with it.
pub fn nic_plug(ns: &Netns, nic: &NicSetup) -> Result<()> {
    let plan = plan(ns, nic)?;
    // One `ip` run inside the guest makes the pair and configures the guest side; the
    // routes go onto a link without carrier, which the kernel allows.
    let batch = format!("{}{}", pair_line(nic), guest_lines(&plan));
    if let Err(e) = cmd::ip_batch_in(&ns.path, &batch) {
        // `plan` made sure the host side did not exist: if it does, the pair was made
        // and a later line failed.
        if link_exists(&nic.host_if) {
            let _ = link_delete(&nic.host_if);
            return Err(batch_error(e, &batch, Some(&ns.owner)));
        }
        return Err(pair_error(e, &batch, ns, nic));
    }
    configure_host(&plan).inspect_err(|_| {
        let _ = link_delete(&nic.host_if);
    })
}

/// The pair is made inside the guest's namespace with its host side sent to ours
/// (`netns <our pid>`): iproute2 names a target namespace only by pid or by a name
/// under /run/netns, not by a descriptor, and we are the one process sure to live.
fn pair_line(nic: &NicSetup) -> String {
    let mtu = nic.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
    format!(
        "link add name {} address {}{mtu} type veth peer name {}{mtu} netns {}\n",
        nic.guest_if,
        nic.mac,
        nic.host_if,
        std::process::id()
    )
}

/// Why the pair could not be made (then nothing was).
fn pair_error(e: NetError, batch: &str, ns: &Netns, nic: &NicSetup) -> NetError {
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
        _ => batch_error(e, batch, Some(&ns.owner)),
    }
}

/// `ip -batch -` on the host; stops at the first failing line.
fn ip_batch(batch: &str) -> Result<()> {
    cmd::run("ip", &["-batch", "-"], Some(batch)).map(drop)
}

fn configure_host(plan: &Plan) -> Result<()> {
    let h = &plan.nic.host_if;
    let mut batch = String::new();
    if let Some(b) = &plan.nic.bridge {
        batch += &format!("link set dev {h} master {b}\n");
    }
    if plan.nic.routed {
        if plan.addrs.iter().any(Cidr::is_v4) {
            batch += &format!("addr add {ROUTED_GATEWAY_V4}/32 dev {h} scope link\n");
            write_sysctl(&format!("net/ipv4/conf/{h}/proxy_arp"), "1")?;
        }
        if plan.addrs.iter().any(|a| !a.is_v4()) {
            batch += &format!("addr add {ROUTED_GATEWAY_V6}/64 dev {h} nodad\n");
        }
    }
    batch += &format!("link set dev {h} up\n");
    if plan.nic.routed {
        for a in &plan.addrs {
            batch += &format!("route add {} dev {h}\n", host_route(a));
        }
    }
    ip_batch(&batch).map_err(|e| batch_error(e, &batch, None))
}

/// `a` as a host address: /32 or /128.
fn host_route(a: &Cidr) -> String {
    let len = if a.is_v4() { 32 } else { 128 };
    format!("{}/{len}", a.addr_string())
}

/// The guest side's addresses, link state and default routes, as `ip -batch` lines.
fn guest_lines(plan: &Plan) -> String {
    let g = &plan.nic.guest_if;
    let mut batch = String::new();
    for a in &plan.addrs {
        let addr = if plan.nic.routed {
            host_route(a)
        } else {
            a.to_string()
        };
        // The guest's addresses are hangar's to give: no duplicate detection delaying them.
        let nodad = if a.is_v4() { "" } else { " nodad" };
        batch += &format!("addr add {addr} dev {g}{nodad}\n");
    }
    batch += &format!("link set dev {g} up\n");
    for gw in &plan.gateways {
        let default = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        // The routed IPv4 gateway is on no subnet of the guest's.
        let onlink = if plan.nic.routed && gw.is_ipv4() {
            " onlink"
        } else {
            ""
        };
        batch += &format!("route replace {default} via {gw} dev {g}{onlink}\n");
    }
    batch
}

/// The error of an `ip -batch` run, naming the line that failed (iproute2 reports only
/// its number) and, for a guest's, whose network namespace it ran in.
fn batch_error(e: NetError, batch: &str, guest: Option<&str>) -> NetError {
    let NetError::Command { command, stderr } = e else {
        return e;
    };
    let number = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Command failed -:"));
    let line = number
        .and_then(|n| n.trim().parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| batch.lines().nth(i));
    let Some(line) = line else {
        return NetError::Command { command, stderr };
    };
    let reason = stderr.lines().next().unwrap_or("").trim();
    let stderr = match guest {
        Some(owner) => format!("{reason} (inside the network namespace of {owner})"),
        None => reason.to_string(),
    };
    NetError::Command {
        command: format!("ip {line}"),
        stderr,
    }
}

/// Remove a NIC: delete its host side (the peer in the guest goes with it, and so do
/// the host's routes to a routed NIC's addresses, which the kernel drops with their
/// device). Idempotent; refuses to delete a link that is not a veth.
pub fn nic_unplug(host_if: &str) -> Result<()> {
    check_ifname("host interface", host_if)?;
    match link_show(host_if)? {
        None => Ok(()),
        Some(l) if l.kind() != "veth" => Err(NetError::Invalid(format!(
            "{host_if} is a {}, not a guest NIC's veth: not deleting it",
            l.kind()
        ))),
        Some(_) => link_delete(host_if),
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
        assert!(parse_mac(&m).is_ok());
    }

    #[test]
    fn routed_host_routes_are_host_addresses() {
        assert_eq!(
            host_route(&Cidr::parse("10.1.2.3/24").unwrap()),
            "10.1.2.3/32"
        );
        assert_eq!(
            host_route(&Cidr::parse("fd00::5/64").unwrap()),
            "fd00::5/128"
        );
    }

    #[test]
    fn routed_nic_with_a_gateway_not_the_host_sides_is_refused_before_anything_changes() {
        let nic = NicSetup {
            host_if: "hgt-unit0".into(),
            guest_if: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
            bridge: None,
            addrs: vec!["10.0.0.5/32".into()],
            gateways: vec!["10.0.0.1".into()],
            mtu: None,
            routed: true,
        };
        let e = nic_plug(&Netns::of_process(1), &nic)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a routed NIC's default routes go via the host side"),
            "{e}"
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

    #[test]
    fn bad_mtu_and_mac_are_refused_with_their_values() {
        let mut nic = NicSetup {
            host_if: "hgt-unit1".into(),
            guest_if: "eth0".into(),
            mac: "01:00:00:00:00:01".into(),
            bridge: None,
            addrs: vec![],
            gateways: vec![],
            mtu: None,
            routed: false,
        };
        let e = nic_plug(&Netns::of_process(1), &nic)
            .unwrap_err()
            .to_string();
        assert!(e.contains("multicast"), "{e}");
        nic.mac = "02:00:00:00:00:01".into();
        nic.mtu = Some(20);
        let e = nic_plug(&Netns::of_process(1), &nic)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mtu 20 is out of range"), "{e}");
    }
}
