//! `hangar rename` end to end: every place that names a guest follows it (config, volume,
//! snapshots, runtime and log dirs, the context registry, DNS, port forwards, the
//! hostname when it was the name), in the dir pool and a btrfs pool; a failure or a
//! crash injected after each step leaves the guest as it was (or, after the commit,
//! renamed); bad input changes nothing. Needs root.

mod common;
use common::TestHost;
use common::netns::{Netns, sh};
use std::path::PathBuf;

/// Every place of this root that is named after guest `name` in the dir pool, and
/// whether it exists.
fn places(h: &TestHost, name: &str) -> Vec<(PathBuf, bool)> {
    [
        format!("etc/hangar/guests/{name}.toml"),
        format!("var/lib/hangar/guests/{name}"),
        format!("var/lib/hangar/guests/.build-{name}"),
        format!("var/lib/hangar/snapshots/{name}"),
        format!("run/hangar/guests/{name}"),
        format!("var/log/hangar/{name}"),
    ]
    .into_iter()
    .map(|p| {
        let p = h.root.join(p);
        let there = p.exists();
        (p, there)
    })
    .collect()
}

fn there(h: &TestHost, name: &str) -> Vec<PathBuf> {
    places(h, name)
        .into_iter()
        .filter(|(_, t)| *t)
        .map(|(p, _)| p)
        .collect()
}

/// The guest this root's entry of the host-wide context registry names for `ctx`.
fn registered(h: &TestHost, ctx: u64) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("/var/lib/hangar/contexts/{ctx}")).unwrap())
            .unwrap();
    assert_eq!(v["root"].as_str(), h.root.to_str());
    v["guest"].as_str().unwrap().to_string()
}

/// The names network `net`'s DNS publishes.
fn dns_table(h: &TestHost, net: &str) -> String {
    std::fs::read_to_string(
        h.root
            .join(format!("run/hangar/networks/{net}/hosts.d/guests")),
    )
    .unwrap()
}

fn net_file(h: &TestHost, net: &str) -> String {
    std::fs::read_to_string(h.root.join(format!("etc/hangar/networks/{net}.toml"))).unwrap()
}

fn nft_table(h: &TestHost) -> String {
    let table = h.cgroup_parent().replace("hangar-", "hangar_");
    sh(&format!("nft list table inet {table}")).1
}

/// What guest `from` gets when it asks its network's DNS for `name`.
fn lookup(h: &TestHost, from: &str, name: &str) -> String {
    h.sh(from, &format!("nslookup {name} 2>&1")).1
}

fn snapshots(h: &TestHost, guest: &str) -> Vec<String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&h.ok(&["snapshot", "list", guest, "--format", "json"])).unwrap();
    v.iter()
        .map(|s| s["name"].as_str().unwrap().into())
        .collect()
}

/// A guest with everything a rename must carry: a NIC on NAT network `net` (whose DNS
/// `peer` asks, running), a file, a snapshot, a console log, a port forward.
fn furnished(h: &TestHost, net: &str, subnet: &str, port: &str) {
    h.ok(&["network", "create", net, "--ipv4", subnet]);
    h.ok(&["build", "alpha", "-m", "busybox", "--network", net]);
    h.ok(&["build", "peer", "-m", "busybox", "--network", net]);
    h.started("alpha");
    h.sh(
        "alpha",
        "mkdir -p /srv && echo payload > /srv/marker && sync",
    );
    h.ok(&["snapshot", "create", "alpha", "keep"]);
    h.ok(&["kill", "alpha"]);
    h.ok(&["network", "forward", "add", net, port, "alpha:80"]);
    h.started("peer");
}

