//! The Compose model: the merged YAML checked and turned into typed services, volumes,
//! configs and secrets. Keys the cluster cannot honour become [`Warning`]s here.

use crate::error::{Error, Warning};
use crate::interp::parse_dotenv;
use crate::yaml::{Node, Pos, Value};
use std::collections::BTreeMap;

/// A loaded Compose project.
#[derive(Clone, Debug, Default)]
pub struct Project {
    /// The project name (normalized as Compose does).
    pub name: String,
    /// Enabled services, in file order.
    pub services: Vec<Service>,
    /// Services left out by profiles.
    pub disabled: Vec<String>,
    /// Top-level named volumes.
    pub volumes: BTreeMap<String, VolumeDef>,
    /// Top-level configs.
    pub configs: BTreeMap<String, FileDef>,
    /// Top-level secrets.
    pub secrets: BTreeMap<String, FileDef>,
    /// What could not be honoured, one entry per key and service.
    pub warnings: Vec<Warning>,
}

impl Project {
    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// A top-level volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VolumeDef {
    /// `external: true`: exists outside the project (not removed by `down -v`).
    pub external: bool,
    /// `name:` (the real name; default `PROJECT_VOLUME`).
    pub name: Option<String>,
}

/// A top-level config or secret.
#[derive(Clone, Debug, PartialEq)]
pub struct FileDef {
    /// The content (from `file`, `content` or `environment`); None when external.
    pub content: Option<Vec<u8>>,
    /// `external: true`: an existing ConfigMap/Secret, named `name` or the key.
    pub external: bool,
    /// `name:`.
    pub name: Option<String>,
}

/// One service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    /// The service name as written.
    pub name: String,
    /// The image.
    pub image: String,
    /// `entrypoint` (Kubernetes `command`).
    pub entrypoint: Option<Vec<String>>,
    /// `command` (Kubernetes `args`).
    pub command: Option<Vec<String>>,
    /// Environment (env_file first, then `environment`), resolved.
    pub environment: Vec<(String, String)>,
    /// `ports`, one entry per port (ranges expanded).
    pub ports: Vec<Port>,
    /// `expose`.
    pub expose: Vec<(u16, String)>,
    /// `volumes` and `tmpfs`.
    pub mounts: Vec<Mount>,
    /// `depends_on`.
    pub depends_on: Vec<Dependency>,
    /// `healthcheck` (None also when disabled).
    pub healthcheck: Option<Healthcheck>,
    /// `restart`.
    pub restart: Option<String>,
    /// `deploy` and its legacy equivalents.
    pub deploy: Deploy,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `working_dir`.
    pub working_dir: Option<String>,
    /// `user` as numeric uid and gid.
    pub user: Option<(i64, Option<i64>)>,
    /// `group_add` (numeric).
    pub group_add: Vec<i64>,
    /// `stop_signal` other than SIGTERM, without `SIG` (`QUIT`, `INT`, `9`).
    pub stop_signal: Option<String>,
    /// `stop_grace_period` in seconds.
    pub stop_grace_period: Option<u64>,
    /// `configs`.
    pub configs: Vec<FileMount>,
    /// `secrets`.
    pub secrets: Vec<FileMount>,
    /// `privileged`.
    pub privileged: bool,
    /// `cap_add`.
    pub cap_add: Vec<String>,
    /// `cap_drop`.
    pub cap_drop: Vec<String>,
    /// `read_only`.
    pub read_only: bool,
    /// `tty`.
    pub tty: bool,
    /// `stdin_open`.
    pub stdin_open: bool,
    /// `extra_hosts` as (host, ip).
    pub extra_hosts: Vec<(String, String)>,
    /// `dns`.
    pub dns: Vec<String>,
    /// `dns_search`.
    pub dns_search: Vec<String>,
    /// `dns_opt`.
    pub dns_opt: Vec<String>,
    /// `network_mode: host`.
    pub host_network: bool,
    /// `ipc: host`.
    pub host_ipc: bool,
    /// `pid: host`.
    pub host_pid: bool,
    /// `pull_policy`.
    pub pull_policy: Option<String>,
    /// `sysctls`.
    pub sysctls: Vec<(String, String)>,
    /// `shm_size` in bytes.
    pub shm_size: Option<u64>,
    /// `profiles`.
    pub profiles: Vec<String>,
    /// `post_start` commands.
    pub post_start: Option<Vec<String>>,
    /// `pre_stop` commands.
    pub pre_stop: Option<Vec<String>>,
    /// Where the service was defined.
    pub pos: Pos,
}

/// One container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Container port.
    pub target: u16,
    /// Host port (None: any).
    pub published: Option<u16>,
    /// `tcp` / `udp` / `sctp`.
    pub protocol: String,
    /// Host IP, if given.
    pub host_ip: Option<String>,
    /// `published` was given (even as an empty host port, `"::80"` style).
    pub publish: bool,
    /// The long syntax `name`.
    pub name: Option<String>,
}

/// A mount.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    /// What is mounted.
    pub kind: MountKind,
    /// The path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// `volume.subpath`.
    pub subpath: Option<String>,
}

/// The source of a [`Mount`].
#[derive(Clone, Debug, PartialEq)]
pub enum MountKind {
    /// A top-level named volume.
    Volume(String),
    /// An anonymous volume (per container).
    Anonymous,
    /// A host path (absolute), created when missing if `create` is set.
    Bind {
        /// The host path.
        source: String,
        /// Create it when missing.
        create: bool,
    },
    /// A tmpfs of at most this many bytes.
    Tmpfs(Option<u64>),
}

/// A `depends_on` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The service depended on.
    pub service: String,
    /// What to wait for.
    pub condition: Condition,
    /// `required: false` lets the service start without it.
    pub required: bool,
}

/// `depends_on.condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `service_started`.
    Started,
    /// `service_healthy`.
    Healthy,
    /// `service_completed_successfully`.
    Completed,
}

/// `healthcheck`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    /// The command, exec form.
    pub test: Vec<String>,
    /// Seconds between checks (default 30).
    pub interval: u64,
    /// Seconds a check may take (default 30).
    pub timeout: u64,
    /// Failures before unhealthy (default 3).
    pub retries: u64,
    /// Seconds during which failures do not count (default 0).
    pub start_period: u64,
}

/// `deploy`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deploy {
    /// `mode: global`.
    pub global: bool,
    /// `mode: replicated-job` / `global-job`.
    pub job: bool,
    /// `replicas` (or the legacy `scale`).
    pub replicas: Option<u64>,
    /// `resources.limits.cpus` as millicores.
    pub cpu_limit: Option<u64>,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: Option<u64>,
    /// `resources.reservations.cpus` as millicores.
    pub cpu_request: Option<u64>,
    /// `resources.reservations.memory` in bytes.
    pub memory_request: Option<u64>,
    /// `placement.constraints` as (label, op, value): op is `==` or `!=`.
    pub constraints: Vec<(String, String, String)>,
    /// `update_config.parallelism`.
    pub parallelism: Option<u64>,
    /// `update_config.order == start-first`.
    pub start_first: bool,
    /// `update_config.delay` in seconds.
    pub update_delay: Option<u64>,
    /// `endpoint_mode: dnsrr`.
    pub dnsrr: bool,
    /// `deploy.labels`.
    pub labels: BTreeMap<String, String>,
}

