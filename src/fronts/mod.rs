//! The ways into sluice. Each front parses its protocol, calls the
//! [`crate::engine::Engine`], and renders the answer; each has one "rescue"
//! function that maps engine errors to its protocol's errors.
//!
//! Fronts never touch the queue store or MariaDB directly and hold no
//! buffering logic of their own.

pub mod http;
pub mod mysql;
