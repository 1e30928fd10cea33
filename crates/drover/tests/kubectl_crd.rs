//! CustomResourceDefinitions through kubectl: once a CRD is created its custom resources
//! are served (discovery, get/apply/patch/delete, printer columns, schema validation),
//! and deleting the CRD stops serving them.

mod common;
use common::{Server, wait_for};
use serde_json::Value;
use std::time::Duration;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wdg]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, enum: [red, green, blue]}
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

fn widget(name: &str, size: &str, color: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  size: {size}\n  color: {color}\n"
    )
}

fn columns(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn install(s: &Server) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], CRD);
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    );
    s.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=30s",
    ]);
}

#[test]
fn custom_resources_are_served_once_the_crd_exists() {
    let s = Server::start();
    // Before the CRD: kubectl does not know the type. (Validation is off here: with it on,
    // kubectl falls back to /openapi/v2 for an unknown group-version, which Drover does
    // not serve, and reports that instead.)
    let out = s.kubectl_stdin_output(
        &["apply", "--validate=false", "-f", "-"],
        &widget("w1", "3", "red"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no matches for kind \"Widget\" in version \"example.com/v1\""),
        "{err}"
    );

    install(&s);
    let crd: Value =
        serde_json::from_str(&s.kubectl(&["get", "crd", "widgets.example.com", "-o", "json"]))
            .unwrap();
    let conds = crd["status"]["conditions"].as_array().unwrap();
    for t in ["Established", "NamesAccepted"] {
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == t && c["status"] == "True"),
            "{t} missing: {conds:?}"
        );
    }
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Widget");

    let res = s.kubectl(&["api-resources", "--api-group=example.com"]);
    let row = res.lines().nth(1).map(columns).unwrap_or_default();
    assert_eq!(
        row,
        ["widgets", "wdg", "example.com/v1", "true", "Widget"],
        "{res}"
    );

    // Client-side apply twice (the second one patches with a JSON merge patch: custom
    // resources have no strategic merge patch).
    assert_eq!(
        s.kubectl_stdin(&["apply", "-f", "-"], &widget("w1", "3", "red"))
            .trim(),
        "widget.example.com/w1 created"
    );
    assert_eq!(
        s.kubectl_stdin(&["apply", "-f", "-"], &widget("w1", "5", "red"))
            .trim(),
        "widget.example.com/w1 configured"
    );
    s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &widget("w2", "1", "blue"),
    );
    let w: Value = serde_json::from_str(&s.kubectl(&["get", "wdg", "w1", "-o", "json"])).unwrap();
    assert_eq!(w["spec"]["size"], 5);
    assert_eq!(w["kind"], "Widget");
    assert_eq!(w["metadata"]["generation"], 2);
    assert!(w["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));

    // The printer columns of the CRD.
    let table = s.kubectl(&["get", "widgets"]);
    let lines: Vec<Vec<String>> = table.lines().map(columns).collect();
    assert_eq!(lines[0], ["NAME", "SIZE", "COLOR", "AGE"], "{table}");
    assert_eq!(lines[1][..3], ["w1", "5", "red"]);
    assert_eq!(lines[2][..3], ["w2", "1", "blue"]);
    let table = s.kubectl(&["get", "widgets.example.com", "-A"]);
    assert_eq!(
        columns(table.lines().next().unwrap()),
        ["NAMESPACE", "NAME", "SIZE", "COLOR", "AGE"]
    );

    // Patch and label selectors work the same as for built-in kinds.
    s.kubectl(&[
        "patch",
        "widget",
        "w2",
        "--type=merge",
        "-p",
        r#"{"spec":{"color":"green"}}"#,
    ]);
    s.kubectl(&["label", "widget", "w2", "team=a"]);
    assert_eq!(
        s.kubectl(&[
            "get",
            "widgets",
            "-l",
            "team=a",
            "-o",
            "jsonpath={.items[*].spec.color}"
        ]),
        "green"
    );
    // The status subresource: the main resource ignores status, /status takes it.
    s.kubectl(&[
        "patch",
        "widget",
        "w2",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ]);
    assert_eq!(
        s.kubectl(&["get", "widget", "w2", "-o", "jsonpath={.status}"]),
        ""
    );
    s.kubectl(&[
        "patch",
        "widget",
        "w2",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ]);
    assert_eq!(
        s.kubectl(&["get", "widget", "w2", "-o", "jsonpath={.status.ready}"]),
        "true"
    );

    assert_eq!(
        s.kubectl(&["delete", "widget", "w1"]).trim(),
        "widget.example.com \"w1\" deleted"
    );
    let err = s.kubectl_err(&["get", "widget", "w1"]);
    assert!(
        err.contains("Error from server (NotFound): widgets.example.com \"w1\" not found"),
        "{err}"
    );
}

#[test]
fn custom_resources_are_validated_against_the_schema() {
    let s = Server::start();
    install(&s);
    // 422 with the field path, and nothing written.
    let out = s.kubectl_stdin_output(&["create", "-f", "-"], &widget("bad", "\"big\"", "red"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("is invalid") && err.contains("spec.size"),
        "{err}"
    );
    let out = s.kubectl_stdin_output(&["create", "-f", "-"], &widget("bad", "0", "red"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("spec.size") && err.contains("should be greater than or equal to 1"),
        "{err}"
    );
    let out = s.kubectl_stdin_output(&["create", "-f", "-"], &widget("bad", "2", "pink"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("spec.color") && err.contains("Unsupported value: \"pink\""),
        "{err}"
    );
    let out = s.kubectl_output(&["get", "widgets", "-o", "name"]);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn deleting_the_crd_removes_its_resources() {
    let s = Server::start();
    install(&s);
    s.kubectl_stdin(&["apply", "-f", "-"], &widget("w1", "3", "red"));
    s.kubectl(&["delete", "crd", "widgets.example.com"]);
    wait_for("the CRD to go", Duration::from_secs(30), || {
        let out = s.kubectl_output(&["get", "crd", "widgets.example.com"]);
        (!out.status.success()).then_some(())
    });
    let res = s.kubectl(&["api-resources", "--api-group=example.com", "-o", "name"]);
    assert!(res.trim().is_empty(), "{res}");
    // Recreating the CRD does not bring the old objects back.
    install(&s);
    let out = s.kubectl_output(&["get", "widgets", "-o", "name"]);
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
