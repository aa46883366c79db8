//! hangar-core: the manager. Every front end (the CLI, later the API server) calls into
//! this crate and holds no logic of its own.
//!
//! - [`Host`] opens a host (its root prefix and defaults);
//! - [`ops`] has one module per operation (build, start, stop, exec, list, ...);
//! - [`build`] fills a root filesystem by a build method;
//! - [`images`] keeps images, templates of new guests (`hangar image`, `publish`);
//! - [`status`] tells whether a guest runs, from its monitor's lock;
//! - [`store`], [`paths`], [`lock`]: configs on disk, where things live, and locking.
#![forbid(unsafe_code)]

pub mod adopt;
pub mod archive;
pub mod build;
pub mod error;
mod fault;
pub mod host;
pub mod ids;
pub mod images;
pub mod lock;
pub mod lxcfs;
pub mod net;
pub mod ops;
pub mod paths;
pub mod pools;
pub mod spawn;
pub mod status;
pub mod store;

pub use error::{CoreError, Result};
pub use host::Host;
