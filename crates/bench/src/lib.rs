//! The benchmark harness behind `drover bench`. Each scenario starts its own server in a
//! temporary data directory (the same binary, as a child process), drives it through the
//! API client, and reports medians and p99 as one flat JSON object. Timings live here,
//! never in tests.
#![forbid(unsafe_code)]

mod server;
pub mod stats;

pub mod api;
pub mod footprint;
pub mod scheduler;

pub use server::{BenchServer, ServerError};

/// Why a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server could not be started or measured.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// An API call failed.
    #[error("API call failed during the benchmark: {0}")]
    Api(#[from] client::Error),
    /// A watcher stopped before it saw every event.
    #[error("a watcher stopped early: {0}")]
    Watch(String),
}

/// A progress bar on stderr for one phase of a scenario.
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
