//! kubectl write commands against the real server: create, scale, label, annotate, edit,
//! patch (json / merge / strategic) and apply (client-side twice, server-side with a
//! conflict and --force-conflicts).

mod common;
use common::Server;
use serde_json::Value;

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl(&a)).unwrap()
}

#[test]
fn create_namespace_and_deployment() {
    let s = Server::start();
    assert_eq!(
        s.kubectl(&["create", "namespace", "team-a"]).trim(),
        "namespace/team-a created"
    );
    let ns = get_json(&s, &["ns", "team-a"]);
    assert_eq!(ns["status"]["phase"], "Active");
    // Kubernetes labels every namespace with its own name (NamespaceDefaultLabelName).
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert!(
        ns["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );

    // kubectl 1.33 posts this body as protobuf.
    let out = s.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
        "-n",
        "team-a",
    ]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let d = get_json(&s, &["deploy", "web", "-n", "team-a"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "web");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["name"], "nginx");
    assert_eq!(c["image"], "nginx:1.25");
    assert_eq!(d["metadata"]["namespace"], "team-a");
    assert_eq!(d["metadata"]["generation"], 1);
    // Defaults the API server fills in for apps/v1 Deployments.
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);

    let err = s.kubectl_err(&["create", "namespace", "team-a"]);
    assert!(
        err.contains("Error from server (AlreadyExists): namespaces \"team-a\" already exists"),
        "{err}"
    );
}

#[test]
fn create_deployment_with_each_kubectl_minor() {
    let s = Server::start();
    for minor in ["29", "31", "33"] {
        let bin = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
        let name = format!("web{minor}");
        let image = format!("--image=nginx:1.{minor}");
        let out = s
            .kubectl_bin_cmd(&bin, &["create", "deployment", &name, &image])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl 1.{minor} create deployment failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("deployment.apps/{name} created")
        );
        let out = s
            .kubectl_bin_cmd(&bin, &["version", "-o", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["clientVersion"]["minor"], minor);
        let d = get_json(&s, &["deploy", &name]);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("nginx:1.{minor}")
        );
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], name.as_str());
        // `get` with that same binary prints the table.
        let out = s
            .kubectl_bin_cmd(&bin, &["get", "deploy", &name])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.starts_with("NAME") && table.contains(&name),
            "{table}"
        );
    }
}

