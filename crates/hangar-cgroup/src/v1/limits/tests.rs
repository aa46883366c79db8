//! The v1 mappings of every limit, against a fake tree.

use std::path::Path;

use super::{shares, throttle_writes};
use crate::testutil::{TempDir, fake_v1, get, put, v1_kernel_files};
use crate::{CgroupError, Cgroups, CpuMax, GuestCgroup, IoMax, Limits};

const MIB: u64 = 1024 * 1024;

/// A v1 guest `hangar/7` created with `limits` on a fake tree that has the
/// kernel's files; the tree's root is `tmp`.
fn created(tmp: &TempDir, limits: &Limits) -> GuestCgroup {
    v1_kernel_files(tmp);
    fake_v1(tmp).create("hangar", "7", limits).unwrap()
}

fn file(tmp: &TempDir, hierarchy: &str, name: &str) -> String {
    get(&tmp.path().join(hierarchy).join("hangar/7").join(name))
}

fn cpu_max(quota_us: u64, period_us: u64) -> Option<CpuMax> {
    Some(CpuMax {
        quota_us,
        period_us,
    })
}

#[test]
fn create_writes_memory_and_pids_limits() {
    let tmp = TempDir::new();
    let limits = Limits {
        memory_max: Some(64 * MIB),
        pids_max: Some(5),
        ..Limits::default()
    };
    fake_v1(&tmp).create("hangar", "7", &limits).unwrap();
    assert_eq!(
        get(&tmp.path().join("memory/hangar/7/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(get(&tmp.path().join("pids/hangar/7/pids.max")), "5");
}

#[test]
fn swap_limit_is_written_as_memory_plus_swap() {
    let tmp = TempDir::new();
    let memsw = tmp
        .path()
        .join("memory/hangar/7/memory.memsw.limit_in_bytes");
    put(&memsw, "9223372036854771712\n");
    let limits = Limits {
        memory_max: Some(64 * MIB),
        memory_swap_max: Some(32 * MIB),
        ..Limits::default()
    };
    fake_v1(&tmp).create("hangar", "7", &limits).unwrap();
    assert_eq!(get(&memsw), (96 * MIB).to_string());
    assert_eq!(
        get(&tmp.path().join("memory/hangar/7/memory.limit_in_bytes")),
        "67108864"
    );
}

#[test]
fn no_swap_limit_resets_memory_plus_swap_to_unlimited() {
    let tmp = TempDir::new();
    let memsw = tmp
        .path()
        .join("memory/hangar/7/memory.memsw.limit_in_bytes");
    put(&memsw, "100663296\n");
    fake_v1(&tmp)
        .create("hangar", "7", &Limits::default())
        .unwrap();
    assert_eq!(get(&memsw), "-1");
    assert_eq!(
        get(&tmp.path().join("memory/hangar/7/memory.limit_in_bytes")),
        "-1"
    );
}

#[test]
fn swap_limit_without_swap_accounting_names_the_missing_file() {
    let tmp = TempDir::new();
    let limits = Limits {
        memory_max: Some(MIB),
        memory_swap_max: Some(MIB),
        ..Limits::default()
    };
    let err = fake_v1(&tmp).create("hangar", "7", &limits).unwrap_err();
    assert!(
        matches!(&err, CgroupError::NoSwapAccounting { path } if path.ends_with("memory.memsw.limit_in_bytes")),
        "{err}"
    );
}

#[test]
fn swap_limit_without_memory_limit_is_refused() {
    let tmp = TempDir::new();
    let limits = Limits {
        memory_swap_max: Some(MIB),
        ..Limits::default()
    };
    let err = fake_v1(&tmp).create("hangar", "7", &limits).unwrap_err();
    assert!(
        matches!(err, CgroupError::SwapWithoutMemory { swap: MIB }),
        "{err}"
    );
}

#[test]
fn pids_limit_without_pids_hierarchy_is_refused() {
    let tmp = TempDir::new();
    std::fs::create_dir(tmp.path().join("memory")).unwrap();
    let cgroups = Cgroups::v1_at(vec![("memory".into(), tmp.path().join("memory"))]);
    let limits = Limits {
        pids_max: Some(3),
        ..Limits::default()
    };
    let err = cgroups.create("hangar", "7", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "pids",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn apply_none_resets_pids_max_to_max() {
    let tmp = TempDir::new();
    let cgroups = fake_v1(&tmp);
    let guest = cgroups
        .create(
            "hangar",
            "7",
            &Limits {
                pids_max: Some(5),
                ..Limits::default()
            },
        )
        .unwrap();
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(get(&tmp.path().join("pids/hangar/7/pids.max")), "max");
}

#[test]
fn memory_high_is_the_soft_limit_and_none_resets_it() {
    let tmp = TempDir::new();
    let limits = Limits {
        memory_high: Some(48 * MIB),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(
        file(&tmp, "memory", "memory.soft_limit_in_bytes"),
        (48 * MIB).to_string()
    );
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "memory", "memory.soft_limit_in_bytes"), "-1");
}

#[test]
fn cpu_max_is_cfs_quota_and_period_and_none_resets_both() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpu_max: cpu_max(25_000, 50_000),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(file(&tmp, "cpu", "cpu.cfs_quota_us"), "25000");
    assert_eq!(file(&tmp, "cpu", "cpu.cfs_period_us"), "50000");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "cpu", "cpu.cfs_quota_us"), "-1");
    assert_eq!(file(&tmp, "cpu", "cpu.cfs_period_us"), "100000");
}

#[test]
fn cpu_burst_is_written_and_none_resets_it_to_zero() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpu_max: cpu_max(25_000, 100_000),
        cpu_burst_us: Some(10_000),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(file(&tmp, "cpu", "cpu.cfs_burst_us"), "10000");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "cpu", "cpu.cfs_burst_us"), "0");
}

