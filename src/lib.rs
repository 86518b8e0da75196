//! sluice: a durable write buffer for MariaDB.
//!
//! Layout, floor by floor from the bottom (each uses only floors below it;
//! `tests/layout.rs` checks):
//! - [`write`]: the vocabulary every floor speaks (writes, statements,
//!   parameters, session contexts, MariaDB's errors, write status).
//! - [`sql`]: where a statement's bytes are parsed: the lexer that
//!   classifies statements and finds placeholders.
//! - [`store`]: where a write becomes durable: the queue, the status and
//!   idempotency index, the failover target record, group commit, on one
//!   storage backend (sled).
//! - [`db`]: where a write meets MariaDB: all database access (`mysql_async`)
//!   under deadlines, the ledger, batches, error classification.
//! - [`engine`]: where a write's mode is decided: the one API the fronts
//!   call; the mode state machine, admission, forwarding, the drainer, the
//!   health monitor and failover.
//! - [`fronts`]: the ways in (HTTP/JSON and the MySQL protocol). They parse
//!   requests, call the [`engine`] and render its answers; nothing else.
//! - [`config`]: every setting, its default and its documentation, in one
//!   table; [`server`]: wires store, engine and fronts together, and shuts
//!   them down.
//! - [`cli`]: the `sluice` command (serve, operate, demo).
//! - [`testkit`]: private `mariadbd` instances for tests and the demo.

pub mod cli;
pub mod config;
pub mod db;
pub mod engine;
pub mod fronts;
pub mod server;
pub mod sql;
pub mod store;
pub mod testkit;
pub mod util;
pub mod write;