/// A config or secret as a service uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMount {
    /// The top-level config/secret.
    pub source: String,
    /// The absolute path in the container.
    pub target: String,
    /// File mode.
    pub mode: Option<u32>,
}

/// Builds the project from the merged document.
pub(crate) fn build(
    name: String,
    doc: &Node,
    profiles: &[String],
    vars: &BTreeMap<String, String>,
    mut warnings: Vec<Warning>,
) -> Result<Project, Error> {
    let mut project = Project {
        name,
        ..Default::default()
    };
    let Value::Map(top) = &doc.v else {
        return Err(Error::invalid(&doc.pos, "a Compose file must be a mapping"));
    };
    for (k, v) in top {
        match k.name.as_str() {
            "name" | "services" => {}
            "version" => warnings.push(top_warning("version", "is obsolete and ignored")),
            "volumes" => project.volumes = volumes(v)?,
            "configs" => project.configs = files(v, vars, "config")?,
            "secrets" => project.secrets = files(v, vars, "secret")?,
            "networks" => {
                if matches!(&v.v, Value::Map(m) if m.iter().any(|(k, _)| k.name != "default")) {
                    warnings.push(top_warning(
                        "networks",
                        "is ignored: every service shares the cluster network and reaches the others by service name",
                    ));
                }
            }
            "include" => warnings.push(top_warning(
                "include",
                "is not supported; pass the included files with -f instead",
            )),
            x if x.starts_with("x-") => {}
            other => {
                return Err(Error::invalid(
                    &k.pos,
                    format!(
                        "unknown top-level key {other:?} (expected services, volumes, configs, secrets, networks, name)"
                    ),
                ));
            }
        }
    }
    let services = match doc.get("services") {
        None => return Ok(project_with(project, warnings)),
        Some(n) => n,
    };
    let Value::Map(svcs) = &services.v else {
        return Err(Error::invalid(
            &services.pos,
            format!(
                "services must be a mapping of names to services, not {}",
                services.kind()
            ),
        ));
    };
    let all_profiles = profiles.iter().any(|p| p == "*");
    for (k, v) in svcs {
        let mut w = Warnings {
            service: k.name.clone(),
            out: &mut warnings,
        };
        let svc = service(&k.name, v, vars, &project, &mut w)?;
        let enabled = svc.profiles.is_empty()
            || all_profiles
            || svc.profiles.iter().any(|p| profiles.contains(p));
        if enabled {
            project.services.push(svc);
        } else {
            project.disabled.push(svc.name);
        }
    }
    // Every dependency must exist and be enabled.
    for s in &project.services {
        for d in &s.depends_on {
            if project.service(&d.service).is_some() {
                continue;
            }
            if !d.required {
                continue;
            }
            let why = if project.disabled.contains(&d.service) {
                "which is disabled by its profiles; enable them with --profile"
            } else {
                "which is not defined"
            };
            return Err(Error::invalid(
                &s.pos,
                format!("service {:?} depends on {:?}, {why}", s.name, d.service),
            ));
        }
    }
    // No cycles in depends_on.
    for s in &project.services {
        let mut seen = vec![s.name.clone()];
        check_cycle(&project, s, &mut seen)?;
    }
    Ok(project_with(project, warnings))
}

fn project_with(mut p: Project, warnings: Vec<Warning>) -> Project {
    p.warnings = warnings;
    p
}

fn check_cycle(p: &Project, s: &Service, seen: &mut Vec<String>) -> Result<(), Error> {
    for d in &s.depends_on {
        if seen.contains(&d.service) {
            seen.push(d.service.clone());
            return Err(Error::invalid(
                &s.pos,
                format!("depends_on forms a cycle: {}", seen.join(" -> ")),
            ));
        }
        if let Some(next) = p.service(&d.service) {
            seen.push(d.service.clone());
            check_cycle(p, next, seen)?;
            seen.pop();
        }
    }
    Ok(())
}

fn top_warning(key: &str, message: &str) -> Warning {
    Warning {
        service: None,
        key: key.into(),
        message: message.into(),
    }
}

struct Warnings<'a> {
    service: String,
    out: &'a mut Vec<Warning>,
}

impl Warnings<'_> {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        let w = Warning {
            service: Some(self.service.clone()),
            key: key.into(),
            message: message.into(),
        };
        if !self.out.contains(&w) {
            self.out.push(w);
        }
    }
}

// ---- scalar helpers --------------------------------------------------------------

fn string(n: &Node, what: &str) -> Result<String, Error> {
    n.scalar_text()
        .ok_or_else(|| Error::invalid(&n.pos, format!("{what} must be a string, not {}", n.kind())))
}

fn boolean(n: &Node, what: &str) -> Result<bool, Error> {
    match &n.v {
        Value::Bool(b) => Ok(*b),
        Value::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(Error::invalid(
            &n.pos,
            format!("{what} must be true or false, not {}", n.kind()),
        )),
    }
}

fn uint(n: &Node, what: &str) -> Result<u64, Error> {
    match &n.v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        Value::Str(s) => s.trim().parse::<u64>().map_err(|_| {
            Error::invalid(
                &n.pos,
                format!("{what} must be a non-negative integer, not {s:?}"),
            )
        }),
        _ => Err(Error::invalid(
            &n.pos,
            format!("{what} must be a non-negative integer, not {}", n.kind()),
        )),
    }
}

fn port_number(s: &str, n: &Node, what: &str) -> Result<u16, Error> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            Error::invalid(
                &n.pos,
                format!("{what}: {s:?} is not a port number (1-65535)"),
            )
        })
}

fn strings(n: &Node, what: &str) -> Result<Vec<String>, Error> {
    match &n.v {
        Value::Seq(items) => items.iter().map(|i| string(i, what)).collect(),
        Value::Null => Ok(vec![]),
        _ => Ok(vec![string(n, what)?]),
    }
}

/// A command: a list, or a string split as a POSIX shell would (no expansion).
fn command(n: &Node, what: &str) -> Result<Option<Vec<String>>, Error> {
    match &n.v {
        Value::Null => Ok(None),
        Value::Seq(_) => Ok(Some(strings(n, what)?)),
        _ => {
            let s = string(n, what)?;
            shell_split(&s).map(Some).ok_or_else(|| {
                Error::invalid(&n.pos, format!("{what} has an unterminated quote: {s:?}"))
            })
        }
    }
}

