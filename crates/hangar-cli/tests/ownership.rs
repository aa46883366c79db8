//! A guest's files keep what the ownership shift must carry along, whenever it runs
//! (build, clone, a start after a change of context id or of `privileged`): Debian's
//! ping keeps its file capability, made the guest namespace's own, so a guest user
//! can ping; an ACL keeps naming the same guest user. Needs root.

mod common;
use common::TestHost;
use std::path::Path;

const CAPABILITY: &str = "security.capability";
const ACL: &str = "system.posix_acl_access";
const CAP_NET_RAW: u32 = 1 << 13;

fn base_of(h: &TestHost, guest: &str) -> u32 {
    h.info(guest)["context"].as_u64().unwrap() as u32 * 65536
}

/// `hangar config edit NAME` with `sed -i SCRIPT` as the editor.
fn edit(h: &TestHost, guest: &str, script: &str) {
    let editor = h.root.join("editor.sh");
    std::fs::write(&editor, format!("sed -i '{script}' \"$1\"\n")).unwrap();
    let out = h
        .cmd(&["config", "edit", guest])
        .env("EDITOR", format!("sh {}", editor.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "config edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// /usr/bin/ping's capability as the host reads it: (version, permitted set, root id
/// for version 3).
fn ping_capability(h: &TestHost, guest: &str) -> (u8, u32, Option<u32>) {
    let v = xattr::get(h.rootfs(guest).join("usr/bin/ping"), CAPABILITY)
        .unwrap()
        .unwrap_or_else(|| panic!("{guest}'s /usr/bin/ping lost its capability"));
    let word = |at: usize| u32::from_le_bytes(v[at..at + 4].try_into().unwrap());
    (v[3], word(4), (v.len() == 24).then(|| word(20)))
}

/// The users an ACL names, as host ids.
fn acl_users(path: &Path) -> Vec<u32> {
    let v = xattr::get(path, ACL).unwrap().expect("an ACL");
    (4..v.len())
        .step_by(8)
        .filter(|at| v[*at] == 0x02)
        .map(|at| u32::from_le_bytes(v[at + 4..at + 8].try_into().unwrap()))
        .collect()
}

/// From the host, as `setfacl -m u:1000:r` inside the guest would: a file of guest
/// root's, mode 0600, that guest user 1000 may read through an ACL (host id
/// `base + 1000`).
fn give_user_1000_a_file(h: &TestHost, guest: &str) {
    let base = base_of(h, guest);
    let f = h.rootfs(guest).join("etc/for-1000");
    std::fs::write(&f, "for 1000\n").unwrap();
    std::os::unix::fs::lchown(&f, Some(base), Some(base)).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, base + 1000),
        (0x04, 0, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(id.to_le_bytes());
    }
    xattr::set(&f, ACL, &acl).unwrap();
}

/// Inside running guest `guest`: nobody pings the loopback with Debian's ping (and
/// not with a copy of it, which has no capability: it is the capability that lets
/// it), uid 1000 reads the file its ACL gives it, uid 1001 cannot.
fn assert_caps_and_acls_hold_inside(h: &TestHost, guest: &str) {
    let (code, out) = h.sh(
        guest,
        "cp /usr/bin/ping /usr/local/bin/ping-copy; \
         su -s /bin/sh nobody -c 'ping -c1 -W5 127.0.0.1' >/dev/null 2>&1; echo ping=$?; \
         su -s /bin/sh nobody -c 'ping-copy -c1 -W5 127.0.0.1' >/dev/null 2>&1; echo copy=$?; \
         setpriv --reuid=1000 --regid=1000 --clear-groups cat /etc/for-1000; \
         setpriv --reuid=1001 --regid=1001 --clear-groups cat /etc/for-1000 2>&1; echo 1001=$?",
    );
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ping=0", "{guest}: nobody cannot ping:\n{out}");
    assert_ne!(
        lines[1], "copy=0",
        "{guest}: ping works without its capability"
    );
    assert_eq!(
        lines[2], "for 1000",
        "{guest}: uid 1000 cannot read:\n{out}"
    );
    assert!(lines[3].contains("Permission denied"), "{guest}:\n{out}");
    assert_eq!(lines[4], "1001=1", "{guest}:\n{out}");
}

#[test]
fn capabilities_and_acls_follow_a_debian_guest_through_build_clone_and_context_change() {
    require_root!();
    let h = TestHost::new("owncaps");
    h.ok(&["build", "deb", "-m", "debootstrap"]);
    // Debian's ping (cap_net_raw=ep, version 2 as the package sets it) holds for the
    // guest's namespace only: version 3, its root the guest's root.
    let base = base_of(&h, "deb");
    assert_eq!(ping_capability(&h, "deb"), (3, CAP_NET_RAW, Some(base)));
    give_user_1000_a_file(&h, "deb");

    h.ok(&["clone", "deb", "copy"]);
    let copy_base = base_of(&h, "copy");
    assert_ne!(copy_base, base);
    assert_eq!(
        ping_capability(&h, "copy"),
        (3, CAP_NET_RAW, Some(copy_base))
    );
    let copy_file = h.rootfs("copy").join("etc/for-1000");
    assert_eq!(acl_users(&copy_file), vec![copy_base + 1000]);
    h.started("copy");
    assert_caps_and_acls_hold_inside(&h, "copy");

    // A new context id: the start shifts the files again.
    edit(&h, "deb", "s/^context = .*/context = 30150/");
    h.started("deb");
    let new_base = 30150 * 65536;
    assert_eq!(ping_capability(&h, "deb"), (3, CAP_NET_RAW, Some(new_base)));
    let file = h.rootfs("deb").join("etc/for-1000");
    assert_eq!(acl_users(&file), vec![new_base + 1000]);
    assert_caps_and_acls_hold_inside(&h, "deb");
}

#[test]
fn capabilities_and_acls_survive_a_shift_to_privileged_and_back() {
    require_root!();
    let h = TestHost::new("ownpriv");
    h.ok(&["build", "deb", "-m", "debootstrap"]);
    give_user_1000_a_file(&h, "deb");
    let file = h.rootfs("deb").join("etc/for-1000");

    // Privileged: host ids, and a capability for every namespace (version 2), as
    // Debian's package sets it on a host.
    edit(&h, "deb", "s/^privileged = false/privileged = true/");
    h.started("deb");
    assert_eq!(ping_capability(&h, "deb"), (2, CAP_NET_RAW, None));
    assert_eq!(acl_users(&file), vec![1000]);
    assert_caps_and_acls_hold_inside(&h, "deb");
    h.ok(&["kill", "deb"]);

    // And back into the guest's range.
    edit(&h, "deb", "s/^privileged = true/privileged = false/");
    h.started("deb");
    let base = base_of(&h, "deb");
    assert_eq!(ping_capability(&h, "deb"), (3, CAP_NET_RAW, Some(base)));
    assert_eq!(acl_users(&file), vec![base + 1000]);
    assert_caps_and_acls_hold_inside(&h, "deb");
}
