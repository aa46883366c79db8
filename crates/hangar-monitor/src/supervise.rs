//! The monitor's life: lock, launch, serve, reap, clean up.

use crate::adopt;
use hangar_container::procstat;
use hangar_model::control::{Reply, Request};
use hangar_model::state::{Adoption, ExitReason};
use hangar_model::{GuestState, LaunchSpec, RuntimeState};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SigSet, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant, SystemTime};

type Res<T> = Result<T, String>;

struct Monitor {
    spec: LaunchSpec,
    state: RuntimeState,
    /// The console pty's master; none for an adopted guest (its master closed with
    /// the monitor that died).
    console_master: Option<OwnedFd>,
    /// Our copy of the console's peer: keeps the pty open when its users close it.
    #[allow(dead_code, reason = "held only to keep the pty open")]
    console_peer: Option<OwnedFd>,
    /// An adopted init, which is not our child: watched and signalled through this
    /// pidfd (until it ends; a relaunched init is our child again).
    adopted_init: Option<OwnedFd>,
    log: std::fs::File,
    /// When set, init is being stopped and gets SIGKILL at this instant.
    kill_at: Option<Instant>,
    stopping: bool,
    /// The pipe `hangar start` waits on, until init has settled ([`Monitor::settle`]).
    ready: Option<std::fs::File>,
    /// When a first init that has not forked yet counts as settled all the same.
    settle_by: Instant,
    launched_at: Instant,
    /// Init's reaped-children faults when it was exec'd (`Launched::reaped_faults_at_exec`):
    /// a higher count shows that init forked a child that is gone already.
    reaped_faults_at_exec: u64,
}

/// How long `hangar start` waits, at most, for a new init to show that it boots: an
/// init that has forked a first child (busybox's rcS, sysvinit's rc, systemd's
/// generators; seen as a child of init or in init's count of its reaped children's
/// faults) has settled at once; one that dies before that fails the start, with its
/// console. An init that never forks counts as settled after this long.
const SETTLE: Duration = Duration::from_secs(1);
/// How often a settling init is looked at.
const SETTLE_POLL_MS: u16 = 2;

/// Run as guest `spec_path`'s monitor: launch its init, or with `adopt` take over a
/// running init whose monitor died.
pub fn run(spec_path: &str, mut ready: std::fs::File, adopt: bool) -> Res<()> {
    let spec: LaunchSpec = std::fs::read(spec_path)
        .map_err(|e| format!("reading {spec_path}: {e}"))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("parsing {spec_path}: {e}"))
        })?;
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(spec.lock_path())
        .map_err(|e| format!("opening {}: {e}", spec.lock_path().display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| "another monitor already runs this guest".to_string())?;
    // The guest's processes outlive its init by a moment (the kernel kills its pid
    // namespace): orphaned, they come to us rather than to the host's pid 1, which
    // may reap late, and we reap them before removing their cgroups.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("becoming the guest's subreaper: {e}"))?;
    crate::spare_from_oom_killer();
    if adopt {
        return adopt_and_serve(spec, ready);
    }
    let mut mon = match Monitor::start(spec.clone()) {
        Ok(m) => m,
        Err(e) => {
            // `hangar start` made the cgroups; it cannot tell when we are gone, so
            // they go before it hears of the failure.
            reap_orphans();
            remove_cgroups(&spec);
            let _ = writeln!(ready, "error: {e}");
            return Err(e);
        }
    };
    // Bound before `hangar start` hears that init runs: its next command finds it.
    let listener = match bind_control(&mon.spec) {
        Ok(l) => l,
        Err(e) => {
            mon.signal_init(libc::SIGKILL);
            mon.finish();
            let _ = writeln!(ready, "error: {e}");
            return Err(e);
        }
    };
    mon.ready = Some(ready);
    mon.settle();
    let result = mon.serve(listener);
    mon.finish();
    // Told only now, once the guest's cgroup and NICs are gone: a start tried again
    // at once finds nothing of this one.
    if let Some(mut ready) = mon.ready.take() {
        let _ = writeln!(ready, "error: {}", mon.early_death());
    }
    result
}

