//! rtnetlink from Rust, synchronously: the links, addresses and routes of a guest NIC,
//! made on a blocking netlink socket (`netlink-sys`) with messages built by
//! `netlink-packet-route`. A start with NICs runs no `ip` or `nsenter` process.
//!
//! A socket belongs to the network namespace it was created in, for life: [`Rtnl::in_netns`]
//! creates one inside a guest's namespace from a short-lived thread that enters it
//! (`setns` moves only the calling thread), so the rest of the process never changes
//! namespace. Every request says what it does in `ip` syntax ([`Request`]), so an error
//! reads like the command an admin would type to do the same by hand.

use crate::{NetError, Result};
use hangar_model::net::Cidr;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// What [`Rtnl::link`] tells of a link.
pub(crate) struct LinkState {
    pub(crate) index: u32,
    /// `veth`, `bridge`, ...; `device` for plain hardware.
    pub(crate) kind: String,
    pub(crate) up: bool,
    pub(crate) mtu: Option<u32>,
    /// A VLAN device's id.
    pub(crate) vlan_id: Option<u16>,
    /// The index of the link this one sits on (a VLAN device's uplink).
    pub(crate) lower: Option<u32>,
}

/// A netlink route socket in one network namespace.
pub(crate) struct Rtnl {
    sock: Socket,
    seq: u32,
}

/// One request: its message, its flags beyond REQUEST|ACK, and what it does in `ip`
/// syntax (for errors).
pub(crate) struct Request {
    msg: RouteNetlinkMessage,
    flags: u16,
    pub(crate) ip: String,
}

/// A blocking netlink socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`)
/// connected to the kernel.
pub(crate) fn socket(protocol: isize) -> io::Result<Socket> {
    let mut sock = Socket::new(protocol)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    Ok(sock)
}

/// A netlink failure as the equivalent command's failure.
fn failed(ip: &str, e: &io::Error) -> NetError {
    // "File exists (os error 17)": the kernel's words, without the number.
    let text = e.to_string();
    let reason = text.split(" (os error").next().unwrap_or(&text);
    NetError::Command {
        command: format!("ip {ip}"),
        stderr: reason.to_string(),
    }
}

impl Rtnl {
    /// A socket in this process's network namespace.
    pub(crate) fn host() -> Result<Rtnl> {
        let sock = socket(NETLINK_ROUTE).map_err(|e| failed("(netlink socket)", &e))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// A socket in the network namespace at `path` (`/proc/PID/ns/net`, or a held
    /// descriptor's `/proc/PID/fd/N`), and a descriptor of this process's own namespace
    /// to send a veth's peer back into.
    pub(crate) fn in_netns(path: &str) -> io::Result<(Rtnl, File)> {
        let path = path.to_string();
        let made = std::thread::spawn(move || -> io::Result<(Socket, File)> {
            let home = File::open("/proc/thread-self/ns/net")?;
            let target = File::open(&path)?;
            nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)?;
            // The thread ends here; its socket stays in the guest's namespace.
            Ok((socket(NETLINK_ROUTE)?, home))
        })
        .join()
        .map_err(|_| io::Error::other("the thread entering the namespace panicked"))??;
        Ok((
            Rtnl {
                sock: made.0,
                seq: 0,
            },
            made.1,
        ))
    }

    /// Send `req` and wait for the kernel's answer: `Ok` with the reply message when
    /// there is one (a get), `Ok(None)` on a plain acknowledgement.
    fn exchange(&mut self, req: &Request) -> io::Result<Option<RouteNetlinkMessage>> {
        Ok(self.talk(req)?.pop())
    }

