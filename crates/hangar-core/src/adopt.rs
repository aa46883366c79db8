//! Guests outlive their monitor. When a monitor dies (a bug, the OOM killer, a
//! `kill -9`), its guest runs on: [`status`](crate::status) still reports it running,
//! without a monitor. The next command that acts on the guest calls [`ensure`], which
//! starts `hangar-monitor --adopt`: the new monitor finds the guest's init (from the
//! state file, or from the guest's cgroup when that file is lost), pins it with a
//! pidfd and serves the control socket again, so stop, kill, exec, attach and set work
//! as before. `hangar repair` does the same for every guest. What cannot be carried
//! over is said: the console's terminal closed with the old monitor (console output is
//! not recorded until the guest restarts), and the exit status of an init that ended
//! while nobody watched is unknown (`last_exit` "unknown").

use crate::{CoreError, Host, Result, status, store};
use hangar_model::{GuestConfig, GuestName, LaunchSpec};

/// What adoption found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// A monitor watches the guest already (maybe another command's adopter).
    Watched,
    /// A new monitor adopted the running guest; its init's host pid.
    Running(i32),
    /// The guest had stopped while no monitor watched it; what it left (its cgroups,
    /// its NICs' guards) was removed.
    Gone,
}

/// If guest `name` runs without a monitor, have a new monitor adopt it; if it ended
/// while none watched it, have one clean up after it. The user is told (a notice on
/// `host`). Nothing happens for a watched guest or a cleanly stopped one.
pub fn ensure(host: &Host, name: &GuestName) -> Result<()> {
    let st = status::status(&host.paths, name);
    if st.is_orphaned() || st.stale {
        adopt(host, name)?;
    }
    Ok(())
}

/// Start a monitor that adopts guest `name`, or cleans up after it when its init is
/// gone too. Safe to call at any time: under the monitor lock only one monitor ever
/// watches a guest.
pub fn adopt(host: &Host, name: &GuestName) -> Result<Adopted> {
    if status::monitor_alive(&host.paths, name) {
        return Ok(Adopted::Watched);
    }
    let cfg = store::load(&host.paths, name)?;
    let spec_path = spec_for_adoption(host, &cfg)?;
    let before = status::status(&host.paths, name).runtime;
    let lost = match &before {
        Some(r) => format!("its monitor, pid {}, had died", r.monitor_pid),
        None => "its monitor had died and its state file is lost".to_string(),
    };
    // Known when its monitor died cleaning up after it.
    let how = match before.and_then(|r| r.last_exit) {
        Some(e) if e != hangar_model::state::ExitReason::MonitorLost => {
            format!("its init {e}; its monitor died before cleaning up after it")
        }
        _ => "how it ended is not known".to_string(),
    };
    let log = host.paths.log_dir(name).join("monitor.log");
    let reply = crate::spawn::detached(&["--adopt".as_ref(), spec_path.as_os_str()], &log)?;
    let adopted = if let Some(pid) = reply.strip_prefix("adopted ") {
        let pid = pid
            .parse()
            .map_err(|_| CoreError::Invalid(format!("monitor said {reply:?}")))?;
        host.notice(format!(
            "guest {name} was running without a monitor ({lost}; see {}): a new monitor \
             adopted it. Its console output is not recorded until it restarts.",
            log.display()
        ));
        Adopted::Running(pid)
    } else if reply == "gone" {
        host.notice(format!(
            "guest {name} had stopped while no monitor watched it ({how}); what it left \
             behind was cleaned up"
        ));
        Adopted::Gone
    } else if status::monitor_alive(&host.paths, name) {
        Adopted::Watched
    } else {
        let message = reply
            .strip_prefix("error: ")
            .map(str::to_string)
            .unwrap_or_else(|| format!("its adopting monitor exited; see {}", log.display()));
        return Err(CoreError::Monitor {
            name: name.to_string(),
            message,
        });
    };
    Ok(adopted)
}

/// The launch spec the guest was started with (its NICs, cgroups, stop signal), or,
/// when that file is lost or unreadable, one made again from the config.
fn spec_for_adoption(host: &Host, cfg: &GuestConfig) -> Result<std::path::PathBuf> {
    let path = host.paths.run_dir(&cfg.name).join("spec.json");
    let readable = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<LaunchSpec>(&b).ok())
        .is_some();
    if readable {
        return Ok(path);
    }
    let rootfs = host.rootfs(cfg)?;
    let init_system = crate::build::init::init_system_of(&rootfs, cfg.init[0].as_ref());
    let cgroup = host.guest_cgroup(cfg)?;
    let spec = crate::ops::start::launch_spec(host, cfg, cgroup.dirs().to_vec(), init_system)?;
    crate::ops::start::write_spec(host, &cfg.name, &spec)
}

/// Refuse to start `cfg` while its cgroup still holds live processes that no state
/// file names (the state file was lost or damaged while the guest ran): a new monitor
/// adopts that instance if it is the guest's, and the start is refused either way, so
/// a guest never runs twice.
pub fn refuse_unknown_instance(host: &Host, cfg: &GuestConfig) -> Result<()> {
    let cgroup = host.guest_cgroup(cfg)?;
    let live: Vec<i32> = cgroup
        .pids()
        .unwrap_or_default()
        .into_iter()
        .filter(|&p| hangar_container::procstat::look(p).is_some_and(|s| !s.zombie))
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let name = &cfg.name;
    if let Adopted::Running(_) | Adopted::Watched = adopt(host, name)? {
        return Err(CoreError::Invalid(format!(
            "guest {name} is already running"
        )));
    }
    Err(CoreError::Invalid(format!(
        "guest {name}'s cgroup still holds {} process(es) (pids {live:?}) that are not a \
         running instance of it; stop them (`kill -9` as root) before starting it",
        live.len()
    )))
}
