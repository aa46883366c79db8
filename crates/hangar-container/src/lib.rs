//! hangar-container: the container backend — what happens between "start this spec" and
//! the guest's init running, and how a command joins a running guest.
//!
//! - [`launch`]: fork into new namespaces, map ids, join the cgroup, build the guest's
//!   mounts and /dev, pivot_root, drop capabilities, install seccomp, exec init.
//! - [`join`]: run a command inside a running guest (`hangar exec` / `enter`).
//! - [`idshift`]: move a root filesystem's ownership into a guest's id range.
//! - [`shared`]: host directories mounted into guests, idmapped, at start and live.
//!
//! The only unsafe code used lives in `hangar-sys`.
#![forbid(unsafe_code)]

pub mod caps;
mod cgroup_join;
pub mod devices;
pub mod idshift;
pub mod join;
pub mod launch;
pub mod lxcfs;
pub mod mountns;
pub mod mounts;
pub mod procstat;
pub mod rlimits;
pub mod seccomp;
pub mod shared;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{what} {path}")]
    Path {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building the seccomp filter: {0}")]
    Seccomp(String),
    #[error("the guest failed to start: {0}")]
    Child(String),
    /// Work in a running guest's mount namespace failed (the message says what).
    #[error("{0}")]
    InGuest(String),
    /// A shared directory that cannot be shared as asked (the message says why and
    /// what to do).
    #[error("{0}")]
    SharedDir(String),
}

impl ContainerError {
    pub(crate) fn sys(what: impl Into<String>, e: impl Into<std::io::Error>) -> Self {
        ContainerError::Sys {
            what: what.into(),
            source: e.into(),
        }
    }
    pub(crate) fn path(
        what: &'static str,
        path: impl Into<PathBuf>,
        e: impl Into<std::io::Error>,
    ) -> Self {
        ContainerError::Path {
            what,
            path: path.into(),
            source: e.into(),
        }
    }
}

impl From<hangar_sys::SysError> for ContainerError {
    fn from(e: hangar_sys::SysError) -> Self {
        match e {
            hangar_sys::SysError::Call { call, source } => ContainerError::Sys {
                what: call.to_string(),
                source,
            },
        }
    }
}

/// The environment a guest's init and `hangar exec` commands start with.
pub fn base_env() -> Vec<String> {
    vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "container=hangar".into(),
    ]
}

/// `base` (`KEY=VALUE` entries) with `extra`'s added, an entry of `extra` replacing
/// one of `base` with the same key (execve keeps duplicates, and programs read the
/// first).
pub fn with_env(mut base: Vec<String>, extra: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    for e in extra {
        let k = key(e);
        base.retain(|b| key(b) != k);
        base.push(e.clone());
    }
    base
}

/// An error and its sources on one line, for messages that cross a process boundary.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_entry_replaces_the_base_one_of_its_key() {
        let base = vec!["PATH=/bin".to_string(), "container=hangar".to_string()];
        let extra = ["A=1".to_string(), "PATH=/opt/bin:/bin".to_string()];
        assert_eq!(
            super::with_env(base, &extra),
            ["container=hangar", "A=1", "PATH=/opt/bin:/bin"]
        );
    }
}
