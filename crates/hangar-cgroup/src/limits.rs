//! What a guest may use: [`Limits`] and the range checks both backends run
//! before they write anything.
//!
//! The checks take the path of the file a value is headed for, so that an
//! error names the value, the file and what the kernel would have taken.
//! Checking everything first means a bad value leaves the guest's previous
//! limits in place instead of half of the new ones.

use std::collections::BTreeSet;
use std::path::Path;

use crate::CgroupError;

/// The weight the kernel gives a cgroup that was never set (v2 `cpu.weight`,
/// `io.weight`); hangar's weights use the same 1..=10000 scale.
pub const DEFAULT_WEIGHT: u32 = 100;

/// The CFS bandwidth period the kernel starts with, in microseconds.
pub const DEFAULT_PERIOD_US: u64 = 100_000;

/// Range of `cpu_weight` and `io_weight`, the cgroup v2 scale.
pub(crate) const WEIGHT_RANGE: (u32, u32) = (1, 10_000);

/// The kernel refuses CFS periods and quotas below 1 ms and periods above 1 s.
const MIN_QUOTA_US: u64 = 1_000;
const MAX_PERIOD_US: u64 = 1_000_000;

/// The largest CFS quota (and quota + burst) the kernel takes: its `MAX_BW`,
/// 2^44 - 1 µs, about 203 days.
const MAX_QUOTA_US: u64 = (1 << 44) - 1;

/// Resource limits of one guest; `None` (or an empty list) means unlimited or
/// the kernel's default. Applying `None` resets a value set earlier.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory_max: Option<u64>,
    /// Swap the guest may use on top of `memory_max`, in bytes. cgroup v1
    /// can only limit memory+swap together, so there it needs `memory_max`.
    pub memory_swap_max: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids_max: Option<u64>,
    /// Memory above which the guest is reclaimed first, in bytes (v2
    /// `memory.high`, which also throttles; v1 `memory.soft_limit_in_bytes`,
    /// which only steers reclaim under host memory pressure).
    pub memory_high: Option<u64>,
    /// CPU time per period (CFS bandwidth control).
    pub cpu_max: Option<CpuMax>,
    /// Unused quota the guest may save up and spend above `cpu_max` in a
    /// later period, in microseconds; at most the quota. Needs Linux 5.14+.
    pub cpu_burst_us: Option<u64>,
    /// Share of contended CPU time, 1..=10000; 100 is the default. On v1 it
    /// becomes `cpu.shares` = weight × 1024 / 100.
    pub cpu_weight: Option<u32>,
    /// CPUs the guest may run on, as the kernel lists them: `"0-1"`, `"0,2"`.
    /// `None` gives the guest its parent's CPUs.
    pub cpuset_cpus: Option<String>,
    /// Share of contended disk time, 1..=10000; 100 is the default. Where only
    /// BFQ's weight file (or v1 `blkio.weight`) exists it is clamped to its range.
    pub io_weight: Option<u32>,
    /// Per-device bandwidth and operation limits. A device left out of the
    /// list has its limits removed.
    pub io_max: Vec<IoMax>,
}

/// A CFS bandwidth limit: `quota_us` of CPU time in every `period_us`.
/// 25 % of one CPU is `{ quota_us: 25_000, period_us: 100_000 }`; a quota
/// above the period allows more than one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuMax {
    /// At least 1000 µs.
    pub quota_us: u64,
    /// 1000 µs to 1 s.
    pub period_us: u64,
}

/// The throttle of one block device (a whole disk, by its device numbers);
/// `None` leaves that direction unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoMax {
    pub major: u32,
    pub minor: u32,
    /// Bytes per second read.
    pub read_bps: Option<u64>,
    /// Bytes per second written.
    pub write_bps: Option<u64>,
    /// Read operations per second.
    pub read_iops: Option<u64>,
    /// Write operations per second.
    pub write_iops: Option<u64>,
}

