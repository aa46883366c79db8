//! A network's name service: one dnsmasq per hangar network, listening only on the
//! host's addresses on that network's bridge, so guests resolve each other (`NAME` and
//! `NAME.DOMAIN`) and the host (`host`, `gateway`), and everything else is forwarded to
//! the host's own resolvers. Later the same dnsmasq serves DHCP to VM guests.
//!
//! dnsmasq daemonizes itself and outlives the CLI. hangar-core hands this configuration
//! to a small DNS keeper (`hangar-monitor --dns`) that watches the daemon through a
//! pidfd and starts it again the moment it dies; this module knows nothing of that
//! keeper. The runtime directory holds everything about the service:
//!
//! | file | written by |
//! | --- | --- |
//! | `dnsmasq.pid` | dnsmasq (a hint only: see [`Dns::is_running`]) |
//! | `dnsmasq.log` | dnsmasq (start-up, hosts file reads, errors; no queries) |
//! | `hosts.d/host` | [`Dns::ensure_running`], [`Dns::set_hosts`]: `host`, `gateway` |
//! | `hosts.d/guests` | [`Dns::set_hosts`]: the guests' names |
//! | `keeper.json` | hangar-core: this configuration and the lock restarts take |
//! | `keeper.lock`, `keeper-state.json` | the DNS keeper: liveness; its pid, restarts |
//!
//! **Name updates without signals.** dnsmasq watches `hosts.d` (`--hostsdir`, inotify):
//! a file renamed into it is re-read and the records of its previous version are dropped,
//! and dot-files are ignored. So a name table is written to a dot-file and renamed over
//! the old one: dnsmasq never sees half a table, nothing has to be signalled (no pid to
//! trust), and a table written while dnsmasq is down is read when it starts. `--addn-hosts`
//! plus SIGHUP would work too, but SIGHUP also empties the cache of forwarded answers.
//!
//! **User.** dnsmasq starts as root (it must bind port 53), then drops to the `dnsmasq`
//! user that Debian's `dnsmasq-base` creates, keeping only the capabilities it needs.
//! dnsmasq parses packets from guests, which are not trusted, so it should not keep
//! root. Consequence: the runtime directory and its parents must be traversable by that
//! user; [`Dns::ensure_running`] makes the directory itself 0755 and the hosts files 0644.
//!
//! **Stopping** signals the process with procps' `kill` (this crate has no `unsafe` and
//! no signal crate), and only after checking that the pid is still our dnsmasq.
//!
//! **Callers** hold the network's lock around these calls; concurrent `ensure_running`
//! of one network cannot start two dnsmasqs anyway (the second cannot bind port 53).
//! dnsmasq binds the host's addresses, and Linux answers to a host address on any
//! interface, so a guest of another network can reach this one through its gateway:
//! keeping networks apart is the firewall's job (`nft.rs`), not dnsmasq's.

use crate::{NetError, Result, cmd};
use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The program, and the user it drops to (created by Debian's `dnsmasq-base`).
const DNSMASQ: &str = "dnsmasq";
const USER: &str = "dnsmasq";
const GROUP: &str = "nogroup";

/// Names of the host in every network's table; guests cannot take them.
pub const HOST_NAMES: [&str; 2] = ["host", "gateway"];

/// How long a stopped dnsmasq gets to exit after SIGTERM, and then after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
const KILL_GRACE: Duration = Duration::from_secs(1);

/// The DNS service of one hangar network. Serialisable, so the DNS keeper (in
/// `hangar-monitor`) can be handed the configuration it keeps running.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dns {
    /// The hangar network's name (for messages and the hosts files' header).
    pub network: String,
    /// The network's bridge; every `listen` address must be on it.
    pub interface: String,
    /// The host's addresses on the bridge (IPv4, optionally IPv6), without prefix length.
    pub listen: Vec<String>,
    /// The guests' domain: guest `web` is `web` and `web.DOMAIN`.
    pub domain: String,
    /// This network's dnsmasq runtime directory: pid file, hosts files, log.
    pub dir: PathBuf,
}

