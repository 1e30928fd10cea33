//! Leader election of the control loops end to end: one real etcd (Debian's
//! `etcd-server`) on loopback, two real `drover server`s on it with their own data
//! directories, the real kubectl. Exactly one server runs the scheduler and the
//! controllers (the holders of the Leases `kube-system/kube-scheduler` and
//! `kube-system/kube-controller-manager`); the other takes over when the leader dies
//! (kill -9: after the lease expires) or stops (SIGTERM: it releases the leases).

mod common;

use common::etcd::Etcd;
use common::{Server, wait_for};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
const LEASES: [&str; 2] = ["kube-scheduler", "kube-controller-manager"];

/// The leader election identity a server drew (kept in its data directory).
fn identity(s: &Server) -> String {
    let path = s.dir.path().join("leader-election-identity");
    wait_for("the server's leader election identity", T, || {
        std::fs::read_to_string(&path)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })
}

/// A Lease of kube-system read with kubectl; None while it does not exist.
fn lease(s: &Server, name: &str) -> Option<Value> {
    let out = s.kubectl_output(&["get", "lease", "-n", "kube-system", name, "-o", "json"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("NotFound"), "kubectl get lease {name}: {err}");
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("lease JSON"))
}

/// The holder of a kube-system Lease ("" when absent or released).
fn holder(s: &Server, name: &str) -> String {
    lease(s, name)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Waits until `id` holds both control-plane Leases.
fn wait_leading(s: &Server, id: &str, what: &str) {
    wait_for(what, T, || {
        LEASES.iter().all(|l| holder(s, l) == id).then_some(())
    });
}

fn json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl(&all)).unwrap()
}

/// (ReplicaSets of the `web` Deployment, live pods of it) as one server sees them.
fn counts(s: &Server, ns: &str) -> (usize, usize) {
    let live = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["metadata"]["deletionTimestamp"].is_null())
            .count()
    };
    let rs = json(s, &["get", "rs", "-n", ns, "-l", "app=web"]);
    let pods = json(s, &["get", "pods", "-n", ns, "-l", "app=web"]);
    (live(&rs), live(&pods))
}

/// Asserts `f` for `window` (polling): a second active controller manager would create
/// a second ReplicaSet or extra pods within a few of its sync periods.
fn holds_for(what: &str, window: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        if let Err(e) = f() {
            panic!("{what}: {e}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every pod name a `kubectl get pods -w` through `s` has reported in `ns` (started
/// before the workload exists), to count pods ever created, not only those left.
struct PodWatch {
    child: Child,
    seen: Arc<Mutex<BTreeSet<String>>>,
}

impl PodWatch {
    fn start(s: &Server, ns: &str) -> PodWatch {
        let mut child = s
            .kubectl_cmd(&[
                "get",
                "pods",
                "-n",
                ns,
                "-w",
                "--output-watch-events",
                "-o",
                "jsonpath={.object.metadata.name}{\"\\n\"}",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run kubectl get pods -w");
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().insert(line.trim().to_string());
            }
        });
        let w = PodWatch { child, seen };
        // The watch is live once it reports a pod created after it started (a bare pod
        // the Deployment's selector does not match).
        s.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: probe, namespace: {ns}, labels: {{role: probe}}}}\n\
                 spec:\n  containers:\n  - {{name: c, image: busybox}}\n"
            ),
        );
        wait_for("the pod watch to start", T, || {
            w.seen.lock().unwrap().contains("probe").then_some(())
        });
        w
    }

    /// Names of the `web` Deployment's pods ever seen.
    fn web_pods(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.starts_with("web-"))
            .count()
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn deployment(ns: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - {{name: web, image: busybox, command: ["sleep", "3600"]}}
"#
    )
}

/// Whether a process is gone or a zombie (exited, not yet reaped by the harness).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn unique_ns(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{n:x}-{}", std::process::id())
}

