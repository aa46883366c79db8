//! What `hangar import` reads from an archive before it writes anything: the manifest
//! (`Manifest::from_json`, the first member's bytes) and every member's path
//! (`Member::parse`, raw bytes as tar holds them), each on the whole input.
//!
//! Checks: no input panics; a manifest that parses is ours and of a version this
//! hangar reads, and written out it parses again to the same value; a member path that
//! parses never leaves its volume: the path inside the volume or snapshot is relative,
//! not empty, and made of plain components only (no `/`, `.`, `..`, NUL).
#![no_main]

use hangar_model::backup::{FORMAT, Manifest, Member, VERSION};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fn stays_inside(p: &Path) {
    assert!(p.is_relative() && p.components().next().is_some(), "{p:?}");
    for c in p.components() {
        let Component::Normal(part) = c else {
            panic!("{p:?} has the component {c:?}");
        };
        use std::os::unix::ffi::OsStrExt;
        let b = part.as_bytes();
        assert!(!b.is_empty() && !b.contains(&0) && !b.contains(&b'/'), "{p:?}");
        assert!(b != b"." && b != b"..", "{p:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        assert_eq!(m.format, FORMAT);
        assert!(m.version <= VERSION, "{m:?}");
        assert_eq!(Manifest::from_json(&m.to_json()).ok(), Some(m));
    }
    match Member::parse(data) {
        Ok(Member::Volume(p)) | Ok(Member::Snapshot(_, p)) => stays_inside(&p),
        Ok(_) | Err(_) => {}
    }
});
