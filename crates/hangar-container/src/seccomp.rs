//! hangar's default seccomp filter: system calls a guest has no business making fail with
//! EPERM; everything else is allowed.
//!
//! The list follows what container runtimes agree on (kernel modules, kexec, raw I/O
//! ports, the host clock, swap, kernel keyrings, file handles that bypass the mount
//! namespace, bpf and perf). Syscalls of other ABIs (i386, x32) are refused too: the
//! filter only understands x86-64 numbers, and the 32-bit entry points are a classic way
//! around a filter.

use crate::ContainerError;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// Denied system calls, by name (numbers come from `libc` for this architecture).
pub const DENIED: &[(&str, libc::c_long)] = &[
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("syslog", libc::SYS_syslog),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("uselib", libc::SYS_uselib),
    ("quotactl", libc::SYS_quotactl),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("_sysctl", libc::SYS__sysctl),
];

/// Compile the default filter to classic BPF, ready for `hangar_sys::seccomp_install`.
pub fn default_filter() -> Result<Vec<libc::sock_filter>, ContainerError> {
    let rules = DENIED
        .iter()
        .map(|&(_, nr)| (nr, vec![]))
        .collect::<BTreeMap<_, _>>();
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| ContainerError::Seccomp(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| ContainerError::Seccomp(e.to_string()))?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| ContainerError::Seccomp(e.to_string()))?;
    Ok(prog
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_filter_compiles() {
        let f = super::default_filter().unwrap();
        assert!(f.len() > super::DENIED.len());
    }
}