impl Dns {
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("dnsmasq.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }

    /// The directory dnsmasq watches for hosts files.
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir.join("hosts.d")
    }

    /// dnsmasq's arguments (without the program name). They are also how a running
    /// dnsmasq is recognised as this network's (its `--pid-file`) and as up to date.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            // No system configuration: not /etc/dnsmasq.conf, not /etc/dnsmasq.d.
            "--conf-file=/dev/null".to_string(),
            format!("--pid-file={}", self.pid_file().display()),
            format!("--log-facility={}", self.log_file().display()),
            format!("--user={USER}"),
            format!("--group={GROUP}"),
            // Bind the listen addresses only, never the wildcard; dnsmasq waits for a
            // fresh IPv6 address's duplicate detection itself, and a missing address is
            // an error at start rather than a silent non-listener.
            "--bind-interfaces".to_string(),
            "--except-interface=lo".to_string(),
        ];
        args.extend(self.listen.iter().map(|a| format!("--listen-address={a}")));
        args.extend([
            // Local names come from hangar's files only, not the host's /etc/hosts.
            "--no-hosts".to_string(),
            format!("--hostsdir={}", self.hosts_dir().display()),
            // NAME and NAME.DOMAIN both answer; DOMAIN is never asked upstream.
            format!("--local=/{}/", self.domain),
            format!("--domain={}", self.domain),
            "--expand-hosts".to_string(),
            // Unknown single-label names and private reverse lookups stay here too.
            "--domain-needed".to_string(),
            "--bogus-priv".to_string(),
            // Everything else goes to the host's resolvers (re-read when it changes).
            "--resolv-file=/etc/resolv.conf".to_string(),
        ]);
        args
    }

    /// Start this network's dnsmasq unless it already runs with this configuration;
    /// one that runs with another (an address was added, say) is restarted.
    pub fn ensure_running(&self) -> Result<()> {
        self.validate()?;
        let args = self.args();
        match self.find() {
            Some(found) if found.argv.get(1..) == Some(&args[..]) => return Ok(()),
            Some(_) => self.stop()?,
            None => {}
        }
        self.check_addresses()?;
        self.prepare_dir()?;
        self.write_host_names()?;
        remove_if_exists(&self.pid_file())?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // dnsmasq forks and the first process exits once the daemon has bound its
        // sockets and written its pid file, or with the daemon's error on stderr.
        cmd::run(DNSMASQ, &args, None)?;
        match self.find() {
            Some(_) => Ok(()),
            None => Err(NetError::Command {
                command: format!("{DNSMASQ} {}", args.join(" ")),
                stderr: format!(
                    "exited, but no daemon is running (see {})",
                    self.log_file().display()
                ),
            }),
        }
    }

    /// Replace the guests' names: `(name, address)` pairs, IPv4 or IPv6, a name may
    /// appear once per address. The host's own names (`host`, `gateway` at every listen
    /// address) are always there too, so they are refused here. dnsmasq picks up the new
    /// table by itself (see the module docs); it need not be running.
    pub fn set_hosts(&self, entries: &[(String, String)]) -> Result<()> {
        self.validate()?;
        let table = guest_table(&self.network, entries)?;
        self.prepare_dir()?;
        self.write_host_names()?;
        write_if_changed(&self.hosts_dir().join("guests"), &table)
    }

    /// Whether the published table already holds every `(name, address)` of `entries`
    /// (one file read, no change): a start need not write the whole table again.
    pub fn publishes(&self, entries: &[(String, String)]) -> bool {
        let (Ok(table), Ok(wanted)) = (
            std::fs::read_to_string(self.hosts_dir().join("guests")),
            guest_table(&self.network, entries),
        ) else {
            return false;
        };
        let lines: std::collections::HashSet<&str> = table.lines().collect();
        wanted
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| lines.contains(l))
    }

    /// Whether this network's dnsmasq is alive. The pid file is checked against
    /// `/proc/PID/cmdline` (a dnsmasq with our `--pid-file`), so a reused pid is not
    /// mistaken for it; without a valid pid file, `/proc` is searched.
    pub fn is_running(&self) -> bool {
        self.find().is_some()
    }

    /// This network's running dnsmasq as `(pid, start time)`: the start time (clock
    /// ticks after boot, from `/proc/PID/stat`) tells it from a later process that
    /// reuses the pid, see [`start_time`].
    pub fn running(&self) -> Option<(u32, u64)> {
        self.find().map(|f| (f.pid, f.started))
    }

    /// Stop this network's dnsmasq (SIGTERM, then SIGKILL) and remove its pid file.
    /// Idempotent; the hosts files and the log stay for the next start.
    pub fn stop(&self) -> Result<()> {
        // More than one can exist only if someone started one by hand; stop them all,
        // but never loop forever on a process that refuses to die.
        for _ in 0..4 {
            let Some(found) = self.find() else { break };
            kill(&found);
        }
        if let Some(found) = self.find() {
            return Err(NetError::Command {
                command: format!("kill -s KILL {}", found.pid),
                stderr: format!("dnsmasq of network {} is still running", self.network),
            });
        }
        remove_if_exists(&self.pid_file())
    }

    /// Our dnsmasq: by pid file first, by a search of `/proc` otherwise.
    fn find(&self) -> Option<Found> {
        let from_file = fs::read_to_string(self.pid_file())
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .and_then(|pid| self.found(pid));
        from_file.or_else(|| {
            let procs = fs::read_dir("/proc").ok()?;
            procs
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .find_map(|pid| self.found(pid))
        })
    }

    fn found(&self, pid: u32) -> Option<Found> {
        let argv = cmdline(pid)?;
        let started = start_time(pid)?;
        is_our_dnsmasq(&argv, &self.pid_file()).then_some(Found { pid, started, argv })
    }

    fn validate(&self) -> Result<()> {
        if !is_dns_name(&self.domain) {
            return Err(invalid("domain", &self.domain));
        }
        if self.listen.is_empty() {
            return Err(invalid("listen address list", ""));
        }
        for addr in &self.listen {
            addr.parse::<IpAddr>()
                .map_err(|_| invalid("listen address", addr))?;
        }
        Ok(())
    }

    /// Every listen address must be on the bridge: dnsmasq alone would accept one that
    /// is on another interface.
    fn check_addresses(&self) -> Result<()> {
        let json = cmd::ip(&["-j", "addr", "show", "dev", &self.interface])?;
        let present = interface_addresses(&json);
        let absent = |a: &&String| {
            a.parse::<IpAddr>()
                .map_or(true, |ip| !present.contains(&ip))
        };
        match self.listen.iter().find(absent) {
            Some(addr) => Err(NetError::Invalid(format!(
                "network {}: address {addr} is not on {}; add it to the bridge before starting dns",
                self.network, self.interface
            ))),
            None => Ok(()),
        }
    }

    fn prepare_dir(&self) -> Result<()> {
        for dir in [self.dir.clone(), self.hosts_dir()] {
            fs::create_dir_all(&dir).map_err(|source| io_error("cannot create", &dir, source))?;
            set_mode(&dir, 0o755)?;
        }
        Ok(())
    }

    fn write_host_names(&self) -> Result<()> {
        let table = host_table(&self.network, &self.listen)?;
        write_if_changed(&self.hosts_dir().join("host"), &table)
    }
}

