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
        "{:<5} {:>5} {:>7} {:>7} {:>9} {:>9} {:>9} {:<20} {:<8} KIND",
        "CTX", "PROC", "VSZ", "RSS", "userTIME", "sysTIME", "UPTIME", "NAME", "STATE"
    );
    for r in rows {
        let running = r.state.is_active();
        let dash = |s: String| if running { s } else { "-".into() };
        let _ = writeln!(
            out,
            "{:<5} {:>5} {:>7} {:>7} {:>9} {:>9} {:>9} {:<20} {:<8} {}",
            r.context,
            dash(r.procs.to_string()),
            dash(size(r.vsz_kib)),
            dash(size(r.rss_kib)),
            dash(cpu_time(r.user_time_ms)),
            dash(cpu_time(r.sys_time_ms)),
            uptime(r.uptime_secs),
            r.name,
            r.state,
            r.kind
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