impl IoMax {
    /// `major:minor` as the kernel writes it.
    pub fn device(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

/// Each limit, whether `limits` sets it, and the controller it needs (by its
/// v2 name; v1 calls `io` `blkio`).
pub(crate) fn wanted_controllers(limits: &Limits) -> [(&'static str, bool, &'static str); 10] {
    [
        ("memory_max", limits.memory_max.is_some(), "memory"),
        (
            "memory_swap_max",
            limits.memory_swap_max.is_some(),
            "memory",
        ),
        ("memory_high", limits.memory_high.is_some(), "memory"),
        ("pids_max", limits.pids_max.is_some(), "pids"),
        ("cpu_max", limits.cpu_max.is_some(), "cpu"),
        ("cpu_burst_us", limits.cpu_burst_us.is_some(), "cpu"),
        ("cpu_weight", limits.cpu_weight.is_some(), "cpu"),
        ("cpuset_cpus", limits.cpuset_cpus.is_some(), "cpuset"),
        ("io_weight", limits.io_weight.is_some(), "io"),
        ("io_max", !limits.io_max.is_empty(), "io"),
    ]
}

fn invalid(limit: &'static str, value: String, path: &Path, expected: String) -> CgroupError {
    CgroupError::InvalidLimit {
        limit,
        value,
        path: path.to_path_buf(),
        expected,
    }
}

/// Checks `cpu_max` and `cpu_burst_us` against the kernel's CFS bounds.
pub(crate) fn check_cpu(
    limits: &Limits,
    quota_file: &Path,
    period_file: &Path,
    burst_file: &Path,
) -> Result<(), CgroupError> {
    let quota = match limits.cpu_max {
        Some(CpuMax {
            quota_us,
            period_us,
        }) => {
            if !(MIN_QUOTA_US..=MAX_QUOTA_US).contains(&quota_us) {
                let expected = format!("a quota of {MIN_QUOTA_US} to {MAX_QUOTA_US} µs");
                return Err(invalid(
                    "cpu_max",
                    quota_us.to_string(),
                    quota_file,
                    expected,
                ));
            }
            if !(MIN_QUOTA_US..=MAX_PERIOD_US).contains(&period_us) {
                let expected = format!("a period of {MIN_QUOTA_US} to {MAX_PERIOD_US} µs");
                return Err(invalid(
                    "cpu_max",
                    period_us.to_string(),
                    period_file,
                    expected,
                ));
            }
            Some(quota_us)
        }
        None => None,
    };
    match (limits.cpu_burst_us, quota) {
        (Some(burst), Some(quota)) if burst > quota || burst + quota > MAX_QUOTA_US => {
            let expected = format!("at most the cpu_max quota of {quota} µs");
            Err(invalid(
                "cpu_burst_us",
                burst.to_string(),
                burst_file,
                expected,
            ))
        }
        _ => Ok(()),
    }
}

/// Checks a weight on hangar's 1..=10000 scale.
pub(crate) fn check_weight(
    limit: &'static str,
    value: Option<u32>,
    path: &Path,
) -> Result<(), CgroupError> {
    let (min, max) = WEIGHT_RANGE;
    match value {
        Some(w) if !(min..=max).contains(&w) => Err(invalid(
            limit,
            w.to_string(),
            path,
            format!("a weight from {min} to {max} (default {DEFAULT_WEIGHT})"),
        )),
        _ => Ok(()),
    }
}

/// Checks a CPU list such as `0-1` or `0,2,4-7`: ascending ranges of CPU
/// numbers, separated by commas. The kernel also takes strides (`0-7:2/4`),
/// which hangar does not need and so refuses rather than half-checks.
pub(crate) fn check_cpus(value: &str, path: &Path) -> Result<(), CgroupError> {
    let range_ok = |item: &str| {
        let (first, last) = item.split_once('-').unwrap_or((item, item));
        let cpu = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        matches!((cpu(first), cpu(last)), (Some(a), Some(b)) if a <= b)
    };
    if !value.is_empty() && value.split(',').all(range_ok) {
        Ok(())
    } else {
        Err(invalid(
            "cpuset_cpus",
            format!("{value:?}"),
            path,
            "CPU numbers and ranges separated by commas, such as \"0-1\" or \"0,2\"".to_owned(),
        ))
    }
}

/// Checks the per-device throttles: each device once, and every limit at
/// least 1 (the kernel reads 0 as "remove"); operations per second fit the
/// kernel's 32 bits. `files` are where read and write bytes and read and
/// write operations go, for the error to name.
pub(crate) fn check_io_max(list: &[IoMax], files: [&Path; 4]) -> Result<(), CgroupError> {
    let mut seen = BTreeSet::new();
    for io in list {
        if !seen.insert((io.major, io.minor)) {
            let expected = "each device at most once".to_owned();
            return Err(invalid("io_max", io.device(), files[0], expected));
        }
        let values = [
            (io.read_bps, u64::MAX),
            (io.write_bps, u64::MAX),
            (io.read_iops, u64::from(u32::MAX)),
            (io.write_iops, u64::from(u32::MAX)),
        ];
        for ((value, max), path) in values.into_iter().zip(files) {
            if let Some(v) = value.filter(|v| !(1..=max).contains(v)) {
                let value = format!("{} {v}", io.device());
                let expected = format!("limits from 1 to {max}; leave one out for no limit");
                return Err(invalid("io_max", value, path, expected));
            }
        }
    }
    Ok(())
}

/// Parses `major:minor` as cgroup files print block devices.
pub(crate) fn parse_device(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("cpu.max")
    }

    #[test]
    fn cpu_lists_in_kernel_syntax_are_accepted() {
        for cpus in ["0", "0-1", "0,2", "0-3,8-11,15"] {
            assert!(check_cpus(cpus, p()).is_ok(), "{cpus}");
        }
    }

    #[test]
    fn malformed_cpu_lists_are_refused_with_the_value() {
        for cpus in ["", "a", "1-0", "0,", "-1", "0-7:2/4", " 0"] {
            let err = check_cpus(cpus, p()).unwrap_err();
            assert!(
                matches!(&err, CgroupError::InvalidLimit { limit: "cpuset_cpus", value, .. } if *value == format!("{cpus:?}")),
                "{cpus:?}: {err}"
            );
        }
    }

    #[test]
    fn weights_outside_1_to_10000_are_refused() {
        assert!(check_weight("cpu_weight", Some(1), p()).is_ok());
        assert!(check_weight("cpu_weight", Some(10_000), p()).is_ok());
        assert!(check_weight("cpu_weight", None, p()).is_ok());
        let err = check_weight("io_weight", Some(0), Path::new("io.weight")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid io_weight 0 for io.weight: expected a weight from 1 to 10000 (default 100)"
        );
        assert!(check_weight("cpu_weight", Some(10_001), p()).is_err());
    }

    #[test]
    fn cpu_quota_and_period_bounds_are_the_kernels() {
        let limits = |quota_us, period_us, burst| Limits {
            cpu_max: Some(CpuMax {
                quota_us,
                period_us,
            }),
            cpu_burst_us: burst,
            ..Limits::default()
        };
        let check = |l: &Limits| check_cpu(l, p(), Path::new("period"), Path::new("burst"));
        assert!(check(&limits(1_000, 1_000_000, None)).is_ok());
        assert!(check(&limits(25_000, 100_000, Some(25_000))).is_ok());
        let err = check(&limits(999, 100_000, None)).unwrap_err();
        assert!(err.to_string().contains("cpu.max"), "{err}");
        let err = check(&limits(1_000, 1_000_001, None)).unwrap_err();
        assert!(err.to_string().contains("period"), "{err}");
        let err = check(&limits(25_000, 100_000, Some(25_001))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid cpu_burst_us 25001 for burst: expected at most the cpu_max quota of 25000 µs"
        );
    }

    #[test]
    fn io_max_refuses_zero_duplicates_and_huge_iops() {
        let dev = |read_bps, write_iops| IoMax {
            major: 8,
            minor: 0,
            read_bps,
            write_iops,
            ..IoMax::default()
        };
        let path = [
            Path::new("rbps"),
            Path::new("wbps"),
            Path::new("riops"),
            Path::new("wiops"),
        ];
        assert!(check_io_max(&[dev(Some(1), Some(u64::from(u32::MAX)))], path).is_ok());
        let err = check_io_max(&[dev(Some(0), None)], path).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid io_max 8:0 0 for rbps:"),
            "{err}"
        );
        let err = check_io_max(&[dev(None, Some(1 << 32))], path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid io_max 8:0 4294967296 for wiops: \
             expected limits from 1 to 4294967295; leave one out for no limit"
        );
        let err = check_io_max(&[dev(None, None), dev(None, None)], path).unwrap_err();
        assert!(err.to_string().contains("at most once"), "{err}");
    }

    #[test]
    fn limits_read_from_json_default_the_new_fields() {
        let limits: Limits = serde_json::from_str(r#"{"memory_max": 5}"#).unwrap();
        assert_eq!(
            limits,
            Limits {
                memory_max: Some(5),
                ..Limits::default()
            }
        );
    }
}
