//! Bad input gets a clear one-line error and changes nothing. Needs root for the guests
//! it builds; the refusals themselves need no privilege.

mod common;
use common::TestHost;

#[test]
fn bad_names_are_refused_and_nothing_is_created() {
    require_root!();
    let h = TestHost::new("badnames");
    let before = h.snapshot();
    let long = "x".repeat(64);
    for bad in ["../x", "", "Web", "a_b", "a/b", long.as_str()] {
        let err = h.fails(&["build", bad, "-m", "busybox"]);
        assert!(err.contains("invalid guest name"), "{bad:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert_eq!(h.snapshot(), before);
}

#[test]
fn bad_build_options_are_refused_before_anything_is_built() {
    require_root!();
    let h = TestHost::new("badopts");
    let before = h.snapshot();
    assert!(
        h.fails(&["build", "g", "-m", "busybox", "--context", "1"])
            .contains("context id")
    );
    assert!(
        h.fails(&["build", "g", "-m", "busybox", "--context", "40000"])
            .contains("context id")
    );
    assert!(
        h.fails(&["build", "g", "-m", "busybox", "--hostname", "bad_host!"])
            .contains("invalid hostname")
    );
    assert!(
        h.fails(&["build", "g", "-m", "tarball"])
            .contains("-t FILE")
    );
    assert_eq!(h.snapshot(), before);
    let err = h.fails(&["build", "g", "-m", "tarball", "-t", "/no/such.tar"]);
    assert!(err.contains("/no/such.tar"), "{err}");
    assert!(h.list().is_empty());
    assert!(!h.root.join("var/lib/hangar/guests/g").exists());
    assert!(!h.root.join("var/lib/hangar/guests/.build-g").exists());
}

#[test]
fn a_context_id_is_used_once() {
    require_root!();
    let h = TestHost::new("ctxonce");
    h.ok(&["build", "a", "-m", "busybox", "--context", "30100"]);
    let err = h.fails(&["build", "b", "-m", "skeleton", "--context", "30100"]);
    assert!(
        err.contains("context id 30100 is already used by guest a"),
        "{err}"
    );
    assert!(
        h.fails(&["build", "a", "-m", "skeleton"])
            .contains("already exists")
    );
    h.ok(&["build", "c", "-m", "skeleton"]);
    assert_ne!(h.info("c")["context"], 30100);
}

#[test]
fn a_broken_config_edit_is_refused_and_the_old_config_kept() {
    require_root!();
    let h = TestHost::new("confedit");
    h.build_busybox("g");
    let before = std::fs::read_to_string(h.config_file("g")).unwrap();
    let editor = h.root.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^timeout = .*/timeout = 0/' \"$1\"\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&editor).unwrap().permissions(),
        0o755,
    );
    let out = h
        .cmd(&["config", "edit", "g"])
        .env("EDITOR", format!("sh {}", editor.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("stop.timeout"), "{err}");
    assert_eq!(std::fs::read_to_string(h.config_file("g")).unwrap(), before);
    // A typo'd key is refused by name, too.
    std::fs::write(&editor, "#!/bin/sh\necho 'memroy = 5' >> \"$1\"\n").unwrap();
    let out = h
        .cmd(&["config", "edit", "g"])
        .env("EDITOR", format!("sh {}", editor.display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("memroy"));
    assert_eq!(std::fs::read_to_string(h.config_file("g")).unwrap(), before);
}

#[test]
fn a_valid_config_edit_is_saved_and_used_at_next_start() {
    require_root!();
    let h = TestHost::new("confok");
    h.build_busybox("g");
    let editor = h.root.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^hostname = .*/hostname = \"renamed.example.org\"/' \"$1\"\n",
    )
    .unwrap();
    let out = h
        .cmd(&["config", "edit", "g"])
        .env("EDITOR", format!("sh {}", editor.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        h.ok(&["config", "show", "g"])
            .contains("renamed.example.org")
    );
    h.started("g");
    assert_eq!(h.sh("g", "hostname").1.trim(), "renamed.example.org");
}

#[test]
fn a_hand_broken_config_file_makes_commands_name_the_file_and_field() {
    require_root!();
    let h = TestHost::new("confhand");
    h.build_busybox("g");
    let f = h.config_file("g");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("context = ", "context = 99999 #");
    std::fs::write(&f, text).unwrap();
    let err = h.fails(&["start", "g"]);
    assert!(err.contains("g.toml") && err.contains("context"), "{err}");
    assert!(h.run(&["list", "--format", "json"]).status.success());
}

#[test]
fn unknown_guests_get_a_clear_error() {
    require_root!();
    let h = TestHost::new("unknown");
    for verb in ["start", "stop", "kill", "delete"] {
        let err = h.fails(&[verb, "nope"]);
        assert!(err.contains("no guest named nope"), "{verb}: {err}");
    }
    assert!(
        h.fails(&["exec", "nope", "--", "true"])
            .contains("no guest named nope")
    );
}