/// Splits a command line into words the way `sh` would, without expansions.
pub fn shell_split(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        x => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some('"' | '\\' | '$' | '`') => cur.push(chars.next()?),
                            _ => cur.push('\\'),
                        },
                        x => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// A Go-style duration (`1m30s`, `500ms`, `1.5s`, `2h`) or a number of seconds, rounded up
/// to whole seconds.
fn duration_secs(n: &Node, what: &str) -> Result<u64, Error> {
    let bad = || {
        Error::invalid(
            &n.pos,
            format!("{what} must be a duration such as 30s, 1m30s or 500ms"),
        )
    };
    let s = match &n.v {
        Value::Int(i) if *i >= 0 => return Ok(*i as u64),
        Value::Float(f) if *f >= 0.0 => return Ok(f.ceil() as u64),
        Value::Str(s) => s.trim().to_string(),
        _ => return Err(bad()),
    };
    if let Ok(x) = s.parse::<f64>() {
        return if x >= 0.0 {
            Ok(x.ceil() as u64)
        } else {
            Err(bad())
        };
    }
    let mut total_ms = 0f64;
    let mut rest = s.as_str();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return Err(bad()),
        };
        total_ms += num * factor;
        rest = &rest[unit_end..];
    }
    Ok((total_ms / 1000.0).ceil() as u64)
}

/// A byte size: a number of bytes or `512m`, `1g`, `100k`, `2gb`, `1.5G`.
fn bytes(n: &Node, what: &str) -> Result<u64, Error> {
    let bad = || {
        Error::invalid(
            &n.pos,
            format!("{what} must be a size such as 512m, 1g or a number of bytes"),
        )
    };
    let s = match &n.v {
        Value::Int(i) if *i >= 0 => return Ok(*i as u64),
        Value::Str(s) => s.trim().to_lowercase(),
        _ => return Err(bad()),
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let num: f64 = s[..split].parse().map_err(|_| bad())?;
    let unit = s[split..].trim();
    let unit = unit
        .strip_suffix('b')
        .filter(|u| !u.is_empty())
        .unwrap_or(unit);
    let factor: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "ki" => 1024.0,
        "m" | "mi" => 1024.0 * 1024.0,
        "g" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "t" | "ti" => 1024.0f64.powi(4),
        _ => return Err(bad()),
    };
    Ok((num * factor) as u64)
}

/// CPUs (`0.5`, `"1.5"`, 2) as millicores.
fn millicores(n: &Node, what: &str) -> Result<u64, Error> {
    let x = match &n.v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Str(s) => s.trim().parse::<f64>().map_err(|_| {
            Error::invalid(
                &n.pos,
                format!("{what} must be a number of CPUs such as 0.5"),
            )
        })?,
        _ => {
            return Err(Error::invalid(
                &n.pos,
                format!("{what} must be a number of CPUs such as 0.5"),
            ));
        }
    };
    if x < 0.0 {
        return Err(Error::invalid(
            &n.pos,
            format!("{what} must not be negative"),
        ));
    }
    Ok((x * 1000.0).round() as u64)
}

/// `K=V` list or mapping as ordered pairs; a value-less entry is None.
fn key_values(n: &Node, what: &str) -> Result<Vec<(String, Option<String>)>, Error> {
    match &n.v {
        Value::Null => Ok(vec![]),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.name.clone(),
                    match &v.v {
                        Value::Null => None,
                        _ => Some(string(v, &format!("{what}.{}", k.name))?),
                    },
                ))
            })
            .collect(),
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                let s = string(i, what)?;
                Ok(match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (s, None),
                })
            })
            .collect(),
        _ => Err(Error::invalid(
            &n.pos,
            format!(
                "{what} must be a mapping or a list of KEY=VALUE, not {}",
                n.kind()
            ),
        )),
    }
}

fn map_entries(n: &Node, what: &str) -> Result<Vec<(String, Node)>, Error> {
    match &n.v {
        Value::Map(m) => Ok(m.iter().map(|(k, v)| (k.name.clone(), v.clone())).collect()),
        Value::Null => Ok(vec![]),
        _ => Err(Error::invalid(
            &n.pos,
            format!("{what} must be a mapping, not {}", n.kind()),
        )),
    }
}

// ---- top-level sections ------------------------------------------------------------

fn volumes(n: &Node) -> Result<BTreeMap<String, VolumeDef>, Error> {
    let mut out = BTreeMap::new();
    for (name, v) in map_entries(n, "volumes")? {
        let mut d = VolumeDef::default();
        for (k, x) in map_entries(&v, &format!("volumes.{name}"))? {
            match k.as_str() {
                "external" => {
                    d.external = match &x.v {
                        Value::Map(_) => true,
                        _ => boolean(&x, "external")?,
                    }
                }
                "name" => d.name = Some(string(&x, "name")?),
                _ => {}
            }
        }
        out.insert(name, d);
    }
    Ok(out)
}

fn files(
    n: &Node,
    vars: &BTreeMap<String, String>,
    what: &str,
) -> Result<BTreeMap<String, FileDef>, Error> {
    let mut out = BTreeMap::new();
    for (name, v) in map_entries(n, &format!("{what}s"))? {
        let mut d = FileDef {
            content: None,
            external: false,
            name: None,
        };
        for (k, x) in map_entries(&v, &format!("{what}s.{name}"))? {
            match k.as_str() {
                "file" => {
                    let path = string(&x, "file")?;
                    d.content = Some(std::fs::read(&path).map_err(|e| {
                        Error::invalid(&x.pos, format!("cannot read {what} file {path}: {e}"))
                    })?);
                }
                "content" => d.content = Some(string(&x, "content")?.into_bytes()),
                "environment" => {
                    let var = string(&x, "environment")?;
                    let val = vars.get(&var).ok_or_else(|| {
                        Error::invalid(
                            &x.pos,
                            format!("{what} {name:?} reads variable {var}, which is not set"),
                        )
                    })?;
                    d.content = Some(val.clone().into_bytes());
                }
                "external" => d.external = boolean(&x, "external")?,
                "name" => d.name = Some(string(&x, "name")?),
                _ => {}
            }
        }
        if d.content.is_none() && !d.external {
            return Err(Error::invalid(
                &v.pos,
                format!("{what} {name:?} needs file, content, environment or external: true"),
            ));
        }
        out.insert(name, d);
    }
    Ok(out)
}

// ---- services ----------------------------------------------------------------------