#[test]
fn scale_label_annotate() {
    let s = Server::start();
    s.kubectl(&["create", "deployment", "web", "--image=nginx"]);
    assert_eq!(
        s.kubectl(&["scale", "deployment", "web", "--replicas=5"])
            .trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(
        s.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    // A spec change bumps metadata.generation.
    assert_eq!(
        s.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );
    // --current-replicas is a precondition: a mismatch must fail and change nothing.
    let err = s.kubectl_err(&[
        "scale",
        "deployment",
        "web",
        "--current-replicas=3",
        "--replicas=1",
    ]);
    assert!(err.contains("Expected replicas to be 3, was 5"), "{err}");
    assert_eq!(
        s.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );

    // label: add, overwrite only with --overwrite, remove with `key-`.
    assert_eq!(
        s.kubectl(&["label", "deploy", "web", "tier=front"]).trim(),
        "deployment.apps/web labeled"
    );
    let err = s.kubectl_err(&["label", "deploy", "web", "tier=back"]);
    assert!(
        err.contains("'tier' already has a value (front), and --overwrite is false"),
        "{err}"
    );
    s.kubectl(&["label", "deploy", "web", "tier=back", "--overwrite"]);
    let d = get_json(&s, &["deploy", "web"]);
    assert_eq!(d["metadata"]["labels"]["tier"], "back");
    assert_eq!(d["metadata"]["labels"]["app"], "web");
    s.kubectl(&["label", "deploy", "web", "tier-"]);
    let d = get_json(&s, &["deploy", "web"]);
    assert!(d["metadata"]["labels"].get("tier").is_none(), "{d}");
    assert_eq!(d["metadata"]["labels"]["app"], "web");
    // Labels are metadata: the generation does not move.
    assert_eq!(d["metadata"]["generation"], 2);

    assert_eq!(
        s.kubectl(&[
            "annotate",
            "deploy",
            "web",
            "owner=alice",
            "note=hello world"
        ])
        .trim(),
        "deployment.apps/web annotated"
    );
    let d = get_json(&s, &["deploy", "web"]);
    assert_eq!(d["metadata"]["annotations"]["owner"], "alice");
    assert_eq!(d["metadata"]["annotations"]["note"], "hello world");
    s.kubectl(&["annotate", "deploy", "web", "owner=bob", "--overwrite"]);
    s.kubectl(&["annotate", "deploy", "web", "note-"]);
    let d = get_json(&s, &["deploy", "web"]);
    assert_eq!(d["metadata"]["annotations"]["owner"], "bob");
    assert!(d["metadata"]["annotations"].get("note").is_none(), "{d}");
}

#[test]
fn edit_with_an_editor_script() {
    let s = Server::start();
    s.kubectl(&["create", "configmap", "cfg", "--from-literal=color=blue"]);
    s.kubectl(&["create", "deployment", "web", "--image=nginx:1.25"]);
    let script = s.dir.path().join("editor.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i -e 's/color: blue/color: green/' -e 's/image: nginx:1.25/image: nginx:1.27/' \"$1\"\n",
    )
    .unwrap();
    let status = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
    for (what, expect) in [
        ("configmap/cfg", "configmap/cfg edited"),
        ("deploy/web", "deployment.apps/web edited"),
    ] {
        let out = s
            .kubectl_cmd(&["edit", what])
            .env("KUBE_EDITOR", &script)
            .env("EDITOR", &script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "edit {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expect);
    }
    assert_eq!(
        s.kubectl(&["get", "cm", "cfg", "-o", "jsonpath={.data.color}"]),
        "green"
    );
    assert_eq!(
        s.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.27"
    );
    // An editor that changes nothing: kubectl reports "Edit cancelled, no changes made."
    let out = s
        .kubectl_cmd(&["edit", "configmap/cfg"])
        .env("KUBE_EDITOR", "true")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Edit cancelled, no changes made."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const TWO_CONTAINERS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels: {app: app}
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        env:
        - {name: A, value: "1"}
      - name: side
        image: envoy:1.0
"#;

#[test]
fn patch_json_merge_and_strategic() {
    let s = Server::start();
    s.kubectl_stdin(&["create", "-f", "-"], TWO_CONTAINERS);

    // JSON patch (RFC 6902).
    let out = s.kubectl(&[
        "patch",
        "deploy",
        "app",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/labels/x","value":"y"}]"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/app patched");
    let d = get_json(&s, &["deploy", "app"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["labels"]["x"], "y");
    // A failing test op rejects the whole patch.
    let err = s.kubectl_err(&[
        "patch",
        "deploy",
        "app",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":9},{"op":"test","path":"/spec/replicas","value":1}]"#,
    ]);
    // Kubernetes answers a failed JSON patch with 422 Invalid (no object details), which
    // kubectl prints as "The request is invalid: ...".
    assert!(err.contains("The request is invalid"), "{err}");
    assert_eq!(get_json(&s, &["deploy", "app"])["spec"]["replicas"], 3);

    // Merge patch (RFC 7386): lists are replaced whole, null removes a key.
    s.kubectl(&[
        "patch",
        "deploy",
        "app",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"x":null,"m":"1"}},"spec":{"template":{"spec":{"containers":[{"name":"only","image":"alpine:3"}]}}}}"#,
    ]);
    let d = get_json(&s, &["deploy", "app"]);
    assert!(d["metadata"]["labels"].get("x").is_none(), "{d}");
    assert_eq!(d["metadata"]["labels"]["m"], "1");
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "merge patch replaces the list: {cs:?}");
    assert_eq!(cs[0]["name"], "only");

    // Put two containers back, then a strategic merge patch merges containers by name
    // (patchMergeKey: name) and env by name too.
    s.kubectl_stdin(&["replace", "-f", "-"], TWO_CONTAINERS);
    s.kubectl(&[
        "patch",
        "deploy",
        "app",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"envoy:2.0"},{"name":"main","env":[{"name":"B","value":"2"}]}]}}}}"#,
    ]);
    let d = get_json(&s, &["deploy", "app"]);
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2, "{cs:?}");
    let main = cs.iter().find(|c| c["name"] == "main").unwrap();
    let side = cs.iter().find(|c| c["name"] == "side").unwrap();
    assert_eq!(main["image"], "busybox:1.36");
    assert_eq!(side["image"], "envoy:2.0");
    let env: Vec<&str> = main["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"A") && env.contains(&"B"), "{env:?}");
    // $patch: delete removes one element by its merge key.
    s.kubectl(&[
        "patch",
        "deploy",
        "app",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}"#,
    ]);
    let d = get_json(&s, &["deploy", "app"]);
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0]["name"], "main");
}

