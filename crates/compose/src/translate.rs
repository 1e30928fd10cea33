//! The Compose model as Kubernetes objects: a Deployment (DaemonSet for `mode: global`,
//! Job for run-to-completion services) and a Service per Compose service, ConfigMaps and
//! Secrets for configs and secrets. Every object carries Docker's project and service
//! labels.

use crate::error::{Error, Warning};
use crate::model::{Condition, FileDef, MountKind, Project, Service};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The label naming the Compose project of an object.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label naming the Compose service of an object.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The label naming the top-level config, secret or volume of an object.
pub const CONFIG_LABEL: &str = "com.docker.compose.config";
/// The pod-template annotation that changes when a config or secret a service mounts
/// changes, so its pods roll (subPath mounts do not see updates).
pub const CONFIG_HASH_ANNOTATION: &str = "com.docker.compose.config-hash";
/// The workload annotation listing services that must complete before this one starts
/// (`depends_on: condition: service_completed_successfully`); `drover compose up` waits
/// for those Jobs before applying the workload.
pub const AFTER_ANNOTATION: &str = "drover.dev/compose-after";

/// How to translate.
#[derive(Clone, Debug)]
pub struct TranslateOptions {
    /// The namespace written into every object (None: leave it to the client).
    pub namespace: Option<String>,
    /// Where named volumes live on the nodes (hostPath `DIR/PROJECT_VOLUME`); None makes
    /// them emptyDirs (lost with the pod, not shared between services).
    pub volume_dir: Option<PathBuf>,
    /// The image of the init containers that wait for dependencies (needs `sh`, `sleep`,
    /// `nslookup`, `nc` and `timeout`: busybox).
    pub wait_image: String,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            namespace: None,
            volume_dir: Some(PathBuf::from("/var/lib/drover/volumes")),
            wait_image: "busybox:1.36".into(),
        }
    }
}

/// The objects `up` applies, in an order that respects dependencies (configs and secrets,
/// services, then workloads with dependencies first), and the warnings.
#[derive(Clone, Debug, Default)]
pub struct Translation {
    /// Kubernetes objects as JSON.
    pub objects: Vec<Value>,
    /// The load warnings plus the translation's own.
    pub warnings: Vec<Warning>,
}

/// What kind of workload a service becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// A Deployment (the default).
    Deployment,
    /// A DaemonSet (`deploy.mode: global`).
    DaemonSet,
    /// A Job (run to completion: `deploy.mode: replicated-job`, `restart: on-failure`, or
    /// depended on with `service_completed_successfully`).
    Job,
}

/// The workload kind of service `s` in `p`.
pub fn workload_kind(p: &Project, s: &Service) -> WorkloadKind {
    let completed_dep = p.services.iter().any(|o| {
        o.depends_on
            .iter()
            .any(|d| d.service == s.name && d.condition == Condition::Completed)
    });
    let on_failure = s
        .restart
        .as_deref()
        .is_some_and(|r| r.starts_with("on-failure"));
    if s.deploy.job || completed_dep || on_failure {
        WorkloadKind::Job
    } else if s.deploy.global {
        WorkloadKind::DaemonSet
    } else {
        WorkloadKind::Deployment
    }
}

/// A Kubernetes name (RFC 1123 label) from a Compose name: lower case, other characters
/// as `-`, at most 63 characters.
pub fn k8s_name(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

/// The label selector of a whole project.
pub fn project_selector(project: &str) -> String {
    format!("{PROJECT_LABEL}={project}")
}

fn config_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// FNV-1a, stable across runs and platforms (std's hasher is not).
fn fnv(data: &[u8], mut h: u64) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Escapes `$(` so Kubernetes does not expand it as a variable reference.
fn k8s_escape(s: &str) -> String {
    s.replace("$(", "$$(")
}

struct Ctx<'a> {
    p: &'a Project,
    opts: &'a TranslateOptions,
    warnings: Vec<Warning>,
}

