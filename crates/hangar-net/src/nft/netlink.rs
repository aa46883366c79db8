//! The hot path of the packet filter through nf_tables' netlink API, from this process:
//! a NIC's guard elements added or deleted in one batch (one transaction: all or none),
//! and whether a chain exists. Messages are built by `netlink-packet-netfilter`; the
//! rest of `nft` (skeleton, listings, the rare general paths) still runs the `nft` tool,
//! whose language is where the rules are written and read back.
//!
//! Keys are the kernel's bytes for the sets' types: an interface name is 16 bytes
//! (IFNAMSIZ, zero padded), a MAC 6, IPv4 4, IPv6 and the 128-bit integer 16, all in
//! network order; in a concatenation each part is padded to a multiple of 4 bytes (the
//! registers the lookup loads them into). A comment is the `nft` tool's user data:
//! type 0 (element comment), its length with the final NUL, the text, NUL.

use crate::rtnl::socket;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, ListAttribute, NfTablesMessage,
    SetElementAttribute, SetElementList, SetElementMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io;
use std::os::fd::AsFd;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// How long to wait for the kernel's answers: it answers at once, so this only keeps a
/// lost answer from hanging a start.
const ANSWER_TIMEOUT_MS: u16 = 5000;

/// What to do with elements.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    /// Add; refused (EEXIST) when the element is there already: `nft create element`.
    Create,
    /// Add; no change when it is there already: `nft add element`.
    Add,
    /// Delete; refused (ENOENT) when it is not there: `nft delete element`.
    Delete,
}

/// Elements of one set.
pub(super) struct Elements {
    /// `inet` or `bridge`.
    pub(super) family: &'static str,
    pub(super) set: &'static str,
    pub(super) verb: Verb,
    /// Each element's key bytes and comment.
    pub(super) keys: Vec<(Vec<u8>, Option<String>)>,
}

/// An interface name as a key part: 16 bytes, zero padded.
pub(super) fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.resize(16, 0);
    k
}

/// `parts` concatenated as a key, each padded to a multiple of 4 bytes.
pub(super) fn concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::new();
    for p in parts {
        k.extend_from_slice(p);
        k.resize(k.len().next_multiple_of(4), 0);
    }
    k
}

fn comment_data(text: &str) -> Vec<u8> {
    let len = u8::try_from(text.len() + 1).unwrap_or(u8::MAX);
    let mut d = vec![0, len];
    d.extend_from_slice(text.as_bytes());
    d.push(0);
    d
}

fn family(name: &str) -> NetfilterProtoFamily {
    match name {
        "bridge" => NetfilterProtoFamily::Bridge,
        _ => NetfilterProtoFamily::Inet,
    }
}

fn message(
    family: NetfilterProtoFamily,
    res_id: u16,
    inner: impl Into<netlink_packet_netfilter::NetfilterMessageInner>,
    flags: u16,
    seq: u32,
) -> NetlinkMessage<NetfilterMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let inner = NetfilterMessage::new(NetfilterHeader::new(family, 0, res_id), inner);
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    msg.finalize();
    msg
}

fn serialize(msgs: &[NetlinkMessage<NetfilterMessage>]) -> Vec<u8> {
    let mut buf = Vec::new();
    for m in msgs {
        let start = buf.len();
        buf.resize(start + m.buffer_len(), 0);
        m.serialize(&mut buf[start..]);
    }
    buf
}

