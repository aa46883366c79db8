//! ARCHITECTURE.md stays true: every crate is in its code map, and every path it names
//! in backquotes exists.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn map() -> String {
    std::fs::read_to_string(repo().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the repository root")
}

#[test]
fn every_crate_is_in_the_code_map() {
    let text = map();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        assert!(
            text.contains(&format!("### `crates/{name}`")),
            "crates/{name} is missing from ARCHITECTURE.md's code map"
        );
    }
}

#[test]
fn every_path_named_exists() {
    let text = map();
    let mut checked = 0;
    for quoted in text.split('`').skip(1).step_by(2) {
        let top = ["crates/", "tests/", "scripts/", "bench/", ".ci/"];
        if top.iter().any(|t| quoted.starts_with(t)) && !quoted.contains(' ') {
            assert!(
                repo().join(quoted).exists(),
                "ARCHITECTURE.md names {quoted}, which does not exist"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} paths found: did the map's format change?"
    );
}
