//! One file per operation, each taking the guest's lock for what it changes.

pub mod attach;
pub mod build;
pub mod clone;
pub mod config;
pub mod delete;
pub mod exec;
pub mod export;
pub mod forward;
pub mod image;
pub mod import;
pub mod limits;
pub mod list;
pub mod network;
pub mod pool;
pub mod rename;
pub mod repair;
pub mod set;
pub mod shared_dir;
pub mod snapshot;
pub mod start;
pub mod stop;
pub mod unify;