    /// Send `req` and collect every message of the answer until its acknowledgement or,
    /// for a dump, its end.
    fn talk(&mut self, req: &Request) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | req.flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(req.msg.clone()));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut reply = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(_) => Err(e.to_io()),
                            None => Ok(reply),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => reply.push(m),
                    NetlinkPayload::Done(_) => return Ok(reply),
                    _ => {}
                }
            }
        }
    }

    /// Run `req`; a failure is reported as its `ip` command's.
    pub(crate) fn run(&mut self, req: &Request) -> Result<()> {
        self.exchange(req)
            .map(drop)
            .map_err(|e| failed(&req.ip, &e))
    }

    /// Run `reqs` in order, stopping at the first failure.
    pub(crate) fn run_all(&mut self, reqs: &[Request]) -> Result<()> {
        reqs.iter().try_for_each(|r| self.run(r))
    }

    /// The link named `name`, or `None` when there is none.
    pub(crate) fn link(&mut self, name: &str) -> Result<Option<LinkState>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let req = Request {
            msg: RouteNetlinkMessage::GetLink(m),
            flags: 0,
            ip: format!("link show dev {name}"),
        };
        match self.exchange(&req) {
            Ok(Some(RouteNetlinkMessage::NewLink(l))) => {
                let kind = l
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                            LinkInfo::Kind(k) => Some(k.to_string()),
                            _ => None,
                        }),
                        _ => None,
                    })
                    .unwrap_or_else(|| "device".to_string());
                let mtu = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Mtu(m) => Some(*m),
                    _ => None,
                });
                let lower = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Link(i) => Some(*i),
                    _ => None,
                });
                let vlan_id = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                        LinkInfo::Data(InfoData::Vlan(v)) => v.iter().find_map(|x| match x {
                            InfoVlan::Id(id) => Some(*id),
                            _ => None,
                        }),
                        _ => None,
                    }),
                    _ => None,
                });
                Ok(Some(LinkState {
                    index: l.header.index,
                    kind,
                    up: l.header.flags.contains(LinkFlags::Up),
                    mtu,
                    vlan_id,
                    lower,
                }))
            }
            Ok(_) => Err(failed(&req.ip, &io::Error::other("no link in the answer"))),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(None),
            Err(e) => Err(failed(&req.ip, &e)),
        }
    }
}

impl Rtnl {
    /// The addresses of link `index` (`ip addr show dev NAME`). The kernel filters
    /// the dump by link (strict checking, Linux 4.20), so its cost does not grow with
    /// the number of the host's interfaces; the filter below stays for older kernels.
    pub(crate) fn addresses(&mut self, name: &str, index: u32) -> Result<Vec<Cidr>> {
        let _ = self.sock.set_netlink_get_strict_chk(true);
        let mut filter = AddressMessage::default();
        filter.header.index = index;
        let req = Request {
            msg: RouteNetlinkMessage::GetAddress(filter),
            flags: NLM_F_DUMP,
            ip: format!("addr show dev {name}"),
        };
        let msgs = self.talk(&req).map_err(|e| failed(&req.ip, &e))?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            let local = a.attributes.iter().find_map(|at| match at {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            let len = a.header.prefix_len;
            match addr {
                Some(IpAddr::V4(ip)) => out.push(Cidr::V4(ip, len)),
                Some(IpAddr::V6(ip)) => out.push(Cidr::V6(ip, len)),
                None => {}
            }
        }
        Ok(out)
    }
}

/// `ip link add name NAME address MAC [mtu M] type veth peer name PEER [mtu M] netns FD`:
/// a veth pair made here whose peer goes to the namespace of `peer_ns`.
pub(crate) fn veth(
    name: &str,
    mac: [u8; 6],
    mtu: Option<u32>,
    peer: &str,
    peer_ns: &File,
) -> Request {
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.to_string()));
    if let Some(m) = mtu {
        p.attributes.push(LinkAttribute::Mtu(m));
    }
    p.attributes
        .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
    let mut l = LinkMessage::default();
    l.attributes.push(LinkAttribute::IfName(name.to_string()));
    l.attributes.push(LinkAttribute::Address(mac.to_vec()));
    if let Some(m) = mtu {
        l.attributes.push(LinkAttribute::Mtu(m));
    }
    l.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    let mac = mac.map(|b| format!("{b:02x}")).join(":");
    let mtu_arg = mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
    Request {
        msg: RouteNetlinkMessage::NewLink(l),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        ip: format!(
            "link add name {name} address {mac}{mtu_arg} type veth peer name {peer}{mtu_arg} \
             netns <hangar's>"
        ),
    }
}

/// `ip link add name NAME address MAC type bridge`.
pub(crate) fn bridge(name: &str, mac: [u8; 6]) -> Request {
    let mut l = LinkMessage::default();
    l.attributes.push(LinkAttribute::IfName(name.to_string()));
    l.attributes.push(LinkAttribute::Address(mac.to_vec()));
    l.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    let mac = mac.map(|b| format!("{b:02x}")).join(":");
    Request {
        msg: RouteNetlinkMessage::NewLink(l),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        ip: format!("link add name {name} address {mac} type bridge"),
    }
}

/// `ip link add link UPLINK name NAME type vlan id VID`.
pub(crate) fn vlan(name: &str, uplink: (&str, u32), vid: u16) -> Request {
    let mut l = LinkMessage::default();
    l.attributes.push(LinkAttribute::IfName(name.to_string()));
    l.attributes.push(LinkAttribute::Link(uplink.1));
    l.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vlan),
        LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(vid)])),
    ]));
    Request {
        msg: RouteNetlinkMessage::NewLink(l),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        ip: format!("link add link {} name {name} type vlan id {vid}", uplink.0),
    }
}

