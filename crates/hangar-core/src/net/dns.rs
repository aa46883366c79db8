//! A network's DNS service kept running: dnsmasq (see `hangar_net::dns`) plus its
//! keeper, `hangar-monitor --dns`, which starts dnsmasq again the moment it dies.
//!
//! The keeper reads `keeper.json` in the network's DNS directory (the [`Dns`] and the
//! root's host lock, which its restarts take) and holds `keeper.lock` while it lives.
//! Callers hold the host lock, as for every change to a network.

use crate::{CoreError, Host, Result, lock};
use hangar_net::dns::Dns;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a stopped keeper gets to let go of its lock.
const KEEPER_GRACE: Duration = Duration::from_secs(3);

fn config_file(d: &Dns) -> PathBuf {
    d.dir.join("keeper.json")
}

fn lock_file(d: &Dns) -> PathBuf {
    d.dir.join("keeper.lock")
}

/// Whether the network's DNS keeper is alive.
pub fn keeper_alive(d: &Dns) -> bool {
    lock::is_held(&lock_file(d))
}

/// Start dnsmasq with `d` (or reconfigure it) and make sure a keeper watches it.
pub fn ensure(host: &Host, d: &Dns) -> Result<()> {
    let config = serde_json::json!({
        "dns": d,
        "lock": host.paths.locks_dir().join("host.lock"),
    });
    std::fs::create_dir_all(&d.dir).map_err(|e| CoreError::io("creating", &d.dir, e))?;
    let path = config_file(d);
    hangar_sys::write_atomic(&path, config.to_string().as_bytes(), false)
        .map_err(|e| CoreError::io("writing", &path, e))?;
    d.ensure_running()?;
    if keeper_alive(d) {
        return Ok(());
    }
    let log = host
        .paths
        .root()
        .join(format!("var/log/hangar/dns-{}.log", d.network));
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
    }
    match crate::spawn::detached(&["--dns".as_ref(), path.as_os_str()], &log)?.as_str() {
        "ok" => Ok(()),
        r => Err(CoreError::Invalid(format!(
            "the DNS keeper of network {} did not start ({}); see {}",
            d.network,
            r.strip_prefix("error: ").unwrap_or("no reply"),
            log.display()
        ))),
    }
}

/// Stop the keeper, then dnsmasq; the configuration goes too, so no keeper restarts it.
pub fn stop(d: &Dns) -> Result<()> {
    let path = config_file(d);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CoreError::io("removing", &path, e)),
    }
    stop_keeper(d)?;
    d.stop()?;
    Ok(())
}

/// SIGTERM to the keeper named in its state file, if that process is this network's
/// keeper and holds the lock; then wait for the lock to be free.
fn stop_keeper(d: &Dns) -> Result<()> {
    if !keeper_alive(d) {
        return Ok(());
    }
    if let Some(pid) = keeper_pid(d) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + KEEPER_GRACE;
    while keeper_alive(d) {
        if Instant::now() > deadline {
            return Err(CoreError::Invalid(format!(
                "the DNS keeper of network {} does not stop; its lock is {}",
                d.network,
                lock_file(d).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The keeper's pid from `keeper-state.json`, if that process is a `hangar-monitor
/// --dns` of this network (a reused pid is never signalled).
fn keeper_pid(d: &Dns) -> Option<i32> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.dir.join("keeper-state.json")).ok()?).ok()?;
    let pid = i32::try_from(state["keeper_pid"].as_u64()?).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    is_keeper_of(&cmdline, &config_file(d)).then_some(pid)
}

/// Whether a NUL-separated command line is `hangar-monitor --dns CONFIG ...`.
fn is_keeper_of(cmdline: &[u8], config: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let config = config.as_os_str().as_encoded_bytes();
    args.windows(2).any(|w| w[0] == b"--dns" && w[1] == config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_keeper_of_this_config_is_recognised() {
        let config = Path::new("/r/run/hangar/networks/n/keeper.json");
        let ours = b"/usr/bin/hangar-monitor\0--dns\0/r/run/hangar/networks/n/keeper.json\x0012\0";
        let other = b"/usr/bin/hangar-monitor\0--dns\0/r/run/hangar/networks/m/keeper.json\x0012\0";
        let lxcfs = b"hangar-monitor\0--lxcfs\0/r/run/hangar/networks/n/keeper.json\0";
        assert!(is_keeper_of(ours, config));
        assert!(!is_keeper_of(other, config));
        assert!(!is_keeper_of(lxcfs, config));
        assert!(!is_keeper_of(b"", config));
    }
}
