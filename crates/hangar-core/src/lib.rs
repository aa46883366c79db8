//! hangar-core: the manager. Every front end (CLI, API server) calls into this crate.
#![forbid(unsafe_code)]

pub mod build;
