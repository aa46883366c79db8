//! Build methods: fill an empty directory with a guest root filesystem.
//!
//! Each method writes a root filesystem owned by *host* ids (uid 0 = host root);
//! the caller (`crate::ops::build`) builds into a temporary directory, shifts
//! ownership into the guest's id range and renames it into place, so an
//! interrupted build never leaves a half guest behind.

use std::path::{Path, PathBuf};

/// How to build a guest's root filesystem (`hangar build -m METHOD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Minimal guest from the host's static busybox.
    Busybox,
    /// Debian guest by debootstrap (minbase + sysvinit).
    Debootstrap {
        suite: String,
        mirror: String,
    },
    /// Unpack a root filesystem archive (VServer's "template").
    Tarball { file: PathBuf },
    /// Copy a directory or `HOST:DIR` (never /dev, /proc, /sys).
    Rsync { source: String },
    /// Empty root filesystem, config only.
    Skeleton,
}

/// What a build tells the guest config about the system it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// The guest's init command, e.g. `["/sbin/init"]`.
    pub init: Vec<String>,
    /// The signal that asks this init to shut down cleanly, e.g. `"SIGUSR2"`.
    pub stop_signal: String,
}

/// Context a build method may use.
pub struct BuildContext<'a> {
    /// The guest's hostname, written to /etc/hostname and /etc/hosts.
    pub hostname: &'a str,
    /// Where slow downloads (debootstrap) may be cached between builds; None = no cache.
    pub cache_dir: Option<&'a Path>,
    /// Progress lines for a terminal (the CLI shows them in a spinner).
    pub progress: &'a mut dyn FnMut(&str),
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Invalid(String),
}

/// Fill `rootfs` (an existing empty directory) according to `method`.
pub fn populate(
    _method: &Method,
    _rootfs: &Path,
    _cx: &mut BuildContext<'_>,
) -> Result<BuildOutcome, BuildError> {
    Err(BuildError::Invalid("not yet written".into()))
}
