//! Translation tests over many Compose files: interpolation, merge, extends, profiles,
//! long and short syntax, warnings and errors with positions.

use crate::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

fn opts(env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        project_name: Some("proj".into()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn src(name: &str, text: &str, dir: &Path) -> Source {
    Source {
        name: name.into(),
        text: text.into(),
        dir: dir.to_path_buf(),
    }
}

fn load_str(text: &str) -> Result<Project, Error> {
    let d = tempfile::tempdir().unwrap();
    load_sources(&[src("compose.yaml", text, d.path())], &opts(&[]))
}

fn objects(text: &str) -> Translation {
    let p = load_str(text).unwrap_or_else(|e| panic!("{e}"));
    translate(&p, &TranslateOptions::default()).unwrap()
}

fn find<'a>(t: &'a Translation, kind: &str, name: &str) -> &'a Value {
    t.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", t.objects))
}

fn container<'a>(t: &'a Translation, kind: &str, name: &str) -> &'a Value {
    &find(t, kind, name)["spec"]["template"]["spec"]["containers"][0]
}

fn pod<'a>(t: &'a Translation, kind: &str, name: &str) -> &'a Value {
    &find(t, kind, name)["spec"]["template"]["spec"]
}

fn warned(t: &Translation, service: &str, key: &str) -> bool {
    t.warnings
        .iter()
        .any(|w| w.service.as_deref() == Some(service) && w.key == key)
}

#[test]
fn a_minimal_service_is_a_deployment_and_a_headless_service() {
    let t = objects("services:\n  web:\n    image: nginx:1.27\n");
    let d = find(&t, "Deployment", "web");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["metadata"]["labels"],
        json!({PROJECT_LABEL: "proj", SERVICE_LABEL: "web"})
    );
    assert_eq!(
        d["spec"]["selector"]["matchLabels"],
        d["metadata"]["labels"]
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"],
        d["metadata"]["labels"]
    );
    assert_eq!(container(&t, "Deployment", "web")["image"], "nginx:1.27");
    let s = find(&t, "Service", "web");
    assert_eq!(s["spec"]["clusterIP"], "None");
    assert!(s["spec"].get("ports").is_none());
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn every_object_carries_the_project_label() {
    let t = objects(
        "services:\n  a:\n    image: x\n    ports: ['8080:80']\n    configs: [c]\n    secrets: [s]\n  j:\n    image: x\n    deploy: {mode: replicated-job}\nconfigs:\n  c: {content: hi}\nsecrets:\n  s: {content: pw}\n",
    );
    assert_eq!(t.objects.len(), 5);
    for o in &t.objects {
        assert_eq!(o["metadata"]["labels"][PROJECT_LABEL], "proj", "{o}");
    }
}

#[test]
fn commands_entrypoints_and_environment() {
    let t = objects(
        r#"services:
  app:
    image: x
    entrypoint: /bin/sh -c
    command: ["echo $$HOME", "$(date)"]
    environment:
      A: 1
      B: "two"
      EMPTY: ""
      FROM_SHELL:
    working_dir: /srv
    user: "1000:2000"
"#,
    );
    let c = container(&t, "Deployment", "app");
    assert_eq!(c["command"], json!(["/bin/sh", "-c"]));
    // `$$` is Compose's literal dollar; `$(` is escaped from Kubernetes' expansion.
    assert_eq!(c["args"], json!(["echo $HOME", "$$(date)"]));
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "EMPTY", "value": ""}])
    );
    assert_eq!(c["workingDir"], "/srv");
    assert_eq!(
        c["securityContext"],
        json!({"runAsUser": 1000, "runAsGroup": 2000})
    );
}

#[test]
fn environment_list_form_env_file_and_bare_names() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("app.env"), "A=from-file\nB=file\n# c\n").unwrap();
    let text = "services:\n  app:\n    image: x\n    env_file: app.env\n    environment:\n      - B=inline\n      - SHELLVAR\n      - UNSET\n";
    let p = load_sources(
        &[src("c.yml", text, d.path())],
        &opts(&[("SHELLVAR", "sv")]),
    )
    .unwrap();
    assert_eq!(
        p.services[0].environment,
        vec![
            ("A".to_string(), "from-file".to_string()),
            ("B".into(), "inline".into()),
            ("SHELLVAR".into(), "sv".into())
        ]
    );
    // A missing required env_file is an error naming the file; required: false is not.
    let text = "services:\n  app:\n    image: x\n    env_file:\n      - path: nope.env\n        required: false\n";
    assert!(load_sources(&[src("c.yml", text, d.path())], &opts(&[])).is_ok());
    let text = "services:\n  app:\n    image: x\n    env_file: nope.env\n";
    let e = load_sources(&[src("c.yml", text, d.path())], &opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.yml:4:15") && e.contains("nope.env"), "{e}");
}

