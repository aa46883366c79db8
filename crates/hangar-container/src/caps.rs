//! The capability bounding set of guests.
//!
//! Inside a user namespace guest root's capabilities only reach what its namespaces own;
//! the bounding set also removes the ones that make no sense in a guest at all, so even a
//! privileged guest cannot load modules, touch raw I/O, set the clock or read the kernel log.

/// CAP_* numbers dropped from every guest's bounding set.
pub const DROPPED: &[(u32, &str)] = &[
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (20, "CAP_SYS_PACCT"),
    (25, "CAP_SYS_TIME"),
    (30, "CAP_AUDIT_CONTROL"),
    (32, "CAP_MAC_OVERRIDE"),
    (33, "CAP_MAC_ADMIN"),
    (34, "CAP_SYSLOG"),
    (35, "CAP_WAKE_ALARM"),
    (36, "CAP_BLOCK_SUSPEND"),
    (37, "CAP_AUDIT_READ"),
    (38, "CAP_PERFMON"),
    (39, "CAP_BPF"),
];

/// Drop [`DROPPED`] from the calling process's bounding set.
pub fn drop_bounding() -> Result<(), hangar_sys::SysError> {
    let last = hangar_sys::cap_last_cap();
    for &(cap, _) in DROPPED {
        if cap <= last {
            hangar_sys::capbset_drop(cap)?;
        }
    }
    Ok(())
}