/// `hangar-monitor --adopt`: watch the guest's running init, or, when it is gone too,
/// clean up after it (its NICs' guards, its cgroups) and record that it stopped. Says
/// `adopted PID` or `gone` on the ready pipe.
fn adopt_and_serve(spec: LaunchSpec, mut ready: std::fs::File) -> Res<()> {
    let mut mon = match Monitor::adopt(spec) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(ready, "error: {e}");
            return Err(e);
        }
    };
    let Some(pid) = mon.state.init_pid else {
        mon.finish();
        let _ = writeln!(ready, "gone");
        return Ok(());
    };
    let listener = match bind_control(&mon.spec) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(ready, "error: {e}");
            return Err(e);
        }
    };
    let _ = writeln!(ready, "adopted {pid}");
    drop(ready);
    let result = mon.serve(listener);
    mon.finish();
    result
}

/// The guest's control socket, listening (non-blocking).
fn bind_control(spec: &LaunchSpec) -> Res<UnixListener> {
    let sock = spec.socket_path();
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).map_err(|e| format!("binding {}: {e}", sock.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    Ok(listener)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What every monitor does first: block the signals its signalfd reads, and open the
/// guest's console log for appending.
fn prepare(spec: &LaunchSpec) -> Res<std::fs::File> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.console_log)
        .map_err(|e| format!("opening {}: {e}", spec.console_log.display()))
}

impl Monitor {
    fn start(spec: LaunchSpec) -> Res<Monitor> {
        let log = prepare(&spec)?;
        let state = RuntimeState {
            state: GuestState::Starting,
            init_pid: None,
            monitor_pid: std::process::id() as i32,
            started_at: None,
            reboots: 0,
            last_exit: None,
            init_start: None,
            adopted: None,
        };
        let launched = launch(&spec, &state)?;
        let mut mon = Monitor {
            spec,
            state,
            console_master: Some(launched.console),
            console_peer: Some(launched.console_peer),
            adopted_init: None,
            log,
            kill_at: None,
            stopping: false,
            ready: None,
            settle_by: Instant::now() + SETTLE,
            launched_at: Instant::now(),
            reaped_faults_at_exec: launched.reaped_faults_at_exec,
        };
        mon.running(launched.pid);
        Ok(mon)
    }

