//! The ways into sluice. Each front parses its protocol, calls the
//! [`crate::engine::Engine`] (writes through `submit`, statements it passes
//! through by the engine's `Forwarder`), and renders the answer; each has
//! one exhaustive mapping from engine errors to its protocol's errors
//! (`http::rescue`, `mysql::reply`).
//!
//! Fronts never touch the store or MariaDB directly and hold no buffering
//! policy of their own: what a mode allows is the engine's to decide.

pub mod http;
pub mod mysql;