impl Ctx<'_> {
    fn warn(&mut self, service: &str, key: &str, message: impl Into<String>) {
        let w = Warning {
            service: Some(service.to_string()),
            key: key.into(),
            message: message.into(),
        };
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    fn meta(&self, name: &str, service: Option<&str>) -> Value {
        let mut labels = Map::new();
        labels.insert(PROJECT_LABEL.into(), json!(self.p.name));
        if let Some(s) = service {
            labels.insert(SERVICE_LABEL.into(), json!(s));
        }
        let mut m = json!({"name": name, "labels": labels});
        if let Some(ns) = &self.opts.namespace {
            m["namespace"] = json!(ns);
        }
        m
    }

    fn configmap_name(&self, name: &str, def: &FileDef) -> String {
        if def.external {
            return def.name.clone().unwrap_or_else(|| name.to_string());
        }
        k8s_name(&format!("{}-{name}", self.p.name))
    }
}

/// Translates a project.
pub fn translate(p: &Project, opts: &TranslateOptions) -> Result<Translation, Error> {
    let mut cx = Ctx {
        p,
        opts,
        warnings: p.warnings.clone(),
    };
    // Kubernetes names must stay distinct after sanitizing.
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for s in &p.services {
        let n = k8s_name(&s.name);
        if n.is_empty() {
            return Err(Error::invalid(
                &s.pos,
                format!(
                    "service name {:?} has no letter or digit to name Kubernetes objects with",
                    s.name
                ),
            ));
        }
        if let Some(other) = seen.insert(n.clone(), &s.name) {
            return Err(Error::invalid(
                &s.pos,
                format!(
                    "services {other:?} and {:?} would both be named {n:?} on the cluster; rename one",
                    s.name
                ),
            ));
        }
        if n != s.name {
            cx.warn(
                &s.name,
                "name",
                format!("Kubernetes names must be lower-case DNS labels: the objects are named {n:?}, and other services reach this one as {n:?}"),
            );
        }
    }
    let mut objects = Vec::new();
    // ConfigMaps and Secrets.
    for (name, def) in &p.configs {
        let Some(content) = &def.content else {
            continue;
        };
        let mut o = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": cx.meta(&cx.configmap_name(name, def), None),
        });
        o["metadata"]["labels"][CONFIG_LABEL] = json!(k8s_name(name));
        match std::str::from_utf8(content) {
            Ok(text) => o["data"] = json!({config_key(name): text}),
            Err(_) => {
                use base64::Engine;
                o["binaryData"] = json!({config_key(name): base64::engine::general_purpose::STANDARD.encode(content)});
            }
        }
        objects.push(o);
    }
    for (name, def) in &p.secrets {
        let Some(content) = &def.content else {
            continue;
        };
        use base64::Engine;
        let mut o = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": cx.meta(&cx.configmap_name(name, def), None),
            "type": "Opaque",
            "data": {config_key(name): base64::engine::general_purpose::STANDARD.encode(content)},
        });
        o["metadata"]["labels"][CONFIG_LABEL] = json!(k8s_name(name));
        objects.push(o);
    }
    // Services.
    for s in &p.services {
        if let Some(svc) = service_object(&mut cx, s) {
            objects.push(svc);
        }
    }
    // Workloads, dependencies first.
    for s in ordered(p) {
        let w = workload(&mut cx, s)?;
        objects.push(w);
    }
    Ok(Translation {
        objects,
        warnings: cx.warnings,
    })
}

/// The services with every service after its dependencies (file order otherwise).
pub fn ordered(p: &Project) -> Vec<&Service> {
    let mut out: Vec<&Service> = Vec::new();
    fn visit<'a>(p: &'a Project, s: &'a Service, out: &mut Vec<&'a Service>, depth: usize) {
        if out.iter().any(|x| x.name == s.name) || depth > p.services.len() {
            return;
        }
        for d in &s.depends_on {
            if let Some(dep) = p.service(&d.service) {
                visit(p, dep, out, depth + 1);
            }
        }
        if !out.iter().any(|x| x.name == s.name) {
            out.push(s);
        }
    }
    for s in &p.services {
        visit(p, s, &mut out, 0);
    }
    out
}