#[test]
fn interpolation_from_env_and_dotenv_with_defaults_and_errors() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join(".env"),
        "TAG=1.0\nPORT=8080\nOVERRIDDEN=dotenv\n",
    )
    .unwrap();
    let text = "services:\n  web:\n    image: \"nginx:${TAG}\"\n    ports: [\"${PORT}:80\"]\n    environment:\n      O: $OVERRIDDEN\n      D: ${MISSING:-dflt}\n      E: ${MISSING}\n      ESC: $$NOT\n    deploy:\n      replicas: ${REPLICAS:-2}\n";
    let p = load_sources(
        &[src("c.yml", text, d.path())],
        &opts(&[("OVERRIDDEN", "shell")]),
    )
    .unwrap();
    let s = &p.services[0];
    assert_eq!(s.image, "nginx:1.0");
    assert_eq!(s.ports[0].published, Some(8080));
    let env: BTreeMap<_, _> = s.environment.iter().cloned().collect();
    assert_eq!(env["O"], "shell");
    assert_eq!(env["D"], "dflt");
    assert_eq!(env["E"], "");
    assert_eq!(env["ESC"], "$NOT");
    assert_eq!(s.deploy.replicas, Some(2));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.key == "${MISSING}" && w.message.contains("not set"))
    );
    let text = "services:\n  web:\n    image: ${IMAGE:?the image is required}\n";
    let e = load_sources(&[src("c.yml", text, d.path())], &opts(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "c.yml:3:12: required variable IMAGE is missing a value: the image is required"
    );
    let text = "services:\n  web:\n    image: ${IMAGE\n";
    let e = load_sources(&[src("c.yml", text, d.path())], &opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.yml:3:12: invalid interpolation"), "{e}");
}

#[test]
fn yaml_and_structure_errors_carry_file_line_and_column() {
    let e = load_str("services:\n  web:\n    image: nginx\n   bad-indent: 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("compose.yaml:4:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = load_str("services:\n  web:\n    image: nginx\n    ports: 80\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "compose.yaml:4:12: services.web.ports must be a list, not an integer"
    );
    let e = load_str("services:\n  web:\n    ports: [80]\n")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "compose.yaml:3:5: service \"web\" has no image");
    let e = load_str("services:\n  web:\n    image: x\n    depends_on: [db]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("depends on \"db\", which is not defined"), "{e}");
    let e = load_str("services:\n  web:\n    image: x\n    volumes: [data:/d]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("compose.yaml:4:15:") && e.contains("not declared"),
        "{e}"
    );
    let e = load_str("services:\n  web:\n    image: x\n    healthcheck:\n      interval: soon\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("compose.yaml:5:17:") && e.contains("duration"),
        "{e}"
    );
    let e = load_str("servics:\n  web: {image: x}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("compose.yaml:1:1:") && e.contains("servics"),
        "{e}"
    );
    let e = load_str("- a\n- b\n").unwrap_err().to_string();
    assert!(e.contains("must be a mapping"), "{e}");
    let e =
        load_str("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n")
            .unwrap_err()
            .to_string();
    assert!(e.contains("cycle"), "{e}");
    let e = load_str("services:\n  a:\n    image: x\n    image: y\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("compose.yaml:4:") && e.to_lowercase().contains("duplicate"),
        "{e}"
    );
}