#[test]
fn a_stopped_guest_is_renamed_everywhere_and_starts_under_its_new_name() {
    require_root!();
    let h = TestHost::new("rename");
    furnished(&h, "rn", "10.239.1.1/24", "18391");
    let ctx = h.info("alpha")["context"].as_u64().unwrap();
    let ip = h.nic_address("alpha", "eth0");
    assert!(lookup(&h, "peer", "alpha").contains(&ip));

    h.ok(&["rename", "alpha", "omega"]);

    // The old name is nowhere; the new one everywhere it was.
    assert_eq!(there(&h, "alpha"), Vec::<PathBuf>::new());
    assert_eq!(there(&h, "omega").len(), 5, "{:?}", places(&h, "omega"));
    assert_eq!(registered(&h, ctx), "omega");
    let table = dns_table(&h, "rn");
    assert!(
        table.contains(&format!("{ip} omega")) && !table.contains("alpha"),
        "{table}"
    );
    let netfile = net_file(&h, "rn");
    assert!(
        netfile.contains("guest = \"omega\"") && !netfile.contains("alpha"),
        "{netfile}"
    );
    let names: Vec<String> = h
        .list()
        .iter()
        .map(|g| g["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(names, ["omega", "peer"]);
    let omega = h.info("omega");
    assert_eq!(omega["context"].as_u64(), Some(ctx));
    // Its hostname was its name: it follows, in the config and in its files.
    assert_eq!(omega["hostname"], "omega");
    let rootfs = h.rootfs("omega");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap(),
        "omega\n"
    );
    assert!(
        std::fs::read_to_string(rootfs.join("etc/hosts"))
            .unwrap()
            .contains("127.0.1.1\tomega\n")
    );
    assert_eq!(snapshots(&h, "omega"), ["keep"]);
    // It starts with its files, and answers under its new name.
    h.started("omega");
    assert_eq!(
        h.sh("omega", "cat /srv/marker; hostname").1,
        "payload\nomega\n"
    );
    assert!(lookup(&h, "peer", "omega").contains(&ip));
    assert!(!lookup(&h, "peer", "alpha").contains(&ip));
    // The port forward reaches it.
    assert!(nft_table(&h).contains("rn:tcp:18391"));
    h.sh(
        "omega",
        "mkdir -p /www && echo hello-from-omega > /www/index.html && httpd -p 80 -h /www",
    );
    let ns = format!("hgt-ren-{}", std::process::id());
    let _ns = Netns::new(&ns, "10.239.9.1/24", "10.239.9.2/24");
    let (_, page) = sh(&format!(
        "ip netns exec {ns} timeout 5 busybox wget -qO- http://10.239.9.1:18391/"
    ));
    assert_eq!(page.trim(), "hello-from-omega");
    // Its snapshot restores under the new name.
    h.sh("omega", "echo changed > /srv/marker; sync");
    h.ok(&["kill", "omega"]);
    h.ok(&["snapshot", "restore", "omega", "keep"]);
    h.started("omega");
    assert_eq!(h.sh("omega", "cat /srv/marker").1, "payload\n");
}

#[test]
fn a_guest_in_a_btrfs_pool_is_renamed_with_its_snapshots_limit_and_explicit_hostname() {
    require_root!();
    let h = TestHost::new("renbtrfs");
    h.ok(&["pool", "create", "fast", "--size", "256M"]);
    h.ok(&[
        "build",
        "db",
        "-m",
        "busybox",
        "--pool",
        "fast",
        "--disk-size",
        "100M",
        "--hostname",
        "db.example.org",
    ]);
    h.started("db");
    h.sh("db", "echo in-db > /etc/marker; sync");
    h.ok(&["snapshot", "create", "db", "first"]);
    h.ok(&["kill", "db"]);

    h.ok(&["rename", "db", "store"]);

    let pool = h.root.join("var/lib/hangar/pools/fast");
    for gone in ["guests/db", "snapshots/db"] {
        assert!(!pool.join(gone).exists(), "{gone} is left");
    }
    assert!(pool.join("snapshots/store/first/rootfs").is_dir());
    let subvolumes = sh(&format!("btrfs subvolume list -o {}", pool.display())).1;
    assert!(
        subvolumes.contains("guests/store") && !subvolumes.contains("db"),
        "{subvolumes}"
    );
    assert!(!h.config_file("db").exists());
    // An explicit hostname is the guest's, whatever its name.
    assert_eq!(h.info("store")["hostname"], "db.example.org");
    let df: Vec<serde_json::Value> =
        serde_json::from_str(&h.ok(&["df", "--format", "json"])).unwrap();
    assert_eq!(df[0]["name"], "store");
    assert_eq!(df[0]["limit"], 100u64 << 20);
    h.started("store");
    assert_eq!(
        h.sh("store", "cat /etc/marker; hostname").1,
        "in-db\ndb.example.org\n"
    );
    h.sh("store", "echo changed > /etc/marker; sync");
    h.ok(&["kill", "store"]);
    h.ok(&["snapshot", "restore", "store", "first"]);
    h.started("store");
    assert_eq!(h.sh("store", "cat /etc/marker").1, "in-db\n");
    h.ok(&["delete", "store", "--force"]);
    h.ok(&["pool", "delete", "fast"]);
}

/// The steps of a rename, as the binary names them (it refuses a fault at a step it
/// does not have with their list).
fn steps(h: &TestHost) -> Vec<String> {
    let out = h
        .cmd(&["rename", "alpha", "omega"])
        .env("HANGAR_FAULT", "rename:no-such-step")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let list = err.split("its steps are ").nth(1).expect(&err);
    list.split_whitespace().map(str::to_string).collect()
}

/// Guest alpha is whole under its own name, and nothing is named omega.
fn intact(h: &TestHost, config: &str, ctx: u64, ip: &str, after: &str) {
    let what = format!("after a fault at {after}");
    assert_eq!(
        std::fs::read_to_string(h.config_file("alpha")).unwrap(),
        config,
        "{what}"
    );
    assert_eq!(there(h, "omega"), Vec::<PathBuf>::new(), "{what}");
    assert_eq!(
        there(h, "alpha").len(),
        5,
        "{what}: {:?}",
        places(h, "alpha")
    );
    assert!(!h.root.join("var/lib/hangar/snapshots/omega").exists());
    assert_eq!(registered(h, ctx), "alpha", "{what}");
    let table = dns_table(h, "rf");
    assert!(
        table.contains(&format!("{ip} alpha")) && !table.contains("omega"),
        "{what}: {table}"
    );
    let netfile = net_file(h, "rf");
    assert!(
        netfile.contains("guest = \"alpha\"") && !netfile.contains("omega"),
        "{what}: {netfile}"
    );
    assert!(nft_table(h).contains("rf:tcp:18392"), "{what}");
    let rootfs = h.rootfs("alpha");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap(),
        "alpha\n",
        "{what}"
    );
    assert!(
        !std::fs::read_to_string(rootfs.join("etc/hosts"))
            .unwrap()
            .contains("omega"),
        "{what}"
    );
    assert_eq!(snapshots(h, "alpha"), ["keep"], "{what}");
    h.started("alpha");
    assert_eq!(
        h.sh("alpha", "cat /srv/marker; hostname").1,
        "payload\nalpha\n",
        "{what}"
    );
    assert!(lookup(h, "peer", "alpha").contains(ip), "{what}");
    h.ok(&["kill", "alpha"]);
}

