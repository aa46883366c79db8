//! The one error type of the crate.
//!
//! Every variant names the file, directory or value that was involved, because
//! a bare `EBUSY` or `EINVAL` from cgroupfs tells an operator nothing.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong while setting up, changing, reading or removing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file could not be read.
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a value written to a cgroup file.
    #[error("could not write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something the parser did not expect.
    #[error("unexpected content {value:?} in {path}")]
    Parse { path: PathBuf, value: String },
    /// A cgroup directory could not be created.
    #[error("could not create cgroup directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A cgroup directory could not be removed for a reason other than busy.
    #[error("could not remove cgroup directory {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Processes kept the cgroup busy although they were sent SIGKILL.
    #[error("cgroup {path} is still busy after killing its processes for {waited_ms} ms")]
    Busy { path: PathBuf, waited_ms: u128 },
    /// Sending SIGKILL to a process in the cgroup failed.
    #[error("could not kill process {pid} in cgroup {path}")]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    /// A pid that does not name one process (the kernel reads 0 as the writer itself).
    #[error("invalid pid {pid}")]
    InvalidPid { pid: i32 },
    /// A limit needs a controller that is not mounted or not enabled.
    #[error("limit {limit} needs the {controller} controller, which this host does not offer")]
    MissingController {
        limit: &'static str,
        controller: &'static str,
    },
    /// A limit's value is out of the range its cgroup file takes, or malformed.
    #[error("invalid {limit} {value} for {path}: expected {expected}")]
    InvalidLimit {
        limit: &'static str,
        value: String,
        path: PathBuf,
        expected: String,
    },
    /// The controller is there, but this kernel lacks the file a limit needs
    /// (such as `cpu.max.burst` before Linux 5.14, or any I/O weight file
    /// without the BFQ scheduler). `hint` says which kernel feature provides it.
    #[error(
        "limit {limit} needs {}, which this kernel does not provide: {hint}",
        or_list(.paths)
    )]
    Unsupported {
        limit: &'static str,
        paths: Vec<PathBuf>,
        hint: &'static str,
    },
    /// A swap limit was asked for but the kernel does not account swap.
    #[error(
        "swap limit requested but {path} does not exist: swap accounting is off \
         (boot the host with swapaccount=1)"
    )]
    NoSwapAccounting { path: PathBuf },
    /// cgroup v1 can only cap memory+swap together, so it needs a memory limit too.
    #[error("swap limit {swap} needs a memory limit as well on cgroup v1")]
    SwapWithoutMemory { swap: u64 },
    /// A parent or guest name that would escape the hangar subtree or is not a plain name.
    #[error(
        "invalid cgroup name {name:?}: use letters, digits, '-', '_' or '.' and do not start with '.'"
    )]
    InvalidName { name: String },
    /// A guest needs a cgroup2 tree of its own (systemd as its init), and this
    /// v1 host mounts no cgroup2 hierarchy.
    #[error(
        "this host mounts no cgroup2 hierarchy, which a systemd guest needs for its own \
         cgroups: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) and start again"
    )]
    NoCgroup2,
    /// Handing the guest's cgroup2 directory to its root user failed.
    #[error("cannot delegate {path} to the guest: {source}")]
    Delegate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host has neither a cgroup v2 mount nor usable cgroup v1 hierarchies.
    #[error("no usable cgroup filesystem is mounted (looked in {path})")]
    NoCgroupMount { path: PathBuf },
}

impl CgroupError {
    /// `limit` cannot be set because none of `paths` exists on this kernel;
    /// the message names the kernel feature that would provide it.
    pub(crate) fn unsupported(limit: &'static str, paths: Vec<PathBuf>) -> CgroupError {
        let hint = match limit {
            "io_weight" => {
                "I/O weights come from the BFQ I/O scheduler (CFQ before Linux 5.0); \
                 none, mq-deadline and kyber have none. Use a kernel with BFQ \
                 (CONFIG_IOSCHED_BFQ, CONFIG_BFQ_GROUP_IOSCHED) and select it with \
                 `echo bfq > /sys/block/DEVICE/queue/scheduler`, or leave io.weight unset"
            }
            "cpu_burst_us" => "CFS burst needs Linux 5.14 or later; leave cpu.burst unset",
            "io_max" => {
                "I/O bandwidth limits need block-layer throttling \
                 (CONFIG_BLK_DEV_THROTTLING); leave io.* limits unset"
            }
            _ => "leave this limit unset on this host",
        };
        CgroupError::Unsupported { limit, paths, hint }
    }
}

/// `a`, `a or b`, `a, b or c`: the files of which none exists.
fn or_list(paths: &[PathBuf]) -> String {
    let shown: Vec<_> = paths.iter().map(|p| Path::display(p).to_string()).collect();
    match shown.split_last() {
        None => "a file".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}