#[test]
fn one_server_runs_the_control_loops_and_the_other_takes_over_after_kill9() {
    let etcd = Etcd::start();
    let store = etcd.store_flag();
    // Short timings keep the takeover quick; the leader's loops stop (renew deadline)
    // before its lease can expire for the standby.
    let flags = [
        "--store",
        &store,
        "--leader-elect-lease-duration",
        "8",
        "--leader-elect-renew-deadline",
        "5",
        "--leader-elect-retry-period",
        "1",
    ];
    let mut a = Server::launch_cluster_with(&flags);
    let id_a = identity(&a);
    wait_leading(&a, &id_a, "the first server to lead both loops");
    let b = Server::launch_cluster_with(&flags);
    let id_b = identity(&b);
    assert_ne!(id_a, id_b, "two servers must be two candidates");

    // Both servers see one holder per Lease: the first server.
    for name in LEASES {
        let l = lease(&b, name).expect("lease exists");
        assert_eq!(l["spec"]["holderIdentity"], id_a.as_str(), "{l}");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 8, "{l}");
        assert!(l["spec"]["renewTime"].is_string(), "{l}");
        assert!(l["spec"]["acquireTime"].is_string(), "{l}");
    }

    // A Deployment written through the standby is reconciled once, by the leader: one
    // ReplicaSet, three pods (Pending: there is no node).
    let ns = unique_ns("le");
    b.kubectl(&["create", "namespace", &ns]);
    let watch = PodWatch::start(&b, &ns);
    b.kubectl_stdin(&["apply", "-f", "-"], &deployment(&ns));
    wait_for("one ReplicaSet and 3 pods", T, || {
        (counts(&b, &ns) == (1, 3)).then_some(())
    });
    // Stays so over several renewals, and the standby never takes the Leases from a live
    // leader. Two controller managers would each create pods for the ReplicaSet: more
    // than 3 pods would have existed, even if the extra ones were deleted again.
    holds_for(
        "while the first server leads",
        Duration::from_secs(4),
        || {
            let c = counts(&b, &ns);
            if c != (1, 3) {
                return Err(format!("(ReplicaSets, pods) = {c:?}, want (1, 3)"));
            }
            let ever = watch.web_pods();
            if ever != 3 {
                return Err(format!("{ever} pods were created for 3 replicas"));
            }
            for name in LEASES {
                let h = holder(&b, name);
                if h != id_a {
                    return Err(format!("{name} is held by {h:?}, not the leader {id_a:?}"));
                }
            }
            Ok(())
        },
    );

    // The leader dies without a word: the standby takes both Leases once they expire.
    a.kill9();
    wait_leading(&b, &id_b, "the standby to take both Leases");
    for name in LEASES {
        let l = lease(&b, name).unwrap();
        assert!(l["spec"]["leaseTransitions"].as_i64().unwrap() >= 1, "{l}");
    }
    // And now runs the controllers.
    b.kubectl(&["scale", "deploy", "web", "-n", &ns, "--replicas=5"]);
    wait_for("one ReplicaSet and 5 pods", T, || {
        (counts(&b, &ns) == (1, 5)).then_some(())
    });
    holds_for("after the takeover", Duration::from_secs(2), || {
        let c = counts(&b, &ns);
        if c != (1, 5) {
            return Err(format!("(ReplicaSets, pods) = {c:?}, want (1, 5)"));
        }
        let ever = watch.web_pods();
        if ever != 5 {
            return Err(format!("{ever} pods were created for 5 replicas"));
        }
        Ok(())
    });
}

#[test]
fn a_leader_stopped_with_sigterm_releases_its_leases() {
    let etcd = Etcd::start();
    let store = etcd.store_flag();
    // A lease duration far longer than the test waits: the standby can only take over
    // this quickly because the stopping leader released the Leases.
    let a =
        Server::launch_cluster_with(&["--store", &store, "--leader-elect-lease-duration", "300"]);
    let id_a = identity(&a);
    wait_leading(&a, &id_a, "the first server to lead both loops");
    let b = Server::launch_cluster_with(&[
        "--store",
        &store,
        "--leader-elect-lease-duration",
        "300",
        "--leader-elect-retry-period",
        "1",
    ]);
    let id_b = identity(&b);
    for name in LEASES {
        assert_eq!(holder(&b, name), id_a, "the leader keeps {name}");
    }

    let pid = a.pid();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
    wait_for("the standby to take both released Leases", T, || {
        LEASES.iter().all(|l| holder(&b, l) == id_b).then_some(())
    });
    wait_for("the stopped leader to exit", T, || {
        exited(pid).then_some(())
    });

    // The new leader runs the controllers.
    let ns = unique_ns("le-term");
    b.kubectl(&["create", "namespace", &ns]);
    b.kubectl_stdin(&["apply", "-f", "-"], &deployment(&ns));
    wait_for("one ReplicaSet and 3 pods", T, || {
        (counts(&b, &ns) == (1, 3)).then_some(())
    });
}