/// Keys that Kubernetes cannot honour, with what the user should know.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "build",
        "is ignored: images are not built on the cluster; push the image to a registry the nodes can pull from",
    ),
    (
        "devices",
        "is not supported on the cluster; the devices are not mapped",
    ),
    ("device_cgroup_rules", "is not supported on the cluster"),
    ("gpus", "is not supported on the cluster"),
    (
        "ulimits",
        "is not supported: containers inherit the node agent's limits",
    ),
    (
        "logging",
        "is ignored: the node keeps container logs (see `drover compose logs`)",
    ),
    (
        "platform",
        "is ignored: the node runs images for its own platform",
    ),
    (
        "runtime",
        "is ignored: the node's runtime (runc) runs every container",
    ),
    (
        "cgroup_parent",
        "is ignored: the node agent places pods in cgroups",
    ),
    ("cgroup", "is ignored"),
    (
        "cpu_shares",
        "is ignored: use deploy.resources.reservations.cpus",
    ),
    ("cpu_quota", "is ignored: use deploy.resources.limits.cpus"),
    ("cpu_period", "is ignored"),
    ("cpuset", "is ignored"),
    ("cpu_count", "is ignored"),
    ("cpu_percent", "is ignored"),
    ("cpu_rt_runtime", "is ignored"),
    ("cpu_rt_period", "is ignored"),
    (
        "mem_reservation",
        "is ignored: use deploy.resources.reservations.memory",
    ),
    ("memswap_limit", "is ignored"),
    ("mem_swappiness", "is ignored"),
    ("oom_kill_disable", "is ignored"),
    ("oom_score_adj", "is ignored"),
    ("pids_limit", "is ignored"),
    ("blkio_config", "is ignored"),
    ("isolation", "is ignored"),
    (
        "security_opt",
        "is ignored: use privileged, cap_add and cap_drop",
    ),
    ("storage_opt", "is ignored"),
    ("userns_mode", "is ignored"),
    ("uts", "is ignored"),
    (
        "mac_address",
        "is ignored: pods get addresses from the cluster network",
    ),
    (
        "volumes_from",
        "is not supported: share a named volume instead",
    ),
    ("external_links", "is not supported"),
    (
        "container_name",
        "is ignored: pods get generated names; other services reach this one by its service name",
    ),
    ("domainname", "is ignored"),
    (
        "init",
        "is ignored: no init process is injected; the entrypoint is PID 1",
    ),
    ("attach", "is ignored"),
    ("develop", "is ignored"),
    ("credential_spec", "is ignored"),
    ("use_api_socket", "is not supported"),
    ("models", "is not supported"),
    ("provider", "is not supported"),
    ("label_file", "is not supported; write the labels inline"),
];

const KNOWN: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "tmpfs",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "labels",
    "annotations",
    "hostname",
    "working_dir",
    "user",
    "group_add",
    "stop_grace_period",
    "stop_signal",
    "configs",
    "secrets",
    "privileged",
    "cap_add",
    "cap_drop",
    "read_only",
    "tty",
    "stdin_open",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "network_mode",
    "networks",
    "ipc",
    "pid",
    "pull_policy",
    "sysctls",
    "shm_size",
    "profiles",
    "links",
    "mem_limit",
    "cpus",
    "post_start",
    "pre_stop",
    "extends",
];

