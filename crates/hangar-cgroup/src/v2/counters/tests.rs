//! Parsing of sample v2 counter files.

use crate::testutil::{TempDir, fake_v2, put};
use crate::{Counter, Counters, CpuCounters, IoCounter};

const MIB: u64 = 1024 * 1024;

#[test]
fn counters_read_every_v2_file() {
    let tmp = TempDir::new();
    let guest = fake_v2(&tmp).guest("hangar", "7");
    let dir = tmp.path().join("unified/hangar/7");
    let files = [
        ("memory.current", "33501184\n"),
        ("memory.peak", "33554432\n"),
        ("memory.max", "33554432\n"),
        (
            "memory.events",
            "low 0\nhigh 0\nmax 412\noom 1\noom_kill 1\noom_group_kill 0\n",
        ),
        ("memory.swap.current", "0\n"),
        ("memory.swap.peak", "0\n"),
        ("memory.swap.max", "0\n"),
        ("memory.swap.events", "high 0\nmax 3\nfail 3\n"),
        ("pids.current", "2\n"),
        ("pids.max", "max\n"),
        ("pids.events", "max 0\n"),
        (
            "cpu.stat",
            "usage_usec 750000\nuser_usec 700000\nsystem_usec 50000\n\
             core_sched.force_idle_usec 0\nnr_periods 30\nnr_throttled 29\n\
             throttled_usec 2171234\nnr_bursts 0\nburst_usec 0\n",
        ),
        (
            "io.stat",
            "254:0 rbytes=4096 wbytes=3145728 rios=1 wios=24 dbytes=0 dios=0\n",
        ),
    ];
    for (name, text) in files {
        put(&dir.join(name), text);
    }
    let expected = Counters {
        memory: Counter {
            current: 33_501_184,
            peak: Some(32 * MIB),
            limit: Some(32 * MIB),
            hits: 412,
        },
        swap: Some(Counter {
            current: 0,
            peak: Some(0),
            limit: Some(0),
            hits: 3,
        }),
        swap_includes_memory: false,
        pids: Counter {
            current: 2,
            peak: None,
            limit: None,
            hits: 0,
        },
        cpu: CpuCounters {
            usage_us: 750_000,
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
fn older_kernels_without_peaks_and_a_guest_without_controllers() {
    let tmp = TempDir::new();
    let guest = fake_v2(&tmp).guest("hangar", "7");
    let dir = tmp.path().join("unified/hangar/7");
    put(
        &dir.join("cpu.stat"),
        "usage_usec 10\nuser_usec 6\nsystem_usec 4\n",
    );
    assert_eq!(
        guest.counters().unwrap().cpu,
        CpuCounters {
            usage_us: 10,
            user_us: 6,
            system_us: 4,
            ..CpuCounters::default()
        }
    );
    put(&dir.join("memory.current"), "4096\n");
    put(&dir.join("memory.max"), "max\n");
    let counters = guest.counters().unwrap();
    let memory = Counter {
        current: 4096,
        ..Counter::default()
    };
    assert_eq!((counters.memory, counters.swap), (memory, None));
}
