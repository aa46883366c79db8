//! Errors of the manager. Each says what is wrong and, where it can, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Model(#[from] hangar_model::ModelError),
    #[error("no guest named {0}: see `hangar list`")]
    NotFound(String),
    #[error("a guest named {0} already exists")]
    Exists(String),
    #[error("guest {0} is running: stop it first, or use --force")]
    Running(String),
    #[error("guest {0} is not running")]
    NotRunning(String),
    #[error("context id {ctx} is already used by guest {by}")]
    ContextTaken { ctx: u16, by: String },
    #[error("no free context id left (2-32767 are all used)")]
    NoFreeContext,
    #[error("guest {0} is busy: another hangar command holds its lock")]
    Busy(String),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Config {
        file: PathBuf,
        #[source]
        source: hangar_model::ModelError,
    },
    #[error("build failed")]
    Build(#[from] crate::build::BuildError),
    #[error("cgroup")]
    Cgroup(#[from] hangar_cgroup::CgroupError),
    #[error(transparent)]
    Container(#[from] hangar_container::ContainerError),
    #[error(transparent)]
    Net(#[from] hangar_net::NetError),
    #[error("guest {name}: {message}")]
    Monitor { name: String, message: String },
    #[error(
        "renaming {old} to {new} failed at its {step} step, and was undone: {old} is as it was"
    )]
    Rename {
        old: String,
        new: String,
        step: &'static str,
        #[source]
        source: Box<CoreError>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl CoreError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
