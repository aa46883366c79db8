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
    /// CPU use over a short window, in percent of one CPU; only when asked for
    /// ([`sample_cpu`]), since measuring takes time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
}

/// Fill `cpu_percent` of the running guests from two readings `window` apart.
pub fn sample_cpu(host: &Host, rows: &mut [GuestInfo], window: std::time::Duration) {
    let usage = |r: &GuestInfo| -> Option<u64> {
        let name = GuestName::new(&r.name).ok()?;
        let cfg = store::load(&host.paths, &name).ok()?;
        Some(host.guest_cgroup(&cfg).ok()?.counters().ok()?.cpu.usage_us)
    };
    let before: Vec<Option<u64>> = rows
        .iter()
        .map(|r| r.state.is_active().then(|| usage(r)).flatten())
        .collect();
    if before.iter().all(Option::is_none) {
        return;
    }
    let t = std::time::Instant::now();
    std::thread::sleep(window);
    for (r, b) in rows.iter_mut().zip(before) {
        if let (Some(b), Some(a)) = (b, usage(r)) {
            r.cpu_percent =
                Some(a.saturating_sub(b) as f64 / t.elapsed().as_micros() as f64 * 100.0);
        }
    }
}

pub fn list(host: &Host) -> Result<Vec<GuestInfo>> {
    let mut out = Vec::new();
    for name in store::names(&host.paths)? {
        match info(host, &name) {
            Ok(i) => out.push(i),
            Err(e) => eprintln!("hangar: skipping {name}: {e}"),
        }
    }
    Ok(out)
}

pub fn info(host: &Host, name: &GuestName) -> Result<GuestInfo> {
    let cfg = store::load(&host.paths, name)?;
    let st = status::status(&host.paths, name);
    let mut info = GuestInfo {
        name: name.to_string(),
        kind: cfg.kind.to_string(),
        context: cfg.context.get(),
        state: st.state,
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
        let cg = host.guest_cgroup(&cfg)?;
        if let Ok(s) = cg.stats() {
            info.procs = s.procs;
            info.rss_kib = s.memory_rss / 1024;
            info.user_time_ms = s.cpu_user_us / 1000;
            info.sys_time_ms = s.cpu_system_us / 1000;
            info.memory_limit = s.memory_limit.or(info.memory_limit);
        }
        info.vsz_kib = cg
            .pids()
            .unwrap_or_default()
            .iter()
            .map(|&p| vsize_kib(p))
            .sum();
        let started = st.runtime.as_ref().and_then(|r| r.started_at);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        info.uptime_secs = started.map(|s| now.saturating_sub(s));
    }
    Ok(info)
}

/// Virtual size of a process from /proc/PID/stat (field 23, bytes).
fn vsize_kib(pid: i32) -> u64 {
    crate::procstat::stat_field(pid, 23).unwrap_or(0) / 1024
}