/// Apply `changes` of table `table` in one transaction.
pub(super) fn commit(table: &str, changes: &[Elements]) -> io::Result<()> {
    let sock = socket(NETLINK_NETFILTER)?;
    let mut msgs = vec![message(
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchBegin,
        NLM_F_REQUEST,
        1,
    )];
    let mut acked = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        let elements = c
            .keys
            .iter()
            .map(|(key, comment)| {
                let mut attrs = vec![SetElementAttribute::Key(DataAttribute::Value(key.clone()))];
                if let Some(text) = comment {
                    attrs.push(SetElementAttribute::UserData(comment_data(text)));
                }
                ListAttribute::Element(attrs)
            })
            .collect();
        let body = SetElementMessage {
            attributes: vec![
                SetElementList::Table(table.to_string()),
                SetElementList::Set(c.set.to_string()),
                SetElementList::Elements(elements),
            ],
        };
        let (inner, flags) = match c.verb {
            Verb::Create => (
                NfTablesMessage::NewSetElement(body),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
            Verb::Add => (NfTablesMessage::NewSetElement(body), NLM_F_CREATE),
            Verb::Delete => (NfTablesMessage::DeleteSetElement(body), 0),
        };
        let seq = u32::try_from(i).unwrap_or(u32::MAX - 2) + 2;
        acked.push(seq);
        msgs.push(message(
            family(c.family),
            0,
            inner,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
        ));
    }
    msgs.push(message(
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchEnd,
        NLM_F_REQUEST,
        u32::try_from(changes.len()).unwrap_or(u32::MAX - 2) + 2,
    ));
    sock.send(&serialize(&msgs), 0)?;
    answers(&sock, &acked).map(drop)
}

/// Whether chain `chain` of table `table` in `family` exists.
pub(super) fn has_chain(family_name: &str, table: &str, chain: &str) -> io::Result<bool> {
    let sock = socket(NETLINK_NETFILTER)?;
    let body = ChainMessage {
        attributes: vec![
            ChainAttribute::Table(table.to_string()),
            ChainAttribute::Name(chain.to_string()),
        ],
    };
    let msg = message(
        family(family_name),
        0,
        NfTablesMessage::GetChain(body),
        NLM_F_REQUEST | NLM_F_ACK,
        1,
    );
    sock.send(&serialize(&[msg]), 0)?;
    match answers(&sock, &[1]) {
        Ok(replied) => Ok(replied),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Wait until every sequence number in `acked` has its acknowledgement; the first
/// error the kernel reports fails the whole (it has undone the transaction). True when
/// a message other than an acknowledgement came back (a get's answer).
fn answers(sock: &Socket, acked: &[u32]) -> io::Result<bool> {
    let mut pending: Vec<u32> = acked.to_vec();
    let mut first_error = None;
    let mut replied = false;
    while !pending.is_empty() {
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ANSWER_TIMEOUT_MS)).map_err(io::Error::from)? == 0 {
            return Err(first_error.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::TimedOut, "nf_tables did not answer")
            }));
        }
        let (data, _) = sock.recv_from_full()?;
        let mut offset = 0;
        while offset + 16 <= data.len() {
            let len = u32::from_ne_bytes(data[offset..offset + 4].try_into().expect("4 bytes"));
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len < 16 || offset + len > data.len() {
                break;
            }
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&data[offset..offset + len]);
            offset += len.next_multiple_of(4);
            let Ok(msg) = msg else {
                // An answer this crate cannot parse (a get's reply with attributes it
                // does not know) is still an answer.
                replied = true;
                continue;
            };
            match msg.payload {
                NetlinkPayload::Error(e) => {
                    pending.retain(|s| *s != msg.header.sequence_number);
                    if e.code.is_some() && first_error.is_none() {
                        first_error = Some(e.to_io());
                    }
                }
                NetlinkPayload::InnerMessage(_) => replied = true,
                _ => {}
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(replied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_are_padded_to_registers() {
        let mac = [2u8, 0, 0, 0, 0, 1];
        let k = concat(&[&ifname_key("hg2-eth0"), &mac]);
        assert_eq!(k.len(), 24);
        assert_eq!(&k[..8], b"hg2-eth0");
        assert_eq!(&k[16..22], &mac);
        assert_eq!(concat(&[&ifname_key("x"), &[10, 0, 0, 2]]).len(), 20);
    }

    #[test]
    fn comments_are_nul_terminated_user_data() {
        assert_eq!(comment_data("ab"), vec![0, 3, b'a', b'b', 0]);
    }
}
