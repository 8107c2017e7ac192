//! tracing output: compact lines for people, JSON for machines. Colours and
//! timestamps only on a terminal: journald stamps each line itself, and a
//! file or a pipe gets plain text a program can read.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal)
        .with_target(false);
    let _ = match (format, terminal) {
        (LogFormat::Json, _) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        (LogFormat::Human, true) => builder.compact().try_init(),
        (LogFormat::Human, false) => builder.compact().without_time().try_init(),
    };
}
