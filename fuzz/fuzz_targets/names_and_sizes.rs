//! The small values of the CLI and of config files: `GuestName::new`, `ImageName::new`,
//! `Size::parse`,
//! `ContextId` (from an integer, as `--context N` gives it), `Signal::parse` and the
//! two paths of a shared directory (`GuestPath::parse`, `HostPath::parse`), each on
//! the whole input.
//!
//! Checks: no input panics; every value that parses is displayed as text that parses
//! again to the same value; a name is kept as written and is safe as a path component
//! (an image name too: never `.` or `..`, no `/`);
//! a size is at most 2^62 bytes; a context is 2 to 32767 and its id range fits in u32;
//! a signal is 1 to 64; a shared directory's path is absolute, in normal form (parsing
//! it again gives it back), without `.` or `..`, and never `/`, /proc, /sys or /dev or
//! below them.
#![no_main]

use hangar_model::dir::{GuestPath, HostPath};
use hangar_model::image::ImageName;
use hangar_model::{ContextId, GuestName, Signal, Size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = GuestName::new(s) {
        assert_eq!(name.as_str(), s);
        assert!(
            !s.is_empty() && s.len() <= 63 && !s.contains(['/', '.', '\0']),
            "{s:?}"
        );
        assert_eq!(GuestName::new(&name.to_string()).ok(), Some(name));
    }
    if let Ok(image) = ImageName::new(s) {
        assert_eq!(image.as_str(), s);
        assert!(
            !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']),
            "{s:?}"
        );
        assert_eq!(ImageName::new(&image.to_string()).ok(), Some(image));
    }
    if let Ok(size) = Size::parse(s) {
        assert!(size.0 <= 1 << 62, "{s:?}: {size:?}");
        assert_eq!(Size::parse(&size.to_string()).ok(), Some(size), "{s:?}");
    }
    if let Ok(n) = s.trim().parse::<i64>() {
        let parsed = s.parse::<ContextId>().ok();
        match ContextId::new(n) {
            Ok(ctx) => {
                assert!((2..=32767).contains(&n) && i64::from(ctx.get()) == n);
                assert!(ctx.id_base().checked_add(65535).is_some());
                assert_eq!(parsed, Some(ctx), "{s:?}");
                assert_eq!(ctx.to_string().parse::<ContextId>().ok(), Some(ctx));
            }
            Err(_) => assert_eq!(parsed, None, "{s:?}"),
        }
    }
    if let Ok(signal) = Signal::parse(s) {
        assert!((1..=64).contains(&signal.number()), "{s:?}: {signal}");
        assert_eq!(
            Signal::parse(&signal.to_string()).ok(),
            Some(signal),
            "{s:?}"
        );
    }
    let kernel = |p: &str| {
        ["/proc", "/sys", "/dev"]
            .iter()
            .any(|k| p == *k || p.starts_with(&format!("{k}/")))
    };
    let normal = |p: &str| {
        p.starts_with('/')
            && !p.contains("//")
            && (p == "/" || !p.ends_with('/'))
            && !p.split('/').any(|c| c == "." || c == "..")
    };
    if let Ok(p) = GuestPath::parse(s) {
        let t = p.as_str();
        assert!(normal(t) && t != "/" && !kernel(t), "{s:?}: {t:?}");
        assert_eq!(GuestPath::parse(t).ok(), Some(p.clone()), "{s:?}");
        assert_eq!(format!("/{}", p.relative()), t);
    }
    if let Ok(p) = HostPath::parse(s) {
        let t = p.to_string();
        assert!(normal(&t) && t != "/" && !kernel(&t), "{s:?}: {t:?}");
        assert_eq!(HostPath::parse(&t).ok(), Some(p), "{s:?}");
    }
});