fn service(
    name: &str,
    n: &Node,
    vars: &BTreeMap<String, String>,
    project: &Project,
    w: &mut Warnings<'_>,
) -> Result<Service, Error> {
    let mut s = Service {
        name: name.to_string(),
        pos: n.pos.clone(),
        ..Default::default()
    };
    let entries = match &n.v {
        Value::Null => vec![],
        Value::Map(_) => map_entries(n, name)?,
        _ => {
            return Err(Error::invalid(
                &n.pos,
                format!("service {name:?} must be a mapping, not {}", n.kind()),
            ));
        }
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || name.is_empty()
    {
        return Err(Error::invalid(
            &n.pos,
            format!("service name {name:?} may only contain letters, digits, '.', '_' and '-'"),
        ));
    }
    let mut env_from_files: Vec<(String, String)> = Vec::new();
    let mut env_inline: Vec<(String, Option<String>)> = Vec::new();
    let mut has_build = false;
    for (key, v) in &entries {
        let k = key.as_str();
        let what = format!("services.{name}.{k}");
        match k {
            "image" => s.image = string(v, &what)?,
            "command" => s.command = command(v, &what)?,
            "entrypoint" => s.entrypoint = command(v, &what)?,
            "environment" => env_inline = key_values(v, &what)?,
            "env_file" => env_from_files = env_files(v, vars, &what)?,
            "ports" => s.ports = ports(v, &what)?,
            "expose" => {
                for e in strings(v, &what)? {
                    let (p, proto) = e.split_once('/').unwrap_or((&e, "tcp"));
                    for port in port_range(p, v, &what)? {
                        s.expose.push((port, proto.to_lowercase()));
                    }
                }
            }
            "volumes" => mounts(v, &what, project, &mut s, w)?,
            "tmpfs" => {
                for t in strings(v, &what)? {
                    let path = t.split(':').next().unwrap_or(&t).to_string();
                    s.mounts.push(Mount {
                        kind: MountKind::Tmpfs(None),
                        target: path,
                        read_only: false,
                        subpath: None,
                    });
                }
            }
            "depends_on" => s.depends_on = depends_on(v, &what)?,
            "healthcheck" => s.healthcheck = healthcheck(v, &what, w)?,
            "restart" => s.restart = Some(string(v, &what)?),
            "deploy" => deploy(v, &what, &mut s.deploy, w)?,
            "scale" => s.deploy.replicas = s.deploy.replicas.or(Some(uint(v, &what)?)),
            "labels" => s.labels = resolved_pairs(key_values(v, &what)?),
            "annotations" => s.annotations = resolved_pairs(key_values(v, &what)?),
            "hostname" => s.hostname = Some(string(v, &what)?),
            "working_dir" => s.working_dir = Some(string(v, &what)?),
            "user" => {
                let u = string(v, &what)?;
                let (uid, gid) = u
                    .split_once(':')
                    .map(|(a, b)| (a, Some(b)))
                    .unwrap_or((&u, None));
                match (uid.parse::<i64>(), gid.map(str::parse::<i64>)) {
                    (Ok(uid), None) => s.user = Some((uid, None)),
                    (Ok(uid), Some(Ok(gid))) => s.user = Some((uid, Some(gid))),
                    _ => w.add(
                        "user",
                        format!("{u:?} is ignored: the cluster needs a numeric uid[:gid]; the image's user is used"),
                    ),
                }
            }
            "group_add" => {
                for g in strings(v, &what)? {
                    match g.parse::<i64>() {
                        Ok(x) => s.group_add.push(x),
                        Err(_) => w.add(
                            "group_add",
                            format!("group {g:?} is ignored: only numeric groups are supported"),
                        ),
                    }
                }
            }
            "stop_grace_period" => s.stop_grace_period = Some(duration_secs(v, &what)?),
            "stop_signal" => {
                let sig = string(v, &what)?;
                let name = sig.trim_start_matches("SIG").to_string();
                let valid = name.chars().all(|c| c.is_ascii_alphanumeric()) && !name.is_empty();
                if !valid {
                    return Err(Error::invalid(
                        &v.pos,
                        format!("{what}: {sig:?} is not a signal"),
                    ));
                }
                if name != "TERM" && name != "15" {
                    s.stop_signal = Some(name);
                }
            }
            "configs" => s.configs = file_mounts(v, &what, "/", &project.configs, "config")?,
            "secrets" => {
                s.secrets = file_mounts(v, &what, "/run/secrets/", &project.secrets, "secret")?
            }
            "privileged" => s.privileged = boolean(v, &what)?,
            "cap_add" => s.cap_add = strings(v, &what)?,
            "cap_drop" => s.cap_drop = strings(v, &what)?,
            "read_only" => s.read_only = boolean(v, &what)?,
            "tty" => s.tty = boolean(v, &what)?,
            "stdin_open" => s.stdin_open = boolean(v, &what)?,
            "extra_hosts" => {
                let pairs: Vec<(String, Option<String>)> = match &v.v {
                    Value::Seq(items) => items
                        .iter()
                        .map(|i| {
                            let t = string(i, &what)?;
                            let (h, ip) = t
                                .split_once('=')
                                .or_else(|| t.split_once(':'))
                                .ok_or_else(|| {
                                    Error::invalid(&i.pos, format!("{what}: {t:?} must be HOST=IP"))
                                })?;
                            Ok((h.to_string(), Some(ip.to_string())))
                        })
                        .collect::<Result<_, Error>>()?,
                    _ => key_values(v, &what)?,
                };
                for (h, ip) in pairs {
                    let ip = ip.unwrap_or_default();
                    let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
                    if ip == "host-gateway" {
                        w.add("extra_hosts", format!("{h}=host-gateway is ignored: there is no host gateway address on the cluster"));
                        continue;
                    }
                    s.extra_hosts.push((h, ip));
                }
            }
            "dns" => s.dns = strings(v, &what)?,
            "dns_search" => s.dns_search = strings(v, &what)?,
            "dns_opt" => s.dns_opt = strings(v, &what)?,
            "network_mode" => {
                let m = string(v, &what)?;
                match m.as_str() {
                    "host" => s.host_network = true,
                    "bridge" | "default" => {}
                    _ => w.add(
                        "network_mode",
                        format!("{m:?} is ignored: the pod joins the cluster network"),
                    ),
                }
            }
            "networks" => {
                let custom = match &v.v {
                    Value::Seq(items) => items
                        .iter()
                        .any(|i| i.scalar_text().as_deref() != Some("default")),
                    Value::Map(m) => m
                        .iter()
                        .any(|(k, x)| k.name != "default" || !matches!(x.v, Value::Null)),
                    _ => false,
                };
                if custom {
                    w.add("networks", "is ignored: every service shares the cluster network (aliases and static addresses are not applied)");
                }
            }
            "ipc" => match string(v, &what)?.as_str() {
                "host" => s.host_ipc = true,
                "private" | "shareable" => {}
                m => w.add("ipc", format!("{m:?} is ignored")),
            },
            "pid" => match string(v, &what)?.as_str() {
                "host" => s.host_pid = true,
                m => w.add("pid", format!("{m:?} is ignored")),
            },
            "pull_policy" => {
                let p = string(v, &what)?;
                match p.as_str() {
                    "always" | "never" | "missing" | "if_not_present" => s.pull_policy = Some(p),
                    "build" => w.add(
                        "pull_policy",
                        "build is not possible on the cluster; the image is pulled when missing",
                    ),
                    _ => w.add(
                        "pull_policy",
                        format!("{p:?} is ignored; the image is pulled when missing"),
                    ),
                }
            }
            "sysctls" => s.sysctls = resolved_pairs(key_values(v, &what)?).into_iter().collect(),
            "shm_size" => s.shm_size = Some(bytes(v, &what)?),
            "profiles" => s.profiles = strings(v, &what)?,
            "links" => {
                for l in strings(v, &what)? {
                    if let Some((svc, alias)) = l.split_once(':')
                        && svc != alias
                    {
                        w.add(
                            "links",
                            format!("alias {alias:?} is not created; reach the service as {svc:?}"),
                        );
                    }
                }
            }
            "mem_limit" => s.deploy.memory_limit = s.deploy.memory_limit.or(Some(bytes(v, &what)?)),
            "cpus" => s.deploy.cpu_limit = s.deploy.cpu_limit.or(Some(millicores(v, &what)?)),
            "post_start" => s.post_start = hook(v, &what, w, "post_start")?,
            "pre_stop" => s.pre_stop = hook(v, &what, w, "pre_stop")?,
            "extends" => {}
            x if x.starts_with("x-") => {}
            "build" => {
                has_build = true;
                w.add("build", UNSUPPORTED[0].1);
            }
            other => {
                if let Some((_, msg)) = UNSUPPORTED.iter().find(|(k, _)| *k == other) {
                    w.add(other, *msg);
                } else if !KNOWN.contains(&other) {
                    w.add(other, "is not a Compose service key; ignored");
                }
            }
        }
    }
    if s.image.is_empty() {
        let why = if has_build {
            "has build: but no image; the cluster cannot build images: build and push it, then set image:"
        } else {
            "has no image"
        };
        return Err(Error::invalid(&n.pos, format!("service {name:?} {why}")));
    }
    // Environment: env_file, then environment; a bare name takes the variable's value
    // from the environment when set, as Compose does.
    let mut env: Vec<(String, String)> = env_from_files;
    for (k, v) in env_inline {
        let v = match v {
            Some(v) => Some(v),
            None => vars.get(&k).cloned(),
        };
        env.retain(|(x, _)| *x != k);
        if let Some(v) = v {
            env.push((k, v));
        }
    }
    s.environment = env;
    Ok(s)
}

fn resolved_pairs(p: Vec<(String, Option<String>)>) -> BTreeMap<String, String> {
    p.into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

fn env_files(
    n: &Node,
    vars: &BTreeMap<String, String>,
    what: &str,
) -> Result<Vec<(String, String)>, Error> {
    let mut entries: Vec<(String, bool, Pos)> = Vec::new();
    match &n.v {
        Value::Seq(items) => {
            for it in items {
                match &it.v {
                    Value::Map(_) => {
                        let p = it
                            .get("path")
                            .map(|p| string(p, what))
                            .transpose()?
                            .ok_or_else(|| {
                                Error::invalid(&it.pos, format!("{what} entry needs path:"))
                            })?;
                        let req = it
                            .get("required")
                            .map(|r| boolean(r, what))
                            .transpose()?
                            .unwrap_or(true);
                        entries.push((p, req, it.pos.clone()));
                    }
                    _ => entries.push((string(it, what)?, true, it.pos.clone())),
                }
            }
        }
        _ => entries.push((string(n, what)?, true, n.pos.clone())),
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (path, required, pos) in entries {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::invalid(
                    &pos,
                    format!("cannot read env_file {path}: {e}"),
                ));
            }
        };
        let pairs = parse_dotenv(&text, vars).map_err(|(line, message)| Error::EnvFile {
            path: path.clone().into(),
            line,
            message,
        })?;
        for (k, v) in pairs {
            out.retain(|(x, _)| *x != k);
            out.push((k, v));
        }
    }
    Ok(out)
}

