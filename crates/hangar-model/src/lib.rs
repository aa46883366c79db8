//! hangar-model: the guest model — names, context ids, configuration, host defaults,
//! runtime state and the launch spec handed to a guest's monitor.
//!
//! No IO happens here: the types parse and validate, and `hangar-core` reads and writes
//! them. Everything a user can type (names, sizes, signals, config files) is checked in
//! this crate, so every front end refuses the same bad input with the same message.
#![forbid(unsafe_code)]

pub mod backup;
pub mod config;
pub mod control;
pub mod ctx;
pub mod defaults;
pub mod dir;
pub mod image;
pub mod init;
pub mod limits;
pub mod name;
pub mod net;
pub mod pool;
pub mod signal;
pub mod spec;
pub mod state;
pub mod units;

pub use config::{GuestConfig, GuestKind, Security, StopPolicy};
pub use ctx::ContextId;
pub use defaults::HostDefaults;
pub use init::InitSystem;
pub use limits::Limits;
pub use name::GuestName;
pub use signal::Signal;
pub use spec::LaunchSpec;
pub use state::{GuestState, RuntimeState};
pub use units::Size;

/// Errors in user-supplied values. Each names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "invalid guest name {0:?}: use 1-63 characters a-z, 0-9 and '-', starting with a letter or digit"
    )]
    Name(String),
    #[error("invalid context id {0}: use a number from 2 to 32767")]
    Context(i64),
    #[error("invalid size {0:?}: write a number with an optional unit K, M, G or T (e.g. 512M)")]
    Size(String),
    #[error("invalid signal {0:?}: write a name such as SIGTERM, SIGPWR, SIGRTMIN+3 or a number")]
    Signal(String),
    #[error(
        "invalid hostname {0:?}: use labels of a-z, A-Z, 0-9 and '-' separated by dots, at most 64 characters"
    )]
    Hostname(String),
    #[error("invalid config: {field}: {why}")]
    Field { field: &'static str, why: String },
    #[error("invalid config: {0}")]
    Toml(String),
    #[error("shared directory: {0}")]
    Dir(String),
    #[error("this archive cannot be imported: {0}")]
    Archive(String),
    /// A `--nic NAME:...` of `clone` or `import` (the message says what to write).
    #[error("--nic {0}")]
    NicOverride(String),
    #[error(
        "invalid image name {0:?}: use NAME or NAME:TAG, NAME 1-63 of a-z, 0-9, '.', '_' and '-' starting with a letter or digit, TAG 1-128 of letters, digits, '.', '_' and '-' not starting with '.' or '-'"
    )]
    ImageName(String),
    #[error("this image cannot be imported: {0}")]
    Image(String),
}
