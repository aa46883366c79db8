//! Parsing of sample v1 counter files.

use crate::testutil::{TempDir, fake_v1, put};
use crate::{Counter, Counters, CpuCounters, IoCounter};

const MIB: u64 = 1024 * 1024;

/// Writes `files` (hierarchy, name, content) into the fake guest `hangar/7`.
fn files(tmp: &TempDir, files: &[(&str, &str, &str)]) {
    for (hierarchy, name, text) in files {
        put(
            &tmp.path().join(hierarchy).join("hangar/7").join(name),
            text,
        );
    }
}

/// Counter files of a guest that was OOM-killed under a 32 MiB cap, in the
/// format this project's host (Linux 6.18, cgroup v1) writes them.
const SAMPLE: &[(&str, &str, &str)] = &[
    ("memory", "memory.usage_in_bytes", "33554432\n"),
    ("memory", "memory.max_usage_in_bytes", "33558528\n"),
    ("memory", "memory.limit_in_bytes", "33554432\n"),
    ("memory", "memory.failcnt", "1290\n"),
    ("memory", "memory.memsw.usage_in_bytes", "33554432\n"),
    ("memory", "memory.memsw.max_usage_in_bytes", "33562624\n"),
    ("memory", "memory.memsw.limit_in_bytes", "33554432\n"),
    ("memory", "memory.memsw.failcnt", "17\n"),
    (
        "memory",
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    ),
    ("pids", "pids.current", "2\n"),
    ("pids", "pids.peak", "4\n"),
    ("pids", "pids.max", "3\n"),
    ("pids", "pids.events", "max 6\n"),
    ("cpuacct", "cpuacct.usage", "752381234\n"),
    ("cpuacct", "cpuacct.stat", "user 70\nsystem 5\n"),
    (
        "cpu",
        "cpu.stat",
        "nr_periods 30\nnr_throttled 29\nthrottled_time 2171234567\n\
         nr_bursts 0\nburst_time 0\n",
    ),
    (
        "blkio",
        "blkio.throttle.io_service_bytes_recursive",
        "254:0 Read 4096\n254:0 Write 3145728\n254:0 Sync 3145728\n\
         254:0 Async 4096\n254:0 Discard 0\n254:0 Total 3149824\nTotal 3149824\n",
    ),
    ("blkio", "blkio.throttle.io_service_bytes", "Total 0\n"),
    (
        "blkio",
        "blkio.throttle.io_serviced_recursive",
        "254:0 Read 1\n254:0 Write 24\n254:0 Total 25\nTotal 25\n",
    ),
];

#[test]
fn counters_read_every_v1_controller() {
    let tmp = TempDir::new();
    let guest = fake_v1(&tmp).guest("hangar", "7");
    files(&tmp, SAMPLE);
    let expected = Counters {
        memory: Counter {
            current: 32 * MIB,
            peak: Some(32 * MIB + 4096),
            limit: Some(32 * MIB),
            hits: 1290,
        },
        swap: Some(Counter {
            current: 32 * MIB,
            peak: Some(32 * MIB + 8192),
            limit: Some(32 * MIB),
            hits: 17,
        }),
        swap_includes_memory: true,
        pids: Counter {
            current: 2,
            peak: Some(4),
            limit: Some(3),
            hits: 6,
        },
        cpu: CpuCounters {
            usage_us: 752_381,
            user_us: 700_000,
            system_us: 50_000,
            periods: 30,
            throttled_periods: 29,
            throttled_us: 2_171_234,
        },
        io: vec![IoCounter {
            major: 254,
            minor: 0,
            read_bytes: 4096,
            write_bytes: 3 * MIB,
            read_ios: 1,
            write_ios: 24,
        }],
        oom_kills: 1,
    };
    assert_eq!(guest.counters().unwrap(), expected);
}

#[test]
fn unlimited_memory_without_swap_accounting_or_pids_peak() {
    let tmp = TempDir::new();
    let guest = fake_v1(&tmp).guest("hangar", "7");
    files(
        &tmp,
        &[
            ("memory", "memory.usage_in_bytes", "4096\n"),
            ("memory", "memory.max_usage_in_bytes", "8192\n"),
            ("memory", "memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory", "memory.failcnt", "0\n"),
            ("pids", "pids.current", "1\n"),
            ("pids", "pids.max", "max\n"),
            ("cpuacct", "cpuacct.usage", "0\n"),
            ("cpuacct", "cpuacct.stat", "user 0\nsystem 0\n"),
        ],
    );
    let counters = guest.counters().unwrap();
    let memory = Counter {
        current: 4096,
        peak: Some(8192),
        limit: None,
        hits: 0,
    };
    let pids = Counter {
        current: 1,
        limit: None,
        ..Counter::default()
    };
    assert_eq!(counters.memory, memory);
    assert_eq!(
        (counters.swap, counters.swap_includes_memory),
        (None, false)
    );
    assert_eq!(counters.pids, pids);
    assert_eq!((counters.oom_kills, counters.io), (0, vec![]));
}
