//! Adopting a running guest whose monitor died: finding its init again, and what the
//! host can tell about the death of the monitor before us.
//!
//! A monitor no longer takes its guest with it (init's parent-death signal is cleared
//! before exec), so a guest can run without one: `hangar` sees it from the state file
//! (init's pid and start time, alive) and starts `hangar-monitor --adopt`, which ends
//! up here. init is not our child: we watch it through a pidfd, signal it through that
//! pidfd, and read its wait status from `/proc` while it is a zombie of the host's
//! init (when the host's init reaps it first, how it ended is not known).

use hangar_container::procstat;
use hangar_model::RuntimeState;
use hangar_model::state::ExitReason;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The guest's init: from the state file when it names a live process, else the one
/// process of the guest's cgroup that is the first of a pid namespace (the state file
/// may be gone or cut short). Returns its pid and start time.
pub fn find_init(old: Option<&RuntimeState>, cgroup_dirs: &[PathBuf]) -> Option<(i32, u64)> {
    let recorded = old
        .and_then(|s| Some((s.init_pid?, s.init_start?)))
        .filter(|&(pid, start)| procstat::alive_since(pid, start));
    recorded.or_else(|| cgroup_dirs.iter().find_map(|d| init_in_cgroup(d)))
}

fn init_in_cgroup(dir: &Path) -> Option<(i32, u64)> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter(|&pid| procstat::is_pid_namespace_init(pid))
        .find_map(|pid| {
            let seen = procstat::look(pid)?;
            (!seen.zombie).then_some((pid, seen.start_time))
        })
}

/// How a process we watched through a pidfd ended, read from its zombie's
/// `/proc/PID/stat` if it is still there (and still the process that started at
/// `start`); `None` once its parent reaped it.
pub fn exit_of(pid: i32, start: u64) -> Option<ExitReason> {
    let seen = procstat::look(pid).filter(|s| s.zombie && s.start_time == start)?;
    Some(decode_wait_status(seen.exit_code))
}

/// A wait status as waitpid(2) reports it, in the monitor's terms (SIGINT is a halt
/// inside a pid namespace).
fn decode_wait_status(status: u64) -> ExitReason {
    let sig = (status & 0x7f) as i32;
    match sig {
        0 => ExitReason::Exited(((status >> 8) & 0xff) as i32),
        libc::SIGINT => ExitReason::Halted,
        s => ExitReason::Signaled(s),
    }
}

/// Why monitor `pid` died, when the kernel said so: its log names the processes the
/// OOM killer (global or a memory cgroup's) killed. Read once, at adoption.
pub fn death_reason(pid: i32) -> Option<String> {
    let mut kmsg = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut records = Vec::new();
    let mut record = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut record) {
            Ok(0) => break,
            Ok(n) => records.push(String::from_utf8_lossy(&record[..n]).into_owned()),
            // EPIPE: records overwritten while we read; the next read goes on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    oom_kill_of(pid, records.iter().map(String::as_str))
}

/// The last kernel log record (`/dev/kmsg` format: `PRIO,SEQ,TIME,FLAGS;MESSAGE`) that
/// says the OOM killer killed `pid`, as a reason.
fn oom_kill_of<'a>(pid: i32, records: impl Iterator<Item = &'a str>) -> Option<String> {
    let needle = format!("Killed process {pid} (");
    records.filter(|r| r.contains(&needle)).last().map(|r| {
        let msg = r.split_once(';').map_or(r, |(_, m)| m);
        format!("the kernel's OOM killer: {}", msg.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oom_kill_in_the_kernel_log_is_the_reason() {
        let log = [
            "6,100,5000,-;eth0: link up",
            "3,101,6000,-;Out of memory: Killed process 4242 (hangar-monitor) total-vm:8000kB",
            "3,102,7000,-;Out of memory: Killed process 42 (other) total-vm:1kB",
        ];
        let r = oom_kill_of(4242, log.into_iter()).unwrap();
        assert!(
            r.starts_with("the kernel's OOM killer: Out of memory: Killed process 4242"),
            "{r}"
        );
        assert_eq!(oom_kill_of(424, log.into_iter()), None);
        assert_eq!(oom_kill_of(7, log.into_iter()), None);
    }

    #[test]
    fn wait_statuses_read_as_the_monitor_reports_them() {
        assert_eq!(decode_wait_status(3 << 8), ExitReason::Exited(3));
        assert_eq!(decode_wait_status(9), ExitReason::Signaled(9));
        assert_eq!(decode_wait_status(9 | 0x80), ExitReason::Signaled(9));
        assert_eq!(decode_wait_status(1), ExitReason::Signaled(libc::SIGHUP));
        assert_eq!(decode_wait_status(2), ExitReason::Halted);
    }

    #[test]
    fn a_live_process_has_no_exit_and_a_stale_start_finds_nothing() {
        let me = std::process::id() as i32;
        let start = procstat::look(me).unwrap().start_time;
        assert_eq!(exit_of(me, start), None);
        let old = RuntimeState {
            state: hangar_model::GuestState::Running,
            init_pid: Some(me),
            monitor_pid: 1,
            started_at: None,
            reboots: 0,
            last_exit: None,
            init_start: Some(start + 1),
            adopted: None,
        };
        assert_eq!(find_init(Some(&old), &[]), None);
        let now = RuntimeState {
            init_start: Some(start),
            ..old
        };
        assert_eq!(find_init(Some(&now), &[]), Some((me, start)));
    }
}