/// `ip link set dev NAME mtu MTU`.
pub(crate) fn mtu(name: &str, index: u32, mtu: u32) -> Request {
    let mut l = LinkMessage::default();
    l.header.index = index;
    l.attributes.push(LinkAttribute::Mtu(mtu));
    Request {
        msg: RouteNetlinkMessage::SetLink(l),
        flags: 0,
        ip: format!("link set dev {name} mtu {mtu}"),
    }
}

/// `ip link set dev NAME [master BRIDGE] up`.
pub(crate) fn up(name: &str, index: u32, master: Option<(&str, u32)>) -> Request {
    let mut l = LinkMessage::default();
    l.header.index = index;
    l.header.flags = LinkFlags::Up;
    l.header.change_mask = LinkFlags::Up;
    let mut ip = format!("link set dev {name}");
    if let Some((bridge, b)) = master {
        l.attributes.push(LinkAttribute::Controller(b));
        ip += &format!(" master {bridge}");
    }
    Request {
        msg: RouteNetlinkMessage::SetLink(l),
        flags: 0,
        ip: ip + " up",
    }
}

/// `ip link del dev NAME`.
pub(crate) fn delete(name: &str, index: u32) -> Request {
    let mut l = LinkMessage::default();
    l.header.index = index;
    Request {
        msg: RouteNetlinkMessage::DelLink(l),
        flags: 0,
        ip: format!("link del dev {name}"),
    }
}

fn family(a: &IpAddr) -> AddressFamily {
    if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// `ip addr add CIDR dev NAME [scope link] [nodad]`.
pub(crate) fn address(name: &str, index: u32, cidr: &Cidr, scope_link: bool) -> Request {
    let addr = cidr.addr();
    let mut a = AddressMessage::default();
    a.header.family = family(&addr);
    a.header.prefix_len = cidr.prefix();
    a.header.index = index;
    let mut ip = format!("addr add {cidr} dev {name}");
    if scope_link {
        a.header.scope = AddressScope::Link;
        ip += " scope link";
    }
    a.attributes.push(AddressAttribute::Local(addr));
    if addr.is_ipv4() {
        a.attributes.push(AddressAttribute::Address(addr));
    } else {
        // The guest's addresses are hangar's to give: no duplicate detection delaying them.
        a.attributes.push(AddressAttribute::Address(addr));
        a.header.flags = AddressHeaderFlags::Nodad;
        ip += " nodad";
    }
    Request {
        msg: RouteNetlinkMessage::NewAddress(a),
        flags: NLM_F_CREATE | NLM_F_EXCL,
        ip,
    }
}

/// `ip route add DEST dev NAME` (`via` none: a route on the link), or with `via`,
/// `ip route replace DEST via GW dev NAME [onlink]`.
pub(crate) fn route(
    dest: &Cidr,
    via: Option<IpAddr>,
    name: &str,
    index: u32,
    onlink: bool,
) -> Request {
    let addr = dest.addr();
    let mut r = RouteMessage::default();
    r.header.address_family = family(&addr);
    r.header.destination_prefix_length = dest.prefix();
    r.header.table = RouteHeader::RT_TABLE_MAIN;
    r.header.protocol = RouteProtocol::Boot;
    r.header.kind = RouteType::Unicast;
    if dest.prefix() > 0 {
        r.attributes
            .push(RouteAttribute::Destination(route_address(addr)));
    }
    r.attributes.push(RouteAttribute::Oif(index));
    let (flags, ip) = match via {
        Some(gw) => {
            r.header.scope = RouteScope::Universe;
            r.attributes
                .push(RouteAttribute::Gateway(route_address(gw)));
            if onlink {
                r.header.flags = RouteFlags::Onlink;
            }
            let onlink = if onlink { " onlink" } else { "" };
            (
                NLM_F_CREATE | NLM_F_REPLACE,
                format!("route replace {dest} via {gw} dev {name}{onlink}"),
            )
        }
        None => {
            r.header.scope = RouteScope::Link;
            (
                NLM_F_CREATE | NLM_F_EXCL,
                format!("route add {dest} dev {name}"),
            )
        }
    };
    Request {
        msg: RouteNetlinkMessage::NewRoute(r),
        flags,
        ip,
    }
}

fn route_address(a: IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}
