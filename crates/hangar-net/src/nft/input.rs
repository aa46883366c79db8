//! What callers hand to [`super::Nft`], checked before it goes into an `nft` script, and
//! tags turned into chain names and back.

use crate::{NetError, Result};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest tag (network name, forward id, guest) accepted, so chain names stay far
/// below the kernel's 256 bytes even when every character needs escaping.
const MAX_TAG: usize = 64;

/// `addr/len` as nft lists an interval map key: a whole-address prefix is the address.
pub(super) fn render_prefix(addr: IpAddr, len: u8) -> String {
    let full = if addr.is_ipv4() { 32 } else { 128 };
    if len == full {
        addr.to_string()
    } else {
        format!("{addr}/{len}")
    }
}

/// A tag in a chain name: `[A-Za-z0-9.-]` as is, every other byte as `_xx`.
pub(super) fn encode(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    for b in tag.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    out
}

/// The inverse of [`encode`]; `None` for a name hangar did not write.
pub(super) fn decode(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn invalid(what: &str, value: &str, reason: &str) -> NetError {
    NetError::Invalid(format!("invalid {what} {value:?}: {reason}"))
}

/// Network names, forward ids and guest tags: 1 to 64 of `[A-Za-z0-9._:@+-]`.
pub(super) fn check_tag(what: &'static str, tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(what, tag, "expected 1 to 64 of [A-Za-z0-9._:@+-]"))
    }
}

/// An interface name as the kernel allows it, narrowed to characters that need no
/// quoting care: 1 to 15 of `[A-Za-z0-9_.-]`.
pub(super) fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "interface name",
            name,
            "expected 1 to 15 of [A-Za-z0-9_.-]",
        ))
    }
}

/// A CIDR subnet, returned as its network address and prefix length.
pub(super) fn parse_subnet(text: &str) -> Result<(IpAddr, u8)> {
    let bad = |reason: &str| invalid("subnet", text, reason);
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/LENGTH"))?;
    let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
    let len: u8 = len.parse().map_err(|_| bad("bad prefix length"))?;
    let net = match addr {
        IpAddr::V4(a) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
        _ => return Err(bad("bad prefix length")),
    };
    Ok((net, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_tags_are_plain_identifiers_and_decode_back() {
        for tag in ["lan", "guest:web:8080", "web.eth0", "a_b", "x@y+z-1"] {
            let e = encode(tag);
            assert!(
                e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{e}"
            );
            assert_eq!(decode(&e).as_deref(), Some(tag));
        }
        assert_eq!(encode("guest:web:8080"), "guest_3aweb_3a8080");
        assert_eq!(decode("bad/name"), None);
        assert_eq!(decode("trailing_4"), None);
    }

    #[test]
    fn subnets_are_reduced_to_their_network() {
        let (a, l) = parse_subnet("10.232.0.1/24").unwrap();
        assert_eq!(render_prefix(a, l), "10.232.0.0/24");
        let (a, l) = parse_subnet("fd00:232::1/64").unwrap();
        assert_eq!(render_prefix(a, l), "fd00:232::/64");
        let (a, l) = parse_subnet("10.0.0.7/32").unwrap();
        assert_eq!(render_prefix(a, l), "10.0.0.7");
        let (a, l) = parse_subnet("0.0.0.0/0").unwrap();
        assert_eq!(render_prefix(a, l), "0.0.0.0/0");
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "fd00::/129"] {
            assert!(parse_subnet(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_names_and_tags_are_refused() {
        assert!(check_ifname("veth\"x").is_err());
        assert!(check_ifname("a-very-long-name0").is_err());
        assert!(check_tag("guest", "a b").is_err());
    }
}
