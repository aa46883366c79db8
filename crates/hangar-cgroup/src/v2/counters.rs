//! Reading [`Counters`] on cgroup v2 from the guest's one directory.

use std::path::Path;

use crate::CgroupError;
use crate::counters::{Counter, Counters, CpuCounters, parse_io_stat};
use crate::fsutil::{keyed, parse_max, parse_u64, read, read_opt};
use crate::guest::{self, GuestCgroup};

/// Reads a v2 guest's counters.
pub(crate) fn counters(guest: &GuestCgroup) -> Result<Counters, CgroupError> {
    let mut counters = Counters::default();
    let Some(dir) = guest.dirs().first() else {
        return Ok(counters);
    };
    if dir.join("memory.current").exists() {
        counters.memory = counter(dir, "memory")?;
        counters.oom_kills = event(&dir.join("memory.events"), "oom_kill")?;
        if dir.join("memory.swap.current").exists() {
            counters.swap = Some(counter(dir, "memory.swap")?);
        }
    }
    if dir.join("pids.current").exists() {
        counters.pids = guest::pids_counter(dir)?;
    }
    let path = dir.join("cpu.stat");
    if let Some(text) = read_opt(&path)? {
        counters.cpu = cpu_stat(&path, &text)?;
    }
    let path = dir.join("io.stat");
    if let Some(text) = read_opt(&path)? {
        counters.io = parse_io_stat(&path, &text)?;
    }
    Ok(counters)
}

/// `key N` from an events file, 0 where the file or the key is missing.
fn event(path: &Path, key: &str) -> Result<u64, CgroupError> {
    match read_opt(path)? {
        Some(text) => Ok(keyed(path, &text, key)?.unwrap_or(0)),
        None => Ok(0),
    }
}

/// The counter of `memory` or `memory.swap`: `.current`, `.peak` (Linux
/// 5.19+ for memory, 6.5+ for swap), `.max`, and `max` from `.events`.
fn counter(dir: &Path, prefix: &str) -> Result<Counter, CgroupError> {
    let current = dir.join(format!("{prefix}.current"));
    let peak = dir.join(format!("{prefix}.peak"));
    let max = dir.join(format!("{prefix}.max"));
    Ok(Counter {
        current: parse_u64(&current, &read(&current)?)?,
        peak: read_opt(&peak)?
            .map(|text| parse_u64(&peak, &text))
            .transpose()?,
        limit: parse_max(&max, &read(&max)?)?,
        hits: event(&dir.join(format!("{prefix}.events")), "max")?,
    })
}

/// `cpu.stat`; the throttling lines appear only with the cpu controller.
fn cpu_stat(path: &Path, text: &str) -> Result<CpuCounters, CgroupError> {
    let get = |key| keyed(path, text, key).map(|v| v.unwrap_or(0));
    Ok(CpuCounters {
        usage_us: get("usage_usec")?,
        user_us: get("user_usec")?,
        system_us: get("system_usec")?,
        periods: get("nr_periods")?,
        throttled_periods: get("nr_throttled")?,
        throttled_us: get("throttled_usec")?,
    })
}

#[cfg(test)]
mod tests;