    /// Take over the guest of a monitor that died (we hold its lock now, so no other
    /// monitor can). Its init is found from the old state file or the guest's cgroup
    /// and pinned with a pidfd; `state.init_pid` is None when it is gone as well.
    fn adopt(spec: LaunchSpec) -> Res<Monitor> {
        let log = prepare(&spec)?;
        let old: Option<RuntimeState> = std::fs::read(spec.state_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let lost_monitor = old.as_ref().map_or(0, |o| o.monitor_pid);
        let mut state = old.clone().unwrap_or(RuntimeState {
            state: GuestState::Running,
            init_pid: None,
            monitor_pid: 0,
            started_at: None,
            reboots: 0,
            last_exit: None,
            init_start: None,
            adopted: None,
        });
        state.monitor_pid = std::process::id() as i32;
        // Pinned: the pidfd names the process that had the pid when it was opened, and
        // the start time checked after that proves it is init.
        let found = adopt::find_init(old.as_ref(), &spec.cgroup_dirs).and_then(|(pid, start)| {
            let pidfd = hangar_sys::pidfd_open(pid).ok()?;
            procstat::alive_since(pid, start).then_some((pid, start, pidfd))
        });
        let reason = adopt::death_reason(lost_monitor);
        let mut mon = Monitor {
            spec,
            state,
            console_master: None,
            console_peer: None,
            adopted_init: None,
            log,
            kill_at: None,
            stopping: false,
            ready: None,
            settle_by: Instant::now(),
            launched_at: Instant::now(),
            reaped_faults_at_exec: 0,
        };
        let why = reason
            .clone()
            .unwrap_or_else(|| "no reason recorded by the kernel".into());
        let was = match lost_monitor {
            0 => "its monitor (its state file was lost)".to_string(),
            pid => format!("its monitor (pid {pid})"),
        };
        match found {
            Some((pid, start, pidfd)) => {
                mon.adopted_init = Some(pidfd);
                mon.state.state = GuestState::Running;
                mon.state.init_pid = Some(pid);
                mon.state.init_start = Some(start);
                mon.state.started_at = mon.state.started_at.or(Some(now()));
                mon.state.adopted = Some(Adoption {
                    at: now(),
                    lost_monitor,
                    reason,
                });
                mon.save();
                eprintln!(
                    "hangar-monitor: adopted guest {} (init pid {pid}): {was} had died \
                     ({why}); its console is no longer recorded",
                    mon.spec.name
                );
                let _ = writeln!(
                    mon.log,
                    "\n[hangar] {}: {was} died ({why}); a new monitor adopted the running \
                     guest. Its console's terminal closed with the old monitor: console \
                     output is not recorded until the guest restarts.",
                    now()
                );
            }
            None => {
                // A monitor that died cleaning up after its guest had recorded the exit.
                if mon.state.init_pid.is_some() || mon.state.last_exit.is_none() {
                    mon.state.last_exit = Some(ExitReason::MonitorLost);
                }
                mon.state.init_pid = None;
                eprintln!(
                    "hangar-monitor: guest {} had stopped while no monitor watched it ({was} \
                     had died: {why}); cleaning up after it",
                    mon.spec.name
                );
            }
        }
        Ok(mon)
    }

    /// Tells `hangar start` that init runs, once it has forked a first child or lived
    /// for [`SETTLE`]; until then, nothing.
    fn settle(&mut self) {
        let Some(pid) = self.state.init_pid.filter(|_| self.ready.is_some()) else {
            return;
        };
        // A child now (alive or not yet reaped), or ever: a child init reaped already
        // (a quick rcS) added its faults to init's count. (The pids controller's peak
        // cannot tell: the launch's own helper raised it to two.)
        let forked = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .is_ok_and(|c| !c.trim().is_empty())
            || procstat::stat_field(pid, procstat::REAPED_CHILDREN_FAULTS)
                .is_some_and(|f| f > self.reaped_faults_at_exec);
        if forked || Instant::now() >= self.settle_by {
            if let Some(mut ready) = self.ready.take() {
                let _ = writeln!(ready, "ok {pid}");
            }
        }
    }

    /// Why the start failed: init ended before it settled. Its exit and the last
    /// lines of its console, which is where an init says why.
    fn early_death(&self) -> String {
        let how = self
            .state
            .last_exit
            .as_ref()
            .map_or_else(|| "ended".to_string(), ToString::to_string);
        let text = std::fs::read_to_string(&self.spec.console_log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = &lines[lines.len().saturating_sub(10)..];
        let after = if self.state.reboots > 0 {
            " (after a reboot)"
        } else {
            ""
        };
        let mut msg = format!(
            "its init {}{after} {how} {} ms after it started",
            self.spec.init[0],
            self.launched_at.elapsed().as_millis()
        );
        if tail.is_empty() {
            msg.push_str(", printing nothing on its console");
        } else {
            msg.push_str("; the end of its console:");
            for l in tail {
                msg.push_str("\n  ");
                msg.push_str(l);
            }
        }
        msg
    }

    /// Launch init again (after the guest rebooted itself), on a new console.
    fn relaunch(&mut self) -> Res<()> {
        let launched = launch(&self.spec, &self.state)?;
        self.console_master = Some(launched.console);
        self.console_peer = Some(launched.console_peer);
        self.adopted_init = None;
        self.reaped_faults_at_exec = launched.reaped_faults_at_exec;
        self.running(launched.pid);
        Ok(())
    }

    fn running(&mut self, pid: i32) {
        self.state.state = GuestState::Running;
        self.state.init_pid = Some(pid);
        self.state.init_start = procstat::look(pid).map(|s| s.start_time);
        self.state.started_at = Some(now());
        // A relaunched init is our child, on a console we record again.
        self.state.adopted = None;
        self.save();
    }

    fn save(&self) {
        let json = serde_json::to_vec(&self.state).unwrap_or_default();
        if let Err(e) = hangar_sys::write_atomic(&self.spec.state_path(), &json, false) {
            eprintln!("hangar-monitor: writing state: {e}");
        }
    }

    fn serve(&mut self, listener: UnixListener) -> Res<()> {
        let mut mask = SigSet::empty();
        for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
            mask.add(s);
        }
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| format!("signalfd: {e}"))?;
        let mut buf = [0u8; 4096];
        while self.state.init_pid.is_some() {
            let timeout = match self.kill_at {
                Some(t) => PollTimeout::try_from(
                    t.saturating_duration_since(Instant::now()).as_millis() as i32 + 1,
                )
                .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            // NONE (wait for ever) is -1 and orders first: compare it out.
            let settling = PollTimeout::from(SETTLE_POLL_MS);
            let timeout = match self.ready {
                Some(_) if timeout.is_none() || settling < timeout => settling,
                _ => timeout,
            };
            // The third is the console, or an adopted init's pidfd (never both).
            let third = self.console_master.as_ref().or(self.adopted_init.as_ref());
            let mut fds = vec![
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            ];
            fds.extend(third.map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
                Ok(_) => {}
            }
            let ready = |i: usize| {
                fds.get(i)
                    .is_some_and(|f| f.revents().is_some_and(|r| !r.is_empty()))
            };
            let (sig, conn, third) = (ready(0), ready(1), ready(2));
            drop(fds);
            if third && self.adopted_init.is_some() {
                self.adopted_init_ended();
            } else if third {
                self.copy_console(&mut buf);
            }
            if sig {
                while let Ok(Some(info)) = sfd.read_signal() {
                    if info.ssi_signo != libc::SIGCHLD as u32 {
                        self.stop(self.spec.stop_timeout);
                    }
                }
                self.reap();
            }
            if conn {
                while let Ok((stream, _)) = listener.accept() {
                    self.answer(stream);
                }
            }
            if self.kill_at.is_some_and(|t| Instant::now() >= t) {
                self.kill_at = None;
                self.signal_init(libc::SIGKILL);
            }
            self.settle();
        }
        self.copy_console(&mut buf);
        Ok(())
    }

    fn copy_console(&mut self, buf: &mut [u8]) {
        let Some(master) = &self.console_master else {
            return;
        };
        while let Ok(n @ 1..) = nix::unistd::read(master, &mut *buf) {
            let _ = self.log.write_all(&buf[..n]);
        }
    }

    fn signal_init(&self, sig: i32) {
        if let Some(pidfd) = &self.adopted_init {
            let _ = hangar_sys::pidfd_send_signal(pidfd.as_fd(), sig);
        } else if let Some(pid) = self.state.init_pid {
            // Our child, not reaped yet: the pid is still init's.
            let _ = hangar_sys::kill_signal(pid, sig);
        }
    }

    /// The adopted init's pidfd is readable: it has exited. Its wait status is read
    /// from its zombie if the host's init has not reaped it yet.
    fn adopted_init_ended(&mut self) {
        self.adopted_init = None;
        let (Some(pid), Some(start)) = (self.state.init_pid, self.state.init_start) else {
            return;
        };
        let exit = adopt::exit_of(pid, start).unwrap_or(ExitReason::MonitorLost);
        self.ended(exit);
    }

    fn stop(&mut self, timeout: u32) {
        if !self.stopping {
            self.stopping = true;
            self.state.state = GuestState::Stopping;
            self.save();
            self.signal_init(self.spec.stop_signal);
            self.kill_at = Some(Instant::now() + Duration::from_secs(timeout.into()));
        }
    }

    fn answer(&mut self, stream: std::os::unix::net::UnixStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        let reply = match reader
            .read_line(&mut line)
            .map(|_| serde_json::from_str::<Request>(&line))
        {
            Ok(Ok(Request::Status)) => Reply::Ok {
                state: self.state.clone(),
            },
            Ok(Ok(Request::Stop { timeout })) => {
                self.stop(timeout);
                Reply::Ok {
                    state: self.state.clone(),
                }
            }
            Ok(Ok(Request::Kill)) => {
                self.stopping = true;
                self.state.state = GuestState::Stopping;
                self.signal_init(libc::SIGKILL);
                Reply::Ok {
                    state: self.state.clone(),
                }
            }
            Ok(Err(e)) => Reply::Error {
                message: format!("bad request: {e}"),
            },
            Err(e) => Reply::Error {
                message: format!("reading request: {e}"),
            },
        };
        let mut out = serde_json::to_string(&reply).unwrap_or_default();
        out.push('\n');
        let _ = (&stream).write_all(out.as_bytes());
    }

    /// Collect exited children; decide what the end of init means.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            if status.pid().map(Pid::as_raw) != self.state.init_pid {
                continue;
            }
            let exit = match status {
                WaitStatus::Exited(_, c) => ExitReason::Exited(c),
                WaitStatus::Signaled(_, Signal::SIGINT, _) => ExitReason::Halted,
                WaitStatus::Signaled(_, s, _) => ExitReason::Signaled(s as i32),
                _ => continue,
            };
            self.ended(exit);
        }
    }

    /// The guest's NICs and shared directories as its launch spec says now: `hangar
    /// attach` and `detach` on the running guest rewrite it.
    fn reload_attached(&mut self) {
        let path = self.spec.run_dir.join("spec.json");
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<LaunchSpec>(&b).map_err(|e| e.to_string()))
        {
            Ok(now) => {
                self.spec.nics = now.nics;
                self.spec.dirs = now.dirs;
            }
            Err(e) => eprintln!(
                "hangar-monitor: reading {}: {e}; keeping the NICs and directories it had \
                 at start",
                path.display()
            ),
        }
    }

    /// init ended with `exit`: the guest stops, or restarts when it rebooted itself.
    fn ended(&mut self, exit: ExitReason) {
        self.reload_attached();
        // reboot(2) inside a pid namespace ends its init with SIGHUP: restart it.
        let rebooted = exit == ExitReason::Signaled(libc::SIGHUP) && !self.stopping;
        self.state.init_pid = None;
        self.state.init_start = None;
        self.state.last_exit = Some(exit);
        if rebooted {
            self.state.reboots += 1;
            self.state.state = GuestState::Starting;
            // The old network namespace goes away asynchronously, and its veths
            // with it: remove the NICs' host sides now, or plugging them again may
            // find the old ones still there.
            for nic in &self.spec.nics {
                if let Err(e) =
                    hangar_net::unplug(nic, &self.spec.name, self.spec.nft_tag.as_deref())
                {
                    eprintln!(
                        "hangar-monitor: unplugging {} before the reboot: {}",
                        nic.host_if,
                        hangar_container::error_chain(&e)
                    );
                }
            }
            if let Err(e) = self.relaunch() {
                eprintln!("hangar-monitor: restarting after reboot: {e}");
            }
        }
    }

    /// The guest is over: release what it held, then say it stopped. Until its cgroups
    /// and its NICs' guards are gone the state file says `stopping` with no init, so a
    /// `list` meanwhile does not show a stopped guest that still holds them, and a
    /// monitor killed half-way leaves a guest that the next command (or `hangar
    /// repair`) sees ended unwatched and cleans up after, keeping the exit recorded.
    fn finish(&mut self) {
        self.state.state = GuestState::Stopping;
        self.state.init_pid = None;
        self.state.init_start = None;
        self.save();
        // The veths went with the guest's network namespace; its guards and IFBs did not.
        for nic in &self.spec.nics {
            if let Err(e) =
                hangar_net::guest::after_exit(nic, &self.spec.name, self.spec.nft_tag.as_deref())
            {
                eprintln!(
                    "hangar-monitor: cleaning up {}: {}",
                    nic.host_if,
                    hangar_container::error_chain(&e)
                );
            }
        }
        reap_orphans();
        remove_cgroups(&self.spec);
        let _ = std::fs::remove_file(self.spec.socket_path());
        self.state.state = GuestState::Stopped;
        self.state.started_at = None;
        self.state.adopted = None;
        self.save();
    }
}

