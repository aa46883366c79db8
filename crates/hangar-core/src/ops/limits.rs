//! `hangar limits NAME`: per resource, current use, peak, limit and how often the limit
//! was hit (VServer's /proc/virtual/N/limit: `RSS: 453 1248 5000 0`).

use crate::{CoreError, Host, Result, status, store};
use hangar_model::GuestName;
use serde::Serialize;

/// One line of the report. Sizes are bytes, times microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub resource: String,
    pub current: u64,
    pub peak: Option<u64>,
    pub limit: Option<u64>,
    pub hits: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub rows: Vec<Row>,
    /// CPU bandwidth limit as a share of one CPU, in thousandths (250 = 25 %).
    pub cpu_limit_thousandths: Option<u64>,
    pub oom_kills: u64,
    /// The raw counters, for scripts that want everything.
    pub counters: hangar_cgroup::Counters,
}

pub fn limits(host: &Host, name: &GuestName) -> Result<Report> {
    let cfg = store::load(&host.paths, name)?;
    let st = status::status(&host.paths, name);
    if !st.is_active() {
        if let Some(exit) = st.runtime.and_then(|r| r.last_exit) {
            return Err(CoreError::Invalid(format!(
                "guest {name} is not running: at its last run its init {exit}"
            )));
        }
        return Err(CoreError::NotRunning(name.to_string()));
    }
    let c = host.guest_cgroup(&cfg)?.counters()?;
    let row = |resource: &str, k: &hangar_cgroup::Counter| Row {
        resource: resource.to_string(),
        current: k.current,
        peak: k.peak,
        limit: k.limit,
        hits: k.hits,
    };
    let mut rows = vec![row("memory", &c.memory)];
    if let Some(s) = &c.swap {
        rows.push(row(
            if c.swap_includes_memory {
                "memory+swap"
            } else {
                "swap"
            },
            s,
        ));
    }
    rows.push(row("pids", &c.pids));
    let cpu_limit = host
        .cgroup_limits(&cfg)?
        .cpu_max
        .map(|m| m.quota_us * 1000 / m.period_us.max(1));
    rows.push(Row {
        resource: "cpu".into(),
        current: c.cpu.usage_us,
        peak: None,
        limit: None,
        hits: c.cpu.throttled_periods,
    });
    for io in &c.io {
        rows.push(Row {
            resource: format!("io {}:{} read", io.major, io.minor),
            current: io.read_bytes,
            peak: None,
            limit: None,
            hits: 0,
        });
        rows.push(Row {
            resource: format!("io {}:{} write", io.major, io.minor),
            current: io.write_bytes,
            peak: None,
            limit: None,
            hits: 0,
        });
    }
    Ok(Report {
        name: name.to_string(),
        rows,
        cpu_limit_thousandths: cpu_limit,
        oom_kills: c.oom_kills,
        counters: c,
    })
}
