//! Privileged tests of hangar's nftables rules (`hangar_net::nft`) against the real kernel.
//!
//! Each test works in its own tables (`hangar_t<pid>_<letter>`) and builds its own
//! topology in the host namespace with `ip`: a bridge, network namespaces standing for
//! guests and for the outside world, and veths between them (names `hn<pid hex><letter>-*`).
//! Traffic goes only to addresses inside the namespaces a test created. The tests that
//! give the host an address use per-process subnets of 10.232.0.0/16 ([`Lab::ip`]); the
//! guard tests use fixed 10.232.203-204.x and fd00:232::/64 addresses on bridges the host
//! has no address on, so no two of them ever meet. IP forwarding is switched on only on
//! the test's own host-side interfaces (`net.ipv4.conf.<if>.forwarding`, which is what
//! the kernel checks for the interface a packet arrives on), so the host's `ip_forward`
//! is never changed. A [`Lab`] removes its servers, namespaces, links and tables when it
//! is dropped, passing or failing. Without root every test prints `SKIP: needs root`.

use hangar_model::net::{Cidr, Mac};
use hangar_net::nft::{Inventory, Nft};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// One test's topology and tables, torn down on drop.
struct Lab {
    /// Prefix of every interface and namespace name: `hn<pid hex><letter>`.
    id: String,
    /// The third octet of this process's share of 10.232.0.0/16 (see [`Lab::ip`]).
    slot: u8,
    nft: Nft,
    netns: Vec<String>,
    links: Vec<String>,
    servers: Vec<Child>,
    dir: PathBuf,
}

impl Lab {
    /// `None` (after saying so) when not root.
    fn new(letter: char) -> Option<Lab> {
        if !is_root() {
            eprintln!("SKIP: needs root");
            return None;
        }
        let pid = std::process::id();
        let id = format!("hn{:x}{letter}", pid & 0xffff);
        let dir = std::env::temp_dir().join(format!("hangar-nft-{id}"));
        std::fs::create_dir_all(&dir).expect("create the test's temp dir");
        Some(Lab {
            nft: Nft::new(Some(&format!("t{pid}_{letter}"))),
            id,
            slot: u8::try_from(100 + pid % 150).expect("below 250"),
            netns: Vec::new(),
            links: Vec::new(),
            servers: Vec::new(),
            dir,
        })
    }

    /// Host `host` of subnet `k` (0 to 7) of this process: a /27 of 10.232.<slot>.0/24.
    /// The tests that give the host an address take their subnets here, so that a
    /// concurrent run of these tests in another process (another slot) does not clash.
    fn ip(&self, k: u8, host: u8) -> String {
        format!("10.232.{}.{}", self.slot, 32 * k + host)
    }

    /// [`Lab::ip`] with its prefix length.
    fn cidr(&self, k: u8, host: u8) -> String {
        format!("{}/27", self.ip(k, host))
    }

