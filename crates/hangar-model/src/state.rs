//! Lifecycle states and the runtime state file a guest's monitor keeps.

use serde::{Deserialize, Serialize};

/// Where a guest is in its life. The monitor writes it; `hangar list` reads it and checks
/// the monitor is really alive before believing "running".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestState {
    Stopped,
    Starting,
    Running,
    Stopping,
}

impl GuestState {
    pub fn can_start(self) -> bool {
        self == GuestState::Stopped
    }
    pub fn can_stop(self) -> bool {
        matches!(
            self,
            GuestState::Running | GuestState::Starting | GuestState::Stopping
        )
    }
    pub fn is_active(self) -> bool {
        self != GuestState::Stopped
    }
}

impl std::fmt::Display for GuestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestState::Stopped => "stopped",
            GuestState::Starting => "starting",
            GuestState::Running => "running",
            GuestState::Stopping => "stopping",
        })
    }
}

/// How the guest's init ended last time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitReason {
    /// init exited with this code.
    Exited(i32),
    /// init was killed by this signal (SIGKILL from `hangar kill` or a timed-out stop).
    Signaled(i32),
    /// The guest powered itself off (reboot(2) with halt/poweroff inside its pid namespace).
    Halted,
    /// init ended while no monitor watched it (its monitor had died, and no new one
    /// had adopted the guest yet), or the status was gone before the adopting monitor
    /// could read it: how it ended is not known. (Serialised as `monitorlost`, its
    /// name from when a guest died with its monitor.)
    MonitorLost,
}

impl ExitReason {
    /// A few characters for a table column: `halted`, `exit 3`, `SIGKILL`.
    pub fn short(&self) -> String {
        match self {
            ExitReason::Exited(code) => format!("exit {code}"),
            ExitReason::Signaled(sig) => crate::Signal::from_number(*sig).to_string(),
            ExitReason::Halted => "halted".into(),
            ExitReason::MonitorLost => "unknown".into(),
        }
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Exited(code) => write!(f, "exited with status {code}"),
            ExitReason::Signaled(sig) => {
                write!(f, "was killed by {}", crate::Signal::from_number(*sig))
            }
            ExitReason::Halted => f.write_str("halted"),
            ExitReason::MonitorLost => {
                f.write_str("ended while no monitor watched it (how is not known)")
            }
        }
    }
}

/// `run/hangar/guests/NAME/state.json`, written atomically by the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub state: GuestState,
    /// Host pid of the guest's init, while it runs.
    pub init_pid: Option<i32>,
    pub monitor_pid: i32,
    /// Unix time (seconds) when the current init started.
    pub started_at: Option<u64>,
    /// How many times the guest rebooted itself under this monitor.
    pub reboots: u32,
    pub last_exit: Option<ExitReason>,
    /// When the current init started, in clock ticks after boot (`/proc/PID/stat`'s
    /// `starttime`): with `init_pid` it names init for good, so a guest whose monitor
    /// died is known to run on (and a pid reused by another process is not taken for it).
    #[serde(default)]
    pub init_start: Option<u64>,
    /// Set when this monitor adopted a running guest whose own monitor had died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<Adoption>,
}

/// How a monitor came to watch a guest it did not start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// Unix time (seconds) of the adoption.
    pub at: u64,
    /// Pid of the monitor that had died.
    pub lost_monitor: i32,
    /// Why that monitor died, when the host can tell (the kernel's OOM killer); None
    /// when nothing says (a SIGKILL from someone, a crash).
    #[serde(default)]
    pub reason: Option<String>,
}
