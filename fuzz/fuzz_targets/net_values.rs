//! The network values a user types: `Cidr::parse`, `Mac::parse`, `Rate::parse`,
//! `Gateway::parse`, `parse_port`, `NicOverride::parse` (each on the whole input) and
//! `PortForward::parse` (on its first three space-separated words: PROTO HOST_PORT
//! GUEST:PORT).
//!
//! Checks: no input panics; every value that parses is displayed as text that parses
//! again to the same value; a CIDR's network contains it, and the n-th address of that
//! network is in it; a port is 1 to 65535; a MAC is unicast; a rate is at least 8kbit;
//! a NIC override has a valid NIC name, and addresses of the family of their key.
#![no_main]

use hangar_model::net::{
    Cidr, Gateway, Mac, NicOverride, PortForward, Rate, parse_port, validate_nic_name,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Cidr::parse(s) {
        assert_eq!(Cidr::parse(&c.to_string()).ok(), Some(c), "{s:?}");
        assert!(c.prefix() <= if c.is_v4() { 32 } else { 128 }, "{c}");
        let net = c.network();
        assert_eq!(net.network(), net, "{c}");
        assert!(net.contains(&c), "{c}");
        for n in [1, 2, 1000] {
            if let Some(host) = c.nth(n) {
                assert!(net.contains(&host) && host != net, "{c} nth({n}) = {host}");
            }
        }
    }
    if let Ok(mac) = Mac::parse(s) {
        let text = mac.to_string();
        assert_eq!(text.len(), 17, "{text}");
        assert_eq!(mac.0[0] & 1, 0, "multicast {text}");
        assert_eq!(Mac::parse(&text).ok(), Some(mac), "{s:?}");
    }
    if let Ok(rate) = Rate::parse(s) {
        assert!(rate.0 >= 1000, "{s:?}: {rate:?}");
        assert_eq!(Rate::parse(&rate.to_string()).ok(), Some(rate), "{s:?}");
    }
    if let Ok(gw) = Gateway::parse(s) {
        assert_eq!(Gateway::parse(&gw.to_string()).ok(), Some(gw), "{s:?}");
    }
    if let Ok(port) = parse_port("port", s) {
        assert_ne!(port, 0);
        assert_eq!(parse_port("port", &port.to_string()).ok(), Some(port));
    }
    if let Ok(o) = NicOverride::parse(s) {
        validate_nic_name(&o.name).expect("a parsed override names a valid NIC");
        if let Some(a) = o.addrs {
            assert!(a.ipv4.is_some() || a.ipv6.is_some(), "{s:?}");
            assert!(a.ipv4.is_none_or(|c| c.is_v4()), "{s:?}");
            assert!(a.ipv6.is_none_or(|c| !c.is_v4()), "{s:?}");
        }
        assert_eq!(NicOverride::parse(&o.to_string()).ok(), Some(o), "{s:?}");
    }
    let words: Vec<&str> = s.splitn(3, ' ').collect();
    if let [proto, host_port, target] = words[..]
        && let Ok(fw) = PortForward::parse(proto, host_port, target)
    {
        fw.validate().expect("a parsed forward is valid");
        let target = format!("{}:{}", fw.guest, fw.guest_port);
        let again = PortForward::parse(&fw.proto, &fw.host_port.to_string(), &target);
        assert_eq!(again.ok(), Some(fw), "{s:?}");
    }
});