#[test]
fn cpu_burst_without_burst_file_names_the_file() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpu_max: cpu_max(25_000, 100_000),
        cpu_burst_us: Some(1_000),
        ..Limits::default()
    };
    let err = fake_v1(&tmp).create("hangar", "7", &limits).unwrap_err();
    let burst = tmp.path().join("cpu/hangar/7/cpu.cfs_burst_us");
    assert_eq!(
        err.to_string(),
        format!(
            "limit cpu_burst_us needs {}, which this kernel does not provide: \
             CFS burst needs Linux 5.14 or later; leave cpu.burst unset",
            burst.display()
        )
    );
}

#[test]
fn no_burst_and_no_burst_file_is_fine() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpu_max: cpu_max(25_000, 100_000),
        ..Limits::default()
    };
    fake_v1(&tmp).create("hangar", "7", &limits).unwrap();
    assert_eq!(file(&tmp, "cpu", "cpu.cfs_quota_us"), "25000");
}

#[test]
fn cpu_weight_becomes_shares_and_none_resets_to_1024() {
    assert_eq!(
        [shares(1), shares(100), shares(200), shares(10_000)],
        [10, 1024, 2048, 102_400]
    );
    let tmp = TempDir::new();
    let limits = Limits {
        cpu_weight: Some(200),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(file(&tmp, "cpu", "cpu.shares"), "2048");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "cpu", "cpu.shares"), "1024");
}

#[test]
fn a_bad_value_is_refused_before_anything_is_written() {
    let tmp = TempDir::new();
    v1_kernel_files(&tmp);
    let limits = Limits {
        memory_max: Some(MIB),
        cpu_weight: Some(0),
        ..Limits::default()
    };
    let guest = fake_v1(&tmp).guest("hangar", "7");
    let err = guest.apply(&limits).unwrap_err();
    assert!(
        matches!(&err, CgroupError::InvalidLimit { limit: "cpu_weight", value, path, .. }
            if value == "0" && path.ends_with("cpu/hangar/7/cpu.shares")),
        "{err}"
    );
    assert_eq!(
        file(&tmp, "memory", "memory.limit_in_bytes"),
        "9223372036854771712\n"
    );
}

#[test]
fn cpuset_cpus_are_written_and_none_copies_the_parents() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpuset_cpus: Some("0,2".to_owned()),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(file(&tmp, "cpuset", "cpuset.cpus"), "0,2");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "cpuset", "cpuset.cpus"), "0-3");
}

#[test]
fn malformed_cpuset_names_value_and_file() {
    let tmp = TempDir::new();
    let limits = Limits {
        cpuset_cpus: Some("0-".to_owned()),
        ..Limits::default()
    };
    v1_kernel_files(&tmp);
    let err = fake_v1(&tmp).create("hangar", "7", &limits).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("invalid cpuset_cpus \"0-\" for "), "{msg}");
    assert!(msg.contains("cpuset/hangar/7/cpuset.cpus"), "{msg}");
}

