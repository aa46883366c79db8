//! `hangar list`: VServer's vserver-stat, for every guest (running or not).

use crate::{Host, Result, status, store};
use hangar_model::{GuestName, GuestState};
use serde::Serialize;

/// One row of `hangar list`.
#[derive(Debug, Clone, Serialize)]
pub struct GuestInfo {
    pub name: String,
    pub kind: String,
    pub context: u16,
    pub state: GuestState,
    /// A monitor watches it. A running guest without one lost its monitor: the next
    /// command on it, or `hangar repair`, has a new monitor adopt it.
    pub monitor: bool,
    /// Frozen by `hangar pause` (it keeps its memory and uses no CPU).
    pub paused: bool,
    pub hostname: String,
    pub init_pid: Option<i32>,
    /// Processes in the guest.
    pub procs: u64,
    /// Summed virtual size of its processes, KiB.
    pub vsz_kib: u64,
    /// Resident memory charged to the guest, KiB.
    pub rss_kib: u64,
    pub memory_limit: Option<u64>,
    pub user_time_ms: u64,
    pub sys_time_ms: u64,
    /// Seconds since init started.
    pub uptime_secs: Option<u64>,
    pub reboots: u32,
    /// How init ended at the guest's last run, while it is stopped ("exited with
    /// status 3", "halted", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<hangar_model::state::ExitReason>,
    /// CPU use since init started, in percent of one CPU (read, never sampled: a list
    /// of a thousand guests waits for nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
}

pub fn list(host: &Host) -> Result<Vec<GuestInfo>> {
    // The host's cgroup layout, read once for every row.
    let cgroups = host.cgroups()?;
    let names = store::names(&host.paths)?;
    // Rows are independent and their cost is the kernel's (opening and generating
    // cgroup and /proc files): one thread per CPU, each a contiguous share, in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = names.len().div_ceil(threads).max(1);
    let rows: Vec<Vec<(GuestName, Result<GuestInfo>)>> = std::thread::scope(|s| {
        let workers: Vec<_> = names
            .chunks(share)
            .map(|chunk| {
                let cgroups = &cgroups;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|n| (n.clone(), row(host, cgroups, n)))
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut out = Vec::with_capacity(names.len());
    for (name, r) in rows.into_iter().flatten() {
        match r {
            Ok(i) => out.push(i),
            Err(e) => {
                // Its config is unreadable, but the guest may still run: say which.
                let st = status::status(&host.paths, &name);
                let running = match st.init_pid() {
                    Some(pid) => format!("; it is {} (init pid {pid})", st.state),
                    None => String::new(),
                };
                eprintln!("hangar: {name} not listed: {e}{running}")
            }
        }
    }
    Ok(out)
}

pub fn info(host: &Host, name: &GuestName) -> Result<GuestInfo> {
    row(host, &host.cgroups()?, name)
}

fn row(host: &Host, cgroups: &hangar_cgroup::Cgroups, name: &GuestName) -> Result<GuestInfo> {
    let cfg = store::load(&host.paths, name)?;
    let st = status::status(&host.paths, name);
    let mut info = GuestInfo {
        name: name.to_string(),
        kind: cfg.kind.to_string(),
        context: cfg.context.get(),
        state: st.state,
        monitor: st.monitor,
        paused: false,
        hostname: cfg.hostname.clone(),
        init_pid: st.init_pid(),
        procs: 0,
        vsz_kib: 0,
        rss_kib: 0,
        memory_limit: host.cgroup_limits(&cfg)?.memory_max,
        user_time_ms: 0,
        sys_time_ms: 0,
        uptime_secs: None,
        reboots: st.runtime.as_ref().map(|r| r.reboots).unwrap_or(0),
        last_exit: st
            .runtime
            .as_ref()
            .filter(|_| !st.is_active())
            .and_then(|r| r.last_exit.clone()),
        cpu_percent: None,
    };
    if st.is_active() {
        let cg = cgroups.guest(&host.cgroup_parent(), &cfg.context.to_string());
        info.paused = cg.frozen();
        if let Ok(s) = cg.stats() {
            info.procs = u64::try_from(s.pids.len()).unwrap_or(u64::MAX);
            info.vsz_kib = s.pids.iter().map(|&p| vsize_kib(p)).sum();
            info.rss_kib = s.memory_rss / 1024;
            info.user_time_ms = s.cpu_user_us / 1000;
            info.sys_time_ms = s.cpu_system_us / 1000;
            info.memory_limit = s.memory_limit.or(info.memory_limit);
        }
        let started = st.runtime.as_ref().and_then(|r| r.started_at);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        info.uptime_secs = started.map(|s| now.saturating_sub(s));
        // (Uptime counts whole seconds: a guest in its first second counts one.)
        info.cpu_percent = info
            .uptime_secs
            .map(|u| (info.user_time_ms + info.sys_time_ms) as f64 / (u.max(1) as f64 * 10.0));
    }
    Ok(info)
}

/// Virtual size of a process from /proc/PID/stat (field 23, bytes).
fn vsize_kib(pid: i32) -> u64 {
    hangar_container::procstat::stat_field(pid, 23).unwrap_or(0) / 1024
}
