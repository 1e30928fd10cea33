//! kubectl delete against the real server: single, by label selector, --all, the three
//! cascade policies over ownerReferences, finalizers with `wait --for=delete`, and
//! namespace deletion.

mod common;
use common::{Server, wait_for};
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn exists(s: &Server, args: &[&str]) -> bool {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    let out = s.kubectl_output(&a);
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NotFound"), "unexpected error: {err}");
    false
}

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl(&a)).unwrap()
}

fn names(s: &Server, args: &[&str]) -> Vec<String> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "name"]);
    let mut v: Vec<String> = s.kubectl(&a).lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn delete_single_by_selector_and_all() {
    let s = Server::start();
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")] {
        s.kubectl(&["create", "configmap", n]);
        s.kubectl(&["label", "cm", n, &format!("grp={l}")]);
    }
    s.kubectl(&["create", "configmap", "other", "-n", "kube-system"]);
    assert_eq!(
        s.kubectl(&["delete", "cm", "a"]).trim(),
        "configmap \"a\" deleted"
    );
    assert!(!exists(&s, &["cm", "a"]));
    let err = s.kubectl_err(&["delete", "cm", "a"]);
    assert!(
        err.contains("Error from server (NotFound): configmaps \"a\" not found"),
        "{err}"
    );

    let out = s.kubectl(&["delete", "cm", "-l", "grp=y"]);
    assert!(
        out.contains("configmap \"c\" deleted") && out.contains("configmap \"d\" deleted"),
        "{out}"
    );
    // Only the selected objects go.
    let left = names(&s, &["cm"]);
    assert!(left.contains(&"configmap/b".to_string()), "{left:?}");
    assert!(
        !left
            .iter()
            .any(|n| n == "configmap/c" || n == "configmap/d"),
        "{left:?}"
    );

    s.kubectl(&["delete", "cm", "--all"]);
    assert!(names(&s, &["cm"]).is_empty());
    // --all is per namespace: kube-system's configmap stays.
    assert!(exists(&s, &["cm", "other", "-n", "kube-system"]));
    // A selector that matches nothing deletes nothing.
    let out = s.kubectl_output(&["delete", "cm", "-l", "grp=none", "-n", "kube-system"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "No resources found"
    );
    assert!(exists(&s, &["cm", "other", "-n", "kube-system"]));
}