fn port_range(s: &str, n: &Node, what: &str) -> Result<Vec<u16>, Error> {
    match s.split_once('-') {
        Some((a, b)) => {
            let a = port_number(a, n, what)?;
            let b = port_number(b, n, what)?;
            if b < a {
                return Err(Error::invalid(
                    &n.pos,
                    format!("{what}: range {s:?} is reversed"),
                ));
            }
            Ok((a..=b).collect())
        }
        None => Ok(vec![port_number(s, n, what)?]),
    }
}

fn ports(n: &Node, what: &str) -> Result<Vec<Port>, Error> {
    let Value::Seq(items) = &n.v else {
        return Err(Error::invalid(
            &n.pos,
            format!("{what} must be a list, not {}", n.kind()),
        ));
    };
    let mut out = Vec::new();
    for it in items {
        match &it.v {
            Value::Map(_) => {
                let target = it.get("target").ok_or_else(|| {
                    Error::invalid(&it.pos, format!("{what}: a long-syntax port needs target:"))
                })?;
                let target = port_number(&string(target, what)?, target, what)?;
                let protocol = it
                    .get("protocol")
                    .map(|p| string(p, what))
                    .transpose()?
                    .unwrap_or_else(|| "tcp".into())
                    .to_lowercase();
                let host_ip = it.get("host_ip").map(|p| string(p, what)).transpose()?;
                let name = it.get("name").map(|p| string(p, what)).transpose()?;
                let published = match it.get("published") {
                    None => vec![None],
                    Some(p) => {
                        let text = string(p, what)?;
                        if text.is_empty() {
                            vec![None]
                        } else {
                            port_range(&text, p, what)?.into_iter().map(Some).collect()
                        }
                    }
                };
                for (i, p) in published.iter().enumerate() {
                    out.push(Port {
                        target,
                        published: *p,
                        protocol: protocol.clone(),
                        host_ip: host_ip.clone(),
                        publish: it.get("published").is_some(),
                        name: if i == 0 { name.clone() } else { None },
                    });
                }
            }
            _ => {
                let text = string(it, what)?;
                out.extend(short_port(&text, it, what)?);
            }
        }
    }
    Ok(out)
}

/// `[HOST_IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTO]`.
fn short_port(text: &str, n: &Node, what: &str) -> Result<Vec<Port>, Error> {
    let (spec, proto) = match text.rsplit_once('/') {
        Some((a, p)) => (a, p.to_lowercase()),
        None => (text, "tcp".to_string()),
    };
    // An IPv6 host IP is bracketed: [::1]:8080:80.
    let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, rest) = r
            .split_once("]:")
            .ok_or_else(|| Error::invalid(&n.pos, format!("{what}: bad port {text:?}")))?;
        (Some(ip.to_string()), rest.to_string())
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec.to_string()),
            3 => (
                Some(parts[0].to_string()),
                format!("{}:{}", parts[1], parts[2]),
            ),
            _ => return Err(Error::invalid(&n.pos, format!("{what}: bad port {text:?}"))),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest.as_str()),
    };
    let targets = port_range(container, n, what)?;
    let hosts: Vec<Option<u16>> = match host {
        None | Some("") => vec![None; targets.len()],
        Some(h) => {
            let hs = port_range(h, n, what)?;
            if hs.len() == targets.len() {
                hs.into_iter().map(Some).collect()
            } else if hs.len() > 1 && targets.len() == 1 {
                // Docker picks one of the host range; we take the first.
                vec![Some(hs[0])]
            } else {
                return Err(Error::invalid(
                    &n.pos,
                    format!(
                        "{what}: {text:?} maps {} host ports to {} container ports",
                        hs.len(),
                        targets.len()
                    ),
                ));
            }
        }
    };
    Ok(targets
        .into_iter()
        .zip(hosts)
        .map(|(t, h)| Port {
            target: t,
            published: h,
            protocol: proto.clone(),
            host_ip: host_ip.clone().filter(|s| !s.is_empty()),
            publish: true,
            name: None,
        })
        .collect())
}

fn mounts(
    n: &Node,
    what: &str,
    project: &Project,
    s: &mut Service,
    w: &mut Warnings<'_>,
) -> Result<(), Error> {
    let Value::Seq(items) = &n.v else {
        return Err(Error::invalid(
            &n.pos,
            format!("{what} must be a list, not {}", n.kind()),
        ));
    };
    for it in items {
        let m = match &it.v {
            Value::Map(_) => {
                let ty = it
                    .get("type")
                    .map(|t| string(t, what))
                    .transpose()?
                    .unwrap_or_else(|| "volume".into());
                let target = it
                    .get("target")
                    .map(|t| string(t, what))
                    .transpose()?
                    .ok_or_else(|| {
                        Error::invalid(
                            &it.pos,
                            format!("{what}: a long-syntax volume needs target:"),
                        )
                    })?;
                let source = it.get("source").map(|t| string(t, what)).transpose()?;
                let read_only = it
                    .get("read_only")
                    .map(|r| boolean(r, what))
                    .transpose()?
                    .unwrap_or(false);
                let subpath = it
                    .get("volume")
                    .and_then(|v| v.get("subpath"))
                    .map(|p| string(p, what))
                    .transpose()?;
                let kind = match ty.as_str() {
                    "volume" => match source {
                        Some(src) if !src.is_empty() => MountKind::Volume(src),
                        _ => MountKind::Anonymous,
                    },
                    "bind" => {
                        let create = it
                            .get("bind")
                            .and_then(|b| b.get("create_host_path"))
                            .map(|b| boolean(b, what))
                            .transpose()?
                            .unwrap_or(true);
                        MountKind::Bind {
                            source: source.ok_or_else(|| {
                                Error::invalid(
                                    &it.pos,
                                    format!("{what}: a bind mount needs source:"),
                                )
                            })?,
                            create,
                        }
                    }
                    "tmpfs" => {
                        let size = it
                            .get("tmpfs")
                            .and_then(|t| t.get("size"))
                            .map(|b| bytes(b, what))
                            .transpose()?;
                        MountKind::Tmpfs(size)
                    }
                    other => {
                        w.add("volumes", format!("type {other:?} (target {target}) is not supported; the mount is skipped"));
                        continue;
                    }
                };
                Mount {
                    kind,
                    target,
                    read_only,
                    subpath,
                }
            }
            _ => {
                let text = string(it, what)?;
                let parts: Vec<&str> = text.split(':').collect();
                let (src, target, mode) = match parts.as_slice() {
                    [t] => (None, t.to_string(), ""),
                    [s, t] => (Some(s.to_string()), t.to_string(), ""),
                    [s, t, m] => (Some(s.to_string()), t.to_string(), *m),
                    _ => {
                        return Err(Error::invalid(
                            &it.pos,
                            format!("{what}: bad volume {text:?} (expected SOURCE:TARGET[:MODE])"),
                        ));
                    }
                };
                let read_only = mode.split(',').any(|m| m == "ro");
                let kind = match src {
                    None => MountKind::Anonymous,
                    Some(src) if src.starts_with('/') => MountKind::Bind {
                        source: src,
                        create: true,
                    },
                    Some(src) => MountKind::Volume(src),
                };
                Mount {
                    kind,
                    target,
                    read_only,
                    subpath: None,
                }
            }
        };
        if !m.target.starts_with('/') {
            return Err(Error::invalid(
                &it.pos,
                format!("{what}: the target {:?} must be an absolute path", m.target),
            ));
        }
        if let MountKind::Volume(v) = &m.kind
            && !project.volumes.contains_key(v)
        {
            return Err(Error::invalid(
                &it.pos,
                format!("{what}: volume {v:?} is not declared under the top-level volumes:"),
            ));
        }
        s.mounts.push(m);
    }
    Ok(())
}