/// The Service ports of `s`: (name, port, protocol, nodePort).
fn service_ports(s: &Service) -> Vec<(String, u16, String, Option<u16>)> {
    let mut out: Vec<(String, u16, String, Option<u16>)> = Vec::new();
    let mut add = |name: Option<&str>, port: u16, proto: &str, node_port: Option<u16>| {
        if let Some(e) = out.iter_mut().find(|e| e.1 == port && e.2 == proto) {
            if e.3.is_none() {
                e.3 = node_port;
            }
            return;
        }
        let n = name
            .map(k8s_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{proto}-{port}"));
        out.push((n, port, proto.to_string(), node_port));
    };
    for p in &s.ports {
        let np = p.published.filter(|x| (30000..=32767).contains(x));
        add(p.name.as_deref(), p.target, &p.protocol, np);
    }
    for (port, proto) in &s.expose {
        add(None, *port, proto, None);
    }
    out
}

/// Whether `s` gets a NodePort Service: a published port in the NodePort range, or
/// published without a host port (Docker would pick a random one).
fn wants_node_port(s: &Service) -> bool {
    s.ports.iter().any(|p| match p.published {
        Some(x) => (30000..=32767).contains(&x),
        None => p.publish,
    })
}

fn service_object(cx: &mut Ctx<'_>, s: &Service) -> Option<Value> {
    let kind = workload_kind(cx.p, s);
    let ports = service_ports(s);
    if ports.is_empty() && kind == WorkloadKind::Job {
        return None;
    }
    let name = k8s_name(&s.name);
    let mut spec = json!({
        "selector": {PROJECT_LABEL: cx.p.name, SERVICE_LABEL: s.name},
    });
    let sp: Vec<Value> = ports
        .iter()
        .map(|(n, port, proto, np)| {
            let mut v = json!({
                "name": n,
                "port": port,
                "targetPort": port,
                "protocol": proto.to_uppercase(),
            });
            if let Some(np) = np {
                v["nodePort"] = json!(np);
            }
            v
        })
        .collect();
    if ports.is_empty() || s.deploy.dnsrr {
        // Headless: the name resolves to the ready pods themselves, so it resolves only
        // once the service is up (what dependants wait for).
        spec["clusterIP"] = json!("None");
    } else if wants_node_port(s) {
        spec["type"] = json!("NodePort");
    }
    if !sp.is_empty() {
        spec["ports"] = json!(sp);
    }
    for p in &s.ports {
        if p.published.is_some_and(|x| (30000..=32767).contains(&x)) && p.host_ip.is_some() {
            cx.warn(
                &s.name,
                "ports",
                format!("host_ip {} is ignored for NodePort {}: node ports answer on every node address", p.host_ip.clone().unwrap_or_default(), p.published.unwrap_or(0)),
            );
        }
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": cx.meta(&name, Some(&s.name)),
        "spec": spec,
    }))
}

/// Which probe a healthcheck becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

/// How long a container may take to first pass its healthcheck before it is restarted
/// (at least; longer with a longer `start_period`).
const STARTUP_WINDOW_SECS: u64 = 300;

fn probe(h: &crate::model::Healthcheck, kind: ProbeKind) -> Value {
    // Docker never restarts a container for failing its healthcheck before it was first
    // healthy; a startup probe holds the liveness probe back until then.
    let failure = match kind {
        ProbeKind::Startup => {
            let window = STARTUP_WINDOW_SECS.max(h.start_period + h.interval * h.retries);
            window.div_ceil(h.interval.max(1))
        }
        _ => h.retries,
    };
    json!({
        "exec": {"command": h.test.iter().map(|s| k8s_escape(s)).collect::<Vec<_>>()},
        "periodSeconds": h.interval,
        "timeoutSeconds": h.timeout,
        "failureThreshold": failure,
        "successThreshold": 1,
    })
}

