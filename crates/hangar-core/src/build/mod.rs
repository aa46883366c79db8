//! Build methods: fill an empty directory with a guest root filesystem.
//!
//! Each method writes a root filesystem owned by *host* ids (uid 0 = host root);
//! the caller (`crate::ops::build`) builds into a temporary directory, shifts
//! ownership into the guest's id range and renames it into place, so an
//! interrupted build never leaves a half guest behind. A method that fails may
//! leave `rootfs` half filled: the caller removes it.
//!
//! The methods drive the host's tools (`busybox`, `debootstrap`, `tar`, `rsync`)
//! as child processes and pass their output, line by line, to
//! [`BuildContext::progress`]; nothing here prints.
//!
//! Every method leaves `/dev` empty: the runtime mounts the guest's own /dev.

mod busybox;
mod debootstrap;
pub(crate) mod init;
mod rsync;
mod skeleton;
mod tarball;
pub(crate) mod util;

pub use debootstrap::DEFAULT_PACKAGES;
pub use init::detect_init;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// How to build a guest's root filesystem (`hangar build -m METHOD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Minimal guest from the host's static busybox.
    Busybox,
    /// Debian guest by debootstrap (minbase + systemd or sysvinit).
    Debootstrap {
        suite: String,
        mirror: String,
        /// Packages to install besides [`DEFAULT_PACKAGES`].
        include: Vec<String>,
        /// systemd or sysvinit (busybox is refused).
        init: hangar_model::InitSystem,
    },
    /// Unpack a root filesystem archive (VServer's "template"): the archive holds
    /// the root's contents, as `tar -C rootfs -cf x.tar .` writes them.
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
    /// The init system found (or installed) in the root filesystem. The config does
    /// not keep it: each start looks again, since packages can change it.
    pub init_system: hangar_model::InitSystem,
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
    #[error("{rootfs} is not an empty directory: build into a new empty directory")]
    RootfsNotEmpty { rootfs: PathBuf },
    #[error("{tool} is not installed: install the {package} package")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("could not run {tool}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{tool} failed ({status}){}", tail_suffix(.output))]
    ToolFailed {
        tool: &'static str,
        status: ExitStatus,
        /// The tool's last lines of output, newest last.
        output: String,
    },
    #[error("could not {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is missing: install busybox-static")]
    NoBusybox { path: PathBuf },
    #[error("{path} is dynamically linked: install busybox-static, whose busybox is static")]
    BusyboxNotStatic { path: PathBuf },
    #[error("archive {path} is missing or not a file: give the path of a root filesystem archive")]
    NoArchive { path: PathBuf },
    #[error("source directory {path} does not exist: give an existing directory or HOST:DIR")]
    NoSource { path: PathBuf },
    #[error("{what} holds no /sbin/init: is it a root filesystem?")]
    NoInit { what: String },
    #[error(
        "debootstrap gave no {init}: /sbin/init is {found}; check that suite {suite} has {package}"
    )]
    WrongInit {
        suite: String,
        init: hangar_model::InitSystem,
        package: &'static str,
        found: String,
    },
    #[error("could not unpack the cached {path}: remove it to debootstrap afresh")]
    BadCache {
        path: PathBuf,
        #[source]
        source: Box<BuildError>,
    },
}

/// Formats a tool's last output for an error message: `": LINE; LINE"` or nothing.
fn tail_suffix(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join("; "))
    }
}

/// Fill `rootfs` (an existing empty directory) according to `method`.
pub fn populate(
    method: &Method,
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<BuildOutcome, BuildError> {
    util::check_hostname(cx.hostname)?;
    util::check_empty_dir(rootfs)?;
    match method {
        Method::Busybox => busybox::populate(rootfs, cx),
        Method::Debootstrap {
            suite,
            mirror,
            include,
            init,
        } => debootstrap::populate(
            &debootstrap::Spec {
                suite,
                mirror,
                include,
                init: *init,
            },
            rootfs,
            cx,
        ),
        Method::Tarball { file } => tarball::populate(file, rootfs, cx),
        Method::Rsync { source } => rsync::populate(source, rootfs, cx),
        Method::Skeleton => skeleton::populate(rootfs),
    }
}
