//! Operations: configuration, the daemon's wiring and signals, commands for
//! people (`migrate`, `enqueue`, `dev`), logging, and the local PostgreSQL
//! used by `dev` and the tests.

pub mod commands;
pub mod config;
pub mod daemon;
pub mod dev;
pub mod health;
pub mod localpg;
pub mod logging;
pub mod media_server;
pub mod metrics;
pub mod systemd;
