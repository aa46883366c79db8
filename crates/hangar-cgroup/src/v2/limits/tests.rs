//! The v2 mappings of every limit, against a fake tree.

use std::path::Path;

use super::io_max_writes;
use crate::testutil::{TempDir, fake_v2, get, put, v2_kernel_files};
use crate::{CgroupError, CpuMax, GuestCgroup, IoMax, Limits};

const MIB: u64 = 1024 * 1024;

/// A v2 guest `hangar/7` created with `limits` on a fake tree that has the
/// kernel's files.
fn created(tmp: &TempDir, limits: &Limits) -> GuestCgroup {
    v2_kernel_files(tmp);
    fake_v2(tmp).create("hangar", "7", limits).unwrap()
}

fn file(tmp: &TempDir, name: &str) -> String {
    get(&tmp.path().join("unified/hangar/7").join(name))
}

#[test]
fn create_writes_limits() {
    let tmp = TempDir::new();
    let limits = Limits {
        memory_max: Some(64 * MIB),
        memory_swap_max: Some(0),
        memory_high: Some(48 * MIB),
        pids_max: Some(5),
        ..Limits::default()
    };
    created(&tmp, &limits);
    assert_eq!(file(&tmp, "memory.max"), "67108864");
    assert_eq!(file(&tmp, "memory.swap.max"), "0");
    assert_eq!(file(&tmp, "memory.high"), "50331648");
    assert_eq!(file(&tmp, "pids.max"), "5");
}

#[test]
fn apply_none_writes_max() {
    let tmp = TempDir::new();
    let limits = Limits {
        memory_max: Some(MIB),
        memory_high: Some(MIB),
        pids_max: Some(5),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    guest.apply(&Limits::default()).unwrap();
    for name in ["memory.max", "memory.high", "memory.swap.max", "pids.max"] {
        assert_eq!(file(&tmp, name), "max", "{name}");
    }
}

#[test]
fn swap_limit_without_swap_file_names_the_missing_file() {
    let tmp = TempDir::new();
    put(&tmp.path().join("unified/hangar/7/memory.max"), "max\n");
    let limits = Limits {
        memory_swap_max: Some(MIB),
        ..Limits::default()
    };
    let err = fake_v2(&tmp).create("hangar", "7", &limits).unwrap_err();
    assert!(
        matches!(&err, CgroupError::NoSwapAccounting { path } if path.ends_with("memory.swap.max")),
        "{err}"
    );
}

#[test]
fn limits_of_controllers_not_enabled_are_refused() {
    let tmp = TempDir::new();
    let cgroups = fake_v2(&tmp);
    let cases = [
        (
            Limits {
                memory_max: Some(MIB),
                ..Limits::default()
            },
            "memory",
        ),
        (
            Limits {
                cpu_weight: Some(5),
                ..Limits::default()
            },
            "cpu",
        ),
        (
            Limits {
                cpuset_cpus: Some("0".to_owned()),
                ..Limits::default()
            },
            "cpuset",
        ),
        (
            Limits {
                io_max: vec![IoMax::default()],
                ..Limits::default()
            },
            "io",
        ),
    ];
    for (limits, wanted) in cases {
        let err = cgroups.create("hangar", "7", &limits).unwrap_err();
        assert!(
            matches!(err, CgroupError::MissingController { controller, .. } if controller == wanted),
            "{wanted}: {err}"
        );
    }
}

#[test]
fn cpu_max_and_burst_are_written_and_none_resets_them() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpu_max: Some(CpuMax {
            quota_us: 25_000,
            period_us: 100_000,
        }),
        cpu_burst_us: Some(5_000),
        cpu_weight: Some(200),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(file(&tmp, "cpu.max"), "25000 100000");
    assert_eq!(file(&tmp, "cpu.max.burst"), "5000");
    assert_eq!(file(&tmp, "cpu.weight"), "200");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "cpu.max"), "max 100000");
    assert_eq!(file(&tmp, "cpu.max.burst"), "0");
    assert_eq!(file(&tmp, "cpu.weight"), "100");
}