/// Remove the guest's cgroup directories, innermost hierarchy last made first.
fn remove_cgroups(spec: &LaunchSpec) {
    for dir in spec.cgroup_dirs.iter().rev() {
        remove_cgroup_dir(dir);
    }
}

/// Launch init, with its NICs plugged and its console master set non-blocking for the
/// copy loop. `state` is the monitor's: before init runs, the state file already names
/// it (pid and start time), so a monitor dying at any moment after leaves a guest the
/// next one can adopt.
fn launch(spec: &LaunchSpec, state: &RuntimeState) -> Res<hangar_container::launch::Launched> {
    let plug = |pid: i32| -> Result<(), String> {
        let early = RuntimeState {
            state: GuestState::Starting,
            init_pid: Some(pid),
            init_start: procstat::look(pid).map(|s| s.start_time),
            ..state.clone()
        };
        let json = serde_json::to_vec(&early).unwrap_or_default();
        hangar_sys::write_atomic(&spec.state_path(), &json, false)
            .map_err(|e| format!("writing {}: {e}", spec.state_path().display()))?;
        // Our child, not yet reaped: its pid cannot be reused meanwhile.
        let ns = hangar_net::link::Netns::of_process(pid);
        for (i, nic) in spec.nics.iter().enumerate() {
            if let Err(e) = hangar_net::plug(&ns, nic, &spec.name, spec.nft_tag.as_deref()) {
                for done in &spec.nics[..i] {
                    let _ = hangar_net::unplug(done, &spec.name, spec.nft_tag.as_deref());
                }
                return Err(format!(
                    "plugging {}: {}",
                    nic.guest_if,
                    hangar_container::error_chain(&e)
                ));
            }
        }
        Ok(())
    };
    let launched = hangar_container::launch::launch(spec, &plug)
        .map_err(|e| hangar_container::error_chain(&e))?;
    nix::fcntl::fcntl(
        &launched.console,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| format!("console pty: {e}"))?;
    Ok(launched)
}