#[test]
fn a_failure_or_a_crash_after_any_step_leaves_the_guest_as_it_was() {
    require_root!();
    let h = TestHost::new("renfault");
    furnished(&h, "rf", "10.239.2.1/24", "18392");
    let config = std::fs::read_to_string(h.config_file("alpha")).unwrap();
    let ctx = h.info("alpha")["context"].as_u64().unwrap();
    let ip = h.nic_address("alpha", "eth0");
    let steps = steps(&h);
    assert!(
        steps.len() >= 8 && steps.last().unwrap() == "commit",
        "{steps:?}"
    );

    for step in &steps {
        let out = h
            .cmd(&["rename", "alpha", "omega"])
            .env("HANGAR_FAULT", format!("rename:{step}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains(&format!("failed at its {step} step, and was undone")),
            "{err}"
        );
        intact(&h, &config, ctx, &ip, step);
    }

    // Killed after a step: the next command (any, `list` here) rolls the rename back,
    // or, once the commit is done, finishes it.
    for step in &steps {
        let out = h
            .cmd(&["rename", "alpha", "omega"])
            .env("HANGAR_FAULT", format!("rename:{step}:crash"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(h.root.join("var/lib/hangar/renames/alpha.json").exists());
        let next = h.run(&["list"]);
        let note = String::from_utf8_lossy(&next.stderr);
        assert!(!h.root.join("var/lib/hangar/renames/alpha.json").exists());
        if step == "commit" {
            assert!(note.contains("is finished"), "{note}");
            assert_eq!(there(&h, "alpha"), Vec::<PathBuf>::new());
            assert_eq!(registered(&h, ctx), "omega");
            assert!(net_file(&h, "rf").contains("guest = \"omega\""));
            h.ok(&["rename", "omega", "alpha"]);
        } else {
            assert!(note.contains("is undone"), "{step}: {note}");
        }
        intact(&h, &config, ctx, &ip, &format!("{step} (crash)"));
    }
}

#[test]
fn bad_renames_are_refused_and_change_nothing() {
    require_root!();
    let h = TestHost::new("renbad");
    h.build_busybox("alpha");
    h.build_busybox("beta");
    // What an interrupted build of gamma left.
    std::fs::create_dir_all(h.root.join("var/lib/hangar/guests/.build-gamma/rootfs")).unwrap();
    let tree = h.snapshot();
    let config = std::fs::read_to_string(h.config_file("alpha")).unwrap();

    for (args, wanted) in [
        (
            ["rename", "alpha", "Bad_Name"],
            "invalid guest name \"Bad_Name\"",
        ),
        (
            ["rename", "alpha", "beta"],
            "a guest named beta already exists",
        ),
        (["rename", "nope", "delta"], "no guest named nope"),
        (
            ["rename", "alpha", "alpha"],
            "alpha is already the guest's name",
        ),
        (["rename", "alpha", "gamma"], ".build-gamma is in the way"),
    ] {
        let err = h.fails(&args);
        assert!(err.contains(wanted), "{args:?}: {err}");
        assert_eq!(h.snapshot(), tree, "{args:?} changed files");
        assert_eq!(
            std::fs::read_to_string(h.config_file("alpha")).unwrap(),
            config
        );
    }

    // A running guest: refused, with the reason and what to do. (lxcfs's view of the
    // host, mounted under the root now, changes by itself.)
    h.started("alpha");
    let lxcfs = h.root.join("var/lib/hangar/lxcfs");
    let ours = |t: Vec<PathBuf>| -> Vec<PathBuf> {
        t.into_iter().filter(|p| !p.starts_with(&lxcfs)).collect()
    };
    let tree = ours(h.snapshot());
    let err = h.fails(&["rename", "alpha", "delta"]);
    assert!(
        err.contains("guest alpha is running: stop it first (`hangar stop alpha`)"),
        "{err}"
    );
    assert_eq!(ours(h.snapshot()), tree);
    assert_eq!(h.state("alpha"), "running");
}
