//! `drover bench` runs its scenarios end to end and writes the documented JSON keys
//! (the figures themselves are never asserted: timings live in benchmarks, not tests).

mod common;

fn run_bench(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = std::process::Command::new(common::drover_bin())
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drover bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

#[test]
fn api_scenario_reports_latencies_and_every_watch_event_arrives() {
    let r = run_bench(&[
        "api",
        "--objects",
        "60",
        "--clients",
        "3",
        "--watchers",
        "2",
    ]);
    for key in [
        "mutation_p50_ms",
        "mutation_p99_ms",
        "list_p99_ms",
        "watch_delay_p99_ms",
    ] {
        assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {r}");
    }
    assert_eq!(r["objects"], 60);
}

#[test]
fn footprint_scenario_reports_memory() {
    let r = run_bench(&["footprint", "--pods", "20"]);
    assert!(r["idle_rss_mb"].as_f64().is_some_and(|v| v > 1.0), "{r}");
    assert!(r["rss_mb_per_1000_pods"].is_number(), "{r}");
}

#[test]
fn scheduler_scenario_places_every_pod_on_hollow_nodes() {
    let r = run_bench(&["scheduler", "--nodes", "4", "--pods", "24"]);
    assert_eq!(r["pods"], 24);
    for key in [
        "pods_per_second",
        "seconds_to_all_running",
        "server_peak_rss_mb",
    ] {
        assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {r}");
    }
}