/// A running dnsmasq of ours: its pid, start time (to tell it from a later process
/// with the same pid) and command line.
struct Found {
    pid: u32,
    started: u64,
    argv: Vec<String>,
}

/// SIGTERM, then SIGKILL, each followed by a wait until the process has closed its
/// sockets. Only the process found is signalled, never a later one with its pid.
fn kill(found: &Found) {
    for (signal, grace) in [("TERM", TERM_GRACE), ("KILL", KILL_GRACE)] {
        if !alive(found) {
            return;
        }
        // It may exit between the check and the signal; only its absence matters.
        let _ = cmd::run("kill", &["-s", signal, &found.pid.to_string()], None);
        let deadline = Instant::now() + grace;
        while alive(found) && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
    }
}

/// Whether `found` still holds its descriptors. An exiting process loses its command
/// line before it closes its files, so the command line cannot tell; a zombie (`Z`)
/// has closed them all.
fn alive(found: &Found) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", found.pid)) else {
        return false;
    };
    let (state, started) = stat_fields(&stat).unwrap_or(('X', 0));
    !matches!(state, 'Z' | 'X' | 'x') && started == found.started
}

/// State and start time (clock ticks after boot) from `/proc/PID/stat`: the fields
/// after the command name, which is in parentheses and may itself hold anything.
fn stat_fields(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 of proc_pid_stat(5) is the state, field 22 the start time.
    let state = fields.first()?.chars().next()?;
    let started = fields.get(19)?.parse().ok()?;
    Some((state, started))
}