fn file_mounts(
    n: &Node,
    what: &str,
    default_dir: &str,
    defs: &BTreeMap<String, FileDef>,
    kind: &str,
) -> Result<Vec<FileMount>, Error> {
    let Value::Seq(items) = &n.v else {
        return Err(Error::invalid(
            &n.pos,
            format!("{what} must be a list, not {}", n.kind()),
        ));
    };
    let mut out = Vec::new();
    for it in items {
        let (source, target, mode) = match &it.v {
            Value::Map(_) => {
                let source = it
                    .get("source")
                    .map(|t| string(t, what))
                    .transpose()?
                    .ok_or_else(|| Error::invalid(&it.pos, format!("{what}: needs source:")))?;
                let target = it.get("target").map(|t| string(t, what)).transpose()?;
                let mode = match it.get("mode") {
                    None => None,
                    Some(m) => Some(match &m.v {
                        Value::Int(i) => u32::try_from(*i)
                            .map_err(|_| Error::invalid(&m.pos, format!("{what}: bad mode")))?,
                        _ => {
                            let t = string(m, what)?;
                            u32::from_str_radix(t.trim_start_matches("0o"), 8).map_err(|_| {
                                Error::invalid(&m.pos, format!("{what}: mode {t:?} is not octal"))
                            })?
                        }
                    }),
                };
                (source, target, mode)
            }
            _ => (string(it, what)?, None, None),
        };
        if !defs.contains_key(&source) {
            return Err(Error::invalid(
                &it.pos,
                format!("{what}: {kind} {source:?} is not declared under the top-level {kind}s:"),
            ));
        }
        let target = match target {
            Some(t) if t.starts_with('/') => t,
            Some(t) => format!("{default_dir}{t}"),
            None => format!("{default_dir}{source}"),
        };
        out.push(FileMount {
            source,
            target,
            mode,
        });
    }
    Ok(out)
}

fn depends_on(n: &Node, what: &str) -> Result<Vec<Dependency>, Error> {
    match &n.v {
        Value::Seq(_) => Ok(strings(n, what)?
            .into_iter()
            .map(|s| Dependency {
                service: s,
                condition: Condition::Started,
                required: true,
            })
            .collect()),
        Value::Map(_) => {
            let mut out = Vec::new();
            for (svc, v) in map_entries(n, what)? {
                let cond = match v.get("condition") {
                    None => Condition::Started,
                    Some(c) => match string(c, what)?.as_str() {
                        "service_started" => Condition::Started,
                        "service_healthy" => Condition::Healthy,
                        "service_completed_successfully" => Condition::Completed,
                        other => {
                            return Err(Error::invalid(
                                &c.pos,
                                format!(
                                    "{what}.{svc}.condition: {other:?} is not one of service_started, service_healthy, service_completed_successfully"
                                ),
                            ));
                        }
                    },
                };
                let required = v
                    .get("required")
                    .map(|r| boolean(r, what))
                    .transpose()?
                    .unwrap_or(true);
                out.push(Dependency {
                    service: svc,
                    condition: cond,
                    required,
                });
            }
            Ok(out)
        }
        _ => Err(Error::invalid(
            &n.pos,
            format!("{what} must be a list or a mapping, not {}", n.kind()),
        )),
    }
}

fn healthcheck(n: &Node, what: &str, w: &mut Warnings<'_>) -> Result<Option<Healthcheck>, Error> {
    let mut h = Healthcheck {
        test: vec![],
        interval: 30,
        timeout: 30,
        retries: 3,
        start_period: 0,
    };
    let mut disabled = false;
    for (k, v) in map_entries(n, what)? {
        let what = format!("{what}.{k}");
        match k.as_str() {
            "test" => {
                let t = match &v.v {
                    Value::Seq(_) => strings(&v, &what)?,
                    _ => vec!["CMD-SHELL".to_string(), string(&v, &what)?],
                };
                match t.first().map(String::as_str) {
                    Some("NONE") => disabled = true,
                    Some("CMD") => h.test = t[1..].to_vec(),
                    Some("CMD-SHELL") => {
                        h.test = vec!["/bin/sh".into(), "-c".into(), t[1..].join(" ")];
                    }
                    _ => {
                        return Err(Error::invalid(
                            &v.pos,
                            format!("{what} must start with CMD, CMD-SHELL or NONE"),
                        ));
                    }
                }
            }
            "interval" => h.interval = duration_secs(&v, &what)?.max(1),
            "timeout" => h.timeout = duration_secs(&v, &what)?.max(1),
            "retries" => h.retries = uint(&v, &what)?.max(1),
            "start_period" => h.start_period = duration_secs(&v, &what)?,
            "disable" => disabled = boolean(&v, &what)?,
            "start_interval" => w.add(
                "healthcheck.start_interval",
                "is ignored: checks run every interval from the start",
            ),
            other => w.add(
                &format!("healthcheck.{other}"),
                "is not a healthcheck key; ignored",
            ),
        }
    }
    if disabled {
        return Ok(None);
    }
    if h.test.is_empty() {
        w.add(
            "healthcheck",
            "has no test; the image's own healthcheck is not run on the cluster",
        );
        return Ok(None);
    }
    Ok(Some(h))
}

fn hook(
    n: &Node,
    what: &str,
    w: &mut Warnings<'_>,
    key: &str,
) -> Result<Option<Vec<String>>, Error> {
    let Value::Seq(items) = &n.v else {
        return Err(Error::invalid(
            &n.pos,
            format!("{what} must be a list, not {}", n.kind()),
        ));
    };
    if items.len() > 1 {
        w.add(key, "has several hooks; only the first runs");
    }
    let Some(first) = items.first() else {
        return Ok(None);
    };
    for (k, _) in map_entries(first, what)? {
        if k != "command" {
            w.add(&format!("{key}.{k}"), "is ignored");
        }
    }
    match first.get("command") {
        Some(c) => command(c, what),
        None => Ok(None),
    }
}