/// Reaps the guest's last processes, which the kernel kills with its init and which
/// come to us as their subreaper, until none is left (2 s at most).
fn reap_orphans() {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// rmdir a cgroup once its last task is gone (v1 may report EBUSY for a moment), and
/// first the cgroups the guest made inside it (systemd's slices in its delegated tree).
fn remove_cgroup_dir(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_dir(&entry.path());
        }
    }
    for attempt in 0..400 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                // The guest is over: whatever is still in its cgroup after a moment
                // (a process that joined it from outside the guest's pid namespace,
                // such as a killed `hangar exec`'s helper) goes too.
                if attempt == 20 {
                    kill_leftovers(dir);
                }
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => {
                eprintln!("hangar-monitor: removing {}: {e}", dir.display());
                return;
            }
            Ok(()) => return,
        }
    }
    eprintln!(
        "hangar-monitor: {} stayed busy; `hangar repair` removes it once it empties",
        dir.display()
    );
}

/// SIGKILL every process still listed in the cgroup `dir`.
fn kill_leftovers(dir: &std::path::Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        eprintln!(
            "hangar-monitor: killing process {pid}, left in {} after the guest ended",
            dir.display()
        );
        let _ = hangar_sys::kill_signal(pid, libc::SIGKILL);
    }
}
