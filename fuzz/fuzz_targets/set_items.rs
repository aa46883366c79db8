//! The `hangar set NAME KEY=VALUE...` syntax: `Limits::set_all`, one item per line of
//! the input (VServer's `cpu.fill_rate`/`cpu.interval` pair included).
//!
//! Checks: no input panics; limits that were set serialise as the `[limits]` table
//! hangar saves and parse back to equal limits; setting the same items again changes
//! nothing (each item assigns, whatever was there before).
#![no_main]

use hangar_model::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let items: Vec<String> = text.lines().map(str::to_string).collect();
    let mut limits = Limits::default();
    if limits.set_all(&items).is_err() {
        return;
    }
    let saved = toml::to_string(&limits)
        .unwrap_or_else(|e| panic!("limits that were set do not serialise: {e}\n{limits:?}"));
    let again: Limits = toml::from_str(&saved)
        .unwrap_or_else(|e| panic!("saved limits do not parse: {e}\n{saved}"));
    assert_eq!(again, limits, "the saved limits differ:\n{saved}");
    let mut twice = limits.clone();
    twice
        .set_all(&items)
        .expect("the same items are accepted again");
    assert_eq!(twice, limits, "setting the same items twice differs");
});
