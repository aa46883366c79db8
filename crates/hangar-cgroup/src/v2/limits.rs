//! Applying [`Limits`] on cgroup v2: one directory, one file per knob, the
//! `max` keyword for "no limit".
//!
//! A controller's files exist only where the parent enabled it in
//! `cgroup.subtree_control`, so a missing file means a missing controller
//! (or, for the burst and the I/O weights, a kernel without the feature).
//! Everything is checked before anything is written.

use std::path::Path;

use crate::fsutil::{read_opt, write};
use crate::guest::{self, GuestCgroup};
use crate::limits::{
    DEFAULT_PERIOD_US, DEFAULT_WEIGHT, IoMax, check_cpu, check_cpus, check_io_max, check_weight,
    parse_device, wanted_controllers,
};
use crate::{CgroupError, Limits};

/// The file whose presence shows that a controller is enabled for the guest.
fn marker(controller: &str) -> &'static str {
    match controller {
        "memory" => "memory.max",
        "pids" => "pids.max",
        "cpu" => "cpu.max",
        "cpuset" => "cpuset.cpus",
        _ => "io.stat",
    }
}

/// Applies `limits` to a v2 guest.
pub(crate) fn apply(guest: &GuestCgroup, limits: &Limits) -> Result<(), CgroupError> {
    let Some(dir) = guest.dirs().first() else {
        return Ok(());
    };
    check(dir, limits)?;
    guest::write_max(&dir.join("memory.max"), limits.memory_max)?;
    guest::write_max(&dir.join("memory.high"), limits.memory_high)?;
    guest::write_max(&dir.join("memory.swap.max"), limits.memory_swap_max)?;
    guest::write_max(&dir.join("pids.max"), limits.pids_max)?;
    apply_cpu(dir, limits)?;
    let cpus = dir.join("cpuset.cpus");
    if cpus.exists() {
        // An empty cpuset.cpus follows the parent's CPUs; the kernel strips
        // the newline, which is there because an empty write never reaches it.
        write(&cpus, limits.cpuset_cpus.as_deref().unwrap_or("\n"))?;
    }
    apply_io(dir, limits)
}

/// Refuses limits whose controller is not enabled, whose file this kernel
/// lacks, or whose value is out of range.
fn check(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    for (limit, set, controller) in wanted_controllers(limits) {
        if set && !dir.join(marker(controller)).exists() {
            return Err(CgroupError::MissingController { limit, controller });
        }
    }
    let swap = dir.join("memory.swap.max");
    if limits.memory_swap_max.is_some() && !swap.exists() {
        return Err(CgroupError::NoSwapAccounting { path: swap });
    }
    let (max, burst) = (dir.join("cpu.max"), dir.join("cpu.max.burst"));
    check_cpu(limits, &max, &max, &burst)?;
    if limits.cpu_burst_us.is_some() && !burst.exists() {
        return Err(CgroupError::unsupported("cpu_burst_us", vec![burst]));
    }
    check_weight("cpu_weight", limits.cpu_weight, &dir.join("cpu.weight"))?;
    if let Some(cpus) = &limits.cpuset_cpus {
        check_cpus(cpus, &dir.join("cpuset.cpus"))?;
    }
    if limits.io_weight.is_some() {
        let Some((file, _)) = io_weight_file(dir, DEFAULT_WEIGHT) else {
            let files = vec![dir.join("io.weight"), dir.join("io.bfq.weight")];
            return Err(CgroupError::unsupported("io_weight", files));
        };
        check_weight("io_weight", limits.io_weight, &file)?;
    }
    let io_max = dir.join("io.max");
    check_io_max(&limits.io_max, [io_max.as_path(); 4])
}

/// Writes `cpu.weight`, then `cpu.max` (quota and period in one write) and
/// `cpu.max.burst` in the order [`guest::with_burst`] explains.
fn apply_cpu(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let weight = dir.join("cpu.weight");
    if weight.exists() {
        let value = limits.cpu_weight.unwrap_or(DEFAULT_WEIGHT);
        write(&weight, &value.to_string())?;
    }
    let max = dir.join("cpu.max");
    if !max.exists() {
        return Ok(());
    }
    let value = match limits.cpu_max {
        Some(cpu) => format!("{} {}", cpu.quota_us, cpu.period_us),
        None => format!("max {DEFAULT_PERIOD_US}"),
    };
    guest::with_burst(&dir.join("cpu.max.burst"), limits.cpu_burst_us, || {
        write(&max, &value)
    })
}

/// The weight file of `dir` and the line that sets `weight` in it: io.cost's
/// `io.weight` (1..=10000, hangar's scale) or else BFQ's `io.bfq.weight`
/// (1..=1000, clamped).
fn io_weight_file(dir: &Path, weight: u32) -> Option<(std::path::PathBuf, String)> {
    let cost = dir.join("io.weight");
    if cost.exists() {
        return Some((cost, format!("default {weight}")));
    }
    let bfq = dir.join("io.bfq.weight");
    bfq.exists()
        .then(|| (bfq, format!("default {}", weight.clamp(1, 1000))))
}

fn apply_io(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let weight = limits.io_weight.unwrap_or(DEFAULT_WEIGHT);
    if let Some((file, line)) = io_weight_file(dir, weight) {
        write(&file, &line)?;
    }
    let path = dir.join("io.max");
    if let Some(current) = read_opt(&path)? {
        for line in io_max_writes(&path, &current, &limits.io_max)? {
            write(&path, &line)?;
        }
    }
    Ok(())
}

/// The lines to write to `io.max` (current content `current`, one line per
/// limited device) so that it holds `wanted` and nothing else. A device with
/// every value `max` drops out of the file.
fn io_max_writes(path: &Path, current: &str, wanted: &[IoMax]) -> Result<Vec<String>, CgroupError> {
    let mut set = Vec::new();
    for line in current.lines().filter(|l| !l.trim().is_empty()) {
        let device = line.split_whitespace().next().and_then(parse_device);
        set.push(device.ok_or_else(|| CgroupError::Parse {
            path: path.to_path_buf(),
            value: line.to_owned(),
        })?);
    }
    let unlimited = IoMax::default();
    let mut lines: Vec<String> = set
        .iter()
        .filter(|dev| !wanted.iter().any(|w| (w.major, w.minor) == **dev))
        .map(|&(major, minor)| {
            io_max_line(&IoMax {
                major,
                minor,
                ..unlimited.clone()
            })
        })
        .collect();
    for io in wanted {
        let no_limit = [io.read_bps, io.write_bps, io.read_iops, io.write_iops] == [None; 4];
        if !no_limit || set.contains(&(io.major, io.minor)) {
            lines.push(io_max_line(io));
        }
    }
    Ok(lines)
}

/// `MAJ:MIN rbps=N wbps=max riops=max wiops=max`.
fn io_max_line(io: &IoMax) -> String {
    let v = |value: Option<u64>| value.map_or("max".to_owned(), |n| n.to_string());
    format!(
        "{} rbps={} wbps={} riops={} wiops={}",
        io.device(),
        v(io.read_bps),
        v(io.write_bps),
        v(io.read_iops),
        v(io.write_iops)
    )
}

#[cfg(test)]
mod tests;