fn cm_manifest(data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {{app: demo}}\ndata:\n{data}"
    )
}

#[test]
fn client_side_apply_twice() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &cm_manifest("  a: \"1\"\n  b: \"2\"\n"),
    );
    assert_eq!(out.trim(), "configmap/settings created");
    let cm = get_json(&s, &["cm", "settings"]);
    let last = cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("client-side apply records the last applied configuration");
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["data"]["b"], "2");

    // A key added by someone else survives the next apply (three-way merge), a key removed
    // from the manifest is deleted, a changed key is updated.
    s.kubectl(&[
        "patch",
        "cm",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"x"}}"#,
    ]);
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &cm_manifest("  a: \"10\"\n"));
    assert_eq!(out.trim(), "configmap/settings configured");
    let cm = get_json(&s, &["cm", "settings"]);
    assert_eq!(cm["data"]["a"], "10");
    assert!(cm["data"].get("b").is_none(), "{cm}");
    assert_eq!(cm["data"]["extra"], "x");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &cm_manifest("  a: \"10\"\n"));
    assert_eq!(out.trim(), "configmap/settings unchanged");
}

#[test]
fn client_side_apply_of_a_deployment_merges_containers_by_name() {
    let s = Server::start();
    let out = s.kubectl_stdin(&["apply", "-f", "-"], TWO_CONTAINERS);
    assert_eq!(out.trim(), "deployment.apps/app created");
    // Someone else adds an env var to the "side" container.
    s.kubectl(&[
        "set",
        "env",
        "deploy/app",
        "-c",
        "side",
        "ADDED=by-someone-else",
    ]);
    // The second apply sends a strategic merge patch computed from the last-applied
    // configuration: the image of "main" changes, "side" keeps the env var it was given.
    let changed = TWO_CONTAINERS.replace("busybox:1.36", "busybox:1.37");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &changed);
    assert_eq!(out.trim(), "deployment.apps/app configured");
    let d = get_json(&s, &["deploy", "app"]);
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2, "{cs:?}");
    let main = cs.iter().find(|c| c["name"] == "main").unwrap();
    let side = cs.iter().find(|c| c["name"] == "side").unwrap();
    assert_eq!(main["image"], "busybox:1.37");
    assert_eq!(main["env"][0]["name"], "A");
    assert_eq!(side["env"][0]["name"], "ADDED");
    assert_eq!(side["env"][0]["value"], "by-someone-else");
    // Removing a container from the manifest removes it from the object.
    let one = TWO_CONTAINERS
        .replace("busybox:1.36", "busybox:1.37")
        .replace("      - name: side\n        image: envoy:1.0\n", "");
    s.kubectl_stdin(&["apply", "-f", "-"], &one);
    let d = get_json(&s, &["deploy", "app"]);
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0]["name"], "main");
    assert_eq!(d["metadata"]["generation"], 4);
}

#[test]
fn server_side_apply_conflict_and_force() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &cm_manifest("  a: \"1\"\n"),
    );
    assert_eq!(out.trim(), "configmap/settings serverside-applied");
    let cm = get_json(&s, &["cm", "settings", "--show-managed-fields"]);
    let mf = cm["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        mf.iter()
            .any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply"),
        "{mf:?}"
    );

    // Another manager takes the same field with a different value: conflict.
    let out = s.kubectl_stdin_output(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &cm_manifest("  a: \"2\"\n"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict")
            && err.contains("conflict with \"kubectl\"")
            && err.contains(".data.a"),
        "{err}"
    );
    assert_eq!(get_json(&s, &["cm", "settings"])["data"]["a"], "1");

    // With --force-conflicts the field changes hands.
    let out = s.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &cm_manifest("  a: \"2\"\n"),
    );
    assert_eq!(out.trim(), "configmap/settings serverside-applied");
    let cm = get_json(&s, &["cm", "settings", "--show-managed-fields"]);
    assert_eq!(cm["data"]["a"], "2");
    let mf = cm["metadata"]["managedFields"].as_array().unwrap();
    let other = mf.iter().find(|m| m["manager"] == "other").unwrap();
    assert!(other["fieldsV1"]["f:data"].get("f:a").is_some(), "{other}");
    // Now the original manager conflicts in turn.
    let err = String::from_utf8_lossy(
        &s.kubectl_stdin_output(
            &["apply", "--server-side", "-f", "-"],
            &cm_manifest("  a: \"1\"\n"),
        )
        .stderr,
    )
    .into_owned();
    assert!(err.contains("conflict with \"other\""), "{err}");
}
