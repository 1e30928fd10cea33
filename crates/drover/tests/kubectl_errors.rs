//! Error classes, through kubectl where it can provoke them and otherwise with raw HTTPS
//! requests (curl on loopback): every error is a Kubernetes `Status`, and a rejected
//! write leaves nothing behind.

mod common;
use common::Server;
use serde_json::Value;
use std::process::Command;

/// A raw request: returns the HTTP status and the body parsed as JSON (Null if not JSON).
fn curl(
    s: &Server,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut c = Command::new("curl");
    // HTTP/1.1: curl 7.88 reports an HTTP/2 stream that the server answers before the
    // whole body was sent (413) as an error; Go clients (kubectl) read the answer.
    c.args(["-sk", "--http1.1", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(ct) = content_type {
        c.args(["-H", &format!("Content-Type: {ct}")]);
    }
    if let Some(b) = body {
        let f = s.dir.path().join(format!("body-{}", rand_suffix()));
        std::fs::write(&f, b).unwrap();
        c.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    c.arg(format!("{}{path}", s.url));
    let out = c.output().unwrap();
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let v = serde_json::from_str(body).unwrap_or(Value::Null);
    (code.trim().parse().unwrap(), v)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn authed(
    s: &Server,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let t = s.token();
    curl(s, method, path, ct, body, Some(&t))
}

/// Asserts a Kubernetes Status failure with this code and reason.
fn assert_status(v: &Value, code: u16, reason: &str) {
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn configmap_names(s: &Server) -> Vec<String> {
    let (code, list) = authed(s, "GET", CMS, None, None);
    assert_eq!(code, 200);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn unauthenticated_requests_get_401() {
    let s = Server::start();
    for token in [None, Some("wrong")] {
        let (code, v) = curl(&s, "GET", CMS, None, None, token);
        assert_eq!(code, 401);
        assert_status(&v, 401, "Unauthorized");
        // Writes are refused the same way and write nothing.
        let (code, _) = curl(
            &s,
            "POST",
            CMS,
            Some("application/json"),
            Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sneaky"}}"#),
            token,
        );
        assert_eq!(code, 401);
    }
    assert!(configmap_names(&s).is_empty());
    // /version is public: the kubectl dispatcher reads it before it has credentials.
    let (code, v) = curl(&s, "GET", "/version", None, None, None);
    assert_eq!(code, 200);
    assert_eq!(v["major"], "1");
    let out = s
        .kubectl_cmd(&["get", "cm", "--token", "wrong"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // kubectl's wording depends on which request met the 401 first (discovery or the get).
    assert!(
        err.contains("error: You must be logged in to the server (Unauthorized)")
            || err.contains("error: You must be logged in to the server (the server has asked for the client to provide credentials)"),
        "{err}"
    );
}

#[test]
fn malformed_bodies_get_400() {
    let s = Server::start();
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x""#),
    );
    assert_eq!(code, 400);
    assert_status(&v, 400, "BadRequest");
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/yaml"),
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n  : :\n"),
    );
    assert_eq!(code, 400);
    assert_status(&v, 400, "BadRequest");
    // A well-formed YAML body is accepted (application/yaml is a supported content type).
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/yaml"),
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromyaml\ndata:\n  a: b\n"),
    );
    assert_eq!(code, 201, "{v}");
    let rv = v["metadata"]["resourceVersion"].clone();
    assert!(rv.is_string(), "{v}");
    // A body of the wrong kind for the URL is a 400 too.
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"wrongkind"}}"#),
    );
    assert_eq!(code, 400, "{v}");
    assert_status(&v, 400, "BadRequest");
    // Malformed patches.
    let (code, v) = authed(
        &s,
        "PATCH",
        &format!("{CMS}/fromyaml"),
        Some("application/merge-patch+json"),
        Some(b"{not json"),
    );
    assert_eq!(code, 400, "{v}");
    assert_status(&v, 400, "BadRequest");
    let (code, v) = authed(
        &s,
        "PATCH",
        &format!("{CMS}/fromyaml"),
        Some("application/json-patch+json"),
        Some(br#"{"op":"add"}"#),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(configmap_names(&s), ["fromyaml"]);
    let (_, cm) = authed(&s, "GET", &format!("{CMS}/fromyaml"), None, None);
    assert_eq!(cm["data"]["a"], "b");
    // The rejected patches wrote nothing: the object is at the revision of its creation.
    assert_eq!(cm["metadata"]["resourceVersion"], rv);
}

#[test]
fn not_found_is_404() {
    let s = Server::start();
    let (code, v) = authed(&s, "GET", &format!("{CMS}/nosuch"), None, None);
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["details"]["name"], "nosuch");
    assert_eq!(v["details"]["kind"], "configmaps");
    assert_eq!(v["message"], "configmaps \"nosuch\" not found");
    let (code, v) = authed(
        &s,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/x",
        None,
        None,
    );
    assert_eq!(code, 404);
    assert_eq!(v["details"]["group"], "apps");
    // Unknown resource types and groups.
    let (code, _) = authed(&s, "GET", "/api/v1/namespaces/default/widgets", None, None);
    assert_eq!(code, 404);
    let (code, _) = authed(&s, "GET", "/apis/nosuch.example.com/v1", None, None);
    assert_eq!(code, 404);
    let err = s.kubectl_err(&["get", "widgets"]);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
    // Deleting, patching or replacing a missing object: 404 and nothing is created.
    let err = s.kubectl_err(&["patch", "cm", "ghost", "-p", r#"{"data":{"a":"b"}}"#]);
    assert!(
        err.contains("Error from server (NotFound): configmaps \"ghost\" not found"),
        "{err}"
    );
    let (code, v) = authed(
        &s,
        "PUT",
        &format!("{CMS}/ghost"),
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ghost"}}"#),
    );
    assert_eq!(code, 404, "{v}");
    assert!(configmap_names(&s).is_empty());
    // Objects in a missing namespace.
    let err = s.kubectl_err(&["create", "configmap", "x", "-n", "nowhere"]);
    // (kubectl create configmap prefixes "failed to create configmap: ".)
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    let (code, v) = authed(
        &s,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#),
    );
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["details"]["kind"], "namespaces");
    assert_eq!(v["details"]["name"], "nowhere");
}

#[test]
fn conflicts_are_409() {
    let s = Server::start();
    let body =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"v":"1"}}"#;
    let (code, created) = authed(&s, "POST", CMS, Some("application/json"), Some(body));
    assert_eq!(code, 201);
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"v":"2"}}"#),
    );
    assert_eq!(code, 409);
    assert_status(&v, 409, "AlreadyExists");
    assert_eq!(v["details"]["name"], "c");
    let (_, cm) = authed(&s, "GET", &format!("{CMS}/c"), None, None);
    assert_eq!(cm["data"]["v"], "1", "AlreadyExists must not overwrite");

    // Update with a stale resourceVersion.
    let old_rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    s.kubectl(&[
        "patch",
        "cm",
        "c",
        "--type=merge",
        "-p",
        r#"{"data":{"v":"3"}}"#,
    ]);
    let stale = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  resourceVersion: \"{old_rv}\"\ndata:\n  v: \"4\"\n"
    );
    let out = s.kubectl_stdin_output(&["replace", "-f", "-"], &stale);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
    let (_, cm) = authed(&s, "GET", &format!("{CMS}/c"), None, None);
    assert_eq!(cm["data"]["v"], "3");
    // The same through a raw PUT: reason Conflict.
    let put = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c","resourceVersion":"{old_rv}"}},"data":{{"v":"5"}}}}"#
    );
    let (code, v) = authed(
        &s,
        "PUT",
        &format!("{CMS}/c"),
        Some("application/json"),
        Some(put.as_bytes()),
    );
    assert_eq!(code, 409);
    assert_status(&v, 409, "Conflict");
    // A patch carrying a stale resourceVersion is refused too.
    let err = s.kubectl_err(&[
        "patch",
        "cm",
        "c",
        "--type=merge",
        "-p",
        &format!(r#"{{"metadata":{{"resourceVersion":"{old_rv}"}},"data":{{"v":"6"}}}}"#),
    ]);
    assert!(err.contains("the object has been modified"), "{err}");
    // A delete precondition on a stale resourceVersion: 409, object kept.
    let del = format!(
        r#"{{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{{"resourceVersion":"{old_rv}"}}}}"#
    );
    let (code, v) = authed(
        &s,
        "DELETE",
        &format!("{CMS}/c"),
        Some("application/json"),
        Some(del.as_bytes()),
    );
    assert_eq!(code, 409, "{v}");
    assert_status(&v, 409, "Conflict");
    let (_, cm) = authed(&s, "GET", &format!("{CMS}/c"), None, None);
    assert_eq!(cm["data"]["v"], "3");
}

