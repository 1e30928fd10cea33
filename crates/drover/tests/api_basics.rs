//! kubectl against the real server: discovery, tables, CRUD and errors.

mod common;
use common::Server;

#[test]
fn version_is_public_and_reports_1_33() {
    let s = Server::start();
    let out = s.kubectl(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "33");
    assert!(
        v["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.33"),
        "the dispatcher must pick kubectl 1.33: {out}"
    );
}

#[test]
fn requests_without_valid_credentials_get_401() {
    let s = Server::start();
    let out = s
        .kubectl_cmd(&["get", "pods", "--token", "wrong"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
}

#[test]
fn default_namespaces_and_api_resources() {
    let s = Server::start();
    let ns = s.kubectl(&["get", "ns", "-o", "name"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
    }
    let res = s.kubectl(&["api-resources", "-o", "name"]);
    for r in [
        "pods",
        "deployments.apps",
        "customresourcedefinitions.apiextensions.k8s.io",
        "leases.coordination.k8s.io",
        "horizontalpodautoscalers.autoscaling",
        "endpointslices.discovery.k8s.io",
        "cronjobs.batch",
    ] {
        assert!(res.lines().any(|l| l == r), "missing {r} in:\n{res}");
    }
}

#[test]
fn apply_twice_then_server_side_and_tables() {
    let s = Server::start();
    let manifest = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.25\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  ports:\n  - port: 80\n    targetPort: 8080\n"
        )
    };
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &manifest(2));
    assert!(
        out.contains("deployment.apps/web created") && out.contains("service/web created"),
        "{out}"
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &manifest(4));
    assert!(
        out.contains("deployment.apps/web configured") && out.contains("service/web unchanged"),
        "{out}"
    );
    assert_eq!(
        s.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    let table = s.kubectl(&["get", "deploy,svc"]);
    assert!(table.contains("deployment.apps/web"), "{table}");
    let header = table.lines().next().unwrap();
    for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains("80/TCP"), "{table}");
    let wide = s.kubectl(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS") && wide.contains("nginx:1.25") && wide.contains("app=web"),
        "{wide}"
    );
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &manifest(3));
    assert!(out.contains("serverside-applied"), "{out}");
    assert_eq!(
        s.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
}

#[test]
fn errors_are_kubernetes_statuses() {
    let s = Server::start();
    let err = s.kubectl_err(&["get", "deploy", "nosuch"]);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"nosuch\" not found"),
        "{err}"
    );
    s.kubectl(&["create", "configmap", "c1", "--from-literal=a=b"]);
    let err = s.kubectl_err(&["create", "configmap", "c1", "--from-literal=a=b"]);
    assert!(err.contains("configmaps \"c1\" already exists"), "{err}");
    let bad_name = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n";
    let out = s.kubectl_stdin_output(&["apply", "-f", "-"], bad_name);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );
    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\nspecc: {}\n";
    let out = s.kubectl_stdin_output(&["apply", "-f", "-"], unknown);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown field") && err.contains("specc"),
        "{err}"
    );
    assert!(
        s.kubectl_output(&["get", "cm", "ok"]).status.code() != Some(0),
        "nothing may be written for a rejected object"
    );
}

#[test]
fn custom_resources_are_served_once_their_crd_exists() {
    let s = Server::start();
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              size: {type: integer}\n    additionalPrinterColumns:\n    - {name: Size, type: integer, jsonPath: .spec.size}\n";
    s.kubectl_stdin(&["apply", "-f", "-"], crd);
    let widget = |size: u32| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w1}}\nspec: {{size: {size}}}\n"
        )
    };
    assert!(
        s.kubectl_stdin(&["apply", "-f", "-"], &widget(3))
            .contains("widget.example.com/w1 created")
    );
    assert!(
        s.kubectl_stdin(&["apply", "-f", "-"], &widget(5))
            .contains("widget.example.com/w1 configured")
    );
    let table = s.kubectl(&["get", "wd"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains("SIZE"), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..2]
            == ["w1", "5"],
        "{table}"
    );
    let explain = s.kubectl(&["explain", "widget.spec"]);
    assert!(
        explain.contains("size") && explain.contains("<integer>"),
        "{explain}"
    );
    // Deleting the CRD deletes its objects: a re-created CRD starts empty.
    s.kubectl(&["delete", "crd", "widgets.example.com"]);
    s.kubectl_stdin(&["apply", "-f", "-"], crd);
    let out = s.kubectl_output(&["get", "widgets.example.com", "w1"]);
    assert!(!out.status.success(), "w1 must be gone with its CRD");
}

#[test]
fn explain_describes_builtin_fields() {
    let s = Server::start();
    let out = s.kubectl(&["explain", "deployment.spec.replicas"]);
    assert!(out.contains("Number of desired pods"), "{out}");
    let out = s.kubectl(&["explain", "pod.spec.containers.image"]);
    assert!(out.contains("<string>"), "{out}");
}