    /// A new network namespace with `lo` up.
    fn ns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.id);
        ok(&["ip", "netns", "add", &name]);
        self.netns.push(name.clone());
        ok(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A bridge in the host namespace, up, with `addr` if given, forwarding on.
    fn bridge(&mut self, addr: Option<&str>) -> String {
        let name = format!("{}-br", self.id);
        ok(&["ip", "link", "add", &name, "type", "bridge"]);
        self.links.push(name.clone());
        if let Some(addr) = addr {
            ok(&["ip", "addr", "add", addr, "dev", &name]);
            forwarding(&name);
        }
        ok(&["ip", "link", "set", &name, "up"]);
        name
    }

    /// A veth from the host (`<id>-<role>`) to `eth0` in `ns` with `mac`, both ends up;
    /// returns the host end.
    fn veth(&mut self, ns: &str, role: &str, mac: &str) -> String {
        let host_if = format!("{}-{role}", self.id);
        ok(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "address", mac,
            "netns", ns,
        ]);
        self.links.push(host_if.clone());
        ok(&["ip", "link", "set", &host_if, "up"]);
        ok(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        host_if
    }

    /// A guest namespace on `bridge` with `addrs` (and a default route via `gateway`).
    fn guest(
        &mut self,
        bridge: &str,
        role: &str,
        mac: &str,
        addrs: &[&str],
        gateway: Option<&str>,
    ) -> (String, String) {
        let ns = self.ns(role);
        let host_if = self.veth(&ns, role, mac);
        ok(&["ip", "link", "set", &host_if, "master", bridge]);
        for addr in addrs {
            add_addr(&ns, addr);
        }
        if let Some(gw) = gateway {
            ok(&["ip", "-n", &ns, "route", "add", "default", "via", gw]);
        }
        (ns, host_if)
    }

    /// An "outside" namespace reached from the host through a routed veth:
    /// `host_addr` on the host end, `ns_addr` inside, forwarding on for the host end.
    fn outside(&mut self, host_addr: &str, ns_addr: &str) -> String {
        let ns = self.ns("o");
        let host_if = self.veth(&ns, "o", "02:32:00:00:00:99");
        ok(&["ip", "addr", "add", host_addr, "dev", &host_if]);
        forwarding(&host_if);
        add_addr(&ns, ns_addr);
        ns
    }

    /// `busybox httpd` in `ns` on `addr:80`, serving `page` at `/` and the client's
    /// address at `/cgi-bin/ip`; returns once it answers.
    fn serve(&mut self, ns: &str, addr: &str, page: &str) {
        let root = self.dir.join(ns);
        std::fs::create_dir_all(root.join("cgi-bin")).expect("create the web root");
        std::fs::write(root.join("index.html"), page).expect("write the page");
        let cgi = root.join("cgi-bin/ip");
        std::fs::write(
            &cgi,
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n",
        )
        .expect("write the cgi script");
        ok(&["chmod", "755", cgi.to_str().expect("utf-8 path")]);
        let listen = format!("{addr}:80");
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "busybox", "httpd", "-f", "-p", &listen, "-h",
            ])
            .arg(&root)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn busybox httpd");
        self.servers.push(child);
        let url = format!("http://{addr}/");
        let start = Instant::now();
        while fetch(Some(ns), &url).as_deref() != Some(page) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "httpd in {ns} does not answer"
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Ping `to` from `from` in `ns` once, after emptying every namespace's neighbour
    /// table, so that no entry learnt before changes the outcome.
    fn ping(&self, ns: &str, from: &str, to: &str) -> bool {
        for n in &self.netns {
            ok(&["ip", "-n", n, "neigh", "flush", "all"]);
        }
        run(&[
            "ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "1", "-I", from, to,
        ])
        .status
        .success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).output();
            let _ = child.wait();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        // Deleting a namespace takes its veth ends along; the bridge stays.
        for link in &self.links {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        let _ = self.nft.delete_tables();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn add_addr(ns: &str, addr: &str) {
    // nodad: an IPv6 address is usable at once instead of after duplicate detection.
    let mut args = vec!["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"];
    if addr.contains(':') {
        args.push("nodad");
    }
    ok(&args);
}

fn forwarding(host_if: &str) {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{host_if}/forwarding"), "1")
        .expect("enable forwarding");
}

/// GET `url` from `ns` (or the host), trimmed; `None` when it fails within 3 s.
/// (Debian's busybox 1.35 wget crashes on `-T`, hence `timeout`.)
fn fetch(ns: Option<&str>, url: &str) -> Option<String> {
    let mut args = vec!["timeout", "3", "busybox", "wget", "-q", "-O", "-", url];
    if let Some(ns) = ns {
        args.splice(0..0, ["ip", "netns", "exec", ns]);
    }
    let out = run(&args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn listing(family: &str, nft: &Nft) -> String {
    ok(&["nft", "list", "table", family, nft.table()])
}

/// The lladdr `ns` has for `ip`, if any.
fn neighbour(ns: &str, ip: &str) -> Option<String> {
    let out = ok(&["ip", "-n", ns, "neigh", "show", ip, "dev", "eth0"]);
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn cidrs(v: &[&str]) -> Vec<Cidr> {
    v.iter()
        .map(|s| Cidr::parse(s).expect("a test address"))
        .collect()
}

fn mac(s: &str) -> Mac {
    Mac::parse(s).expect("a test MAC")
}

#[test]
fn masquerade_rewrites_guest_traffic_leaving_the_bridge_until_removed() {
    let Some(mut lab) = Lab::new('n') else { return };
    let (lan, out) = (0, 1);
    let br = lab.bridge(Some(&lab.cidr(lan, 1)));
    let (gw, guest_ip, peer_ip) = (lab.ip(lan, 1), lab.ip(lan, 2), lab.ip(lan, 3));
    let (guest, _) = lab.guest(
        &br,
        "g",
        "02:32:01:00:00:02",
        &[&lab.cidr(lan, 2)],
        Some(&gw),
    );
    let (peer, _) = lab.guest(&br, "p", "02:32:01:00:00:03", &[&lab.cidr(lan, 3)], None);
    let outside = lab.outside(&lab.cidr(out, 1), &lab.cidr(out, 2));
    lab.serve(&outside, &lab.ip(out, 2), "outside");
    lab.serve(&peer, &peer_ip, "peer");
    let seen_outside = format!("http://{}/cgi-bin/ip", lab.ip(out, 2));
    let seen_by_peer = format!("http://{peer_ip}/cgi-bin/ip");
    // The outside has no route back to the guest's subnet: only NAT lets it answer.
    assert_eq!(fetch(Some(&guest), &seen_outside), None);

    let subnet = lab.cidr(lan, 0);
    lab.nft
        .masquerade("lan", &br, &[subnet])
        .expect("masquerade");

    assert_eq!(fetch(Some(&guest), &seen_outside), Some(lab.ip(out, 1)));
    assert_eq!(
        fetch(Some(&guest), &seen_by_peer),
        Some(guest_ip),
        "no NAT inside the bridge"
    );
    lab.nft.remove_network("lan").expect("remove_network");
    assert_eq!(fetch(Some(&guest), &seen_outside), None);
}

#[test]
fn port_forward_reaches_the_guest_from_outside_and_from_the_host_until_removed() {
    let Some(mut lab) = Lab::new('p') else { return };
    let (lan, out) = (2, 3);
    let br = lab.bridge(Some(&lab.cidr(lan, 1)));
    let (gw, guest_ip) = (lab.ip(lan, 1), lab.ip(lan, 2));
    let (guest, _) = lab.guest(
        &br,
        "g",
        "02:32:02:00:00:02",
        &[&lab.cidr(lan, 2)],
        Some(&gw),
    );
    let outside = lab.outside(&lab.cidr(out, 1), &lab.cidr(out, 2));
    let page = format!("the page of {}", lab.id);
    lab.serve(&guest, &guest_ip, &page);
    let host = lab.ip(out, 1);
    let url = format!("http://{host}:8080/");

    lab.nft
        .port_forward("guest:web:8080", "tcp", 8080, &guest_ip, 80)
        .expect("port_forward");

    assert_eq!(fetch(Some(&outside), &url), Some(page.clone()));
    assert_eq!(
        fetch(None, &url),
        Some(page.clone()),
        "from the host to its own address"
    );
    let seen = fetch(Some(&outside), &format!("http://{host}:8080/cgi-bin/ip"));
    assert_eq!(seen, Some(lab.ip(out, 2)), "the guest sees the real client");
    lab.nft
        .remove_port_forward("guest:web:8080")
        .expect("remove_port_forward");
    assert_ne!(fetch(Some(&outside), &url), Some(page));
}

#[test]
fn guard_drops_traffic_from_a_foreign_address_or_mac() {
    let Some(mut lab) = Lab::new('s') else { return };
    let br = lab.bridge(None);
    let (mac_a, mac_b) = ("02:32:03:00:00:02", "02:32:03:00:00:03");
    let a_addrs = ["10.232.203.2/24", "fd00:232::2/64"];
    let b_addrs = ["10.232.203.3/24", "fd00:232::3/64"];
    let (a, a_if) = lab.guest(&br, "a", mac_a, &a_addrs, None);
    let (b, b_if) = lab.guest(&br, "b", mac_b, &b_addrs, None);
    let (_c, _) = lab.guest(
        &br,
        "c",
        "02:32:03:00:00:04",
        &["10.232.203.4/24", "fd00:232::4/64"],
        None,
    );
    // A also holds addresses that are not its own to use: without a guard they work.
    add_addr(&a, "10.232.203.9/24");
    add_addr(&a, "fd00:232::9/64");
    assert!(lab.ping(&a, "10.232.203.9", "10.232.203.4"));
    assert!(lab.ping(&a, "fd00:232::9", "fd00:232::4"));
    ok(&[
        "ip",
        "-n",
        &a,
        "link",
        "set",
        "eth0",
        "address",
        "02:32:03:00:00:99",
    ]);
    assert!(lab.ping(&a, "10.232.203.2", "10.232.203.4"));
    ok(&["ip", "-n", &a, "link", "set", "eth0", "address", mac_a]);

    lab.nft
        .guard("a", &a_if, &mac(mac_a), &cidrs(&a_addrs))
        .expect("guard a");
    lab.nft
        .guard("b", &b_if, &mac(mac_b), &cidrs(&b_addrs))
        .expect("guard b");

    assert!(lab.ping(&a, "10.232.203.2", "10.232.203.4"));
    assert!(lab.ping(&a, "fd00:232::2", "fd00:232::4"));
    assert!(lab.ping(&b, "10.232.203.3", "10.232.203.4"));
    assert!(
        !lab.ping(&a, "10.232.203.9", "10.232.203.4"),
        "foreign IPv4 source"
    );
    assert!(
        !lab.ping(&a, "fd00:232::9", "fd00:232::4"),
        "foreign IPv6 source"
    );
    ok(&[
        "ip",
        "-n",
        &a,
        "link",
        "set",
        "eth0",
        "address",
        "02:32:03:00:00:99",
    ]);
    assert!(!lab.ping(&a, "10.232.203.2", "10.232.203.4"), "foreign MAC");
    assert!(
        !lab.ping(&a, "fd00:232::2", "fd00:232::4"),
        "foreign MAC, IPv6"
    );
    ok(&["ip", "-n", &a, "link", "set", "eth0", "address", mac_a]);
    assert!(lab.ping(&a, "10.232.203.2", "10.232.203.4"));
}

#[test]
fn guard_blocks_arp_spoofing_of_a_neighbours_address() {
    let Some(mut lab) = Lab::new('a') else { return };
    let br = lab.bridge(None);
    let (mac_a, mac_b) = ("02:32:04:00:00:02", "02:32:04:00:00:03");
    let (a, a_if) = lab.guest(&br, "a", mac_a, &["10.232.204.2/24"], None);
    let (_b, b_if) = lab.guest(&br, "b", mac_b, &["10.232.204.3/24"], None);
    let (c, _) = lab.guest(&br, "c", "02:32:04:00:00:04", &["10.232.204.4/24"], None);
    // A claims B's address: "who has C? tell B (at A's MAC)", then a gratuitous ARP.
    // (ip_nonlocal_bind, set in A's namespace only, lets arping use an address A lacks.)
    ok(&[
        "ip",
        "netns",
        "exec",
        &a,
        "sysctl",
        "-qw",
        "net.ipv4.ip_nonlocal_bind=1",
    ]);
    let spoof = || {
        let arping = [
            "ip", "netns", "exec", &a, "busybox", "arping", "-c", "1", "-w", "1", "-I", "eth0",
        ];
        run(&[&arping[..], &["-s", "10.232.204.3", "10.232.204.4"]].concat());
        run(&[&arping[..], &["-U", "-s", "10.232.204.3", "10.232.204.3"]].concat());
    };
    assert!(lab.ping(&c, "10.232.204.4", "10.232.204.3"));
    spoof();
    assert_eq!(
        neighbour(&c, "10.232.204.3").as_deref(),
        Some(mac_a),
        "unguarded, the spoof works"
    );

    lab.nft
        .guard("a", &a_if, &mac(mac_a), &cidrs(&["10.232.204.2/24"]))
        .expect("guard a");
    lab.nft
        .guard("b", &b_if, &mac(mac_b), &cidrs(&["10.232.204.3/24"]))
        .expect("guard b");

    assert!(lab.ping(&c, "10.232.204.4", "10.232.204.3"));
    assert_eq!(neighbour(&c, "10.232.204.3").as_deref(), Some(mac_b));
    spoof();
    assert_eq!(neighbour(&c, "10.232.204.3").as_deref(), Some(mac_b));
    assert!(
        lab.ping(&a, "10.232.204.2", "10.232.204.4"),
        "A's own ARP still works"
    );
}

/// Perl (always on Debian, as perl-base) sends an unsolicited, overriding neighbour
/// advertisement: "ARGV[0] is at ARGV[1]", to all nodes on eth0 (ifindex ARGV[2]),
/// from the sender's own address. The kernel fills in the ICMPv6 checksum.
const SEND_NA: &str = r#"
use Socket qw(:DEFAULT inet_pton pack_sockaddr_in6);
my ($target, $mac, $ifindex) = @ARGV;
socket(my $s, AF_INET6, SOCK_RAW, 58) or die "socket: $!";
setsockopt($s, 41, 18, pack("i", 255)) or die "hops: $!"; # IPV6_MULTICAST_HOPS
my $na = pack("CCnN", 136, 0, 0, 0x20000000) . inet_pton(AF_INET6, $target)
    . pack("CC", 2, 1) . pack("H12", $mac =~ s/://gr);
my $to = pack_sockaddr_in6(0, inet_pton(AF_INET6, "ff02::1"), $ifindex);
send($s, $na, 0, $to) or die "send: $!";
"#;

#[test]
fn guard_blocks_neighbour_advertisement_spoofing_of_a_neighbours_address() {
    let Some(mut lab) = Lab::new('v') else { return };
    let br = lab.bridge(None);
    let (mac_a, mac_b) = ("02:32:07:00:00:02", "02:32:07:00:00:03");
    let (a, a_if) = lab.guest(&br, "a", mac_a, &["fd00:232::12/64"], None);
    let (_b, b_if) = lab.guest(&br, "b", mac_b, &["fd00:232::13/64"], None);
    let (c, _) = lab.guest(&br, "c", "02:32:07:00:00:04", &["fd00:232::14/64"], None);
    let ifindex = ok(&[
        "ip",
        "netns",
        "exec",
        &a,
        "cat",
        "/sys/class/net/eth0/ifindex",
    ]);
    // A, from its own address, says B's address is at A's MAC.
    let spoof = || {
        let args = ["ip", "netns", "exec", &a, "perl", "-e", SEND_NA];
        ok(&[&args[..], &["fd00:232::13", mac_a, ifindex.trim()]].concat());
    };
    assert!(lab.ping(&c, "fd00:232::14", "fd00:232::13"));
    spoof();
    assert_eq!(
        neighbour(&c, "fd00:232::13").as_deref(),
        Some(mac_a),
        "unguarded, the spoof works"
    );

    lab.nft
        .guard("a", &a_if, &mac(mac_a), &cidrs(&["fd00:232::12/64"]))
        .expect("guard a");
    lab.nft
        .guard("b", &b_if, &mac(mac_b), &cidrs(&["fd00:232::13/64"]))
        .expect("guard b");

    assert!(lab.ping(&c, "fd00:232::14", "fd00:232::13"));
    spoof();
    assert_eq!(neighbour(&c, "fd00:232::13").as_deref(), Some(mac_b));
    assert!(
        lab.ping(&a, "fd00:232::12", "fd00:232::14"),
        "A's own neighbour discovery still works"
    );
}

#[test]
fn repeated_adds_replace_and_one_remove_leaves_only_the_skeleton() {
    let Some(lab) = Lab::new('i') else { return };
    let nft = &lab.nft;
    nft.ensure().expect("ensure");
    nft.ensure().expect("ensure again");
    let skeleton = (listing("inet", nft), listing("bridge", nft));
    let nets = strings(&["10.232.205.0/24", "fd00:232:205::/64"]);
    let addrs = cidrs(&["10.232.205.2/24", "fd00:232:205::2/64"]);

    for mac in ["02:32:05:00:00:02", "02:32:05:00:00:12"] {
        nft.masquerade("lan", "hn-test-br", &nets)
            .expect("masquerade");
        nft.port_forward("guest:web:8080", "tcp", 8080, "10.232.205.2", 80)
            .expect("port_forward");
        nft.guard("web.eth0", "hn-test-veth", &self::mac(mac), &addrs)
            .expect("guard");
    }
    nft.guard("web.eth1", "hn-test-veth1", &mac("02:32:05:00:00:22"), &[])
        .expect("guard of a second NIC");

    let inet = listing("inet", nft);
    assert_eq!(inet.matches("chain net_lan {").count(), 1);
    assert_eq!(inet.matches("jump fwd_guest_3aweb_3a8080").count(), 1);
    assert!(
        inet.contains("02:32:05:00:00:12") && !inet.contains("02:32:05:00:00:02"),
        "{inet}"
    );
    let expected = Inventory {
        networks: strings(&["lan"]),
        forwards: strings(&["guest:web:8080"]),
        guards: strings(&["web.eth0", "web.eth1"]),
    };
    assert_eq!(nft.inventory().expect("inventory"), expected);

    nft.remove_network("lan").expect("remove_network");
    nft.remove_port_forward("guest:web:8080")
        .expect("remove_port_forward");
    nft.unguard("web.eth0").expect("unguard");
    nft.unguard("web.eth1").expect("unguard");
    nft.unguard("web.eth1").expect("unguard again");

    assert_eq!((listing("inet", nft), listing("bridge", nft)), skeleton);
    assert!(nft.inventory().expect("inventory").is_empty());
    nft.delete_tables().expect("delete_tables");
    nft.delete_tables().expect("delete_tables again");
    assert!(!ok(&["nft", "list", "tables"]).contains(nft.table()));
}

#[test]
fn a_port_forwarded_by_another_id_is_refused_and_changes_nothing() {
    let Some(lab) = Lab::new('c') else { return };
    let nft = &lab.nft;
    nft.port_forward("guest:web:8080", "tcp", 8080, "10.232.206.2", 80)
        .expect("port_forward");
    let before = listing("inet", nft);

    let err = nft
        .port_forward("guest:other:8080", "tcp", 8080, "10.232.206.3", 80)
        .expect_err("a taken port");

    assert!(err.to_string().contains("guest:web:8080"), "{err}");
    assert_eq!(listing("inet", nft), before);
    nft.port_forward("guest:other:8080", "udp", 8080, "10.232.206.3", 80)
        .expect("udp is another port");
}

#[test]
fn changes_leave_a_present_skeleton_alone_and_ensure_writes_it_again() {
    let Some(lab) = Lab::new('s') else { return };
    let nft = &lab.nft;
    // The first guard makes the tables, skeleton included.
    nft.guard("web.eth0", "hn-test-veth", &mac("02:32:06:00:00:02"), &[])
        .expect("guard");
    let guard_rule = "iifname != @guarded return";
    assert!(listing("inet", nft).contains(guard_rule));
    // Someone flushes a base chain: the next change does not rewrite it (that would
    // cost a grace period per change)...
    ok(&["nft", "flush", "chain", "inet", nft.table(), "guard"]);
    nft.guard("web.eth1", "hn-test-veth1", &mac("02:32:06:00:00:12"), &[])
        .expect("second guard");
    assert!(!listing("inet", nft).contains(guard_rule));
    // ...ensure does (what `hangar network check --repair` runs), and keeps the guards.
    nft.ensure().expect("ensure");
    let inet = listing("inet", nft);
    assert!(inet.contains(guard_rule), "{inet}");
    assert_eq!(
        nft.inventory().expect("inventory").guards,
        strings(&["web.eth0", "web.eth1"])
    );
}

#[test]
fn a_guard_takes_an_interface_over_and_unguarding_a_nic_leaves_the_others() {
    let Some(lab) = Lab::new('o') else { return };
    let nft = &lab.nft;
    nft.guard("old.eth0", "hn-test-veth", &mac("02:32:07:00:00:02"), &[])
        .expect("guard of the interface's old owner");
    nft.guard("web.eth1", "hn-test-veth1", &mac("02:32:07:00:00:12"), &[])
        .expect("another guard");
    // The interface now belongs to a new guest: its guard replaces the leftover one
    // (the transaction that reads nothing is refused, the general path takes over).
    nft.guard("new.eth0", "hn-test-veth", &mac("02:32:07:00:00:22"), &[])
        .expect("guard that takes the interface over");
    assert_eq!(
        nft.inventory().expect("inventory").guards,
        strings(&["new.eth0", "web.eth1"])
    );
    let inet = listing("inet", nft);
    assert!(inet.contains("02:32:07:00:00:22") && !inet.contains("02:32:07:00:00:02"));
    // The old owner's monitor, late, removes its NIC's guard: the new owner's stays.
    nft.unguard_nic("old.eth0", "hn-test-veth", &mac("02:32:07:00:00:02"), &[])
        .expect("unguard of a guard already gone");
    assert_eq!(
        nft.inventory().expect("inventory").guards,
        strings(&["new.eth0", "web.eth1"])
    );
    nft.unguard_nic("new.eth0", "hn-test-veth", &mac("02:32:07:00:00:22"), &[])
        .expect("unguard_nic");
    nft.unguard_nic("new.eth0", "hn-test-veth", &mac("02:32:07:00:00:22"), &[])
        .expect("unguard_nic again");
    assert_eq!(
        nft.inventory().expect("inventory").guards,
        strings(&["web.eth1"])
    );
    assert!(!listing("bridge", nft).contains("hn-test-veth\""));
}

#[test]
fn an_older_hangars_guard_chains_give_way_to_the_shared_sets() {
    let Some(lab) = Lab::new('l') else { return };
    let nft = &lab.nft;
    let t = nft.table();
    // The layout hangar used before: a verdict map from interface to a chain per NIC.
    let legacy = format!(
        "add table inet {t}\n\
         add chain inet {t} guard_web.eth0/hn-test-veth {{ comment \"guard web.eth0 on hn-test-veth\"; }}\n\
         add rule inet {t} guard_web.eth0/hn-test-veth ether saddr != 02:32:08:00:00:02 drop\n\
         add map inet {t} guard_ifs {{ type ifname : verdict; }}\n\
         add chain inet {t} guard {{ type filter hook prerouting priority raw; policy accept; }}\n\
         add rule inet {t} guard iifname vmap @guard_ifs\n\
         add element inet {t} guard_ifs {{ \"hn-test-veth\" : jump guard_web.eth0/hn-test-veth }}\n"
    );
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(legacy.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "the legacy layout loads");

    nft.guard("web.eth0", "hn-test-veth", &mac("02:32:08:00:00:02"), &[])
        .expect("guard over a legacy table");

    let inet = listing("inet", nft);
    assert!(
        !inet.contains("guard_ifs") && !inet.contains("guard_web"),
        "{inet}"
    );
    assert!(inet.contains("iifname != @guarded return"), "{inet}");
    assert_eq!(
        nft.inventory().expect("inventory").guards,
        strings(&["web.eth0"])
    );
}
