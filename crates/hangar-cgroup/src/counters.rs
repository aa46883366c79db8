//! A guest's resource counters: usage, peaks, limits and how often a limit
//! was hit, in the same units on both backends.
//!
//! The backends fill [`Counters`] from their own files (`v1::counters`,
//! `v2::counters`); this module holds the types and the parsers of the
//! per-device I/O files they share the shape of.

use std::path::Path;

use crate::CgroupError;
use crate::limits::parse_device;

/// One limited resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counter {
    /// Usage now.
    pub current: u64,
    /// Highest usage seen, where the kernel keeps it.
    pub peak: Option<u64>,
    /// The limit, `None` when unlimited.
    pub limit: Option<u64>,
    /// How often usage ran into the limit (allocations that had to reclaim or
    /// failed, forks refused).
    pub hits: u64,
}

/// CPU time used, and the time spent throttled by `cpu_max`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuCounters {
    /// All CPU time, in microseconds.
    pub usage_us: u64,
    /// User-mode CPU time, in microseconds.
    pub user_us: u64,
    /// Kernel-mode CPU time, in microseconds.
    pub system_us: u64,
    /// Bandwidth periods in which the guest wanted to run.
    pub periods: u64,
    /// Periods in which the guest used up its quota and was stopped.
    pub throttled_periods: u64,
    /// Time the guest's runnable tasks spent stopped, in microseconds.
    pub throttled_us: u64,
}

/// Bytes and operations of one block device.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoCounter {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ios: u64,
    pub write_ios: u64,
}

/// Everything a guest's cgroup counts. Controllers that are not there read
/// as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Memory in bytes.
    pub memory: Counter,
    /// Swap in bytes, `None` without swap accounting. On cgroup v1 the kernel
    /// only counts memory and swap together, so there this is memory+swap
    /// (see `swap_includes_memory`), and recent kernels (seen on 6.18) no
    /// longer count its hits: `memory.memsw.failcnt` stays 0. A v1 guest whose
    /// swap cap is 0 runs into memory+swap first, so it shows no hits at all,
    /// only `oom_kills`.
    pub swap: Option<Counter>,
    /// Whether `swap` counts memory+swap (cgroup v1) rather than swap alone.
    pub swap_includes_memory: bool,
    /// Processes and threads.
    pub pids: Counter,
    pub cpu: CpuCounters,
    /// Devices the guest did I/O on, sorted by device number.
    pub io: Vec<IoCounter>,
    /// Processes the OOM killer killed in the guest.
    pub oom_kills: u64,
}

/// The entry for `major:minor` in `io`, added in device order if missing.
fn entry(io: &mut Vec<IoCounter>, (major, minor): (u32, u32)) -> &mut IoCounter {
    let at = match io.binary_search_by_key(&(major, minor), |c| (c.major, c.minor)) {
        Ok(at) => at,
        Err(at) => {
            let counter = IoCounter {
                major,
                minor,
                ..IoCounter::default()
            };
            io.insert(at, counter);
            at
        }
    };
    &mut io[at]
}

/// Adds a v1 `blkio.throttle.io_service_bytes` (`bytes`) or `io_serviced`
/// file to `io`: lines `MAJ:MIN Read N`, `MAJ:MIN Write N`, ..., and a last
/// `Total N` line that is skipped.
pub(crate) fn add_blkio(
    io: &mut Vec<IoCounter>,
    path: &Path,
    text: &str,
    bytes: bool,
) -> Result<(), CgroupError> {
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [dev, op, n] = fields[..] else {
            continue;
        };
        let n = parse_field(path, line, n)?;
        let device = parse_device(dev).ok_or_else(|| parse_error(path, line))?;
        let counter = entry(io, device);
        match (op, bytes) {
            ("Read", true) => counter.read_bytes = n,
            ("Write", true) => counter.write_bytes = n,
            ("Read", false) => counter.read_ios = n,
            ("Write", false) => counter.write_ios = n,
            _ => {}
        }
    }
    Ok(())
}

/// Parses v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`.
pub(crate) fn parse_io_stat(path: &Path, text: &str) -> Result<Vec<IoCounter>, CgroupError> {
    let mut io = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(dev) = fields.next() else {
            continue;
        };
        let device = parse_device(dev).ok_or_else(|| parse_error(path, line))?;
        let counter = entry(&mut io, device);
        for field in fields {
            let Some((key, n)) = field.split_once('=') else {
                return Err(parse_error(path, line));
            };
            let slot = match key {
                "rbytes" => &mut counter.read_bytes,
                "wbytes" => &mut counter.write_bytes,
                "rios" => &mut counter.read_ios,
                "wios" => &mut counter.write_ios,
                _ => continue,
            };
            *slot = parse_field(path, line, n)?;
        }
    }
    Ok(io)
}

fn parse_field(path: &Path, line: &str, n: &str) -> Result<u64, CgroupError> {
    n.parse().map_err(|_| parse_error(path, line))
}

fn parse_error(path: &Path, line: &str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        value: line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(major: u32, minor: u32, rb: u64, wb: u64, rio: u64, wio: u64) -> IoCounter {
        IoCounter {
            major,
            minor,
            read_bytes: rb,
            write_bytes: wb,
            read_ios: rio,
            write_ios: wio,
        }
    }

    #[test]
    fn blkio_bytes_and_serviced_merge_per_device_in_order() {
        let bytes = "254:0 Read 4096\n254:0 Write 1048576\n254:0 Sync 0\n254:0 Async 0\n\
                     254:0 Discard 0\n254:0 Total 1052672\n8:0 Read 512\n8:0 Write 0\n\
                     8:0 Total 512\nTotal 1053184\n";
        let ios = "254:0 Read 1\n254:0 Write 256\n254:0 Total 257\nTotal 257\n";
        let mut io = Vec::new();
        add_blkio(&mut io, Path::new("b"), bytes, true).unwrap();
        add_blkio(&mut io, Path::new("s"), ios, false).unwrap();
        assert_eq!(
            io,
            [dev(8, 0, 512, 0, 0, 0), dev(254, 0, 4096, 1 << 20, 1, 256)]
        );
    }

    #[test]
    fn empty_blkio_file_has_no_devices() {
        let mut io = Vec::new();
        add_blkio(&mut io, Path::new("b"), "Total 0\n", true).unwrap();
        assert!(io.is_empty());
    }

    #[test]
    fn io_stat_reads_known_keys_and_skips_others() {
        let text = "259:0 rbytes=8192 wbytes=4096 rios=2 wios=1 dbytes=0 dios=0\n\
                    8:16 rbytes=1 wbytes=2 rios=3 wios=4 cost.usage=7\n";
        let io = parse_io_stat(Path::new("io.stat"), text).unwrap();
        assert_eq!(io, [dev(8, 16, 1, 2, 3, 4), dev(259, 0, 8192, 4096, 2, 1)]);
    }

    #[test]
    fn garbage_in_io_stat_names_the_line() {
        let err = parse_io_stat(Path::new("io.stat"), "8:0 rbytes=x\n").unwrap_err();
        assert!(
            matches!(&err, CgroupError::Parse { value, .. } if value == "8:0 rbytes=x"),
            "{err}"
        );
    }
}