#[test]
fn oversized_bodies_get_413() {
    let s = Server::start();
    let big = "x".repeat(3 * 1024 * 1024 + 1024);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{big}"}}}}"#
    );
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/json"),
        Some(body.as_bytes()),
    );
    assert_eq!(code, 413);
    assert_status(&v, 413, "RequestEntityTooLarge");
    // Through kubectl as well.
    let file = s.dir.path().join("big.txt");
    std::fs::write(&file, &big).unwrap();
    let from = format!("--from-file=k={}", file.display());
    let err = s.kubectl_err(&["create", "configmap", "big", &from]);
    assert!(err.contains("3145728"), "{err}");
    assert!(configmap_names(&s).is_empty());
    // Just under the limit is fine (the limit is on the request body, 3 MiB).
    let ok = "y".repeat(3 * 1024 * 1024 - 1024);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"almost"}},"data":{{"k":"{ok}"}}}}"#
    );
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/json"),
        Some(body.as_bytes()),
    );
    // ... it passes the body limit and meets ConfigMap validation instead: Kubernetes caps
    // a ConfigMap's data at 1 MiB (validation.MaxSecretSize).
    assert_eq!(code, 422, "{v}");
    assert_status(&v, 422, "Invalid");
    assert!(v["message"].as_str().unwrap().contains("1048576"), "{v}");
    let ok = "z".repeat(1024 * 1024 - 16);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"fits"}},"data":{{"k":"{ok}"}}}}"#
    );
    let (code, _) = authed(
        &s,
        "POST",
        CMS,
        Some("application/json"),
        Some(body.as_bytes()),
    );
    assert_eq!(code, 201);
    assert_eq!(configmap_names(&s), ["fits"]);
}

