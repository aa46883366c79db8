//! Applying [`Limits`] on cgroup v1, where every controller has its own
//! hierarchy, its own files and often its own units.
//!
//! Everything is checked first (controllers mounted, files present, values in
//! range), then written controller by controller, each in an order the kernel
//! accepts.

use std::path::{Path, PathBuf};

use crate::fsutil::{parse_u64, read, read_opt, write};
use crate::guest::{self, GuestCgroup};
use crate::limits::{
    DEFAULT_PERIOD_US, DEFAULT_WEIGHT, IoMax, check_cpu, check_cpus, check_io_max, check_weight,
    parse_device, wanted_controllers,
};
use crate::{CgroupError, Limits};

const QUOTA: &str = "cpu.cfs_quota_us";
const PERIOD: &str = "cpu.cfs_period_us";
const BURST: &str = "cpu.cfs_burst_us";

/// The legacy CFQ weight (Linux < 5.0): 10..=1000, default 500.
const CFQ_WEIGHT: &str = "blkio.weight";
/// BFQ's weight: 1..=1000, default 100.
const BFQ_WEIGHT: &str = "blkio.bfq.weight";

/// Picks one direction's limit out of an [`IoMax`].
type Field = fn(&IoMax) -> Option<u64>;

/// The four throttle files and the field of [`IoMax`] each one holds.
const THROTTLE_FILES: [(&str, Field); 4] = [
    ("blkio.throttle.read_bps_device", |io| io.read_bps),
    ("blkio.throttle.write_bps_device", |io| io.write_bps),
    ("blkio.throttle.read_iops_device", |io| io.read_iops),
    ("blkio.throttle.write_iops_device", |io| io.write_iops),
];

/// Applies `limits` to a v1 guest.
pub(crate) fn apply(guest: &GuestCgroup, limits: &Limits) -> Result<(), CgroupError> {
    check(guest, limits)?;
    apply_memory(guest.dir_for("memory"), limits)?;
    if let Some(dir) = guest.dir_for("cpu") {
        apply_cpu(dir, limits)?;
    }
    if let Some(dir) = guest.dir_for("cpuset") {
        apply_cpuset(dir, limits)?;
    }
    if let Some(dir) = guest.dir_for("blkio") {
        apply_blkio(dir, limits)?;
    }
    match guest.dir_for("pids") {
        Some(dir) => guest::write_max(&dir.join("pids.max"), limits.pids_max),
        None => Ok(()),
    }
}

/// Refuses limits whose hierarchy is not mounted, whose file this kernel
/// lacks, or whose value is out of range, before anything is written.
fn check(guest: &GuestCgroup, limits: &Limits) -> Result<(), CgroupError> {
    for (limit, set, controller) in wanted_controllers(limits) {
        let controller = if controller == "io" {
            "blkio"
        } else {
            controller
        };
        if set && guest.dir_for(controller).is_none() {
            return Err(CgroupError::MissingController { limit, controller });
        }
    }
    if let Some(dir) = guest.dir_for("cpu") {
        let burst = dir.join(BURST);
        check_cpu(limits, &dir.join(QUOTA), &dir.join(PERIOD), &burst)?;
        if limits.cpu_burst_us.is_some() && !burst.exists() {
            return Err(CgroupError::unsupported("cpu_burst_us", vec![burst]));
        }
        check_weight("cpu_weight", limits.cpu_weight, &dir.join("cpu.shares"))?;
    }
    if let (Some(dir), Some(cpus)) = (guest.dir_for("cpuset"), &limits.cpuset_cpus) {
        check_cpus(cpus, &dir.join("cpuset.cpus"))?;
    }
    if let Some(dir) = guest.dir_for("blkio") {
        if limits.io_weight.is_some() {
            let Some((file, _)) = io_weight_file(dir, DEFAULT_WEIGHT) else {
                let files = vec![dir.join(CFQ_WEIGHT), dir.join(BFQ_WEIGHT)];
                return Err(CgroupError::unsupported("io_weight", files));
            };
            check_weight("io_weight", limits.io_weight, &file)?;
        }
        let files = THROTTLE_FILES.map(|(file, _)| dir.join(file));
        if !limits.io_max.is_empty() && !files[0].exists() {
            return Err(CgroupError::unsupported("io_max", vec![files[0].clone()]));
        }
        check_io_max(&limits.io_max, files.each_ref().map(PathBuf::as_path))?;
    }
    Ok(())
}

