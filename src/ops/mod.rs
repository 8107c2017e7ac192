//! Operations: configuration, the daemon's wiring and signals, commands for
//! people (`migrate`, `enqueue`, `dev`, `doctor`, `jobs`, `tools`), logging, and the local PostgreSQL
//! used by `dev` and the tests; the old service's HTTP API for apps that
//! still call it (`compat`, off unless XTRACT_COMPAT_ADDR is set).

pub mod cli;
pub mod commands;
pub mod compat;
pub mod config;
pub mod daemon;
pub mod dev;
pub mod doctor;
pub mod health;
pub mod horizon;
pub mod isolation;
pub mod jobs;
pub mod localpg;
pub mod logging;
pub mod media_server;
pub mod reference;
pub mod retention;
pub mod systemd;
pub mod tools;
