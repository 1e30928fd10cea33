//! The benchmark harness behind `drover bench`. Each scenario starts its own server in a
//! temporary data directory (the same binary, as a child process), drives it through the
//! API client, and reports medians and p99 as one flat JSON object. Scenarios that compare
//! against a reference system (runc alone, Docker Swarm, etcd) start that system
//! themselves, in the same run, and report the ratio. Timings live here, never in tests.
#![forbid(unsafe_code)]

mod node;
mod podwatch;
pub mod procs;
mod server;
pub mod stats;
mod tools;

pub mod api;
pub mod deploy;
pub mod footprint;
pub mod pod_startup;
pub mod runc_floor;
pub mod scheduler;
pub mod store_bench;
pub mod swarm;

pub use node::{BUSYBOX, NodeServer};
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
    /// Something the scenario waits for did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// An external tool (runc, docker, etcd, skopeo, drover itself) failed.
    #[error("{what} failed: {detail}")]
    Tool {
        /// What was run.
        what: String,
        /// Its exit status and output, or why it could not start.
        detail: String,
    },
    /// A tool or privilege the scenario needs is missing.
    #[error("{0}")]
    Missing(String),
    /// A store operation failed (store scenario).
    #[error("store operation failed during the benchmark: {0}")]
    Store(#[from] store::StoreError),
    /// The user interrupted the benchmark; what it started has been removed.
    #[error("interrupted")]
    Interrupted,
    /// Local file or process I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl BenchError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks running scenarios to stop (Ctrl-C): blocking phases (the runc floor, Docker
/// Swarm) notice it between steps and return an error, so their cleanup runs.
pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Fails if [`interrupt`] was called.
pub(crate) fn check_interrupted() -> Result<(), BenchError> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        Err(BenchError::Interrupted)
    } else {
        Ok(())
    }
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

/// Prints one phase of a scenario on stderr (the figures go to stdout).
pub(crate) fn say(what: impl std::fmt::Display) {
    eprintln!("bench: {what}");
}

/// The side-by-side table of a report that compares drover with a reference system
/// (`metric | drover | reference | ratio`), or None for reports without one.
pub fn comparison_table(report: &serde_json::Value) -> Option<String> {
    let rows: &[(&str, &str, &str, &str, Option<&str>)] = match report["scenario"].as_str()? {
        "pod-startup" => &[
            (
                "create → Running p50 (ms)",
                "p50_ms",
                "runc_floor_p50_ms",
                "runc run -d",
                Some("ratio_p50"),
            ),
            (
                "create → Running p99 (ms)",
                "p99_ms",
                "runc_floor_p99_ms",
                "runc run -d",
                None,
            ),
        ],
        "deploy" => &[
            (
                "seconds to all Running",
                "seconds_to_100",
                "swarm_seconds_to_100",
                "Docker Swarm",
                Some("ratio"),
            ),
            (
                "MiB per running pod",
                "mb_per_pod",
                "swarm_mb_per_pod",
                "Docker Swarm",
                Some("memory_ratio"),
            ),
        ],
        "store" => &[
            (
                "writes per second",
                "writes_per_second",
                "etcd_writes_per_second",
                "etcd",
                Some("ratio"),
            ),
            (
                "put → watch p50 (ms)",
                "watch_delay_p50_ms",
                "etcd_watch_delay_p50_ms",
                "etcd",
                None,
            ),
            (
                "put → watch p99 (ms)",
                "watch_delay_p99_ms",
                "etcd_watch_delay_p99_ms",
                "etcd",
                None,
            ),
        ],
        _ => return None,
    };
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "n/a".to_string(),
        v => v.to_string(),
    };
    let mut out = format!(
        "{:<28} {:>12} {:>14} {:>8}  vs\n",
        "metric", "drover", "reference", "ratio"
    );
    for (label, ours, theirs, who, ratio) in rows {
        let ratio = ratio.map_or_else(String::new, |k| show(&report[k]));
        out.push_str(&format!(
            "{label:<28} {:>12} {:>14} {ratio:>8}  {who}\n",
            show(&report[*ours]),
            show(&report[*theirs]),
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparison_tables_show_null_reference_figures_as_na() {
        let r = json!({"scenario": "deploy", "seconds_to_100": 8.5, "swarm_seconds_to_100": null,
                       "ratio": null, "mb_per_pod": 2.4, "swarm_mb_per_pod": null, "memory_ratio": null});
        let t = comparison_table(&r).unwrap();
        assert!(
            t.contains("8.5") && t.contains("n/a") && t.contains("Docker Swarm"),
            "{t}"
        );
        assert!(comparison_table(&json!({"scenario": "api"})).is_none());
    }
}
