//! The skeleton method: only the directory layout, for a root filesystem the
//! administrator fills in later (copying files in, or mounting one over it).
//!
//! The outcome assumes a sysvinit-style system, as [`super::detect_init`] does
//! for an init it does not recognise: `/sbin/init` stopped by SIGPWR. Edit the
//! guest's config when the rootfs gets busybox init (SIGUSR2) or systemd
//! (SIGRTMIN+3). SIGTERM would be a poor guess: sysvinit ignores it and systemd
//! re-executes itself on it.

use super::util;
use super::{BuildError, BuildOutcome, init::INIT};
use std::path::Path;

/// The layout, with modes.
const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("run", 0o755),
    ("var", 0o755),
];

/// Creates the empty layout in `rootfs`.
pub(super) fn populate(rootfs: &Path) -> Result<BuildOutcome, BuildError> {
    for (dir, mode) in DIRS {
        util::mkdir(rootfs, dir, *mode)?;
    }
    Ok(BuildOutcome {
        init: vec![INIT.to_string()],
        init_system: hangar_model::InitSystem::Sysvinit,
    })
}
