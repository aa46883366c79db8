//! The truth about a guest's run state, from its monitor's lock rather than from a pid
//! file: a dead monitor (even one killed with SIGKILL) releases its lock at once.

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
}

impl Status {
    pub fn is_active(&self) -> bool {
        self.state.is_active()
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
        return Status { state, runtime };
    }
    // No monitor: the guest is stopped, whatever the state file says. If it says
    // otherwise, its monitor died without writing the end (and took the guest with it).
    let runtime = runtime.map(|mut r| {
        if r.state.is_active() {
            r.state = GuestState::Stopped;
            r.init_pid = None;
            r.last_exit = Some(ExitReason::MonitorLost);
        }
        r
    });
    Status {
        state: GuestState::Stopped,
        runtime,
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
