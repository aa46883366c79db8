//! The `hangar list` table, in vserver-stat's columns plus STATE and KIND.

use hangar_core::ops::list::GuestInfo;
use std::fmt::Write;

fn size(kib: u64) -> String {
    let k = kib as f64;
    match kib {
        0..1024 => format!("{kib}K"),
        1024..1_048_576 => format!("{:.1}M", k / 1024.0),
        _ => format!("{:.1}G", k / 1_048_576.0),
    }
}

/// vserver-stat's CPU time format: minutes, seconds, hundredths (`36m00s11`).
fn cpu_time(ms: u64) -> String {
    format!("{}m{:02}s{:02}", ms / 60_000, ms / 1000 % 60, ms / 10 % 100)
}

fn uptime(s: Option<u64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s >= 86_400 => format!("{}d{:02}h{:02}", s / 86_400, s / 3600 % 24, s / 60 % 60),
        Some(s) if s >= 3600 => format!("{}h{:02}m{:02}", s / 3600, s / 60 % 60, s % 60),
        Some(s) => format!("{}m{:02}s", s / 60, s % 60),
    }
}

pub fn render(rows: &[GuestInfo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:>5} {:>7} {:>7} {:>9} {:>9} {:>9} {:<20} {:<8} {:<9} {:>5} {:>15}  EXIT",
        "CTX",
        "PROC",
        "VSZ",
        "RSS",
        "userTIME",
        "sysTIME",
        "UPTIME",
        "NAME",
        "STATE",
        "KIND",
        "CPU%",
        "MEM/LIMIT",
    );
    let mut unwatched = false;
    for r in rows {
        let running = r.state.is_active();
        let state = if running && r.paused {
            "paused".to_string()
        } else if running && !r.monitor {
            unwatched = true;
            format!("{}*", r.state)
        } else {
            r.state.to_string()
        };
        let dash = |s: String| if running { s } else { "-".into() };
        let cpu = r
            .cpu_percent
            .map(|p| format!("{p:.1}"))
            .unwrap_or_else(|| "-".into());
        let limit = r
            .memory_limit
            .map(|l| size(l / 1024))
            .unwrap_or_else(|| "max".into());
        let mem = dash(format!("{}/{limit}", size(r.rss_kib)));
        let _ = writeln!(
            out,
            "{:<5} {:>5} {:>7} {:>7} {:>9} {:>9} {:>9} {:<20} {:<8} {:<9} {:>5} {:>15}  {}",
            r.context,
            dash(r.procs.to_string()),
            dash(size(r.vsz_kib)),
            dash(size(r.rss_kib)),
            dash(cpu_time(r.user_time_ms)),
            dash(cpu_time(r.sys_time_ms)),
            uptime(r.uptime_secs),
            r.name,
            state,
            r.kind,
            cpu,
            mem,
            r.last_exit
                .as_ref()
                .map_or_else(|| "-".into(), |e| e.short())
        );
    }
    if unwatched {
        let _ = writeln!(
            out,
            "* runs without a monitor (it died): the next command on the guest, or \
             `hangar repair`, has a new monitor adopt it"
        );
    }
    out
}

fn bytes(b: u64) -> String {
    size(b / 1024)
}

/// `hangar df`: NAME POOL USED LIMIT USE%.
pub fn df(rows: &[hangar_core::ops::pool::DiskUse]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:>9} {:>9} {:>5}",
        "NAME", "POOL", "USED", "LIMIT", "USE%"
    );
    for r in rows {
        let limit = r.limit.map(bytes).unwrap_or_else(|| "-".into());
        let pct = r
            .percent
            .map(|p| format!("{p:.0}%"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:>9} {:>9} {:>5}",
            r.name,
            r.pool,
            bytes(r.used),
            limit,
            pct
        );
    }
    out
}

/// `hangar unify`: a line per pool.
pub fn unified(pools: &[hangar_core::ops::unify::PoolUnified]) -> String {
    let mut out = String::new();
    if pools.is_empty() {
        out.push_str("no pool that can share blocks holds guests\n");
    }
    for p in pools {
        let names: Vec<&str> = p.guests.iter().map(|g| g.as_str()).collect();
        let _ = writeln!(
            out,
            "pool {} ({}): {} files looked at; {} now share their blocks ({}), {} did \
             already, {} passed over; {} freed",
            p.pool,
            names.join(", "),
            p.files,
            p.shared,
            bytes(p.shared_bytes),
            p.already,
            p.skipped,
            bytes(p.freed)
        );
    }
    out
}

/// `hangar pool list`: NAME DRIVER SIZE FREE GUESTS SOURCE.
pub fn pools(rows: &[hangar_core::ops::pool::PoolInfo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<6} {:>9} {:>9} {:>6}  SOURCE",
        "NAME", "DRIVER", "SIZE", "FREE", "GUESTS"
    );
    for p in rows {
        let _ = writeln!(
            out,
            "{:<12} {:<6} {:>9} {:>9} {:>6}  {}",
            p.name,
            p.driver,
            bytes(p.size),
            bytes(p.free),
            p.guests.len(),
            p.source
        );
    }
    out
}

/// `hangar limits`: RESOURCE CURRENT PEAK LIMIT HITS, sizes human, CPU time in seconds.
pub fn limits(r: &hangar_core::ops::limits::Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>10} {:>10} {:>10} {:>8}",
        "RESOURCE", "CURRENT", "PEAK", "LIMIT", "HITS"
    );
    for row in &r.rows {
        let (cur, peak, limit) = if row.resource == "pids" {
            let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            (row.current.to_string(), n(row.peak), n(row.limit))
        } else if row.resource == "cpu" {
            let lim = r
                .cpu_limit_thousandths
                .map(|t| format!("{}%", t / 10))
                .unwrap_or_else(|| "-".into());
            (format!("{:.2}s", row.current as f64 / 1e6), "-".into(), lim)
        } else {
            let b = |v: Option<u64>| v.map(bytes).unwrap_or_else(|| "-".into());
            (bytes(row.current), b(row.peak), b(row.limit))
        };
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>10} {:>10} {:>8}",
            row.resource, cur, peak, limit, row.hits
        );
    }
    let _ = writeln!(out, "oom kills: {}", r.oom_kills);
    out
}

/// `hangar image list`: NAME SOURCE ARCH SIZE CREATED FROM.
pub fn images(rows: &[hangar_model::image::ImageInfo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<14} {:<7} {:>9} {:>11}  FROM",
        "NAME", "SOURCE", "ARCH", "SIZE", "CREATED"
    );
    for i in rows {
        let _ = writeln!(
            out,
            "{:<24} {:<14} {:<7} {:>9} {:>11}  {}",
            i.name.to_string(),
            i.source.to_string(),
            i.architecture,
            bytes(i.size),
            i.created,
            i.from
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_vserver_stat() {
        assert_eq!(cpu_time(36 * 60_000 + 110), "36m00s11");
        assert_eq!(size(157_286), "153.6M");
        assert_eq!(uptime(Some(86_400 + 3 * 3600 + 30 * 60)), "1d03h30");
    }
}