fn workload(cx: &mut Ctx<'_>, s: &Service) -> Result<Value, Error> {
    let kind = workload_kind(cx.p, s);
    let name = k8s_name(&s.name);
    let p = cx.p;
    let mut labels = Map::new();
    labels.insert(PROJECT_LABEL.into(), json!(p.name));
    labels.insert(SERVICE_LABEL.into(), json!(s.name));

    // Volumes and mounts.
    let mut volumes: Vec<Value> = Vec::new();
    let mut mounts: Vec<Value> = Vec::new();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut uses_config = false;
    for (i, m) in s.mounts.iter().enumerate() {
        let (vname, vol) = match &m.kind {
            MountKind::Volume(v) => {
                let def = p.volumes.get(v).cloned().unwrap_or_default();
                let vname = k8s_name(&format!("vol-{v}"));
                let vol = match &cx.opts.volume_dir {
                    Some(dir) => {
                        let dirname = match (&def.name, def.external) {
                            (Some(n), _) => n.clone(),
                            (None, true) => v.clone(),
                            (None, false) => format!("{}_{v}", p.name),
                        };
                        json!({"hostPath": {"path": dir.join(dirname).display().to_string(), "type": "DirectoryOrCreate"}})
                    }
                    None => {
                        cx.warn(&s.name, "volumes", format!("named volume {v:?} is an emptyDir: its data is lost with the pod and not shared with other services"));
                        json!({"emptyDir": {}})
                    }
                };
                (vname, vol)
            }
            MountKind::Anonymous => (format!("anon-{i}"), json!({"emptyDir": {}})),
            MountKind::Bind { source, create } => {
                let path = std::path::Path::new(source);
                let ty = if path.is_file() {
                    "File"
                } else if path.is_dir() {
                    "Directory"
                } else if *create {
                    "DirectoryOrCreate"
                } else {
                    "Directory"
                };
                (
                    format!("bind-{i}"),
                    json!({"hostPath": {"path": source, "type": ty}}),
                )
            }
            MountKind::Tmpfs(size) => {
                let mut ed = json!({"medium": "Memory"});
                if let Some(sz) = size {
                    ed["sizeLimit"] = json!(sz.to_string());
                }
                (format!("tmpfs-{i}"), json!({"emptyDir": ed}))
            }
        };
        if !volumes.iter().any(|x| x["name"] == json!(vname)) {
            let mut v = vol;
            v["name"] = json!(vname);
            volumes.push(v);
        }
        let mut vm = json!({"name": vname, "mountPath": m.target});
        if m.read_only {
            vm["readOnly"] = json!(true);
        }
        if let Some(sp) = &m.subpath {
            vm["subPath"] = json!(sp);
        }
        mounts.push(vm);
    }
    for (fm, secret) in s
        .configs
        .iter()
        .map(|c| (c, false))
        .chain(s.secrets.iter().map(|c| (c, true)))
    {
        let def = if secret {
            p.secrets.get(&fm.source)
        } else {
            p.configs.get(&fm.source)
        };
        let Some(def) = def else { continue };
        uses_config = true;
        if let Some(c) = &def.content {
            hash = fnv(fm.source.as_bytes(), hash);
            hash = fnv(c, hash);
        }
        let obj = cx.configmap_name(&fm.source, def);
        let key = config_key(&fm.source);
        let vname = k8s_name(&format!(
            "{}-{}",
            if secret { "secret" } else { "config" },
            fm.source
        ));
        if !volumes.iter().any(|x| x["name"] == json!(vname)) {
            let mut items = json!([{"key": key, "path": key}]);
            if let Some(mode) = fm.mode {
                items[0]["mode"] = json!(mode);
            }
            volumes.push(if secret {
                json!({"name": vname, "secret": {"secretName": obj, "items": items}})
            } else {
                json!({"name": vname, "configMap": {"name": obj, "items": items}})
            });
        }
        mounts
            .push(json!({"name": vname, "mountPath": fm.target, "subPath": key, "readOnly": true}));
    }
    if let Some(shm) = s.shm_size {
        volumes.push(
            json!({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm.to_string()}}),
        );
        mounts.push(json!({"name": "dshm", "mountPath": "/dev/shm"}));
    }

    // The container.
    let mut c = json!({"name": name, "image": s.image});
    if let Some(pp) = &s.pull_policy {
        c["imagePullPolicy"] = json!(match pp.as_str() {
            "always" => "Always",
            "never" => "Never",
            _ => "IfNotPresent",
        });
    }
    if let Some(e) = &s.entrypoint {
        c["command"] = json!(e.iter().map(|x| k8s_escape(x)).collect::<Vec<_>>());
    }
    if let Some(a) = &s.command {
        c["args"] = json!(a.iter().map(|x| k8s_escape(x)).collect::<Vec<_>>());
    }
    if !s.environment.is_empty() {
        c["env"] = json!(
            s.environment
                .iter()
                .map(|(k, v)| json!({"name": k, "value": k8s_escape(v)}))
                .collect::<Vec<_>>()
        );
    }
    let mut cports: Vec<Value> = Vec::new();
    for pt in &s.ports {
        let proto = pt.protocol.to_uppercase();
        let host = pt.published.filter(|x| !(30000..=32767).contains(x));
        if let Some(existing) = cports
            .iter_mut()
            .find(|x| x["containerPort"] == json!(pt.target) && x["protocol"] == json!(proto))
        {
            if host.is_some() && existing.get("hostPort").is_none() {
                existing["hostPort"] = json!(host);
            }
            continue;
        }
        let mut cp = json!({"containerPort": pt.target, "protocol": proto});
        if let Some(h) = host {
            cp["hostPort"] = json!(h);
            if let Some(ip) = &pt.host_ip {
                cp["hostIP"] = json!(ip);
            }
        }
        cports.push(cp);
    }
    for (port, proto) in &s.expose {
        let proto = proto.to_uppercase();
        if !cports
            .iter()
            .any(|x| x["containerPort"] == json!(port) && x["protocol"] == json!(proto))
        {
            cports.push(json!({"containerPort": port, "protocol": proto}));
        }
    }
    if !cports.is_empty() {
        c["ports"] = json!(cports);
    }
    if !mounts.is_empty() {
        c["volumeMounts"] = json!(mounts);
    }
    if let Some(wd) = &s.working_dir {
        c["workingDir"] = json!(wd);
    }
    if let Some(h) = &s.healthcheck {
        c["readinessProbe"] = probe(h, ProbeKind::Readiness);
        if kind != WorkloadKind::Job {
            c["startupProbe"] = probe(h, ProbeKind::Startup);
            c["livenessProbe"] = probe(h, ProbeKind::Liveness);
        }
    }
    let mut res = Map::new();
    let d = &s.deploy;
    let mut limits = Map::new();
    if let Some(m) = d.cpu_limit {
        limits.insert("cpu".into(), json!(format!("{m}m")));
    }
    if let Some(b) = d.memory_limit {
        limits.insert("memory".into(), json!(b.to_string()));
    }
    let mut requests = Map::new();
    if let Some(m) = d.cpu_request {
        requests.insert("cpu".into(), json!(format!("{m}m")));
    }
    if let Some(b) = d.memory_request {
        requests.insert("memory".into(), json!(b.to_string()));
    }
    if !limits.is_empty() {
        res.insert("limits".into(), Value::Object(limits));
    }
    if !requests.is_empty() {
        res.insert("requests".into(), Value::Object(requests));
    }
    if !res.is_empty() {
        c["resources"] = Value::Object(res);
    }
    let mut sc = Map::new();
    if s.privileged {
        sc.insert("privileged".into(), json!(true));
    }
    if s.read_only {
        sc.insert("readOnlyRootFilesystem".into(), json!(true));
    }
    if let Some((uid, gid)) = s.user {
        sc.insert("runAsUser".into(), json!(uid));
        if let Some(g) = gid {
            sc.insert("runAsGroup".into(), json!(g));
        }
    }
    if !s.cap_add.is_empty() || !s.cap_drop.is_empty() {
        let strip = |v: &Vec<String>| -> Vec<String> {
            v.iter()
                .map(|c| c.trim_start_matches("CAP_").to_string())
                .collect()
        };
        let mut caps = Map::new();
        if !s.cap_add.is_empty() {
            caps.insert("add".into(), json!(strip(&s.cap_add)));
        }
        if !s.cap_drop.is_empty() {
            caps.insert("drop".into(), json!(strip(&s.cap_drop)));
        }
        sc.insert("capabilities".into(), Value::Object(caps));
    }
    if !sc.is_empty() {
        c["securityContext"] = Value::Object(sc);
    }
    if s.tty {
        c["tty"] = json!(true);
    }
    if s.stdin_open {
        c["stdin"] = json!(true);
    }
    let mut lifecycle = Map::new();
    if let Some(cmd) = &s.post_start {
        lifecycle.insert("postStart".into(), json!({"exec": {"command": cmd}}));
    }
    if let Some(cmd) = &s.pre_stop {
        lifecycle.insert("preStop".into(), json!({"exec": {"command": cmd}}));
        if let Some(sig) = &s.stop_signal {
            cx.warn(&s.name, "stop_signal", format!("SIG{sig} is not sent: pre_stop takes the pre-stop hook; the container gets SIGTERM"));
        }
    } else if let Some(sig) = &s.stop_signal {
        // Kubernetes stops containers with SIGTERM: a pre-stop hook sends the Compose
        // signal first and waits (within the grace period) for the main process to exit.
        lifecycle.insert(
            "preStop".into(),
            json!({"exec": {"command": ["/bin/sh", "-c", format!("kill -{sig} 1; while kill -0 1 2>/dev/null; do sleep 1; done")]}}),
        );
    }
    if !lifecycle.is_empty() {
        c["lifecycle"] = Value::Object(lifecycle);
    }

    // Init containers that wait for dependencies.
    let mut inits: Vec<Value> = Vec::new();
    let mut after: Vec<String> = Vec::new();
    for dep in &s.depends_on {
        let Some(t) = p.service(&dep.service) else {
            continue;
        };
        let tname = k8s_name(&t.name);
        if workload_kind(p, t) == WorkloadKind::Job || dep.condition == Condition::Completed {
            if dep.condition != Condition::Completed {
                cx.warn(
                    &s.name,
                    "depends_on",
                    format!(
                        "{:?} runs to completion as a Job; waiting for it to complete",
                        t.name
                    ),
                );
            }
            after.push(tname);
            continue;
        }
        if dep.condition == Condition::Healthy && t.healthcheck.is_none() {
            cx.warn(
                &s.name,
                "depends_on",
                format!(
                    "{:?} has no healthcheck: service_healthy waits until it runs",
                    t.name
                ),
            );
        }
        let ports = service_ports(t);
        let tcp = ports.iter().find(|p| p.2 == "tcp").map(|p| p.1);
        let headless = ports.is_empty() || t.deploy.dnsrr;
        let check = match (dep.condition, tcp, headless) {
            (Condition::Healthy, Some(port), false) => {
                format!("timeout 5 nc {tname} {port} </dev/null >/dev/null 2>&1")
            }
            (Condition::Healthy, None, false) => {
                cx.warn(
                    &s.name,
                    "depends_on",
                    format!(
                        "{:?} has no TCP port to check; waiting only for its name to resolve",
                        t.name
                    ),
                );
                lookup(&tname)
            }
            _ => lookup(&tname),
        };
        let what = match dep.condition {
            Condition::Healthy => "healthy",
            _ => "started",
        };
        let script =
            format!("until {check}; do echo 'waiting for {tname} to be {what}'; sleep 1; done");
        inits.push(json!({
            "name": k8s_name(&format!("wait-for-{tname}")),
            "image": cx.opts.wait_image,
            "command": ["sh", "-c", k8s_escape(&script)],
        }));
    }

    // The pod.
    let mut pod = json!({"containers": [c]});
    if !inits.is_empty() {
        pod["initContainers"] = json!(inits);
    }
    if !volumes.is_empty() {
        pod["volumes"] = json!(volumes);
    }
    if let Some(h) = &s.hostname {
        let ok = h.len() <= 63
            && !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !h.starts_with('-')
            && !h.ends_with('-');
        if ok {
            pod["hostname"] = json!(h);
        } else {
            cx.warn(
                &s.name,
                "hostname",
                format!("{h:?} is not a lower-case DNS label; the pod name is used"),
            );
        }
    }
    if let Some(g) = s.stop_grace_period {
        pod["terminationGracePeriodSeconds"] = json!(g);
    }
    if s.host_network {
        pod["hostNetwork"] = json!(true);
    }
    if s.host_ipc {
        pod["hostIPC"] = json!(true);
    }
    if s.host_pid {
        pod["hostPID"] = json!(true);
    }
    let mut psc = Map::new();
    if !s.group_add.is_empty() {
        psc.insert("supplementalGroups".into(), json!(s.group_add));
    }
    if !s.sysctls.is_empty() {
        psc.insert(
            "sysctls".into(),
            json!(
                s.sysctls
                    .iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    if !psc.is_empty() {
        pod["securityContext"] = Value::Object(psc);
    }
    if !s.extra_hosts.is_empty() {
        let mut by_ip: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (h, ip) in &s.extra_hosts {
            by_ip.entry(ip.as_str()).or_default().push(h.as_str());
        }
        pod["hostAliases"] = json!(
            by_ip
                .into_iter()
                .map(|(ip, hs)| json!({"ip": ip, "hostnames": hs}))
                .collect::<Vec<_>>()
        );
    }
    if !s.dns.is_empty() || !s.dns_search.is_empty() || !s.dns_opt.is_empty() {
        let mut dc = Map::new();
        if !s.dns.is_empty() {
            dc.insert("nameservers".into(), json!(s.dns));
        }
        if !s.dns_search.is_empty() {
            dc.insert("searches".into(), json!(s.dns_search));
        }
        if !s.dns_opt.is_empty() {
            dc.insert(
                "options".into(),
                json!(
                    s.dns_opt
                        .iter()
                        .map(|o| match o.split_once(':') {
                            Some((n, v)) => json!({"name": n, "value": v}),
                            None => json!({"name": o}),
                        })
                        .collect::<Vec<_>>()
                ),
            );
        }
        pod["dnsConfig"] = Value::Object(dc);
    }
    let mut node_selector = Map::new();
    let mut not_in: Vec<Value> = Vec::new();
    for (label, op, value) in &d.constraints {
        if op == "==" {
            node_selector.insert(label.clone(), json!(value));
        } else {
            not_in.push(json!({"key": label, "operator": "NotIn", "values": [value]}));
        }
    }
    if !node_selector.is_empty() {
        pod["nodeSelector"] = Value::Object(node_selector);
    }
    if !not_in.is_empty() {
        pod["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": not_in}]}}});
    }
    let restart = s.restart.as_deref().unwrap_or("");
    match kind {
        WorkloadKind::Job => {
            pod["restartPolicy"] = json!(if restart.starts_with("on-failure")
                || restart == "always"
                || restart == "unless-stopped"
            {
                "OnFailure"
            } else {
                "Never"
            });
        }
        _ => {
            if restart == "no" {
                cx.warn(&s.name, "restart", "\"no\" is not possible for a long-running service: the cluster restarts its containers (restartPolicy Always); use deploy.mode: replicated-job for a one-shot task");
            }
        }
    }

    let mut annotations = Map::new();
    for (k, v) in &s.labels {
        annotations.insert(k.clone(), json!(v));
    }
    for (k, v) in &s.annotations {
        annotations.insert(k.clone(), json!(v));
    }
    let mut tmeta = json!({"labels": labels.clone()});
    let mut tann = annotations.clone();
    if uses_config {
        tann.insert(CONFIG_HASH_ANNOTATION.into(), json!(format!("{hash:016x}")));
    }
    if !tann.is_empty() {
        tmeta["annotations"] = Value::Object(tann);
    }
    let template = json!({"metadata": tmeta, "spec": pod});
    let selector = json!({"matchLabels": labels});
    let mut meta = cx.meta(&name, Some(&s.name));
    let mut wann = annotations;
    for (k, v) in &d.labels {
        wann.insert(k.clone(), json!(v));
    }
    if !after.is_empty() {
        wann.insert(AFTER_ANNOTATION.into(), json!(after.join(",")));
    }
    if !wann.is_empty() {
        meta["annotations"] = Value::Object(wann);
    }
    let replicas = d.replicas.unwrap_or(1);
    let obj = match kind {
        WorkloadKind::Deployment => {
            let mut spec = json!({
                "replicas": replicas,
                "selector": selector,
                "template": template,
            });
            let host_ports = s
                .ports
                .iter()
                .any(|p| p.published.is_some_and(|x| !(30000..=32767).contains(&x)));
            if host_ports && d.start_first {
                cx.warn(&s.name, "deploy.update_config.order", "start-first cannot work with a host port (the new pod cannot take the port while the old one holds it); the old pod stops first");
            }
            if d.parallelism.is_some() || d.start_first || host_ports {
                let n = d.parallelism.unwrap_or(1).max(1);
                // A host port can be held by one pod per node: stop the old pod first.
                let start_first = d.start_first && !host_ports;
                spec["strategy"] = if start_first {
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": n, "maxUnavailable": 0}})
                } else {
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": n}})
                };
            }
            if let Some(delay) = d.update_delay {
                spec["minReadySeconds"] = json!(delay);
            }
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
        }
        WorkloadKind::DaemonSet => {
            if d.replicas.is_some() {
                cx.warn(
                    &s.name,
                    "deploy.replicas",
                    "is ignored with mode: global (one pod per node)",
                );
            }
            let mut spec = json!({"selector": selector, "template": template});
            if let Some(n) = d.parallelism {
                spec["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": n.max(1)}});
            }
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta, "spec": spec})
        }
        WorkloadKind::Job => {
            let backoff = restart
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(if restart.starts_with("on-failure") {
                    6
                } else {
                    0
                });
            let mut t = template;
            // A Job's pods are selected by the controller-uid label it adds itself.
            t["metadata"]["labels"] = json!(labels);
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {
                "completions": replicas,
                "parallelism": replicas,
                "backoffLimit": backoff,
                "template": t,
            }})
        }
    };
    Ok(obj)
}

/// A shell test that `name` resolves in the pod's namespace. busybox's nslookup does not
/// apply the search list, so the name is qualified with the first search domain of
/// resolv.conf (`NAMESPACE.svc.CLUSTER-DOMAIN`); and it succeeds on an empty answer, so
/// the test is for an answer (`Name:`). A ClusterIP name resolves once the Service exists;
/// a headless one only while a ready pod backs it.
fn lookup(name: &str) -> String {
    format!(
        "nslookup {name}.$(sed -n 's/^search \\([^ ]*\\).*/\\1/p' /etc/resolv.conf) 2>/dev/null | grep -q '^Name:'"
    )
}

/// The names of the objects of `t` per kind, for pruning what a project no longer has.
pub fn object_keys(t: &Translation) -> BTreeSet<(String, String)> {
    t.objects
        .iter()
        .filter_map(|o| {
            Some((
                o["kind"].as_str()?.to_string(),
                o["metadata"]["name"].as_str()?.to_string(),
            ))
        })
        .collect()
}