#[test]
fn ports_short_and_long_syntax_become_node_ports_host_ports_and_cluster_ports() {
    let t = objects(
        r#"services:
  web:
    image: x
    ports:
      - "30080:80"
      - "8443:443"
      - "127.0.0.1:9000:9000/udp"
      - target: 5000
        published: "31000"
        name: admin
      - target: 6000
    expose: ["7000", "80"]
"#,
    );
    let s = find(&t, "Service", "web");
    assert_eq!(s["spec"]["type"], "NodePort");
    assert_eq!(
        s["spec"]["ports"],
        json!([
            {"name": "tcp-80", "port": 80, "targetPort": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "tcp-443", "port": 443, "targetPort": 443, "protocol": "TCP"},
            {"name": "udp-9000", "port": 9000, "targetPort": 9000, "protocol": "UDP"},
            {"name": "admin", "port": 5000, "targetPort": 5000, "protocol": "TCP", "nodePort": 31000},
            {"name": "tcp-6000", "port": 6000, "targetPort": 6000, "protocol": "TCP"},
            {"name": "tcp-7000", "port": 7000, "targetPort": 7000, "protocol": "TCP"},
        ])
    );
    let c = container(&t, "Deployment", "web");
    assert_eq!(
        c["ports"],
        json!([
            {"containerPort": 80, "protocol": "TCP"},
            {"containerPort": 443, "protocol": "TCP", "hostPort": 8443},
            {"containerPort": 9000, "protocol": "UDP", "hostPort": 9000, "hostIP": "127.0.0.1"},
            {"containerPort": 5000, "protocol": "TCP"},
            {"containerPort": 6000, "protocol": "TCP"},
            {"containerPort": 7000, "protocol": "TCP"},
        ])
    );
    // A host port is held by one pod per node: updates stop the old pod first.
    assert_eq!(
        find(&t, "Deployment", "web")["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    );
    // Only exposed ports: a plain ClusterIP Service.
    let t = objects("services:\n  db:\n    image: x\n    expose: [5432]\n");
    let s = find(&t, "Service", "db");
    assert!(s["spec"].get("type").is_none());
    assert!(s["spec"].get("clusterIP").is_none());
    // Published without a host port: a NodePort the cluster picks.
    let t = objects("services:\n  db:\n    image: x\n    ports: ['5432']\n");
    let s = find(&t, "Service", "db");
    assert_eq!(s["spec"]["type"], "NodePort");
    assert!(s["spec"]["ports"][0].get("nodePort").is_none());
    // Port ranges expand.
    let t = objects("services:\n  r:\n    image: x\n    ports: ['31000-31002:8000-8002']\n");
    let s = find(&t, "Service", "r");
    assert_eq!(s["spec"]["ports"].as_array().unwrap().len(), 3);
    assert_eq!(s["spec"]["ports"][2]["nodePort"], 31002);
    assert_eq!(s["spec"]["ports"][2]["port"], 8002);
}

#[test]
fn healthchecks_become_readiness_and_liveness_probes() {
    let t = objects(
        r#"services:
  a:
    image: x
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "$$USER"]
      interval: 5s
      timeout: 2s
      retries: 4
      start_period: 1m
  b:
    image: x
    healthcheck:
      test: curl -f http://localhost/ || exit 1
  c:
    image: x
    healthcheck:
      disable: true
  d:
    image: x
    healthcheck:
      test: ["NONE"]
"#,
    );
    let a = container(&t, "Deployment", "a");
    assert_eq!(
        a["readinessProbe"],
        json!({"exec": {"command": ["pg_isready", "-U", "$USER"]}, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 4, "successThreshold": 1})
    );
    assert_eq!(a["livenessProbe"], a["readinessProbe"]);
    // Liveness only once healthy: the startup probe allows the start period plus the
    // retries, and at least five minutes.
    assert_eq!(a["startupProbe"]["failureThreshold"], 60);
    assert_eq!(a["startupProbe"]["periodSeconds"], 5);
    let t2 = objects(
        "services:\n  s:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n      interval: 10s\n      start_period: 10m\n",
    );
    assert_eq!(
        container(&t2, "Deployment", "s")["startupProbe"]["failureThreshold"],
        63
    );
    let b = container(&t, "Deployment", "b");
    assert_eq!(
        b["readinessProbe"]["exec"]["command"],
        json!(["/bin/sh", "-c", "curl -f http://localhost/ || exit 1"])
    );
    assert_eq!(b["readinessProbe"]["periodSeconds"], 30);
    assert_eq!(b["readinessProbe"]["failureThreshold"], 3);
    for n in ["c", "d"] {
        let c = container(&t, "Deployment", n);
        assert!(c.get("readinessProbe").is_none() && c.get("livenessProbe").is_none());
    }
}

#[test]
fn depends_on_conditions_become_init_containers_and_job_ordering() {
    let t = objects(
        r#"services:
  web:
    image: x
    depends_on:
      api:
        condition: service_healthy
      cache:
        condition: service_started
      migrate:
        condition: service_completed_successfully
      worker:
        condition: service_healthy
  api:
    image: x
    expose: [8080]
    healthcheck: {test: "true"}
  cache:
    image: x
  worker:
    image: x
  migrate:
    image: x
    command: ["migrate"]
"#,
    );
    let p = pod(&t, "Deployment", "web");
    let inits = p["initContainers"].as_array().unwrap();
    assert_eq!(inits.len(), 3);
    assert_eq!(inits[0]["name"], "wait-for-api");
    assert_eq!(inits[0]["image"], "busybox:1.36");
    let script = inits[0]["command"][2].as_str().unwrap();
    assert!(script.contains("nc api 8080"), "{script}");
    let script = inits[1]["command"][2].as_str().unwrap();
    assert!(script.contains("nslookup cache."), "{script}");
    assert!(script.contains("$$(sed"), "{script}");
    // A service without ports has a headless Service: its name resolves only while a
    // ready pod backs it, which is what "healthy" waits for.
    let script = inits[2]["command"][2].as_str().unwrap();
    assert!(script.contains("nslookup worker."), "{script}");
    assert!(
        t.warnings
            .iter()
            .any(|w| w.key == "depends_on" && w.message.contains("\"worker\" has no healthcheck"))
    );
    assert!(
        !t.warnings
            .iter()
            .any(|w| w.message.contains("\"api\" has no healthcheck"))
    );
    // The job: a Job, and the web Deployment is applied after it completes.
    let j = find(&t, "Job", "migrate");
    assert_eq!(j["apiVersion"], "batch/v1");
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(j["spec"]["backoffLimit"], 0);
    let web = find(&t, "Deployment", "web");
    assert_eq!(web["metadata"]["annotations"][AFTER_ANNOTATION], "migrate");
    // Order: dependencies before dependants.
    let order: Vec<&str> = t
        .objects
        .iter()
        .filter(|o| o["kind"] != "Service")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
    assert!(pos("api") < pos("web") && pos("migrate") < pos("web") && pos("cache") < pos("web"));
}

#[test]
fn deploy_settings() {
    let t = objects(
        r#"services:
  web:
    image: x
    deploy:
      replicas: 3
      resources:
        limits: {cpus: "0.5", memory: 512M, pids: 100}
        reservations: {cpus: 0.25, memory: 128m}
      placement:
        constraints:
          - node.labels.disk == ssd
          - node.hostname != n2
          - node.role == manager
      update_config:
        parallelism: 2
        order: start-first
        delay: 10s
        failure_action: rollback
      restart_policy:
        condition: on-failure
  agent:
    image: x
    deploy:
      mode: global
      update_config: {parallelism: 1}
  legacy:
    image: x
    scale: 4
    mem_limit: 1g
    cpus: 2
"#,
    );
    let d = find(&t, "Deployment", "web");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}})
    );
    assert_eq!(d["spec"]["minReadySeconds"], 10);
    let c = container(&t, "Deployment", "web");
    assert_eq!(
        c["resources"],
        json!({"limits": {"cpu": "500m", "memory": "536870912"}, "requests": {"cpu": "250m", "memory": "134217728"}})
    );
    let p = pod(&t, "Deployment", "web");
    assert_eq!(p["nodeSelector"], json!({"disk": "ssd"}));
    assert_eq!(
        p["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"],
        json!([{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["n2"]}])
    );
    for key in [
        "deploy.resources.limits.pids",
        "deploy.placement.constraints",
        "deploy.update_config.failure_action",
        "deploy.restart_policy",
    ] {
        assert!(
            warned(&t, "web", key),
            "no warning for {key}: {:?}",
            t.warnings
        );
    }
    let ds = find(&t, "DaemonSet", "agent");
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
    assert!(ds["spec"].get("replicas").is_none());
    let l = find(&t, "Deployment", "legacy");
    assert_eq!(l["spec"]["replicas"], 4);
    assert_eq!(
        container(&t, "Deployment", "legacy")["resources"]["limits"],
        json!({"cpu": "2000m", "memory": "1073741824"})
    );
}