/// The start time of process `pid` (clock ticks after boot), `None` when it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).map(|(_, started)| started)
}

/// `/proc/PID/cmdline` split at NULs; `None` for a gone process or a zombie (empty).
fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let argv = match argv.split_last() {
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => argv,
    };
    (!argv.is_empty()).then_some(argv)
}

/// A dnsmasq (by program name) whose pid file is ours: that path names the network's
/// runtime directory, so no other dnsmasq on the host has it.
fn is_our_dnsmasq(argv: &[String], pid_file: &Path) -> bool {
    let program_ok = argv
        .first()
        .and_then(|p| Path::new(p).file_name())
        .is_some_and(|name| name == DNSMASQ);
    let marker = format!("--pid-file={}", pid_file.display());
    program_ok && argv.contains(&marker)
}

/// The addresses in `ip -j addr show` output (unparseable output yields none).
fn interface_addresses(json: &str) -> Vec<IpAddr> {
    let Ok(serde_json::Value::Array(links)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    links
        .iter()
        .filter_map(|link| link.get("addr_info")?.as_array())
        .flatten()
        .filter_map(|info| info.get("local")?.as_str()?.parse().ok())
        .collect()
}

fn host_table(network: &str, listen: &[String]) -> Result<String> {
    let mut text = header(network, "the host's names");
    for addr in listen {
        let addr: IpAddr = addr.parse().map_err(|_| invalid("listen address", addr))?;
        text.push_str(&format!("{addr} {}\n", HOST_NAMES.join(" ")));
    }
    Ok(text)
}

fn guest_table(network: &str, entries: &[(String, String)]) -> Result<String> {
    let mut text = header(network, "the guests' names");
    for (name, addr) in entries {
        if !is_dns_name(name) || HOST_NAMES.contains(&name.as_str()) {
            return Err(invalid("host name", name));
        }
        let addr: IpAddr = addr.parse().map_err(|_| invalid("address", addr))?;
        text.push_str(&format!("{addr} {name}\n"));
    }
    Ok(text)
}

fn header(network: &str, what: &str) -> String {
    format!("# {what} on hangar network {network:?}; written by hangar, replaced whole\n")
}

/// Dot-separated labels of `[a-z0-9-]`, each 1 to 63 long and not starting with `-`:
/// the guest name rule, and nothing a hosts file line could be broken with.
fn is_dns_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0] != b'-'
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

/// Write `text` to `path` unless it already holds it: a dot-file (ignored by dnsmasq)
/// renamed over it. Not fsynced: runtime state, meaningless after a reboot.
fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("hosts");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    fs::write(&tmp, text).map_err(|source| io_error("cannot write", &tmp, source))?;
    set_mode(&tmp, 0o644)?;
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        io_error("cannot replace", path, source)
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|source| io_error("cannot chmod", path, source))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error("cannot remove", path, e)),
        _ => Ok(()),
    }
}

