//! `GuestConfig::from_toml`, the parser of `etc/hangar/guests/NAME.toml` and of
//! `hangar config edit`.
//!
//! Checks: no input panics; a config that parses is valid, and what `to_toml` writes
//! for it (what hangar saves) parses again to an equal config and is written the
//! same way a second time.
#![no_main]

use hangar_model::GuestConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = GuestConfig::from_toml(text) else {
        return;
    };
    config.validate().expect("a parsed config is valid");
    let saved = config.to_toml();
    let again = GuestConfig::from_toml(&saved)
        .unwrap_or_else(|e| panic!("a saved config does not parse: {e}\n{saved}"));
    assert_eq!(again, config, "the saved config differs:\n{saved}");
    assert_eq!(again.to_toml(), saved, "saving is not stable");
});