#[test]
fn binding_assigns_a_pod_once_and_jobs_get_their_selector() {
    let s = Server::start();
    s.kubectl(&["run", "p1", "--image=busybox"]);
    let bind = |node: &str| {
        std::process::Command::new("curl")
            .args(["-sk", "-X", "POST", "-H", &format!("Authorization: Bearer {}", s.token()), "-H", "Content-Type: application/json"])
            .arg(format!("{}/api/v1/namespaces/default/pods/p1/binding", s.url))
            .arg("-d")
            .arg(format!(r#"{{"apiVersion":"v1","kind":"Binding","metadata":{{"name":"p1"}},"target":{{"kind":"Node","name":"{node}"}}}}"#))
            .output()
            .unwrap()
    };
    let first: serde_json::Value = serde_json::from_slice(&bind("n1").stdout).unwrap();
    assert_eq!(first["status"], "Success", "{first}");
    let second: serde_json::Value = serde_json::from_slice(&bind("n2").stdout).unwrap();
    assert_eq!(
        (second["code"].as_i64(), second["reason"].as_str()),
        (Some(409), Some("Conflict")),
        "{second}"
    );
    assert_eq!(
        s.kubectl(&["get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}"]),
        "n1"
    );
    s.kubectl(&["create", "job", "j1", "--image=busybox", "--", "echo", "hi"]);
    let uid = s.kubectl(&["get", "job", "j1", "-o", "jsonpath={.metadata.uid}"]);
    let sel = s.kubectl(&[
        "get",
        "job",
        "j1",
        "-o",
        "jsonpath={.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid}",
    ]);
    assert_eq!(sel, uid);
}

#[test]
fn compacted_history_answers_410_gone() {
    let s = Server::start_with(&["--history-revisions", "5", "--compaction-interval", "1"]);
    let list: serde_json::Value = serde_json::from_str(&s.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
    ]))
    .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        s.kubectl(&["create", "cm", &format!("c{i}")]);
    }
    let page: serde_json::Value = serde_json::from_str(&s.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=1",
    ]))
    .unwrap();
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    for i in 3..20 {
        s.kubectl(&["create", "cm", &format!("c{i}")]);
    }
    // Once the compactor has run, a watch from the old revision ends with a 410 ERROR event.
    let event = common::wait_for(
        "a 410 on a watch from a compacted revision",
        std::time::Duration::from_secs(30),
        || {
            let out = s.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1")]);
            let first: serde_json::Value = serde_json::from_str(out.lines().next()?).ok()?;
            (first["type"] == "ERROR").then_some(first)
        },
    );
    assert_eq!(event["object"]["code"], 410, "{event}");
    assert_eq!(event["object"]["reason"], "Expired", "{event}");
    // A continue token from before the compaction is refused the same way.
    let err = s.kubectl_err(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?limit=1&continue={token}"),
    ]);
    assert!(
        err.contains("Expired") || err.contains("410") || err.contains("too old"),
        "{err}"
    );
    // The current state is intact.
    assert_eq!(s.kubectl(&["get", "cm", "-o", "name"]).lines().count(), 20);
}

#[test]
fn every_supported_kubectl_minor_applies_reads_and_deletes() {
    let s = Server::start();
    for minor in ["29", "31", "33"] {
        let bin = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
        let run = |args: &[&str], input: Option<&str>| {
            use std::io::Write;
            let mut child = s
                .kubectl_bin_cmd(&bin, args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.unwrap_or("").as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "kubectl 1.{minor} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let ns = format!("v{minor}");
        run(&["create", "namespace", &ns], None);
        let manifest = |replicas: u32| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n"
            )
        };
        run(&["apply", "-f", "-"], Some(&manifest(1)));
        run(&["apply", "-f", "-"], Some(&manifest(2)));
        run(&["scale", "-n", &ns, "deploy/web", "--replicas=4"], None);
        assert_eq!(
            run(
                &[
                    "get",
                    "-n",
                    &ns,
                    "deploy",
                    "web",
                    "-o",
                    "jsonpath={.spec.replicas}"
                ],
                None
            ),
            "4"
        );
        let table = run(&["get", "-n", &ns, "deploy"], None);
        assert!(
            table.starts_with("NAME") && table.contains("UP-TO-DATE"),
            "1.{minor}: {table}"
        );
        let generated = run(
            &["create", "-o", "name", "-f", "-"],
            Some(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: gen-\n  namespace: {ns}\n"
            )),
        );
        assert!(
            generated.trim().starts_with("configmap/gen-")
                && generated.trim().len() == "configmap/gen-".len() + 5,
            "{generated}"
        );
        run(&["delete", "namespace", &ns], None);
        assert!(s.kubectl_output(&["get", "ns", &ns]).status.code() != Some(0));
    }
}

#[test]
fn deletecollection_removes_only_what_the_selector_matches() {
    let s = Server::start();
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        s.kubectl(&["create", "cm", name]);
        s.kubectl(&["label", "cm", name, &format!("tier={tier}")]);
    }
    s.kubectl(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/default/configmaps?labelSelector=tier%3Dx",
    ]);
    assert_eq!(
        s.kubectl(&["get", "cm", "-o", "name"]).trim(),
        "configmap/c"
    );
}

#[test]
fn drover_kubeconfig_prints_what_the_server_wrote() {
    let s = Server::start();
    let out = std::process::Command::new(common::drover_bin())
        .args(["kubeconfig", "--data-dir"])
        .arg(s.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, std::fs::read_to_string(s.kubeconfig()).unwrap());
    assert!(
        printed.contains(&s.url)
            && printed.contains("certificate-authority-data")
            && printed.contains(&s.token())
    );
    let missing = std::process::Command::new(common::drover_bin())
        .args(["kubeconfig", "--data-dir", "/nonexistent/drover"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.starts_with("drover: cannot read") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn the_join_token_authenticates_agents_and_a_made_up_one_does_not() {
    let s = Server::start();
    let join = std::fs::read_to_string(s.dir.path().join("join-token")).unwrap();
    let ok = s.kubectl_output(&["get", "nodes", "--token", join.trim()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = s.kubectl_output(&["get", "nodes", "--token", &format!("{}x", join.trim())]);
    assert!(!bad.status.success());
}

#[test]
fn a_custom_resource_before_its_crd_is_a_clear_not_found() {
    let s = Server::start();
    let out = s.kubectl_stdin_output(
        &["apply", "-f", "-"],
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("failed to download openapi"), "{err}");
    assert!(
        err.contains("NotFound") || err.contains("no matches for kind"),
        "{err}"
    );
}