#[test]
fn unknown_content_types_get_415() {
    let s = Server::start();
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t"}}"#;
    let (code, v) = authed(&s, "POST", CMS, Some("text/plain"), Some(body));
    assert_eq!(code, 415);
    assert_status(&v, 415, "UnsupportedMediaType");
    assert!(configmap_names(&s).is_empty());
    s.kubectl(&["create", "configmap", "t"]);
    let (code, v) = authed(
        &s,
        "PATCH",
        &format!("{CMS}/t"),
        Some("application/json"),
        Some(br#"{"data":{"a":"b"}}"#),
    );
    assert_eq!(code, 415, "{v}");
    assert_status(&v, 415, "UnsupportedMediaType");
    let (code, v) = authed(
        &s,
        "PATCH",
        &format!("{CMS}/t"),
        Some("application/xml"),
        Some(b"<a/>"),
    );
    assert_eq!(code, 415, "{v}");
    let (_, cm) = authed(&s, "GET", &format!("{CMS}/t"), None, None);
    assert!(
        cm.get("data").is_none() || cm["data"].get("a").is_none(),
        "{cm}"
    );
}

#[test]
fn invalid_objects_get_422_with_the_field_path() {
    let s = Server::start();
    let (code, v) = authed(
        &s,
        "POST",
        CMS,
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#),
    );
    assert_eq!(code, 422);
    assert_status(&v, 422, "Invalid");
    assert_eq!(v["details"]["kind"], "ConfigMap");
    assert_eq!(v["details"]["name"], "Bad_Name");
    let causes = v["details"]["causes"].as_array().unwrap();
    assert!(
        causes
            .iter()
            .any(|c| c["field"] == "metadata.name" && c["reason"] == "FieldValueInvalid"),
        "{causes:?}"
    );

    // Through kubectl: a Deployment with negative replicas and a selector that does not
    // match its template (both reported, each with its path).
    let bad = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
spec:
  replicas: -1
  selector:
    matchLabels: {app: a}
  template:
    metadata:
      labels: {app: b}
    spec:
      containers:
      - name: c
        image: nginx
"#;
    let out = s.kubectl_stdin_output(&["create", "-f", "-"], bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        // kubectl prints "The KIND "name" is invalid:" and then "* field: message" for
        // each StatusCause, whose message does not repeat the field path.
        err.contains("The Deployment \"bad\" is invalid")
            && err
                .contains("* spec.replicas: Invalid value: -1: must be greater than or equal to 0")
            && err.contains("spec.template.metadata.labels: Invalid value")
            && err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    let out = s.kubectl_output(&["get", "deploy", "bad"]);
    assert!(
        !out.status.success(),
        "an invalid object must not be stored"
    );

    // A Service port out of range.
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 70000\n";
    let out = s.kubectl_stdin_output(&["create", "-f", "-"], svc);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("spec.ports[0].port: Invalid value: 70000"),
        "{err}"
    );
    // A pod without containers.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n";
    let out = s.kubectl_stdin_output(&["create", "-f", "-"], pod);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("spec.containers: Required value"),
        "{err}"
    );
    // An update that breaks an immutable field is refused and changes nothing:
    // a Deployment's selector is immutable in apps/v1.
    s.kubectl(&["create", "deployment", "web", "--image=nginx"]);
    let err = s.kubectl_err(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}"#,
    ]);
    assert!(
        err.contains("spec.selector") && err.contains("field is immutable"),
        "{err}"
    );
    assert_eq!(
        s.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.selector.matchLabels.app}"
        ]),
        "web"
    );
    // Unknown fields with fieldValidation=Strict are a 400 naming the field.
    let (code, v) = authed(
        &s,
        "POST",
        &format!("{CMS}?fieldValidation=Strict"),
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"strict"},"datta":{}}"#),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"datta\""),
        "{v}"
    );
    // ... and with Ignore the object is created without the field.
    let (code, v) = authed(
        &s,
        "POST",
        &format!("{CMS}?fieldValidation=Ignore"),
        Some("application/json"),
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"lax"},"datta":{}}"#),
    );
    assert_eq!(code, 201, "{v}");
    assert!(v.get("datta").is_none(), "{v}");
    assert_eq!(configmap_names(&s), ["lax"]);
}
