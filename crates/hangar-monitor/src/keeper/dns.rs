//! The DNS keeper: `hangar-monitor --dns CONFIG READY_FD`, one per network with DNS.
//!
//! `CONFIG` (`keeper.json` in the network's DNS directory, written by hangar-core) holds
//! the network's [`Dns`] and the path of the hangar root's host lock. dnsmasq
//! daemonizes, so it is not our child: the keeper watches it through a pidfd, which
//! becomes readable the moment it exits, and then starts it again with the configuration
//! it reads afresh — under the host lock, like every hangar command that touches the
//! network, so a command reconfiguring dnsmasq and the keeper never start two.
//!
//! Failed starts (the bridge lost its address, say) are retried with a back-off up to
//! [`BACKOFF_MAX`], for as long as the keeper lives. SIGHUP re-reads the configuration;
//! SIGTERM ends the keeper and leaves dnsmasq serving (taking the network down stops
//! both). A killed keeper leaves dnsmasq serving too; the next `hangar start` or
//! `hangar network check --repair` starts a new keeper, which takes over the watch.
//! When `CONFIG` disappears (the network was deleted) the keeper ends.

use super::Res;
use hangar_net::dns::{Dns, start_time};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How soon to try again when a hangar command holds the host lock.
const LOCK_RETRY: Duration = Duration::from_millis(50);

#[derive(serde::Deserialize)]
struct Config {
    dns: Dns,
    /// The hangar root's host lock.
    lock: PathBuf,
}

struct Keeper {
    config_path: PathBuf,
    cfg: Config,
    /// The dnsmasq being watched: pid and pidfd.
    watched: Option<(u32, OwnedFd)>,
    restarts: u32,
}

/// What one attempt to get dnsmasq watched again came to.
enum Attempt {
    Watching,
    /// A hangar command holds the host lock: try again shortly.
    Busy,
    /// The configuration is gone: the network was deleted.
    Gone,
}

pub fn run(config_path: &str, mut ready: std::fs::File) -> Res<()> {
    let config_path = PathBuf::from(config_path);
    let cfg = load(&config_path)?;
    let Some(_lock) = super::try_lock(&cfg.dns.dir.join("keeper.lock"))? else {
        // Another keeper watches this network: nothing to do.
        let _ = writeln!(ready, "ok");
        return Ok(());
    };
    let sfd = super::signal_fd(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP])?;
    let mut k = Keeper {
        config_path,
        cfg,
        watched: None,
        restarts: 0,
    };
    // Whoever started us has just started dnsmasq, and still holds the host lock.
    if let Err(e) = k.watch() {
        let _ = writeln!(ready, "error: {e}");
        return Err(e);
    }
    k.save();
    let _ = writeln!(ready, "ok");
    drop(ready);
    let mut failures = 0u32;
    let mut wait = Duration::ZERO;
    loop {
        let (signal, exited) = k.wait(&sfd, wait)?;
        match signal {
            Some(Signal::SIGHUP) => k.watched = None,
            Some(_) => return Ok(()),
            None => {}
        }
        if exited {
            eprintln!(
                "hangar-monitor: dnsmasq of network {} exited; starting it again",
                k.cfg.dns.network
            );
            k.watched = None;
        }
        if k.watched.is_some() {
            continue;
        }
        wait = match k.attempt() {
            Ok(Attempt::Watching) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(Attempt::Busy) => LOCK_RETRY,
            Ok(Attempt::Gone) => return Ok(()),
            Err(e) => {
                failures += 1;
                let wait = backoff(failures);
                eprintln!(
                    "hangar-monitor: network {}: {e}; trying again in {} ms",
                    k.cfg.dns.network,
                    wait.as_millis()
                );
                wait
            }
        };
    }
}

/// The delay before retry number `failures` (1, 2, ...): doubling from
/// [`BACKOFF_MIN`] up to [`BACKOFF_MAX`].
fn backoff(failures: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

fn load(path: &Path) -> Res<Config> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

impl Keeper {
    /// Wait for a signal or the watched dnsmasq's exit; without a watched dnsmasq,
    /// for at most `idle`. Returns the signal and whether dnsmasq exited.
    fn wait(
        &self,
        sfd: &nix::sys::signalfd::SignalFd,
        idle: Duration,
    ) -> Res<(Option<Signal>, bool)> {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some((_, pidfd)) = &self.watched {
            fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = match self.watched {
            Some(_) => PollTimeout::NONE,
            None => PollTimeout::try_from(idle.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::ZERO),
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok((None, false)),
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let exited = fds.get(1).is_some_and(ready);
        let signal = if ready(&fds[0]) {
            sfd.read_signal()
                .ok()
                .flatten()
                .and_then(|info| Signal::try_from(info.ssi_signo as i32).ok())
        } else {
            None
        };
        Ok((signal, exited))
    }

    /// Under the host lock: re-read the configuration, start dnsmasq unless it runs
    /// (a hangar command may have restarted it meanwhile), and watch it.
    fn attempt(&mut self) -> Res<Attempt> {
        let Some(_host) = super::try_lock(&self.cfg.lock)? else {
            return Ok(Attempt::Busy);
        };
        if !self.config_path.exists() {
            return Ok(Attempt::Gone);
        }
        self.cfg = load(&self.config_path)?;
        if self.cfg.dns.running().is_none() {
            self.cfg.dns.ensure_running().map_err(|e| e.to_string())?;
            self.restarts += 1;
        }
        self.watch()?;
        self.save();
        Ok(Attempt::Watching)
    }

    /// Watch the running dnsmasq through a pidfd.
    fn watch(&mut self) -> Res<()> {
        let (pid, started) =
            self.cfg.dns.running().ok_or_else(|| {
                format!("dnsmasq of network {} is not running", self.cfg.dns.network)
            })?;
        let pidfd = hangar_sys::pidfd_open(pid as i32).map_err(|e| e.to_string())?;
        // The pidfd names whatever process had `pid` when it was opened: it is our
        // dnsmasq only if that one still has the start time we found.
        if start_time(pid) != Some(started) {
            return Err(format!("dnsmasq {pid} exited while being watched"));
        }
        self.watched = Some((pid, pidfd));
        Ok(())
    }

    fn save(&self) {
        let json = serde_json::json!({
            "keeper_pid": std::process::id(),
            "dnsmasq_pid": self.watched.as_ref().map(|(pid, _)| *pid),
            "restarts": self.restarts,
        });
        let path = self.cfg.dns.dir.join("keeper-state.json");
        let _ = hangar_sys::write_atomic(&path, json.to_string().as_bytes(), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(8), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
