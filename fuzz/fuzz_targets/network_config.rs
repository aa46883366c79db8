//! `NetworkConfig::from_toml`, the parser of `etc/hangar/networks/NAME.toml`.
//!
//! Checks: no input panics; a network that parses is valid, and what `to_toml` writes
//! for it parses again to an equal network and is written the same way a second time;
//! the host's address is inside its subnet and is not the subnet's network address.
#![no_main]

use hangar_model::net::NetworkConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(net) = NetworkConfig::from_toml(text) else {
        return;
    };
    net.validate().expect("a parsed network is valid");
    for subnet in [net.ipv4, net.ipv6].into_iter().flatten() {
        assert!(subnet.network().contains(&subnet), "{subnet}");
        assert_ne!(subnet.network(), subnet, "{subnet}");
    }
    let saved = net.to_toml();
    let again = NetworkConfig::from_toml(&saved)
        .unwrap_or_else(|e| panic!("a saved network does not parse: {e}\n{saved}"));
    assert_eq!(again, net, "the saved network differs:\n{saved}");
    assert_eq!(again.to_toml(), saved, "saving is not stable");
});
