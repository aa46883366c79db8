//! `HostDefaults::from_toml`, the parser of `etc/hangar/defaults.toml`.
//!
//! Checks: no input panics; defaults that parse serialise (serde, as TOML) and parse
//! again to equal defaults; a cgroup parent that was accepted is a relative path that
//! cannot leave the cgroup tree.
#![no_main]

use hangar_model::HostDefaults;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(defaults) = HostDefaults::from_toml(text) else {
        return;
    };
    if let Some(parent) = &defaults.cgroup_parent {
        assert!(!parent.starts_with('/'), "{parent:?}");
        assert!(
            parent.split('/').all(|c| !matches!(c, "" | "." | "..")),
            "{parent:?}"
        );
    }
    let saved = toml::to_string_pretty(&defaults)
        .unwrap_or_else(|e| panic!("parsed defaults do not serialise: {e}"));
    let again = HostDefaults::from_toml(&saved)
        .unwrap_or_else(|e| panic!("serialised defaults do not parse: {e}\n{saved}"));
    assert_eq!(again, defaults, "the serialised defaults differ:\n{saved}");
});