fn io_error(what: &'static str, path: &Path, source: std::io::Error) -> NetError {
    NetError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(what: &str, value: &str) -> NetError {
    NetError::Invalid(format!("invalid {what} {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns() -> Dns {
        Dns {
            network: "lan".into(),
            interface: "hgbr0".into(),
            listen: vec!["10.77.0.1".into(), "fd77::1".into()],
            domain: "hangar".into(),
            dir: PathBuf::from("/run/hangar/networks/lan/dns"),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_line_binds_the_listen_addresses_and_serves_the_domain() {
        let args = dns().args();
        for expected in [
            "--conf-file=/dev/null",
            "--pid-file=/run/hangar/networks/lan/dns/dnsmasq.pid",
            "--bind-interfaces",
            "--listen-address=10.77.0.1",
            "--listen-address=fd77::1",
            "--no-hosts",
            "--hostsdir=/run/hangar/networks/lan/dns/hosts.d",
            "--local=/hangar/",
            "--domain=hangar",
            "--expand-hosts",
            "--user=dnsmasq",
        ] {
            assert!(
                args.iter().any(|a| a == expected),
                "{expected} missing from {args:?}"
            );
        }
    }

    #[test]
    fn only_a_dnsmasq_with_our_pid_file_is_ours() {
        let pid_file = dns().pid_file();
        let ours = strings(&[
            "/usr/sbin/dnsmasq",
            "--pid-file=/run/hangar/networks/lan/dns/dnsmasq.pid",
        ]);
        let other_network = strings(&[
            "dnsmasq",
            "--pid-file=/run/hangar/networks/wan/dns/dnsmasq.pid",
        ]);
        let not_dnsmasq = strings(&[
            "sleep",
            "--pid-file=/run/hangar/networks/lan/dns/dnsmasq.pid",
        ]);
        assert!(is_our_dnsmasq(&ours, &pid_file));
        assert!(!is_our_dnsmasq(&other_network, &pid_file));
        assert!(!is_our_dnsmasq(&not_dnsmasq, &pid_file));
        assert!(!is_our_dnsmasq(&[], &pid_file));
    }

    #[test]
    fn host_table_names_host_and_gateway_at_every_listen_address() {
        let table = host_table("lan", &dns().listen).unwrap();
        let lines: Vec<&str> = table.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["10.77.0.1 host gateway", "fd77::1 host gateway"]);
    }

    #[test]
    fn guest_table_has_one_line_per_pair_in_canonical_form() {
        let entries = [
            ("web".to_string(), "10.77.0.2".to_string()),
            ("web".to_string(), "FD77:0::2".to_string()),
        ];
        let table = guest_table("lan", &entries).unwrap();
        let lines: Vec<&str> = table.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["10.77.0.2 web", "fd77::2 web"]);
    }

    #[test]
    fn guest_table_refuses_bad_names_addresses_and_the_host_names() {
        for (name, addr) in [
            ("host", "10.77.0.2"),
            ("gateway", "10.77.0.2"),
            ("we b", "10.77.0.2"),
            ("web\n10.0.0.1 evil", "10.77.0.2"),
            ("Web", "10.77.0.2"),
            ("-web", "10.77.0.2"),
            ("", "10.77.0.2"),
            ("web", "10.77.0.2/24"),
            ("web", "localhost"),
        ] {
            let entries = [(name.to_string(), addr.to_string())];
            assert!(
                guest_table("lan", &entries).is_err(),
                "{name:?} {addr:?} accepted"
            );
        }
    }

    #[test]
    fn stat_fields_survive_a_command_name_with_parentheses_and_spaces() {
        let stat =
            "4242 (dns) m (x) Z 1 4242 4242 0 -1 4194560 150 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(stat_fields(stat), Some(('Z', 987654)));
    }

    #[test]
    fn addresses_are_read_from_ip_json() {
        let json = r#"[{"ifname":"hgbr0","addr_info":[{"family":"inet","local":"10.77.0.1","prefixlen":24},
            {"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#;
        let found = interface_addresses(json);
        let expected: [IpAddr; 2] = ["10.77.0.1".parse().unwrap(), "fe80::1".parse().unwrap()];
        assert_eq!(found, expected);
    }

    #[test]
    fn domain_must_be_a_dns_name() {
        let mut bad = dns();
        bad.domain = "han gar".into();
        assert!(bad.validate().is_err());
        assert!(dns().validate().is_ok());
    }
}