/// A Deployment owning a ReplicaSet owning a Pod, linked by ownerReferences as the
/// Deployment and ReplicaSet controllers would link them.
fn owner_chain(s: &Server) -> (String, String) {
    s.kubectl(&["create", "deployment", "web", "--image=nginx"]);
    let d = get_json(s, &["deploy", "web"]);
    let d_uid = d["metadata"]["uid"].as_str().unwrap().to_string();
    let rs = format!(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-abc
  labels: {{app: web}}
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: web
    uid: {d_uid}
    controller: true
    blockOwnerDeletion: true
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx
"#
    );
    s.kubectl_stdin(&["create", "-f", "-"], &rs);
    let rs_uid = get_json(s, &["rs", "web-abc"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web-abc-1
  labels: {{app: web}}
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: web-abc
    uid: {rs_uid}
    controller: true
    blockOwnerDeletion: true
spec:
  containers:
  - name: nginx
    image: nginx
"#
    );
    s.kubectl_stdin(&["create", "-f", "-"], &pod);
    // An unrelated pod with the same labels but no owner must survive every cascade.
    s.kubectl(&["run", "loner", "--image=nginx", "--labels=app=web"]);
    (d_uid, rs_uid)
}

#[test]
fn cascade_background_deletes_dependents_after_the_owner() {
    let s = Server::start();
    owner_chain(&s);
    let out = s.kubectl(&["delete", "deploy", "web", "--cascade=background"]);
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    // Background: the owner is gone at once; the garbage collector then removes the
    // ReplicaSet and, transitively, its Pod.
    assert!(!exists(&s, &["deploy", "web"]));
    wait_for("the ReplicaSet to be collected", T, || {
        (!exists(&s, &["rs", "web-abc"])).then_some(())
    });
    wait_for("the Pod to be collected", T, || {
        (!exists(&s, &["pod", "web-abc-1"])).then_some(())
    });
    assert!(exists(&s, &["pod", "loner"]));
}

#[test]
fn cascade_foreground_deletes_dependents_before_the_owner() {
    let s = Server::start();
    owner_chain(&s);
    // kubectl waits for the owner to disappear; with foreground deletion that happens
    // only after every blocking dependent is gone.
    let out = s.kubectl(&["delete", "deploy", "web", "--cascade=foreground"]);
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    assert!(!exists(&s, &["deploy", "web"]));
    assert!(!exists(&s, &["rs", "web-abc"]));
    assert!(!exists(&s, &["pod", "web-abc-1"]));
    assert!(exists(&s, &["pod", "loner"]));
}

#[test]
fn cascade_foreground_marks_the_owner_while_a_dependent_blocks() {
    let s = Server::start();
    owner_chain(&s);
    // A finalizer holds the pod, so the foreground deletion cannot finish: the owner must
    // stay visible with a deletionTimestamp and the foregroundDeletion finalizer.
    s.kubectl(&[
        "patch",
        "pod",
        "web-abc-1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.kubectl(&[
        "delete",
        "deploy",
        "web",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let d = get_json(&s, &["deploy", "web"]);
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    assert!(
        d["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "foregroundDeletion"),
        "{d}"
    );
    let pod = wait_for("the pod to be marked for deletion", T, || {
        let p = get_json(&s, &["pod", "web-abc-1"]);
        p["metadata"]["deletionTimestamp"].is_string().then_some(p)
    });
    assert_eq!(pod["metadata"]["finalizers"][0], "example.com/hold");
    assert!(exists(&s, &["deploy", "web"]));
    // Releasing the pod lets the whole chain finish.
    s.kubectl(&[
        "patch",
        "pod",
        "web-abc-1",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    s.kubectl(&["wait", "--for=delete", "deploy/web", "--timeout=30s"]);
    assert!(!exists(&s, &["rs", "web-abc"]));
    assert!(!exists(&s, &["pod", "web-abc-1"]));
}

#[test]
fn cascade_orphan_strips_owner_references() {
    let s = Server::start();
    let (d_uid, rs_uid) = owner_chain(&s);
    let out = s.kubectl(&["delete", "deploy", "web", "--cascade=orphan"]);
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    assert!(!exists(&s, &["deploy", "web"]));
    // The ReplicaSet stays, without the reference to its deleted owner.
    let rs = get_json(&s, &["rs", "web-abc"]);
    assert_eq!(rs["metadata"]["uid"], rs_uid.as_str());
    assert!(
        rs["metadata"].get("ownerReferences").is_none()
            || rs["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .is_empty(),
        "{rs}"
    );
    assert!(!rs.to_string().contains(&d_uid));
    // Orphaning is one level deep: the pod keeps its reference to the ReplicaSet.
    let pod = get_json(&s, &["pod", "web-abc-1"]);
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["uid"],
        rs_uid.as_str()
    );
    // Deleting the ReplicaSet now (default: background) takes the pod with it.
    s.kubectl(&["delete", "rs", "web-abc"]);
    wait_for("the Pod to be collected", T, || {
        (!exists(&s, &["pod", "web-abc-1"])).then_some(())
    });
    assert!(exists(&s, &["pod", "loner"]));
}

#[test]
fn wait_for_delete_of_an_object_held_by_a_finalizer() {
    let s = Server::start();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata: {a: b}\n";
    s.kubectl_stdin(&["create", "-f", "-"], cm);
    s.kubectl(&["delete", "cm", "held", "--wait=false"]);
    // A finalizer keeps the object, now marked with deletionTimestamp.
    let obj = get_json(&s, &["cm", "held"]);
    assert!(obj["metadata"]["deletionTimestamp"].is_string(), "{obj}");
    // Waiting times out while the finalizer is there.
    let err = s.kubectl_err(&["wait", "--for=delete", "cm/held", "--timeout=1s"]);
    assert!(err.contains("timed out waiting"), "{err}");
    // Removing the finalizer while `kubectl wait` runs lets the deletion finish.
    // -v=6 logs each request: once the watch request shows, kubectl is waiting on the
    // live object (otherwise a fast deletion would leave it nothing to wait for).
    let mut waiter = s
        .kubectl_cmd(&["wait", "--for=delete", "cm/held", "--timeout=60s", "-v=6"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = waiter.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("watch=true") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(T)
        .expect("kubectl wait never started its watch");
    s.kubectl(&[
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configmap/held condition met"
    );
    assert!(!exists(&s, &["cm", "held"]));
}

#[test]
fn namespace_deletion_removes_everything_in_it() {
    let s = Server::start();
    s.kubectl(&["create", "namespace", "doomed"]);
    s.kubectl(&["create", "namespace", "kept"]);
    for ns in ["doomed", "kept"] {
        s.kubectl(&["create", "configmap", "c", "-n", ns]);
        s.kubectl(&[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=k=v",
            "-n",
            ns,
        ]);
        s.kubectl(&["create", "deployment", "d", "--image=nginx", "-n", ns]);
        s.kubectl(&["run", "p", "--image=nginx", "-n", ns]);
        s.kubectl(&[
            "create",
            "service",
            "clusterip",
            "svc",
            "--tcp=80:80",
            "-n",
            ns,
        ]);
    }
    let out = s.kubectl(&["delete", "namespace", "doomed"]);
    assert_eq!(out.trim(), "namespace \"doomed\" deleted");
    assert!(!exists(&s, &["ns", "doomed"]));
    for kind in ["cm", "secret", "deploy", "pod", "svc"] {
        let out = s.kubectl_output(&["get", kind, "-n", "doomed", "-o", "name"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "{kind} left in a deleted namespace: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            names(&s, &[kind, "-n", "kept"]).len(),
            1,
            "{kind} in namespace kept"
        );
    }
    // Creating in a missing namespace is refused with NotFound on the namespace.
    let err = s.kubectl_err(&["create", "configmap", "x", "-n", "doomed"]);
    assert!(err.contains("namespaces \"doomed\" not found"), "{err}");
}

#[test]
fn terminating_namespace_refuses_new_objects() {
    let s = Server::start();
    s.kubectl(&["create", "namespace", "slow"]);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: slow\n  finalizers: [example.com/hold]\n";
    s.kubectl_stdin(&["create", "-f", "-"], cm);
    s.kubectl(&["delete", "namespace", "slow", "--wait=false"]);
    let ns = wait_for("the namespace to be Terminating", T, || {
        let ns = get_json(&s, &["ns", "slow"]);
        (ns["status"]["phase"] == "Terminating").then_some(ns)
    });
    assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");
    // Kubernetes (NamespaceLifecycle admission): objects cannot be created in a namespace
    // that is being terminated.
    let err = s.kubectl_err(&["create", "configmap", "new", "-n", "slow"]);
    assert!(err.contains("because it is being terminated"), "{err}");
    s.kubectl(&[
        "patch",
        "cm",
        "held",
        "-n",
        "slow",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    s.kubectl(&["wait", "--for=delete", "ns/slow", "--timeout=30s"]);
    assert!(!exists(&s, &["ns", "slow"]));
}
