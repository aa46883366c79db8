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
    fn our_parent_is_read_from_the_kernel() {
        let ppid = stat_field(std::process::id() as i32, 4).unwrap();
        assert_eq!(ppid, u64::from(std::os::unix::process::parent_id()));
    }
}
