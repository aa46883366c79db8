//! Per-process resource limits (setrlimit) of a guest's processes.

use crate::ContainerError;

/// One rlimit as the launch spec carries it: (name, soft, hard), `None` = unlimited.
pub type RlimitSetting = (String, Option<u64>, Option<u64>);

/// The RLIMIT_* number of a limit name of the guest config.
pub fn resource(name: &str) -> Option<i32> {
    let r = match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    };
    Some(r as i32)
}

/// Apply `limits` to process `pid` (0: the calling process).
pub fn apply(pid: i32, limits: &[RlimitSetting]) -> Result<(), ContainerError> {
    for (name, soft, hard) in limits {
        let res = resource(name)
            .ok_or_else(|| ContainerError::Child(format!("unknown rlimit {name:?}")))?;
        hangar_sys::prlimit(pid, res, *soft, *hard).map_err(|e| match e {
            hangar_sys::SysError::Call { source, .. } if source.raw_os_error() == Some(libc::EPERM) => ContainerError::Child(format!(
                "rlimit {name} cannot be raised above the host's hard limit without CAP_SYS_RESOURCE, which this host lacks; lower it"
            )),
            hangar_sys::SysError::Call { source, .. } => ContainerError::sys(format!("setting rlimit {name}"), source),
        })?;
    }
    Ok(())
}
