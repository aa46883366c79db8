//! Reading [`Counters`] on cgroup v1, each figure from its controller's
//! hierarchy.

use std::path::Path;

use crate::CgroupError;
use crate::counters::{Counter, Counters, CpuCounters, IoCounter, add_blkio};
use crate::fsutil::{keyed, parse_u64, read, read_opt};
use crate::guest::{self, GuestCgroup};
use crate::v1::{USER_HZ, V1_UNLIMITED_FROM};

/// Reads a v1 guest's counters.
pub(crate) fn counters(guest: &GuestCgroup) -> Result<Counters, CgroupError> {
    let mut counters = Counters::default();
    if let Some(dir) = guest.dir_for("memory") {
        memory(dir, &mut counters)?;
    }
    if let Some(dir) = guest.dir_for("pids") {
        counters.pids = guest::pids_counter(dir)?;
    }
    if let Some(dir) = guest.dir_for("cpuacct") {
        cpuacct(dir, &mut counters.cpu)?;
    }
    if let Some(dir) = guest.dir_for("cpu") {
        cpu_stat(dir, &mut counters.cpu)?;
    }
    if let Some(dir) = guest.dir_for("blkio") {
        counters.io = blkio(dir)?;
    }
    Ok(counters)
}

fn number(path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read(path)?)
}

/// A `memory.*` or `memory.memsw.*` counter: `prefix` is `memory` or `memory.memsw`.
fn memory_counter(dir: &Path, prefix: &str) -> Result<Counter, CgroupError> {
    let limit = number(&dir.join(format!("{prefix}.limit_in_bytes")))?;
    Ok(Counter {
        current: number(&dir.join(format!("{prefix}.usage_in_bytes")))?,
        peak: Some(number(&dir.join(format!("{prefix}.max_usage_in_bytes")))?),
        limit: (limit < V1_UNLIMITED_FROM).then_some(limit),
        hits: number(&dir.join(format!("{prefix}.failcnt")))?,
    })
}

/// Memory, memory+swap where swap is accounted, and OOM kills from
/// `memory.oom_control` (Linux 4.13+).
fn memory(dir: &Path, counters: &mut Counters) -> Result<(), CgroupError> {
    counters.memory = memory_counter(dir, "memory")?;
    if dir.join("memory.memsw.usage_in_bytes").exists() {
        counters.swap = Some(memory_counter(dir, "memory.memsw")?);
        counters.swap_includes_memory = true;
    }
    let path = dir.join("memory.oom_control");
    if let Some(text) = read_opt(&path)? {
        counters.oom_kills = keyed(&path, &text, "oom_kill")?.unwrap_or(0);
    }
    Ok(())
}

/// CPU time: `cpuacct.usage` in nanoseconds, `cpuacct.stat` in USER_HZ ticks.
fn cpuacct(dir: &Path, cpu: &mut CpuCounters) -> Result<(), CgroupError> {
    cpu.usage_us = number(&dir.join("cpuacct.usage"))? / 1000;
    let path = dir.join("cpuacct.stat");
    let text = read(&path)?;
    let micros_per_tick = 1_000_000 / USER_HZ;
    cpu.user_us = keyed(&path, &text, "user")?.unwrap_or(0) * micros_per_tick;
    cpu.system_us = keyed(&path, &text, "system")?.unwrap_or(0) * micros_per_tick;
    Ok(())
}

/// Throttling from the cpu controller's `cpu.stat` (time in nanoseconds).
fn cpu_stat(dir: &Path, cpu: &mut CpuCounters) -> Result<(), CgroupError> {
    let path = dir.join("cpu.stat");
    let Some(text) = read_opt(&path)? else {
        return Ok(());
    };
    cpu.periods = keyed(&path, &text, "nr_periods")?.unwrap_or(0);
    cpu.throttled_periods = keyed(&path, &text, "nr_throttled")?.unwrap_or(0);
    cpu.throttled_us = keyed(&path, &text, "throttled_time")?.unwrap_or(0) / 1000;
    Ok(())
}

/// Bytes and operations per device, including nested cgroups where the
/// kernel offers the `_recursive` files (as v2's `io.stat` does).
fn blkio(dir: &Path) -> Result<Vec<IoCounter>, CgroupError> {
    let mut io = Vec::new();
    for (file, bytes) in [
        ("blkio.throttle.io_service_bytes", true),
        ("blkio.throttle.io_serviced", false),
    ] {
        let recursive = dir.join(format!("{file}_recursive"));
        let path = if recursive.exists() {
            recursive
        } else {
            dir.join(file)
        };
        if let Some(text) = read_opt(&path)? {
            add_blkio(&mut io, &path, &text, bytes)?;
        }
    }
    Ok(io)
}

#[cfg(test)]
mod tests;