/// Writes the memory limits. The hard limit and the memory+swap limit go in
/// an order the kernel accepts: it refuses any state where
/// `memory.memsw.limit_in_bytes` is below `memory.limit_in_bytes`.
fn apply_memory(dir: Option<&Path>, limits: &Limits) -> Result<(), CgroupError> {
    let Some(dir) = dir else {
        return Ok(());
    };
    let limit_file = dir.join("memory.limit_in_bytes");
    let limit = limits.memory_max.map_or("-1".to_owned(), |m| m.to_string());
    let memsw_file = dir.join("memory.memsw.limit_in_bytes");
    let memsw = match (limits.memory_max, limits.memory_swap_max) {
        (_, None) => None,
        (None, Some(swap)) => return Err(CgroupError::SwapWithoutMemory { swap }),
        (Some(memory), Some(swap)) => Some(memory.saturating_add(swap)),
    };
    if memsw.is_some() && !memsw_file.exists() {
        return Err(CgroupError::NoSwapAccounting { path: memsw_file });
    }
    let soft = limits
        .memory_high
        .map_or("-1".to_owned(), |m| m.to_string());
    write(&dir.join("memory.soft_limit_in_bytes"), &soft)?;
    if !memsw_file.exists() {
        return write(&limit_file, &limit);
    }
    let memsw_value = memsw.map_or("-1".to_owned(), |m| m.to_string());
    let current_memsw = parse_u64(&memsw_file, &read(&memsw_file)?)?;
    // Raising the memory limit above the current memory+swap limit only works
    // once memory+swap is raised; otherwise the memory limit goes first.
    if limits.memory_max.unwrap_or(u64::MAX) > current_memsw {
        write(&memsw_file, &memsw_value)?;
        write(&limit_file, &limit)
    } else {
        write(&limit_file, &limit)?;
        write(&memsw_file, &memsw_value)
    }
}

/// `cpu.shares` for a weight: 1024 is v1's default as 100 is v2's, and the
/// kernel's minimum is 2.
pub(crate) fn shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / u64::from(DEFAULT_WEIGHT)).max(2)
}

/// Writes `cpu.shares` and the CFS bandwidth: period before quota, since a
/// quota is valid for any period, and the burst around them (see
/// [`guest::with_burst`]). No limit is quota -1 with the default period.
fn apply_cpu(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let weight = limits.cpu_weight.unwrap_or(DEFAULT_WEIGHT);
    write(&dir.join("cpu.shares"), &shares(weight).to_string())?;
    let (quota, period) = match limits.cpu_max {
        Some(cpu) => (cpu.quota_us.to_string(), cpu.period_us),
        None => ("-1".to_owned(), DEFAULT_PERIOD_US),
    };
    guest::with_burst(&dir.join(BURST), limits.cpu_burst_us, || {
        write(&dir.join(PERIOD), &period.to_string())?;
        write(&dir.join(QUOTA), &quota)
    })
}

/// Writes `cpuset.cpus`: the guest's CPUs, or its parent's when it has none
/// of its own (v1 has no "inherit" value).
fn apply_cpuset(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let cpus = match &limits.cpuset_cpus {
        Some(cpus) => cpus.clone(),
        None => {
            let parent = dir.parent().unwrap_or(dir).join("cpuset.cpus");
            read(&parent)?.trim().to_owned()
        }
    };
    write(&dir.join("cpuset.cpus"), &cpus)
}

/// The weight file of `dir` and `weight` converted to its scale: CFQ's
/// `blkio.weight` (default 500, the conversion systemd uses) or BFQ's
/// `blkio.bfq.weight` (default 100, like hangar's scale), clamped to range.
fn io_weight_file(dir: &Path, weight: u32) -> Option<(PathBuf, u32)> {
    let cfq = dir.join(CFQ_WEIGHT);
    if cfq.exists() {
        return Some((cfq, weight.saturating_mul(5).clamp(10, 1000)));
    }
    let bfq = dir.join(BFQ_WEIGHT);
    bfq.exists().then(|| (bfq, weight.clamp(1, 1000)))
}

fn apply_blkio(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let weight = limits.io_weight.unwrap_or(DEFAULT_WEIGHT);
    if let Some((file, value)) = io_weight_file(dir, weight) {
        write(&file, &value.to_string())?;
    }
    for (file, field) in THROTTLE_FILES {
        let path = dir.join(file);
        if let Some(current) = read_opt(&path)? {
            for line in throttle_writes(&path, &current, &limits.io_max, field)? {
                write(&path, &line)?;
            }
        }
    }
    Ok(())
}

/// The lines to write to one throttle file (current content `current`, lines
/// `MAJ:MIN N`) so that it holds `field` of `wanted` and nothing else: `0`
/// removes a device's limit.
fn throttle_writes(
    path: &Path,
    current: &str,
    wanted: &[IoMax],
    field: Field,
) -> Result<Vec<String>, CgroupError> {
    let mut set = Vec::new();
    for line in current.lines().filter(|l| !l.trim().is_empty()) {
        let device = line.split_whitespace().next().and_then(parse_device);
        set.push(device.ok_or_else(|| CgroupError::Parse {
            path: path.to_path_buf(),
            value: line.to_owned(),
        })?);
    }
    let listed = |dev: &(u32, u32)| wanted.iter().any(|w| (w.major, w.minor) == *dev);
    let mut lines: Vec<String> = set
        .iter()
        .filter(|dev| !listed(dev))
        .map(|(major, minor)| format!("{major}:{minor} 0"))
        .collect();
    for io in wanted {
        match field(io) {
            Some(value) => lines.push(format!("{} {value}", io.device())),
            None if set.contains(&(io.major, io.minor)) => lines.push(format!("{} 0", io.device())),
            None => {}
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