/// The messages of the LeaderElection events about a kube-system Lease.
fn election_events(s: &Server, lease: &str) -> Vec<String> {
    let events = json(s, &["get", "events", "-n", "kube-system"]);
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "LeaderElection" && e["involvedObject"]["name"] == lease)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_leader_that_loses_its_lease_stops_its_loops_until_it_wins_it_back() {
    let s = Server::launch_cluster_with(&[
        "--leader-elect-lease-duration",
        "8",
        "--leader-elect-renew-deadline",
        "5",
        "--leader-elect-retry-period",
        "1",
    ]);
    let id = identity(&s);
    wait_leading(&s, &id, "the server to lead both loops");
    let cm = "kube-controller-manager";
    wait_for("the `became leader` event", T, || {
        election_events(&s, cm)
            .contains(&format!("{id} became leader"))
            .then_some(())
    });
    let ns = unique_ns("le-lose");
    s.kubectl(&["create", "namespace", &ns]);
    let watch = PodWatch::start(&s, &ns);
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment(&ns));
    wait_for("one ReplicaSet and 3 pods", T, || {
        (counts(&s, &ns) == (1, 3)).then_some(())
    });

    // Somebody else takes the Lease (as a server whose clock ran out would): at its next
    // renewal the server sees it and stops its controllers at once.
    s.kubectl(&[
        "patch",
        "lease",
        cm,
        "-n",
        "kube-system",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"holderIdentity":"intruder","leaseDurationSeconds":3600}}"#,
    ]);
    wait_for("the `stopped leading` event", T, || {
        election_events(&s, cm)
            .contains(&format!("{id} stopped leading"))
            .then_some(())
    });
    s.kubectl(&["scale", "deploy", "web", "-n", &ns, "--replicas=4"]);
    holds_for(
        "while another holds the controller manager's Lease",
        Duration::from_secs(3),
        || {
            let ever = watch.web_pods();
            if ever != 3 {
                return Err(format!(
                    "{ever} pods were created: the controllers still run"
                ));
            }
            let h = holder(&s, cm);
            (h == "intruder")
                .then_some(())
                .ok_or(format!("{cm} taken back from a live holder by {h:?}"))
        },
    );

    // The other holder releases it: the server wins it back and its controllers restart.
    s.kubectl(&[
        "patch",
        "lease",
        cm,
        "-n",
        "kube-system",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"holderIdentity":"","leaseDurationSeconds":1}}"#,
    ]);
    wait_for("the server to win its Lease back", T, || {
        (holder(&s, cm) == id).then_some(())
    });
    wait_for("one ReplicaSet and 4 pods", T, || {
        (counts(&s, &ns) == (1, 4)).then_some(())
    });
    assert_eq!(watch.web_pods(), 4);
}

#[test]
fn without_leader_election_the_loops_run_unconditionally() {
    let s = Server::launch_cluster_with(&["--leader-elect=false"]);
    let ns = unique_ns("le-off");
    s.kubectl(&["create", "namespace", &ns]);
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment(&ns));
    wait_for("one ReplicaSet and 3 pods", T, || {
        (counts(&s, &ns) == (1, 3)).then_some(())
    });
    for name in LEASES {
        assert!(lease(&s, name).is_none(), "no election, no Lease {name}");
    }
}

#[test]
fn invalid_leader_election_timing_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::drover_bin())
        .args([
            "server",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .args([
            "--leader-elect-lease-duration",
            "5",
            "--leader-elect-renew-deadline",
            "10",
        ])
        .env("DROVER_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--leader-elect-lease-duration"), "{err}");
    assert!(err.contains("renew deadline"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!Path::new(&dir.path().join("kubeconfig")).exists());
}