#[test]
fn io_weight_goes_to_bfq_clamped_and_none_resets_to_100() {
    let tmp = TempDir::new();
    let limits = |w| Limits {
        io_weight: Some(w),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits(300));
    assert_eq!(file(&tmp, "blkio", "blkio.bfq.weight"), "300");
    guest.apply(&limits(5_000)).unwrap();
    assert_eq!(file(&tmp, "blkio", "blkio.bfq.weight"), "1000");
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(file(&tmp, "blkio", "blkio.bfq.weight"), "100");
}

#[test]
fn io_weight_on_cfq_is_scaled_to_its_default_of_500() {
    let tmp = TempDir::new();
    put(&tmp.path().join("blkio/hangar/7/blkio.weight"), "500\n");
    let limits = |w| Limits {
        io_weight: Some(w),
        ..Limits::default()
    };
    let guest = created(&tmp, &limits(100));
    assert_eq!(file(&tmp, "blkio", "blkio.weight"), "500");
    guest.apply(&limits(1)).unwrap();
    assert_eq!(file(&tmp, "blkio", "blkio.weight"), "10");
    guest.apply(&limits(300)).unwrap();
    assert_eq!(file(&tmp, "blkio", "blkio.weight"), "1000");
}

#[test]
fn io_weight_without_weight_files_names_both() {
    let tmp = TempDir::new();
    let limits = Limits {
        io_weight: Some(100),
        ..Limits::default()
    };
    let err = fake_v1(&tmp).create("hangar", "7", &limits).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("limit io_weight needs ")
            && msg.contains("blkio/hangar/7/blkio.weight or ")
            && msg
                .contains("blkio/hangar/7/blkio.bfq.weight, which this kernel does not provide: ")
            && msg.contains("BFQ I/O scheduler")
            && msg.contains("none, mq-deadline and kyber have none"),
        "{msg}"
    );
}

#[test]
fn io_max_writes_each_throttle_file_and_none_removes_the_device() {
    let tmp = TempDir::new();
    let limits = Limits {
        io_max: vec![IoMax {
            major: 254,
            minor: 0,
            write_bps: Some(MIB),
            read_iops: Some(100),
            ..IoMax::default()
        }],
        ..Limits::default()
    };
    let guest = created(&tmp, &limits);
    assert_eq!(
        file(&tmp, "blkio", "blkio.throttle.write_bps_device"),
        "254:0 1048576"
    );
    assert_eq!(
        file(&tmp, "blkio", "blkio.throttle.read_iops_device"),
        "254:0 100"
    );
    assert_eq!(file(&tmp, "blkio", "blkio.throttle.read_bps_device"), "");
    put(
        &tmp.path()
            .join("blkio/hangar/7/blkio.throttle.write_bps_device"),
        "254:0 1048576\n",
    );
    guest.apply(&Limits::default()).unwrap();
    assert_eq!(
        file(&tmp, "blkio", "blkio.throttle.write_bps_device"),
        "254:0 0"
    );
}

#[test]
fn throttle_writes_reset_unlisted_and_unset_devices_only() {
    let wanted = [
        IoMax {
            major: 8,
            minor: 0,
            read_bps: Some(2 * MIB),
            ..IoMax::default()
        },
        IoMax {
            major: 8,
            minor: 16,
            ..IoMax::default()
        },
        IoMax {
            major: 8,
            minor: 32,
            ..IoMax::default()
        },
    ];
    let current = "8:0 1048576\n8:16 4096\n259:0 1000\n";
    let lines = throttle_writes(Path::new("f"), current, &wanted, |io| io.read_bps).unwrap();
    assert_eq!(lines, ["259:0 0", "8:0 2097152", "8:16 0"]);
}

#[test]
fn garbage_in_a_throttle_file_names_the_line() {
    let err = throttle_writes(Path::new("f"), "sda 5\n", &[], |io| io.read_bps).unwrap_err();
    assert!(
        matches!(&err, CgroupError::Parse { value, .. } if value == "sda 5"),
        "{err}"
    );
}

#[test]
fn io_max_without_blkio_hierarchy_is_refused() {
    let tmp = TempDir::new();
    std::fs::create_dir(tmp.path().join("memory")).unwrap();
    let cgroups = Cgroups::v1_at(vec![("memory".into(), tmp.path().join("memory"))]);
    let limits = Limits {
        io_max: vec![IoMax::default()],
        ..Limits::default()
    };
    let err = cgroups.create("hangar", "7", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                limit: "io_max",
                controller: "blkio"
            }
        ),
        "{err}"
    );
}
