//! sluice: a durable write buffer for MariaDB.
//!
//! Layout, one line per module:
//! - [`fronts`]: the ways in (HTTP/JSON today; the MySQL protocol next). They
//!   parse requests, call the [`engine`], and render its answers; nothing else.
//! - [`engine`]: the one API the fronts call. Owns the mode state machine
//!   (`engine::mode`), the durable queue (`engine::queue`), the drainer
//!   (`engine::drainer`), the health monitor (`engine::health`) and drain
//!   pacing (`engine::pacing`).
//! - [`db`]: all database access (MariaDB via `mysql_async`): deadlines,
//!   the ledger, error classification.
//! - [`sql`]: a lexer that classifies statements and counts placeholders.
//! - [`config`]: every setting, its default and its documentation, in one table.
//! - [`server`]: wires config, store, engine and fronts together; shutdown.
//! - [`cli`]: the `sluice` command (serve, demo).
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
