//! Numeric fields of `/proc/PID/stat` (numbered as in proc_pid_stat(5)).

/// Field `field` (4 = ppid, 23 = vsize, ...) of `/proc/PID/stat` (PID may be `self`);
/// `None` when the
/// process is gone or the field is not a number. Field 2, the command name, is in
/// parentheses and may hold spaces or parentheses itself, so counting starts after
/// its last `)`; fields 1 to 3 (pid, name, state) are not asked for here.
pub fn stat_field(pid: impl std::fmt::Display, field: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_field(&stat, field)
}

/// Field 11, `cminflt`: minor faults of the children the process has waited for. It
/// only grows, and every child that ran adds to it when reaped: "has it ever forked?"
/// for a process whose children may already be gone.
pub const REAPED_CHILDREN_FAULTS: usize = 11;

/// Field 22, `starttime`: when the process started, in clock ticks after boot. With
/// its pid it names one process for the host's uptime: a later process that reuses
/// the pid starts later. This is how a guest's init is told apart after its monitor
/// is gone (the state file keeps both).
pub const START_TIME: usize = 22;

/// Field 52, `exit_code`: the wait status of a zombie, as waitpid(2) would report it.
pub const EXIT_CODE: usize = 52;

/// What `/proc/PID/stat` says about a process we do not parent: alive or a zombie, and
/// its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub start_time: u64,
    /// State `Z` (or `X`): it has exited and waits for its parent to reap it.
    pub zombie: bool,
    /// The wait status of a zombie; meaningless while it runs.
    pub exit_code: u64,
}

/// Look at process `pid` (`None` when there is none).
pub fn look(pid: i32) -> Option<Seen> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
    Some(Seen {
        start_time: parse_field(&stat, START_TIME)?,
        zombie: matches!(state, "Z" | "X"),
        exit_code: parse_field(&stat, EXIT_CODE).unwrap_or(0),
    })
}

/// Whether `pid` is still the process that started at `start_time`, and running (not
/// a zombie).
pub fn alive_since(pid: i32, start_time: u64) -> bool {
    look(pid).is_some_and(|s| s.start_time == start_time && !s.zombie)
}

/// Whether `pid` is the first process (pid 1) of a pid namespace below ours: what a
/// guest's init is, and none of its other processes.
pub fn is_pid_namespace_init(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}

fn parse_field(stat: &str, field: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts with field 3 (the state).
    rest.split_whitespace()
        .nth(field.checked_sub(3)?)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_count_from_after_a_command_name_with_spaces_and_parens() {
        let stat = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 55 8192000 100";
        assert_eq!(parse_field(stat, 4), Some(7));
        assert_eq!(parse_field(stat, 23), Some(8_192_000));
        assert_eq!(parse_field(stat, 3), None); // the state is a letter
        assert_eq!(parse_field(stat, 99), None);
        assert_eq!(parse_field("garbage", 4), None);
    }

    #[test]
    fn we_are_alive_since_our_start_and_no_namespace_init() {
        let me = std::process::id() as i32;
        let seen = look(me).unwrap();
        assert!(!seen.zombie);
        assert!(alive_since(me, seen.start_time));
        assert!(!alive_since(me, seen.start_time + 1));
        assert!(!is_pid_namespace_init(me));
    }

    #[test]
    fn a_zombie_shows_its_wait_status() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let seen = loop {
            let s = look(pid).unwrap();
            if s.zombie {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        assert_eq!(seen.exit_code, 7 << 8);
        assert!(!alive_since(pid, seen.start_time));
        drop(child.wait_with_output());
    }

    #[test]
    fn our_parent_is_read_from_the_kernel() {
        let ppid = stat_field(std::process::id() as i32, 4).unwrap();
        assert_eq!(ppid, u64::from(std::os::unix::process::parent_id()));
    }
}
