//! The lxcfs keeper: `hangar-monitor --lxcfs MOUNTPOINT RUN_DIR READY_FD`.
//!
//! One per host (per hangar root), started by the first `hangar start` that needs it.
//! It runs lxcfs in the foreground as its child, restarts it when it dies, and then binds
//! the new lxcfs files into every running guest (their old binds went stale with the old
//! daemon), so guests keep a working /proc across lxcfs restarts. It holds `lxcfs.lock`
//! for its whole life; SIGTERM stops lxcfs, unmounts it and ends the keeper.

use super::Res;
use hangar_sys::Forked;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Keeper {
    mountpoint: PathBuf,
    run_dir: PathBuf,
    lxcfs_pid: i32,
    restarts: u32,
}

pub fn run(mountpoint: &str, run_dir: &str, mut ready: std::fs::File) -> Res<()> {
    let run_dir = PathBuf::from(run_dir);
    let lock_path = run_dir.join("lxcfs.lock");
    let Some(_lock) = super::try_lock(&lock_path)? else {
        // Another keeper runs: nothing to do.
        let _ = writeln!(ready, "ok");
        return Ok(());
    };
    let sfd = super::signal_fd(&[Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT])?;
    let mut k = Keeper {
        mountpoint: PathBuf::from(mountpoint),
        run_dir,
        lxcfs_pid: 0,
        restarts: 0,
    };
    if let Err(e) = k.start_lxcfs() {
        let _ = writeln!(ready, "error: {e}");
        return Err(e);
    }
    // Guests may run already: their binds of a dead lxcfs (a keeper killed with it)
    // answer nothing until they are bound again.
    k.reinject();
    let _ = writeln!(ready, "ok");
    drop(ready);
    loop {
        let Ok(info) = sfd.read_signal() else {
            continue;
        };
        let Some(info) = info else { continue };
        if info.ssi_signo != libc::SIGCHLD as u32 {
            k.stop();
            return Ok(());
        }
        if k.reap() {
            k.restarts += 1;
            eprintln!(
                "hangar-monitor: lxcfs exited; restarting it (restart {})",
                k.restarts
            );
            for attempt in 1..=10 {
                if stop_requested(&sfd, Duration::from_millis(100 * attempt)) {
                    k.stop();
                    return Ok(());
                }
                match k.start_lxcfs() {
                    Ok(()) => {
                        k.reinject();
                        break;
                    }
                    Err(e) => {
                        eprintln!("hangar-monitor: restarting lxcfs (attempt {attempt}): {e}")
                    }
                }
            }
        }
    }
}

impl Keeper {
    fn start_lxcfs(&mut self) -> Res<()> {
        self.end_orphaned_lxcfs();
        // A mount left by a dead lxcfs answers ENOTCONN, even to mkdir: take it away first.
        let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
        std::fs::create_dir_all(&self.mountpoint)
            .map_err(|e| format!("creating {}: {e}", self.mountpoint.display()))?;
        let pidfile = self.run_dir.join("lxcfs.pid");
        let args = [
            c"lxcfs".to_owned(),
            c"-f".to_owned(),
            c"-l".to_owned(),
            c"--enable-cfs".to_owned(),
            c"-p".to_owned(),
            cstr(&pidfile)?,
            cstr(&self.mountpoint)?,
        ];
        match hangar_sys::fork().map_err(|e| e.to_string())? {
            Forked::Child => {
                // lxcfs dies with its keeper rather than running on unsupervised.
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
                hangar_sys::reset_signals();
                let _ = nix::unistd::execvp(&args[0], &args);
                hangar_sys::exit_now(127)
            }
            Forked::Parent(pid) => self.lxcfs_pid = pid,
        }
        let probe = self.mountpoint.join("proc/meminfo");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read(&probe).is_err() {
            let exited = !matches!(
                waitpid(Pid::from_raw(self.lxcfs_pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            );
            if exited {
                return Err("lxcfs exited at start; see its messages above".into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "lxcfs did not come up at {}",
                    self.mountpoint.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.save();
        Ok(())
    }

    /// An lxcfs of this mount point left by a keeper that was killed (lxcfs outlives
    /// the SIGTERM its keeper's death sends it) holds the pid file, so a new one would
    /// not start: end it first. The guests' binds are renewed once the new one runs.
    fn end_orphaned_lxcfs(&self) {
        let pidfile = self.run_dir.join("lxcfs.pid");
        let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == self.mountpoint.as_os_str().as_encoded_bytes());
        if !ours || pid == self.lxcfs_pid {
            return;
        }
        eprintln!("hangar-monitor: ending lxcfs {pid}, left without a keeper");
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains(") Z "))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn save(&self) {
        let json = format!(
            "{{\"keeper_pid\":{},\"lxcfs_pid\":{},\"restarts\":{}}}",
            std::process::id(),
            self.lxcfs_pid,
            self.restarts
        );
        let _ = hangar_sys::write_atomic(&self.run_dir.join("lxcfs.json"), json.as_bytes(), false);
    }

    /// Collect exited children; true when lxcfs was among them.
    fn reap(&mut self) -> bool {
        let mut lxcfs_died = false;
        while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            match s.pid() {
                Some(p) if p.as_raw() == self.lxcfs_pid => lxcfs_died = true,
                Some(_) => {}
                None => break,
            }
            if matches!(s, WaitStatus::StillAlive) {
                break;
            }
        }
        lxcfs_died
    }

    /// Bind the new lxcfs files into every running guest.
    fn reinject(&self) {
        let guests = self.run_dir.join("guests");
        let Ok(entries) = std::fs::read_dir(&guests) else {
            return;
        };
        for e in entries.flatten() {
            let state = e.path().join("state.json");
            let Ok(bytes) = std::fs::read(&state) else {
                continue;
            };
            let Ok(rt) = serde_json::from_slice::<hangar_model::RuntimeState>(&bytes) else {
                continue;
            };
            // Only a live init the state file names by pid and start time (a guest
            // may run without a monitor; a stale file's pid may be another process's).
            let init = rt
                .init_pid
                .zip(rt.init_start)
                .filter(|&(pid, start)| {
                    rt.state.is_active() && hangar_container::procstat::alive_since(pid, start)
                })
                .map(|(pid, _)| pid);
            if let Some(pid) = init {
                if let Err(e) = hangar_container::lxcfs::inject(pid, &self.mountpoint) {
                    eprintln!("hangar-monitor: {}", hangar_container::error_chain(&e));
                }
            }
        }
    }

    fn stop(&mut self) {
        // lxcfs keeps no state worth a clean exit, and guests' binds keep its mount busy.
        let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::sys::signal::kill(Pid::from_raw(self.lxcfs_pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.lxcfs_pid), None);
        let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(self.run_dir.join("lxcfs.json"));
    }
}

/// Wait up to `wait` for SIGTERM/SIGINT (a SIGCHLD is consumed and ignored).
fn stop_requested(sfd: &SignalFd, wait: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left.as_millis() as i32).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(sfd),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, timeout) {
            Ok(n) if n > 0 => {
                if let Ok(Some(info)) = sfd.read_signal()
                    && info.ssi_signo != libc::SIGCHLD as u32
                {
                    return true;
                }
            }
            _ => return false,
        }
    }
}

fn cstr(p: &Path) -> Res<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", p.display()))
}
