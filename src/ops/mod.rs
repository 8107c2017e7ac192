//! Operations: configuration, the daemon's wiring and signals, commands for
//! people (`migrate`, `enqueue`, `dev`, `doctor`, `jobs`, `tools`), logging, and the local PostgreSQL
//! used by `dev` and the tests.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dev;
pub mod doctor;
pub mod health;
pub mod horizon;
pub mod jobs;
pub mod localpg;
pub mod logging;
pub mod media_server;
pub mod retention;
pub mod systemd;
pub mod tools;