#[test]
fn cpu_burst_on_a_kernel_without_it_names_the_file() {
    let tmp = TempDir::new();
    let dir = v2_kernel_files(&tmp);
    std::fs::remove_file(dir.join("cpu.max.burst")).unwrap();
    let limits = Limits {
        cpu_burst_us: Some(1_000),
        ..Limits::default()
    };
    let err = fake_v2(&tmp).create("hangar", "7", &limits).unwrap_err();
    assert!(
        matches!(&err, CgroupError::Unsupported { limit: "cpu_burst_us", paths, .. } if paths == &[dir.join("cpu.max.burst")]),
        "{err}"
    );
}

#[test]
fn cpu_weight_out_of_range_names_value_and_file() {
    let tmp = TempDir::new();
    v2_kernel_files(&tmp);
    let limits = Limits {
        cpu_weight: Some(10_001),
        ..Limits::default()
    };
    let err = fake_v2(&tmp).create("hangar", "7", &limits).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("invalid cpu_weight 10001 for ") && msg.contains("hangar/7/cpu.weight"),
        "{msg}"
    );
}

#[test]
fn cpuset_cpus_are_written_and_none_follows_the_parent() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpuset_cpus: Some("0-1".to_owned()),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(file(&tmp, "cpuset.cpus"), "0-1");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "cpuset.cpus"), "\n");
}

#[test]
fn io_weight_is_the_default_line_and_none_resets_it() {
    let tmp = TempDir::new();
    let limits = Limits {
        io_weight: Some(500),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(file(&tmp, "io.weight"), "default 500");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "io.weight"), "default 100");
}

#[test]
fn io_weight_falls_back_to_bfq_clamped_to_its_range() {
    let tmp = TempDir::new();
    let dir = v2_kernel_files(&tmp);
    std::fs::remove_file(dir.join("io.weight")).unwrap();
    put(&dir.join("io.bfq.weight"), "default 100\n");
    let limits = Limits {
        io_weight: Some(5_000),
        ..Limits::default()
    };
    fake_v2(&tmp).create("hangar", "7", &limits).unwrap();
    assert_eq!(file(&tmp, "io.bfq.weight"), "default 1000");
}

#[test]
fn io_weight_without_weight_files_names_both() {
    let tmp = TempDir::new();
    let dir = v2_kernel_files(&tmp);
    std::fs::remove_file(dir.join("io.weight")).unwrap();
    let limits = Limits {
        io_weight: Some(100),
        ..Limits::default()
    };
    let err = fake_v2(&tmp).create("hangar", "7", &limits).unwrap_err();
    assert!(
        matches!(&err, CgroupError::Unsupported { limit: "io_weight", paths, .. }
            if paths == &[dir.join("io.weight"), dir.join("io.bfq.weight")]),
        "{err}"
    );
}

#[test]
fn io_max_line_has_all_four_keys_and_none_resets_the_device() {
    let tmp = TempDir::new();
    let limits = Limits {
        io_max: vec![IoMax {
            major: 8,
            minor: 0,
            write_bps: Some(MIB),
            read_iops: Some(100),
            ..IoMax::default()
        }],
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(
        file(&tmp, "io.max"),
        "8:0 rbps=max wbps=1048576 riops=100 wiops=max"
    );
    put(
        &tmp.path().join("unified/hangar/7/io.max"),
        "8:0 rbps=max wbps=1048576 riops=100 wiops=max\n",
    );
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(
        file(&tmp, "io.max"),
        "8:0 rbps=max wbps=max riops=max wiops=max"
    );
}

#[test]
fn io_max_writes_reset_unlisted_devices_and_skip_unset_ones() {
    let dev = |minor, read_bps| IoMax {
        major: 8,
        minor,
        read_bps,
        ..IoMax::default()
    };
    let wanted = [dev(0, Some(2 * MIB)), dev(16, None), dev(32, None)];
    let current = "8:16 rbps=4096 wbps=max riops=max wiops=max\n\
                   259:0 rbps=max wbps=1000 riops=max wiops=max\n";
    let lines = io_max_writes(Path::new("io.max"), current, &wanted).unwrap();
    assert_eq!(
        lines,
        [
            "259:0 rbps=max wbps=max riops=max wiops=max",
            "8:0 rbps=2097152 wbps=max riops=max wiops=max",
            "8:16 rbps=max wbps=max riops=max wiops=max",
        ]
    );
}
