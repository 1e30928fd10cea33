//! kubectl read commands against the real server: tables for every core kind, output
//! formats, `get -w`, label and field selectors, `wait --for=condition`, api-resources.

mod common;
use common::{Server, wait_for};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl(&a)).unwrap()
}

/// The names `kubectl get ... -o name` prints, sorted.
fn names(s: &Server, args: &[&str]) -> Vec<String> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "name"]);
    let mut v: Vec<String> = s.kubectl(&a).lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Splits a kubectl table line into columns (two or more spaces separate them).
fn columns(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {kubernetes.io/hostname: node-1}\n";

const OBJECTS: &str = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs1
spec:
  replicas: 2
  selector:
    matchLabels: {app: rs1}
  template:
    metadata:
      labels: {app: rs1}
    spec:
      containers:
      - {name: c, image: nginx}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: svc1
subsets:
- addresses:
  - ip: 10.1.2.3
  ports:
  - port: 8080
---
apiVersion: v1
kind: Event
metadata:
  name: pod1.123
involvedObject:
  kind: Pod
  name: pod1
  namespace: default
reason: Scheduled
message: assigned to node-1
type: Normal
source: {component: scheduler}
"#;

#[test]
fn tables_for_every_core_kind_across_namespaces() {
    let s = Server::start();
    s.kubectl_stdin(&["create", "-f", "-"], NODE);
    s.kubectl_stdin(&["create", "-f", "-"], &NODE.replace("node-1", "node-2"));
    s.kubectl(&[
        "label",
        "node",
        "node-2",
        "node-role.kubernetes.io/control-plane=",
    ]);
    s.kubectl(&[
        "patch",
        "node",
        "node-2",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}],"nodeInfo":{"kubeletVersion":"v1.33.0"}}}"#,
    ]);
    s.kubectl_stdin(&["create", "-f", "-"], OBJECTS);
    s.kubectl(&["run", "pod1", "--image=nginx"]);
    s.kubectl(&["create", "deployment", "dep1", "--image=nginx"]);
    s.kubectl(&["create", "service", "clusterip", "svc1", "--tcp=80:8080"]);
    s.kubectl(&[
        "create",
        "configmap",
        "cm1",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    s.kubectl(&["create", "secret", "generic", "sec1", "--from-literal=k=v"]);

    let out = s.kubectl(&[
        "get",
        "nodes,pods,deploy,rs,svc,ep,cm,secrets,ns,events",
        "-A",
    ]);
    // kubectl prints one table per kind, separated by blank lines, each with its header.
    let tables: Vec<Vec<&str>> = out
        .split("\n\n")
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    let find = |prefix: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let t = tables
            .iter()
            .find(|t| {
                t.iter()
                    .skip(1)
                    .any(|l| columns(l).iter().any(|c| c == prefix))
            })
            .unwrap_or_else(|| panic!("no table with {prefix} in:\n{out}"));
        (columns(t[0]), t[1..].iter().map(|l| columns(l)).collect())
    };
    // The columns real Kubernetes serves for each kind (the Table column definitions of
    // pkg/printers/internalversion); namespaced kinds get NAMESPACE first with -A.
    let expect: &[(&str, &[&str])] = &[
        (
            "node/node-1",
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ),
        (
            "pod/pod1",
            &["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ),
        (
            "deployment.apps/dep1",
            &[
                "NAMESPACE",
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
            ],
        ),
        (
            "replicaset.apps/rs1",
            &["NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ),
        (
            "service/svc1",
            &[
                "NAMESPACE",
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
        ),
        ("endpoints/svc1", &["NAMESPACE", "NAME", "ENDPOINTS", "AGE"]),
        ("configmap/cm1", &["NAMESPACE", "NAME", "DATA", "AGE"]),
        ("secret/sec1", &["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"]),
        // printEvent: the event's name is a wide-only column; its row is found by REASON.
        (
            "Scheduled",
            &[
                "NAMESPACE",
                "LAST SEEN",
                "TYPE",
                "REASON",
                "OBJECT",
                "MESSAGE",
            ],
        ),
    ];
    for (name, header) in expect {
        let (h, rows) = find(name);
        assert_eq!(&h, header, "header of the table holding {name}:\n{out}");
        let row = rows
            .iter()
            .find(|r| r.iter().any(|c| c == name))
            .unwrap_or_else(|| panic!("no row {name}"));
        // node-1 has no kubelet version yet: its last cell is empty.
        let cells = header.len() - usize::from(*name == "node/node-1");
        assert_eq!(row.len(), cells, "row {row:?} for header {header:?}");
    }
    let cell = |name: &str, col: &str| -> String {
        let (h, rows) = find(name);
        let i = h.iter().position(|c| c == col).unwrap();
        rows.iter().find(|r| r.iter().any(|c| c == name)).unwrap()[i].clone()
    };
    assert_eq!(cell("configmap/cm1", "DATA"), "2");
    assert_eq!(cell("secret/sec1", "TYPE"), "Opaque");
    assert_eq!(cell("secret/sec1", "DATA"), "1");
    assert_eq!(cell("service/svc1", "TYPE"), "ClusterIP");
    assert_eq!(cell("service/svc1", "PORT(S)"), "80/TCP");
    assert_eq!(cell("service/svc1", "EXTERNAL-IP"), "<none>");
    assert_eq!(cell("endpoints/svc1", "ENDPOINTS"), "10.1.2.3:8080");
    assert_eq!(cell("replicaset.apps/rs1", "DESIRED"), "2");
    assert_eq!(cell("deployment.apps/dep1", "READY"), "0/1");
    assert_eq!(cell("pod/pod1", "READY"), "0/1");
    assert_eq!(cell("pod/pod1", "STATUS"), "Pending");
    // Namespaces are cluster-scoped: no NAMESPACE column. (In the combined output above
    // kubectl itself keeps the column once a namespaced kind has switched it on, so the
    // header is checked on its own.)
    let ns = s.kubectl(&["get", "ns", "-A"]);
    assert_eq!(
        columns(ns.lines().next().unwrap()),
        ["NAME", "STATUS", "AGE"]
    );
    let row = ns
        .lines()
        .map(columns)
        .find(|r| r[0] == "kube-system")
        .unwrap();
    assert_eq!(row[1], "Active");
    assert_eq!(cell("Scheduled", "OBJECT"), "pod/pod1");
    assert_eq!(cell("Scheduled", "MESSAGE"), "assigned to node-1");
    // No timestamps at all: LAST SEEN is <unknown>.
    assert_eq!(cell("Scheduled", "LAST SEEN"), "<unknown>");
    // printNode: no Ready condition at all is "Unknown"; no role label means <none>; the
    // roles come from node-role.kubernetes.io/* labels.
    assert_eq!(cell("node/node-1", "STATUS"), "Unknown");
    assert_eq!(cell("node/node-1", "ROLES"), "<none>");
    assert_eq!(cell("node/node-2", "STATUS"), "Ready");
    assert_eq!(cell("node/node-2", "ROLES"), "control-plane");
    assert_eq!(cell("node/node-2", "VERSION"), "v1.33.0");
}

#[test]
fn output_formats() {
    let s = Server::start();
    s.kubectl(&["create", "configmap", "cm1", "--from-literal=color=blue"]);
    s.kubectl(&["run", "pod1", "--image=nginx:1.25", "--labels=app=x"]);

    let yaml = s.kubectl(&["get", "cm", "cm1", "-o", "yaml"]);
    for line in [
        "apiVersion: v1",
        "kind: ConfigMap",
        "  color: blue",
        "  name: cm1",
        "  namespace: default",
    ] {
        assert!(yaml.lines().any(|l| l == line), "no {line:?} in:\n{yaml}");
    }
    let j = get_json(&s, &["cm", "cm1"]);
    assert_eq!(j["kind"], "ConfigMap");
    assert_eq!(j["data"]["color"], "blue");
    assert!(
        j["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    // A list comes back as a v1 List of typed items.
    let list = get_json(&s, &["cm"]);
    assert_eq!(list["kind"], "List");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"]["name"] == "cm1" && i["kind"] == "ConfigMap"),
        "{list}"
    );
    assert_eq!(
        s.kubectl(&["get", "cm", "cm1", "-o", "name"]).trim(),
        "configmap/cm1"
    );
    assert_eq!(
        s.kubectl(&[
            "get",
            "cm",
            "cm1",
            "-o",
            "jsonpath={.data.color}/{.metadata.namespace}"
        ]),
        "blue/default"
    );
    assert_eq!(
        s.kubectl(&[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].image}{\"\\n\"}{end}"
        ]),
        "pod1=nginx:1.25\n"
    );
    assert_eq!(
        s.kubectl(&[
            "get",
            "pods",
            "-o",
            "custom-columns=N:.metadata.name,APP:.metadata.labels.app"
        ]),
        "N      APP\npod1   x\n"
    );
    let wide = s.kubectl(&["get", "pod", "pod1", "-o", "wide"]);
    let header = columns(wide.lines().next().unwrap());
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    assert_eq!(
        s.kubectl(&["get", "pod", "pod1", "--show-labels"])
            .lines()
            .nth(1)
            .map(|l| columns(l).last().cloned().unwrap_or_default()),
        Some("app=x".to_string())
    );
    let err = s.kubectl_err(&["get", "cm", "cm1", "-o", "bogus"]);
    assert!(err.contains("unable to match a printer"), "{err}");
}

/// Spawns `kubectl` and feeds its stdout lines into a channel.
fn spawn_lines(s: &Server, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = s
        .kubectl_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one satisfies `pred`; returns it.
fn read_until(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    wait_for(what, T, || {
        while let Ok(line) = rx.try_recv() {
            if pred(&line) {
                return Some(line);
            }
        }
        None
    })
}

#[test]
fn get_watch_streams_changes() {
    let s = Server::start();
    s.kubectl(&["create", "configmap", "before", "--from-literal=a=1"]);
    let (mut child, rx) = spawn_lines(&s, &["get", "cm", "-w"]);
    // The initial list first (with the header), then the changes as table rows.
    read_until(&rx, "the header", |l| l.starts_with("NAME"));
    read_until(&rx, "the existing object", |l| l.starts_with("before "));
    s.kubectl(&["create", "configmap", "during", "--from-literal=a=1"]);
    let line = read_until(&rx, "the new object", |l| l.starts_with("during "));
    assert_eq!(columns(&line)[1], "1", "{line}");
    s.kubectl(&[
        "patch",
        "cm",
        "during",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    let line = read_until(&rx, "the changed object", |l| {
        l.starts_with("during ") && columns(l)[1] == "2"
    });
    assert!(line.starts_with("during"));
    let _ = child.kill();
    let _ = child.wait();

    // With --output-watch-events and JSON, each event carries its type.
    let (mut child, rx) = spawn_lines(
        &s,
        &[
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
            "--watch-only",
        ],
    );
    // JSON objects span several lines: collect until a full event for each change shows.
    let events = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut seen = Vec::new();
    let parse_all = |buf: &str| -> Vec<Value> {
        serde_json::Deserializer::from_str(buf)
            .into_iter::<Value>()
            .filter_map(Result::ok)
            .collect()
    };
    // The watch starts asynchronously: keep touching an object until its event shows,
    // then make the real changes.
    wait_for("the watch to start", T, || {
        s.kubectl(&["annotate", "cm", "before", "--overwrite", "ping=x"]);
        while let Ok(l) = rx.try_recv() {
            events.lock().unwrap().push_str(&l);
            events.lock().unwrap().push('\n');
        }
        (!parse_all(&events.lock().unwrap()).is_empty()).then_some(())
    });
    s.kubectl(&["create", "configmap", "third"]);
    s.kubectl(&["label", "cm", "third", "x=y"]);
    s.kubectl(&["delete", "cm", "third"]);
    wait_for("ADDED, MODIFIED and DELETED of third", T, || {
        while let Ok(l) = rx.try_recv() {
            events.lock().unwrap().push_str(&l);
            events.lock().unwrap().push('\n');
        }
        seen = parse_all(&events.lock().unwrap())
            .into_iter()
            .filter(|e| e["object"]["metadata"]["name"] == "third")
            .map(|e| e["type"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>();
        (seen.len() >= 3).then_some(())
    });
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn label_selectors() {
    let s = Server::start();
    for (n, labels) in [
        ("prod1", "env=prod,tier=web"),
        ("prod2", "env=prod"),
        ("dev1", "env=dev,tier=web"),
        ("test1", "env=test"),
        ("none1", "tier=db"),
    ] {
        s.kubectl(&["create", "configmap", n]);
        let mut a = vec!["label", "cm", n];
        a.extend(labels.split(','));
        s.kubectl(&a);
    }
    let sel = |q: &str| -> Vec<String> {
        names(&s, &["cm", "-l", q])
            .into_iter()
            .map(|n| n.trim_start_matches("configmap/").to_string())
            .collect()
    };
    assert_eq!(sel("env=prod"), ["prod1", "prod2"]);
    assert_eq!(sel("env==prod"), ["prod1", "prod2"]);
    // != and notin also match objects that do not have the key (Kubernetes'
    // labels.Selector semantics).
    assert_eq!(sel("env!=prod"), ["dev1", "none1", "test1"]);
    assert_eq!(sel("env in (prod,dev)"), ["dev1", "prod1", "prod2"]);
    assert_eq!(sel("env notin (prod,dev)"), ["none1", "test1"]);
    assert_eq!(sel("tier"), ["dev1", "none1", "prod1"]);
    assert_eq!(sel("!tier"), ["prod2", "test1"]);
    // Requirements are ANDed.
    assert_eq!(sel("env=prod,tier=web"), ["prod1"]);
    assert_eq!(sel("tier,env notin (prod)"), ["dev1", "none1"]);
    assert!(sel("env=nope").is_empty());
    let err = s.kubectl_err(&["get", "cm", "-l", "env in prod"]);
    assert!(
        err.contains("unable to parse requirement") || err.contains("found 'prod', expected: '('"),
        "{err}"
    );
}

#[test]
fn field_selectors() {
    let s = Server::start();
    s.kubectl_stdin(&["create", "-f", "-"], NODE);
    s.kubectl(&["create", "namespace", "other"]);
    s.kubectl(&["run", "a", "--image=nginx"]);
    s.kubectl(&["run", "c", "--image=nginx", "-n", "other"]);
    s.kubectl(&["create", "configmap", "a"]);
    s.kubectl(&["create", "configmap", "a", "-n", "other"]);
    // Pod b runs on node-1 and is reported Running through the status subresource.
    s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\nspec:\n  nodeName: node-1\n  containers:\n  - {name: c, image: nginx}\n",
    );
    s.kubectl(&[
        "patch",
        "pod",
        "b",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);

    assert_eq!(
        names(&s, &["pods", "--field-selector", "metadata.name=a"]),
        ["pod/a"]
    );
    assert_eq!(
        names(&s, &["pods", "--field-selector", "metadata.name!=a"]),
        ["pod/b"]
    );
    assert_eq!(
        names(
            &s,
            &["cm", "-A", "--field-selector", "metadata.namespace=other"]
        ),
        ["configmap/a"]
    );
    let out = s.kubectl(&[
        "get",
        "cm",
        "-A",
        "--field-selector",
        "metadata.name=a",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
    ]);
    assert_eq!(out.trim(), "default/a other/a");
    assert_eq!(
        names(
            &s,
            &["pods", "-A", "--field-selector", "status.phase=Running"]
        ),
        ["pod/b"]
    );
    assert_eq!(
        names(
            &s,
            &["pods", "-A", "--field-selector", "status.phase=Pending"]
        ),
        ["pod/a", "pod/c"]
    );
    assert_eq!(
        names(
            &s,
            &["pods", "-A", "--field-selector", "spec.nodeName=node-1"]
        ),
        ["pod/b"]
    );
    // Unscheduled pods have an empty nodeName (what the scheduler watches for).
    assert_eq!(
        names(&s, &["pods", "-A", "--field-selector", "spec.nodeName="]),
        ["pod/a", "pod/c"]
    );
    assert_eq!(
        names(
            &s,
            &[
                "pods",
                "-A",
                "--field-selector",
                "status.phase=Pending,metadata.namespace=default"
            ]
        ),
        ["pod/a"]
    );
    // Fields Kubernetes does not index for a kind are refused with 400.
    let err = s.kubectl_err(&["get", "cm", "--field-selector", "data.x=y"]);
    assert!(
        err.contains("BadRequest") && err.contains("field label not supported: data.x"),
        "{err}"
    );
    let err = s.kubectl_err(&["get", "cm", "--field-selector", "spec.nodeName=node-1"]);
    assert!(err.contains("field label not supported"), "{err}");
}

#[test]
fn wait_for_condition_set_through_the_status_subresource() {
    let s = Server::start();
    s.kubectl(&["create", "deployment", "web", "--image=nginx"]);
    // The main resource ignores status changes (status is a subresource of Deployments).
    s.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Available","status":"True"}]}}"#,
    ]);
    assert!(get_json(&s, &["deploy", "web"])["status"]["conditions"].is_null());
    let err = s.kubectl_err(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=1s",
    ]);
    assert!(err.contains("timed out waiting"), "{err}");

    let waiter = s
        .kubectl_cmd(&[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "--timeout=60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = s.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":1,"readyReplicas":1,"availableReplicas":1,"conditions":[{"type":"Available","status":"True","reason":"MinimumReplicasAvailable"}]}}"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/web patched");
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "deployment.apps/web condition met"
    );
    let d = get_json(&s, &["deploy", "web"]);
    assert_eq!(d["status"]["readyReplicas"], 1);
    // Status writes do not bump the generation; the spec is untouched by them.
    assert_eq!(d["metadata"]["generation"], 1);
    // The status subresource ignores spec changes.
    s.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
    ]);
    assert_eq!(get_json(&s, &["deploy", "web"])["spec"]["replicas"], 1);
    // Other condition forms.
    s.kubectl(&[
        "wait",
        "--for=condition=Available=True",
        "deploy/web",
        "--timeout=5s",
    ]);
    s.kubectl(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=1",
        "deploy/web",
        "--timeout=5s",
    ]);
    let err = s.kubectl_err(&[
        "wait",
        "--for=condition=Available=False",
        "deploy/web",
        "--timeout=1s",
    ]);
    assert!(err.contains("timed out waiting"), "{err}");
    // The table now shows the reported readiness.
    let table = s.kubectl(&["get", "deploy", "web"]);
    assert_eq!(columns(table.lines().nth(1).unwrap())[1], "1/1", "{table}");
}

#[test]
fn api_resources_and_versions() {
    let s = Server::start();
    let out = s.kubectl(&["api-resources"]);
    let header = columns(out.lines().next().unwrap());
    assert_eq!(
        header,
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    let rows: Vec<Vec<String>> = out.lines().skip(1).map(columns).collect();
    let row = |name: &str, version: &str| -> Vec<String> {
        rows.iter()
            .find(|r| r[0] == name && r.iter().any(|c| c == version))
            .unwrap_or_else(|| panic!("no {name} {version} in:\n{out}"))
            .clone()
    };
    assert_eq!(row("pods", "v1"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(
        row("deployments", "apps/v1"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        row("namespaces", "v1"),
        ["namespaces", "ns", "v1", "false", "Namespace"]
    );
    assert_eq!(row("nodes", "v1"), ["nodes", "no", "v1", "false", "Node"]);
    assert_eq!(
        row("services", "v1"),
        ["services", "svc", "v1", "true", "Service"]
    );
    assert_eq!(
        row("customresourcedefinitions", "apiextensions.k8s.io/v1"),
        [
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition"
        ]
    );
    // Subresources are not listed.
    assert!(!out.contains("pods/status") && !out.contains("deployments/scale"));

    let cluster = s.kubectl(&["api-resources", "--namespaced=false", "-o", "name"]);
    let cluster: Vec<&str> = cluster.lines().collect();
    assert!(
        cluster.contains(&"nodes") && cluster.contains(&"namespaces"),
        "{cluster:?}"
    );
    assert!(!cluster.contains(&"pods"), "{cluster:?}");
    let apps = s.kubectl(&["api-resources", "--api-group=apps", "-o", "name"]);
    let mut apps: Vec<&str> = apps.lines().collect();
    apps.sort();
    assert_eq!(
        apps,
        [
            "controllerrevisions.apps",
            "daemonsets.apps",
            "deployments.apps",
            "replicasets.apps",
            "statefulsets.apps"
        ]
    );
    let wide = s.kubectl(&["api-resources", "-o", "wide", "--api-group=apps"]);
    let dep = wide.lines().find(|l| l.starts_with("deployments")).unwrap();
    for verb in [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ] {
        assert!(dep.contains(verb), "{dep}");
    }
    let versions = s.kubectl(&["api-versions"]);
    for v in [
        "v1",
        "apps/v1",
        "batch/v1",
        "coordination.k8s.io/v1",
        "autoscaling/v2",
        "discovery.k8s.io/v1",
        "apiextensions.k8s.io/v1",
    ] {
        assert!(versions.lines().any(|l| l == v), "no {v} in:\n{versions}");
    }
}
