//! The truth about a guest's run state, from its monitor's lock rather than from a pid
//! file: a dead monitor (even one killed with SIGKILL) releases its lock at once. A
//! guest outlives its monitor: without one, it still runs if the init its state file
//! names (pid and start time) is alive, and the next command that acts on it has a new
//! monitor adopt it (`crate::adopt`).

use crate::paths::Paths;
use crate::{CoreError, Result, lock};
use hangar_model::control::{Reply, Request};
use hangar_model::state::ExitReason;
use hangar_model::{GuestName, GuestState, RuntimeState};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A guest's runtime state as far as the host can tell.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: GuestState,
    pub runtime: Option<RuntimeState>,
    /// A monitor watches the guest. False for a stopped guest, and for a running one
    /// whose monitor died (until a new monitor adopts it).
    pub monitor: bool,
    /// Stopped, but its state file says it runs: it ended while no monitor watched
    /// it, and what it held (cgroups, its NICs' guards) is still there until a monitor
    /// cleans up after it (`crate::adopt`).
    pub stale: bool,
}

impl Status {
    pub fn is_active(&self) -> bool {
        self.state.is_active()
    }
    /// Running (or starting, stopping) with no monitor: it must be adopted before a
    /// monitor can be asked anything.
    pub fn is_orphaned(&self) -> bool {
        self.is_active() && !self.monitor
    }
    pub fn init_pid(&self) -> Option<i32> {
        self.runtime
            .as_ref()
            .and_then(|r| r.init_pid)
            .filter(|_| self.is_active())
    }
}

pub fn monitor_alive(paths: &Paths, name: &GuestName) -> bool {
    lock::is_held(&paths.run_dir(name).join("monitor.lock"))
}

fn read_state(paths: &Paths, name: &GuestName) -> Option<RuntimeState> {
    let bytes = std::fs::read(paths.run_dir(name).join("state.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn status(paths: &Paths, name: &GuestName) -> Status {
    let runtime = read_state(paths, name);
    if monitor_alive(paths, name) {
        let state = runtime
            .as_ref()
            .map(|r| r.state)
            .unwrap_or(GuestState::Starting);
        return Status {
            state,
            runtime,
            monitor: true,
            stale: false,
        };
    }
    // No monitor. If the state file says the guest runs and its init is alive (the same
    // process: pid and start time), it runs on unwatched.
    if let Some(r) = runtime.as_ref().filter(|r| r.state.is_active())
        && let (Some(pid), Some(start)) = (r.init_pid, r.init_start)
        && hangar_container::procstat::alive_since(pid, start)
    {
        return Status {
            state: r.state,
            runtime,
            monitor: false,
            stale: false,
        };
    }
    // Otherwise it is stopped, whatever the state file says. If it says otherwise, it
    // ended while no monitor watched it, and nobody knows how.
    let stale = runtime.as_ref().is_some_and(|r| r.state.is_active());
    let runtime = runtime.map(|mut r| {
        if r.state.is_active() {
            r.state = GuestState::Stopped;
            // Unknown, unless its monitor recorded the end of init before it died
            // cleaning up (it says `stopping` with no init then).
            if r.init_pid.is_some() || r.last_exit.is_none() {
                r.last_exit = Some(ExitReason::MonitorLost);
            }
            r.init_pid = None;
        }
        r
    });
    Status {
        state: GuestState::Stopped,
        runtime,
        monitor: false,
        stale,
    }
}

/// Send one request to the guest's monitor.
pub fn request(paths: &Paths, name: &GuestName, req: &Request) -> Result<RuntimeState> {
    let sock = paths.run_dir(name).join("control.sock");
    let err = |message: String| CoreError::Monitor {
        name: name.to_string(),
        message,
    };
    let mut stream = UnixStream::connect(&sock).map_err(|e| {
        err(format!(
            "cannot reach its monitor at {}: {e}",
            sock.display()
        ))
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| err(e.to_string()))?;
    let mut line = serde_json::to_string(req).expect("requests serialise");
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| err(format!("sending to its monitor: {e}")))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(|e| err(format!("reading its monitor's reply: {e}")))?;
    match serde_json::from_str::<Reply>(&reply) {
        Ok(Reply::Ok { state }) => Ok(state),
        Ok(Reply::Error { message }) => Err(err(message)),
        Err(e) => Err(err(format!("unreadable reply from its monitor: {e}"))),
    }
}

/// Wait until the guest's monitor has exited (its lock is free), up to `limit`.
pub fn wait_stopped(paths: &Paths, name: &GuestName, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut nap = Duration::from_micros(200);
    while monitor_alive(paths, name) {
        if Instant::now() >= deadline {
            return Err(CoreError::Monitor {
                name: name.to_string(),
                message: "did not stop in time".into(),
            });
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    Ok(())
}