#[test]
fn volumes_binds_tmpfs_and_shm() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("nginx.conf"), "x").unwrap();
    std::fs::create_dir(d.path().join("site")).unwrap();
    let text = r#"services:
  web:
    image: x
    volumes:
      - data:/var/lib/data
      - ./site:/usr/share/nginx/html:ro
      - ./nginx.conf:/etc/nginx/nginx.conf
      - /cache
      - type: tmpfs
        target: /run
        tmpfs: {size: 64m}
      - type: volume
        source: ext
        target: /ext
        volume: {subpath: sub}
      - ./missing:/m
    tmpfs: /tmp
    shm_size: 256m
volumes:
  data:
  ext:
    external: true
"#;
    let p = load_sources(&[src("c.yml", text, d.path())], &opts(&[])).unwrap();
    let t = translate(
        &p,
        &TranslateOptions {
            volume_dir: Some("/vols".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let pd = pod(&t, "Deployment", "web");
    let vols = pd["volumes"].as_array().unwrap();
    let by_name = |n: &str| vols.iter().find(|v| v["name"] == n).unwrap().clone();
    assert_eq!(
        by_name("vol-data")["hostPath"],
        json!({"path": "/vols/proj_data", "type": "DirectoryOrCreate"})
    );
    assert_eq!(by_name("vol-ext")["hostPath"]["path"], "/vols/ext");
    let site = d.path().join("site").display().to_string();
    assert_eq!(
        by_name("bind-1")["hostPath"],
        json!({"path": site, "type": "Directory"})
    );
    assert_eq!(by_name("bind-2")["hostPath"]["type"], "File");
    assert_eq!(by_name("anon-3")["emptyDir"], json!({}));
    assert_eq!(
        by_name("tmpfs-4")["emptyDir"],
        json!({"medium": "Memory", "sizeLimit": "67108864"})
    );
    assert_eq!(by_name("bind-6")["hostPath"]["type"], "DirectoryOrCreate");
    assert_eq!(by_name("tmpfs-7")["emptyDir"]["medium"], "Memory");
    assert_eq!(by_name("dshm")["emptyDir"]["sizeLimit"], "268435456");
    let mounts = container(&t, "Deployment", "web")["volumeMounts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        mounts[1],
        json!({"name": "bind-1", "mountPath": "/usr/share/nginx/html", "readOnly": true})
    );
    assert_eq!(mounts[5]["subPath"], "sub");
    assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp"));
    assert!(mounts.iter().any(|m| m["mountPath"] == "/dev/shm"));
    // Without a volume directory named volumes are emptyDirs, with a warning.
    let t = translate(
        &p,
        &TranslateOptions {
            volume_dir: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(warned(&t, "web", "volumes"));
}

#[test]
fn configs_and_secrets_become_config_maps_and_secrets_mounted_as_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("app.conf"), "key=value\n").unwrap();
    let text = r#"services:
  app:
    image: x
    configs:
      - app_conf
      - source: inline
        target: /etc/inline.txt
        mode: 0440
    secrets:
      - db_password
      - source: token
        target: api-token
configs:
  app_conf:
    file: ./app.conf
  inline:
    content: "hello ${WHO}"
secrets:
  db_password:
    environment: DB_PASSWORD
  token:
    content: t0k
"#;
    let p = load_sources(
        &[src("c.yml", text, d.path())],
        &opts(&[("WHO", "world"), ("DB_PASSWORD", "s3cret")]),
    )
    .unwrap();
    let t = translate(&p, &TranslateOptions::default()).unwrap();
    let cm = find(&t, "ConfigMap", "proj-app-conf");
    assert_eq!(cm["data"], json!({"app_conf": "key=value\n"}));
    assert_eq!(cm["metadata"]["labels"][CONFIG_LABEL], "app-conf");
    assert_eq!(
        find(&t, "ConfigMap", "proj-inline")["data"]["inline"],
        "hello world"
    );
    let s = find(&t, "Secret", "proj-db-password");
    assert_eq!(s["data"]["db_password"], "czNjcmV0");
    let mounts = container(&t, "Deployment", "app")["volumeMounts"].clone();
    assert_eq!(
        mounts,
        json!([
            {"name": "config-app-conf", "mountPath": "/app_conf", "subPath": "app_conf", "readOnly": true},
            {"name": "config-inline", "mountPath": "/etc/inline.txt", "subPath": "inline", "readOnly": true},
            {"name": "secret-db-password", "mountPath": "/run/secrets/db_password", "subPath": "db_password", "readOnly": true},
            {"name": "secret-token", "mountPath": "/run/secrets/api-token", "subPath": "token", "readOnly": true},
        ])
    );
    let vols = pod(&t, "Deployment", "app")["volumes"].clone();
    assert_eq!(vols[1]["configMap"]["items"][0]["mode"], 0o440);
    assert_eq!(vols[2]["secret"]["secretName"], "proj-db-password");
    // A change of content changes the pod template (the subPath mounts do not update).
    let hash = |t: &Translation| {
        find(t, "Deployment", "app")["spec"]["template"]["metadata"]["annotations"]
            [CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let p2 = load_sources(
        &[src("c.yml", text, d.path())],
        &opts(&[("WHO", "moon"), ("DB_PASSWORD", "s3cret")]),
    )
    .unwrap();
    let t2 = translate(&p2, &TranslateOptions::default()).unwrap();
    assert_ne!(hash(&t), hash(&t2));
    assert_eq!(
        hash(&t),
        hash(&translate(&p, &TranslateOptions::default()).unwrap())
    );
    // A secret read from an unset variable is an error.
    let e = load_sources(&[src("c.yml", text, d.path())], &opts(&[("WHO", "x")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("DB_PASSWORD") && e.starts_with("c.yml:20:18"),
        "{e}"
    );
}

#[test]
fn several_files_merge_as_compose_merges_them() {
    let d = tempfile::tempdir().unwrap();
    let base = r#"services:
  web:
    image: web:1
    command: ["serve", "--a"]
    environment:
      A: "1"
      B: "1"
    ports: ["30001:80"]
    volumes: ["data:/data", "./conf:/conf"]
    labels: [x=1]
    depends_on: [db]
  db:
    image: db:1
volumes:
  data:
"#;
    let over = r#"services:
  web:
    image: web:2
    command: ["serve", "--b"]
    environment:
      - B=2
      - C=3
    ports: ["30002:81"]
    volumes: ["other:/data"]
    labels: {y: "2"}
    depends_on:
      cache:
        condition: service_started
  cache:
    image: redis
volumes:
  other:
"#;
    let p = load_sources(
        &[
            src("base.yml", base, d.path()),
            src("over.yml", over, d.path()),
        ],
        &opts(&[]),
    )
    .unwrap();
    let w = p.service("web").unwrap();
    assert_eq!(w.image, "web:2");
    assert_eq!(w.command, Some(vec!["serve".to_string(), "--b".into()]));
    let env: BTreeMap<_, _> = w.environment.iter().cloned().collect();
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "2");
    assert_eq!(env["C"], "3");
    assert_eq!(
        w.ports.iter().map(|p| p.target).collect::<Vec<_>>(),
        vec![80, 81]
    );
    // Volumes merge by target: /data now comes from `other`.
    assert_eq!(w.mounts.len(), 2);
    assert_eq!(w.mounts[0].kind, MountKind::Volume("other".into()));
    assert_eq!(w.labels.get("x").map(String::as_str), Some("1"));
    assert_eq!(w.labels.get("y").map(String::as_str), Some("2"));
    let deps: Vec<&str> = w.depends_on.iter().map(|d| d.service.as_str()).collect();
    assert_eq!(deps, ["db", "cache"]);
    assert_eq!(
        p.services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["web", "db", "cache"]
    );
    // An error in the second file names the second file.
    let bad = "services:\n  web:\n    ports: [\"x:y\"]\n";
    let e = load_sources(
        &[
            src("base.yml", base, d.path()),
            src("over.yml", bad, d.path()),
        ],
        &opts(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("over.yml:3:13"), "{e}");
}

#[test]
fn extends_in_the_same_file_and_from_another_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("common")).unwrap();
    std::fs::write(
        d.path().join("common/base.yml"),
        "services:\n  base:\n    image: base:1\n    env_file: base.env\n    environment: {FROM: base}\n",
    )
    .unwrap();
    std::fs::write(d.path().join("common/base.env"), "BASE_FILE=yes\n").unwrap();
    let text = r#"services:
  tmpl:
    image: tmpl:1
    environment: {LEVEL: tmpl, KEEP: k}
    expose: [80]
  mid:
    extends: tmpl
    environment: {LEVEL: mid}
  top:
    extends:
      service: mid
    image: top:1
  remote:
    extends:
      file: common/base.yml
      service: base
    environment: {OWN: o}
"#;
    let p = load_sources(&[src("c.yml", text, d.path())], &opts(&[])).unwrap();
    let top = p.service("top").unwrap();
    assert_eq!(top.image, "top:1");
    let env: BTreeMap<_, _> = top.environment.iter().cloned().collect();
    assert_eq!(env["LEVEL"], "mid");
    assert_eq!(env["KEEP"], "k");
    assert_eq!(top.expose, vec![(80, "tcp".to_string())]);
    let remote = p.service("remote").unwrap();
    assert_eq!(remote.image, "base:1");
    let env: BTreeMap<_, _> = remote.environment.iter().cloned().collect();
    // The base's env_file resolves against the base file's directory.
    assert_eq!(env["BASE_FILE"], "yes");
    assert_eq!(env["FROM"], "base");
    assert_eq!(env["OWN"], "o");
    let e = load_str("services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cycle"), "{e}");
    let e = load_str("services:\n  a:\n    extends: nope\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("compose.yaml:3:14") && e.contains("nope"),
        "{e}"
    );
}

#[test]
fn profiles_enable_services() {
    let text = "services:\n  web: {image: x}\n  debug: {image: x, profiles: [dev]}\n  tools: {image: x, profiles: [dev, ops]}\n";
    let d = tempfile::tempdir().unwrap();
    let names = |p: &Project| {
        p.services
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    let p = load_sources(&[src("c.yml", text, d.path())], &opts(&[])).unwrap();
    assert_eq!(names(&p), ["web"]);
    assert_eq!(p.disabled, ["debug", "tools"]);
    let mut o = opts(&[]);
    o.profiles = vec!["ops".into()];
    assert_eq!(
        names(&load_sources(&[src("c.yml", text, d.path())], &o).unwrap()),
        ["web", "tools"]
    );
    let p = load_sources(
        &[src("c.yml", text, d.path())],
        &opts(&[("COMPOSE_PROFILES", "dev")]),
    )
    .unwrap();
    assert_eq!(names(&p), ["web", "debug", "tools"]);
    // Depending on a disabled service is an error that says how to enable it.
    let text =
        "services:\n  web: {image: x, depends_on: [debug]}\n  debug: {image: x, profiles: [dev]}\n";
    let e = load_sources(&[src("c.yml", text, d.path())], &opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--profile"), "{e}");
}

#[test]
fn project_names() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(&[]);
    o.project_name = None;
    let named = "name: My_App.v2\nservices:\n  a: {image: x}\n";
    let p = load_sources(&[src("c.yml", named, d.path())], &o).unwrap();
    assert_eq!(p.name, "my_appv2");
    let p = load_sources(
        &[src("c.yml", named, d.path())],
        &LoadOptions {
            env: [("COMPOSE_PROJECT_NAME".to_string(), "fromenv".to_string())].into(),
            ..o.clone()
        },
    )
    .unwrap();
    assert_eq!(p.name, "fromenv");
    let sub = d.path().join("Web-Shop");
    std::fs::create_dir(&sub).unwrap();
    let p = load_sources(&[src("c.yml", "services: {}\n", &sub)], &o).unwrap();
    assert_eq!(p.name, "web-shop");
    assert_eq!(normalize_project_name("__x"), Some("x".into()));
    assert_eq!(normalize_project_name("!!"), None);
}

#[test]
fn unsupported_keys_warn_once_each_naming_key_and_service() {
    let t = objects(
        r#"version: "3.9"
services:
  web:
    image: x
    build: .
    devices: ["/dev/fuse"]
    ulimits: {nofile: 1024}
    container_name: my-web
    network_mode: "service:db"
    networks: [front]
    user: www-data
    restart: "no"
    frobnicate: true
    x-custom: ignored
    logging: {driver: syslog}
    healthcheck:
      test: ["CMD", "true"]
      start_interval: 1s
networks:
  front:
"#,
    );
    for key in [
        "build",
        "devices",
        "ulimits",
        "container_name",
        "network_mode",
        "networks",
        "user",
        "restart",
        "frobnicate",
        "logging",
        "healthcheck.start_interval",
    ] {
        let n = t
            .warnings
            .iter()
            .filter(|w| w.service.as_deref() == Some("web") && w.key == key)
            .count();
        assert_eq!(n, 1, "warnings for {key}: {:#?}", t.warnings);
    }
    assert!(!t.warnings.iter().any(|w| w.key == "x-custom"));
    assert!(
        t.warnings
            .iter()
            .any(|w| w.service.is_none() && w.key == "version")
    );
    assert!(
        t.warnings
            .iter()
            .any(|w| w.service.is_none() && w.key == "networks")
    );
    let text = t.warnings[0].to_string();
    assert!(
        text.starts_with("`version`") || text.contains("service \"web\""),
        "{text}"
    );
    // A build without an image is an error that says what to do.
    let e = load_str("services:\n  web:\n    build: .\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("build") && e.contains("image"), "{e}");
}

#[test]
fn pod_level_settings() {
    let t = objects(
        r#"services:
  web:
    image: x
    hostname: web-1
    stop_grace_period: 1m30s
    network_mode: host
    ipc: host
    extra_hosts:
      - "db.local=10.0.0.5"
      - "cache.local:10.0.0.5"
      - "other:10.0.0.6"
    dns: [1.1.1.1]
    dns_search: [example.com]
    dns_opt: ["ndots:2"]
    sysctls: {net.core.somaxconn: 1024}
    group_add: ["100"]
    privileged: true
    read_only: true
    cap_add: [CAP_NET_ADMIN]
    cap_drop: [ALL]
    tty: true
    stdin_open: true
    pull_policy: always
    labels:
      traefik.enable: "true"
    post_start:
      - command: ["touch", "/started"]
    pre_stop:
      - command: sleep 2
"#,
    );
    let p = pod(&t, "Deployment", "web");
    assert_eq!(p["hostname"], "web-1");
    assert_eq!(p["terminationGracePeriodSeconds"], 90);
    assert_eq!(p["hostNetwork"], true);
    assert_eq!(p["hostIPC"], true);
    assert_eq!(
        p["hostAliases"],
        json!([{"ip": "10.0.0.5", "hostnames": ["db.local", "cache.local"]}, {"ip": "10.0.0.6", "hostnames": ["other"]}])
    );
    assert_eq!(
        p["dnsConfig"],
        json!({"nameservers": ["1.1.1.1"], "searches": ["example.com"], "options": [{"name": "ndots", "value": "2"}]})
    );
    assert_eq!(
        p["securityContext"],
        json!({"supplementalGroups": [100], "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]})
    );
    let c = container(&t, "Deployment", "web");
    assert_eq!(
        c["securityContext"],
        json!({"privileged": true, "readOnlyRootFilesystem": true, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}})
    );
    assert_eq!(c["tty"], true);
    assert_eq!(c["stdin"], true);
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["lifecycle"],
        json!({"postStart": {"exec": {"command": ["touch", "/started"]}}, "preStop": {"exec": {"command": ["sleep", "2"]}}})
    );
    let d = find(&t, "Deployment", "web");
    assert_eq!(d["metadata"]["annotations"]["traefik.enable"], "true");
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["traefik.enable"],
        "true"
    );
}

#[test]
fn stop_signals_are_sent_by_a_pre_stop_hook() {
    let t = objects(
        "services:\n  nginx:\n    image: x\n    stop_signal: SIGQUIT\n  plain:\n    image: x\n    stop_signal: SIGTERM\n  both:\n    image: x\n    stop_signal: SIGINT\n    pre_stop: [{command: [drain]}]\n",
    );
    assert_eq!(
        container(&t, "Deployment", "nginx")["lifecycle"]["preStop"]["exec"]["command"],
        json!([
            "/bin/sh",
            "-c",
            "kill -QUIT 1; while kill -0 1 2>/dev/null; do sleep 1; done"
        ])
    );
    assert!(
        container(&t, "Deployment", "plain")
            .get("lifecycle")
            .is_none()
    );
    assert_eq!(
        container(&t, "Deployment", "both")["lifecycle"]["preStop"]["exec"]["command"],
        json!(["drain"])
    );
    assert!(warned(&t, "both", "stop_signal"));
    assert!(load_str("services:\n  a: {image: x, stop_signal: 'SIG;rm'}\n").is_err());
}

#[test]
fn jobs_from_restart_policies_and_modes() {
    let t = objects(
        "services:\n  once:\n    image: x\n    restart: on-failure:3\n  batch:\n    image: x\n    deploy: {mode: replicated-job, replicas: 4}\n",
    );
    let j = find(&t, "Job", "once");
    assert_eq!(j["spec"]["backoffLimit"], 3);
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
    assert!(!t.objects.iter().any(|o| o["kind"] == "Service"));
    let b = find(&t, "Job", "batch");
    assert_eq!(b["spec"]["completions"], 4);
    assert_eq!(b["spec"]["parallelism"], 4);
}

#[test]
fn service_names_are_made_kubernetes_names_and_collisions_are_errors() {
    let t = objects("services:\n  My_Web:\n    image: x\n    expose: [80]\n");
    assert!(find(&t, "Deployment", "my-web")["metadata"]["labels"][SERVICE_LABEL] == "My_Web");
    assert!(warned(&t, "My_Web", "name"));
    let p = load_str("services:\n  a_b: {image: x}\n  a-b: {image: x}\n").unwrap();
    let e = translate(&p, &TranslateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("both be named"), "{e}");
}

#[test]
fn namespace_and_wait_image_options() {
    let p = load_str("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x}\n").unwrap();
    let t = translate(
        &p,
        &TranslateOptions {
            namespace: Some("team".into()),
            wait_image: "registry.local/busybox:1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    for o in &t.objects {
        assert_eq!(o["metadata"]["namespace"], "team");
    }
    assert_eq!(
        pod(&t, "Deployment", "a")["initContainers"][0]["image"],
        "registry.local/busybox:1"
    );
}

#[test]
fn yaml_output_round_trips() {
    let t = objects(
        "services:\n  web:\n    image: x\n    command: [\"sh\", \"-c\", \"echo 'a: b' # not a comment\"]\n    ports: ['30080:80']\n",
    );
    let y = to_yaml_stream(&t.objects).unwrap();
    let docs: Vec<&str> = y.split("---\n").filter(|d| !d.trim().is_empty()).collect();
    assert_eq!(docs.len(), t.objects.len());
    for (doc, obj) in docs.iter().zip(&t.objects) {
        let back = crate::yaml::parse("out.yml", doc).unwrap().to_json();
        assert_eq!(&back, obj);
    }
}

#[test]
fn default_files_and_override_are_found() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("docker-compose.yml"),
        "services:\n  a: {image: one}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("docker-compose.override.yml"),
        "services:\n  a: {image: two}\n",
    )
    .unwrap();
    let p = load(&LoadOptions {
        working_dir: d.path().to_path_buf(),
        project_name: Some("x".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.services[0].image, "two");
    let empty = tempfile::tempdir().unwrap();
    let e = load(&LoadOptions {
        working_dir: empty.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, Error::NoFile { .. }));
}

#[test]
fn yaml_1_2_scalars_stay_as_compose_reads_them() {
    let p = load_str(
        "services:\n  a:\n    image: x\n    environment:\n      YES: yes\n      ON: on\n      MODE: 0755\n      T: true\n      N: 10\n      F: 1.5\n    labels:\n      y: n\n",
    )
    .unwrap();
    let env: BTreeMap<_, _> = p.services[0].environment.iter().cloned().collect();
    assert_eq!(env["YES"], "yes");
    assert_eq!(env["ON"], "on");
    assert_eq!(env["MODE"], "0755");
    assert_eq!(env["T"], "true");
    assert_eq!(env["N"], "10");
    assert_eq!(env["F"], "1.5");
    assert_eq!(p.services[0].labels["y"], "n");
}

#[test]
fn anchors_aliases_and_merge_keys_work_in_compose_files() {
    let t = objects(
        "x-common: &common\n  image: shared:1\n  environment: {A: '1'}\nservices:\n  a:\n    <<: *common\n  b:\n    <<: *common\n    image: own:2\n",
    );
    assert_eq!(container(&t, "Deployment", "a")["image"], "shared:1");
    assert_eq!(container(&t, "Deployment", "b")["image"], "own:2");
    assert_eq!(
        container(&t, "Deployment", "b")["env"],
        json!([{"name": "A", "value": "1"}])
    );
}