fn deploy(n: &Node, what: &str, d: &mut Deploy, w: &mut Warnings<'_>) -> Result<(), Error> {
    for (k, v) in map_entries(n, what)? {
        let what = format!("{what}.{k}");
        match k.as_str() {
            "mode" => match string(&v, &what)?.as_str() {
                "replicated" => {}
                "global" => d.global = true,
                "replicated-job" => d.job = true,
                "global-job" => {
                    d.job = true;
                    w.add(
                        "deploy.mode",
                        "global-job runs as one Job, not one per node",
                    );
                }
                other => {
                    return Err(Error::invalid(
                        &v.pos,
                        format!(
                            "{what}: {other:?} is not replicated, global, replicated-job or global-job"
                        ),
                    ));
                }
            },
            "replicas" => d.replicas = Some(uint(&v, &what)?),
            "labels" => d.labels = resolved_pairs(key_values(&v, &what)?),
            "endpoint_mode" => d.dnsrr = string(&v, &what)? == "dnsrr",
            "resources" => {
                for (kind, r) in map_entries(&v, &what)? {
                    let limits = match kind.as_str() {
                        "limits" => true,
                        "reservations" => false,
                        other => {
                            w.add(&format!("deploy.resources.{other}"), "is ignored");
                            continue;
                        }
                    };
                    for (rk, rv) in map_entries(&r, &what)? {
                        let what = format!("{what}.{kind}.{rk}");
                        match rk.as_str() {
                            "cpus" => {
                                let m = millicores(&rv, &what)?;
                                if limits {
                                    d.cpu_limit = Some(m)
                                } else {
                                    d.cpu_request = Some(m)
                                }
                            }
                            "memory" => {
                                let b = bytes(&rv, &what)?;
                                if limits {
                                    d.memory_limit = Some(b)
                                } else {
                                    d.memory_request = Some(b)
                                }
                            }
                            other => w.add(
                                &format!("deploy.resources.{kind}.{other}"),
                                "is not supported on the cluster; ignored",
                            ),
                        }
                    }
                }
            }
            "placement" => {
                for (pk, pv) in map_entries(&v, &what)? {
                    match pk.as_str() {
                        "constraints" => {
                            for c in strings(&pv, &what)? {
                                let (lhs, op, rhs) = if let Some((a, b)) = c.split_once("==") {
                                    (a.trim(), "==", b.trim())
                                } else if let Some((a, b)) = c.split_once("!=") {
                                    (a.trim(), "!=", b.trim())
                                } else {
                                    return Err(Error::invalid(
                                        &pv.pos,
                                        format!(
                                            "{what}: constraint {c:?} must be `ATTR == VALUE` or `ATTR != VALUE`"
                                        ),
                                    ));
                                };
                                let label = if let Some(l) = lhs.strip_prefix("node.labels.") {
                                    l.to_string()
                                } else if lhs == "node.hostname" {
                                    "kubernetes.io/hostname".into()
                                } else if lhs == "node.platform.os" {
                                    "kubernetes.io/os".into()
                                } else if lhs == "node.platform.arch" {
                                    "kubernetes.io/arch".into()
                                } else {
                                    w.add("deploy.placement.constraints", format!("{c:?} is ignored: only node.labels.*, node.hostname and node.platform.* map to node labels"));
                                    continue;
                                };
                                d.constraints.push((label, op.to_string(), rhs.to_string()));
                            }
                        }
                        other => w.add(
                            &format!("deploy.placement.{other}"),
                            "is not supported; ignored",
                        ),
                    }
                }
            }
            "update_config" => {
                for (uk, uv) in map_entries(&v, &what)? {
                    match uk.as_str() {
                        "parallelism" => d.parallelism = Some(uint(&uv, &what)?),
                        "order" => d.start_first = string(&uv, &what)? == "start-first",
                        "delay" => d.update_delay = Some(duration_secs(&uv, &what)?),
                        other => w.add(
                            &format!("deploy.update_config.{other}"),
                            "is not supported; ignored",
                        ),
                    }
                }
            }
            "restart_policy" => w.add(
                "deploy.restart_policy",
                "is ignored: the cluster restarts service containers always (jobs on failure)",
            ),
            "rollback_config" => w.add(
                "deploy.rollback_config",
                "is ignored: roll back with `kubectl rollout undo`",
            ),
            other => w.add(&format!("deploy.{other}"), "is not supported; ignored"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(s: &str) -> Node {
        crate::yaml::parse("t.yml", s).unwrap()
    }

    #[test]
    fn durations_sizes_and_cpus() {
        assert_eq!(duration_secs(&node("1m30s"), "x").unwrap(), 90);
        assert_eq!(duration_secs(&node("500ms"), "x").unwrap(), 1);
        assert_eq!(duration_secs(&node("1.5s"), "x").unwrap(), 2);
        assert_eq!(duration_secs(&node("2h"), "x").unwrap(), 7200);
        assert_eq!(duration_secs(&node("10"), "x").unwrap(), 10);
        assert!(duration_secs(&node("ten"), "x").is_err());
        assert_eq!(bytes(&node("512m"), "x").unwrap(), 512 << 20);
        assert_eq!(bytes(&node("1gb"), "x").unwrap(), 1 << 30);
        assert_eq!(bytes(&node("2048"), "x").unwrap(), 2048);
        assert!(bytes(&node("lots"), "x").is_err());
        assert_eq!(millicores(&node("0.5"), "x").unwrap(), 500);
        assert_eq!(millicores(&node("'1.25'"), "x").unwrap(), 1250);
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split(r#"sh -c 'echo "$A" b'  x\ y "q\"t""#).unwrap(),
            vec!["sh", "-c", "echo \"$A\" b", "x y", "q\"t"]
        );
        assert_eq!(shell_split("a ''").unwrap(), vec!["a", ""]);
        assert!(shell_split("a 'open").is_none());
    }

    #[test]
    fn short_port_forms() {
        let n = node("x");
        let p = short_port("8080:80", &n, "p").unwrap();
        assert_eq!((p[0].target, p[0].published), (80, Some(8080)));
        let p = short_port("80", &n, "p").unwrap();
        assert_eq!((p[0].target, p[0].published), (80, None));
        let p = short_port("127.0.0.1:8080:80/udp", &n, "p").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p[0].protocol, "udp");
        let p = short_port("127.0.0.1::80", &n, "p").unwrap();
        assert_eq!(p[0].published, None);
        let p = short_port("9000-9002:8000-8002", &n, "p").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].target, p[2].published), (8002, Some(9002)));
        let p = short_port("[::1]:8080:80", &n, "p").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("::1"));
        assert!(short_port("9000-9001:80-83", &n, "p").is_err());
        assert!(short_port("0:80", &n, "p").is_err());
        assert!(short_port("a:b:c:d", &n, "p").is_err());
    }
}
