//! Loading a project: files found or given, `.env`, interpolation, relative paths made
//! absolute, `extends`, several files merged as Compose merges them, profiles.

use crate::error::{Error, Warning};
use crate::interp::{Env, interpolate_tree, parse_dotenv};
use crate::model::{self, Project};
use crate::yaml::{self, Key, Node, Pos, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file names Compose looks for when no `-f` is given, in its order.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// One Compose file's text and where relative paths in it start.
#[derive(Clone, Debug)]
pub struct Source {
    /// The name errors show (the path as given, or `-` for stdin).
    pub name: String,
    /// The YAML text.
    pub text: String,
    /// The directory of the file.
    pub dir: PathBuf,
}

impl Source {
    /// Reads a file.
    pub fn read(path: &Path) -> Result<Source, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let abs = absolute(path);
        Ok(Source {
            name: path.display().to_string(),
            text,
            dir: abs
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        })
    }
}

/// What `docker compose` takes from its flags and environment.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The `-f` files in order (empty: look for the default names in `working_dir`).
    pub files: Vec<PathBuf>,
    /// Where to look for default files when `files` is empty (the current directory).
    pub working_dir: PathBuf,
    /// `--project-directory`: where relative paths and `.env` start (default: the first
    /// file's directory).
    pub project_dir: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// The process environment (it wins over `.env`).
    pub env: BTreeMap<String, String>,
    /// `--env-file` (default: `PROJECT_DIR/.env` when it exists).
    pub env_files: Vec<PathBuf>,
    /// `--profile` (also read from `COMPOSE_PROFILES`).
    pub profiles: Vec<String>,
}

/// Finds and reads the files of `opts` and loads the project.
pub fn load(opts: &LoadOptions) -> Result<Project, Error> {
    let files: Vec<PathBuf> = if opts.files.is_empty() {
        let dir = &opts.working_dir;
        let found = DEFAULT_FILES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::NoFile { dir: dir.clone() })?;
        let mut v = vec![found.clone()];
        // compose.override.yaml / docker-compose.override.yml next to the default file.
        if let (Some(stem), Some(ext)) = (
            found.file_stem().and_then(|s| s.to_str()),
            found.extension().and_then(|s| s.to_str()),
        ) {
            let over = dir.join(format!("{stem}.override.{ext}"));
            if over.is_file() {
                v.push(over);
            }
        }
        v
    } else {
        opts.files.clone()
    };
    let sources = files
        .iter()
        .map(|f| Source::read(f))
        .collect::<Result<Vec<_>, _>>()?;
    load_sources(&sources, opts)
}

/// Loads a project from file texts already read (`opts.files` is ignored).
pub fn load_sources(sources: &[Source], opts: &LoadOptions) -> Result<Project, Error> {
    let first = sources.first().ok_or_else(|| Error::NoFile {
        dir: opts.working_dir.clone(),
    })?;
    let project_dir = opts
        .project_dir
        .as_ref()
        .map(|d| absolute(d))
        .unwrap_or_else(|| first.dir.clone());
    let mut warnings = Vec::new();

    // The variables: .env (or --env-file) under the process environment.
    let mut vars = BTreeMap::new();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let p = project_dir.join(".env");
        if p.is_file() { vec![p] } else { vec![] }
    } else {
        opts.env_files.clone()
    };
    for path in env_files {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let pairs = parse_dotenv(&text, &opts.env).map_err(|(line, message)| Error::EnvFile {
            path: path.clone(),
            line,
            message,
        })?;
        vars.extend(pairs);
    }
    for (k, v) in &opts.env {
        vars.insert(k.clone(), v.clone());
    }

    let mut env = Env {
        vars: &vars,
        unset: vec![],
    };
    let mut merged: Option<Node> = None;
    for src in sources {
        let mut doc = parse_file(src, &mut env, &project_dir)?;
        resolve_extends(&mut doc, src, &mut env, &mut vec![])?;
        merged = Some(match merged {
            None => doc,
            Some(base) => merge(&[], base, doc),
        });
    }
    let merged = merged.unwrap_or_else(|| Node::synthetic(Value::Map(vec![]), &Pos::default()));
    for name in &env.unset {
        warnings.push(Warning {
            service: None,
            key: format!("${{{name}}}"),
            message: "is not set; using a blank string".into(),
        });
    }

    let name_in_file = merged.get("name").and_then(Node::scalar_text);
    let raw_name = opts
        .project_name
        .clone()
        .or_else(|| vars.get("COMPOSE_PROJECT_NAME").cloned())
        .filter(|s| !s.is_empty())
        .or(name_in_file)
        .unwrap_or_else(|| {
            project_dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "default".into())
        });
    let name = normalize_project_name(&raw_name).ok_or_else(|| {
        Error::invalid(
            &merged.pos,
            format!("project name {raw_name:?} has no letter or digit; pass a name with -p"),
        )
    })?;

    let mut profiles = opts.profiles.clone();
    if let Some(p) = vars.get("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    model::build(name, &merged, &profiles, &vars, warnings)
}

/// Compose's project-name rule: lower case, only `a-z0-9_-`, starting with a letter or
/// digit. None when nothing usable is left.
pub fn normalize_project_name(s: &str) -> Option<String> {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect();
    while out.starts_with(['_', '-']) {
        out.remove(0);
    }
    (!out.is_empty()).then_some(out)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Parses, interpolates and anchors relative paths of one file.
fn parse_file(src: &Source, env: &mut Env<'_>, base: &Path) -> Result<Node, Error> {
    let mut doc = yaml::parse(&src.name, &src.text).map_err(|e| Error::Yaml {
        pos: e.pos,
        message: e.message,
    })?;
    if doc.v == Value::Null {
        doc.v = Value::Map(vec![]);
    }
    if !matches!(doc.v, Value::Map(_)) {
        return Err(Error::invalid(
            &doc.pos,
            format!(
                "a Compose file must be a mapping (services:, volumes:, ...), not {}",
                doc.kind()
            ),
        ));
    }
    interpolate_tree(&mut doc, env).map_err(|(pos, e)| Error::invalid(&pos, e.to_string()))?;
    absolutize(&mut doc, base);
    Ok(doc)
}

fn join_path(base: &Path, p: &str) -> String {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Path::new(&home).join(rest).display().to_string();
        }
        return p.to_string();
    }
    if Path::new(p).is_absolute() {
        return p.to_string();
    }
    let joined = base.join(p);
    // Drop `.` components so paths print as users expect.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.display().to_string()
}

fn set_str(n: &mut Node, f: impl FnOnce(&str) -> String) {
    if let Value::Str(s) = &mut n.v {
        *s = f(s);
    }
}

/// Makes the file paths of a document absolute against `base`: env_file, bind mounts,
/// config/secret files and `extends.file`.
fn absolutize(doc: &mut Node, base: &Path) {
    if let Some(Value::Map(services)) = doc.get_mut("services").map(|n| &mut n.v) {
        for (_, svc) in services.iter_mut() {
            if let Some(ef) = svc.get_mut("env_file") {
                match &mut ef.v {
                    Value::Str(_) => set_str(ef, |s| join_path(base, s)),
                    Value::Seq(items) => {
                        for it in items {
                            if let Value::Map(_) = it.v {
                                if let Some(p) = it.get_mut("path") {
                                    set_str(p, |s| join_path(base, s));
                                }
                            } else {
                                set_str(it, |s| join_path(base, s));
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Some(Value::Seq(vols)) = svc.get_mut("volumes").map(|n| &mut n.v) {
                for v in vols {
                    match &mut v.v {
                        Value::Str(s) => {
                            if let Some((src, rest)) = s.split_once(':')
                                && (src.starts_with('.') || src.starts_with('~'))
                            {
                                *s = format!("{}:{rest}", join_path(base, src));
                            }
                        }
                        Value::Map(_) => {
                            let is_bind = v
                                .get("type")
                                .is_some_and(|t| t.v == Value::Str("bind".into()));
                            if is_bind && let Some(src) = v.get_mut("source") {
                                set_str(src, |s| join_path(base, s));
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Some(ext) = svc.get_mut("extends")
                && let Some(f) = ext.get_mut("file")
            {
                set_str(f, |s| join_path(base, s));
            }
        }
    }
    for top in ["configs", "secrets"] {
        if let Some(Value::Map(items)) = doc.get_mut(top).map(|n| &mut n.v) {
            for (_, it) in items.iter_mut() {
                if let Some(f) = it.get_mut("file") {
                    set_str(f, |s| join_path(base, s));
                }
            }
        }
    }
}

/// Resolves `extends` of every service of `doc` (which came from `src`).
fn resolve_extends(
    doc: &mut Node,
    src: &Source,
    env: &mut Env<'_>,
    stack: &mut Vec<String>,
) -> Result<(), Error> {
    let names: Vec<String> = match doc.get("services").map(|n| &n.v) {
        Some(Value::Map(m)) => m.iter().map(|(k, _)| k.name.clone()).collect(),
        _ => return Ok(()),
    };
    for name in names {
        let snapshot = doc.clone();
        let Some(svc) = doc.get_mut("services").and_then(|s| s.get_mut(&name)) else {
            continue;
        };
        let resolved = extend_service(svc.clone(), &name, &src.name, &snapshot, env, stack)?;
        *svc = resolved;
    }
    Ok(())
}

fn extend_service(
    mut svc: Node,
    name: &str,
    file: &str,
    doc: &Node,
    env: &mut Env<'_>,
    stack: &mut Vec<String>,
) -> Result<Node, Error> {
    let Some(ext) = svc.remove("extends") else {
        return Ok(svc);
    };
    let (base_name, base_file) = match &ext.v {
        Value::Str(s) => (s.clone(), None),
        Value::Map(_) => {
            let s = ext
                .get("service")
                .and_then(Node::scalar_text)
                .ok_or_else(|| Error::invalid(&ext.pos, "extends needs `service: NAME`"))?;
            (s, ext.get("file").and_then(Node::scalar_text))
        }
        _ => {
            return Err(Error::invalid(
                &ext.pos,
                format!(
                    "extends must be a service name or a mapping, not {}",
                    ext.kind()
                ),
            ));
        }
    };
    let key = format!("{}#{base_name}", base_file.as_deref().unwrap_or(file));
    if stack.contains(&key) {
        return Err(Error::invalid(
            &ext.pos,
            format!(
                "service {name:?} extends itself through a cycle: {} -> {key}",
                stack.join(" -> ")
            ),
        ));
    }
    stack.push(key);
    let base = match &base_file {
        None => {
            let b = doc
                .get("services")
                .and_then(|s| s.get(&base_name))
                .cloned()
                .ok_or_else(|| {
                    Error::invalid(
                        &ext.pos,
                        format!("service {name:?} extends {base_name:?}, which is not defined"),
                    )
                })?;
            extend_service(b, &base_name, file, doc, env, stack)?
        }
        Some(path) => {
            let other = Source::read(Path::new(path)).map_err(|e| match e {
                Error::Io { path, source } => Error::invalid(
                    &ext.pos,
                    format!("cannot read the extended file {}: {source}", path.display()),
                ),
                e => e,
            })?;
            let other_doc = parse_file(&other, env, &other.dir.clone())?;
            let b = other_doc
                .get("services")
                .and_then(|s| s.get(&base_name))
                .cloned()
                .ok_or_else(|| {
                    Error::invalid(
                        &ext.pos,
                        format!("service {base_name:?} is not defined in {path}"),
                    )
                })?;
            extend_service(b, &base_name, &other.name, &other_doc, env, stack)?
        }
    };
    stack.pop();
    svc = merge(&["services", "x"], base, svc);
    Ok(svc)
}

/// Lists that are written as `K=V` lists or maps; normalized to maps before merging.
const MAPPING_LISTS: &[&str] = &[
    "environment",
    "labels",
    "annotations",
    "sysctls",
    "extra_hosts",
    "args",
];

/// Sequences that the overriding file replaces rather than extends.
const REPLACED: &[&str] = &[
    "command",
    "entrypoint",
    "test",
    "dns",
    "dns_search",
    "tmpfs",
];

fn list_to_map(n: Node, sep: &[char]) -> Node {
    match n.v {
        Value::Seq(items) => {
            let mut m: Vec<(Key, Node)> = Vec::new();
            for it in items {
                let text = it.scalar_text().unwrap_or_default();
                let (k, v) = match text.split_once(sep) {
                    Some((k, v)) => (k.to_string(), Value::Str(v.to_string())),
                    None => (text.clone(), Value::Null),
                };
                let key = Key {
                    name: k,
                    pos: it.pos.clone(),
                };
                let val = Node { v, pos: it.pos };
                m.retain(|(x, _)| x.name != key.name);
                m.push((key, val));
            }
            Node {
                v: Value::Map(m),
                pos: n.pos,
            }
        }
        v => Node { v, pos: n.pos },
    }
}

/// `depends_on: [a, b]` as the long form.
fn depends_to_map(n: Node) -> Node {
    match n.v {
        Value::Seq(items) => {
            let m = items
                .into_iter()
                .map(|it| {
                    let name = it.scalar_text().unwrap_or_default();
                    let cond = Node::synthetic(
                        Value::Map(vec![(
                            Key {
                                name: "condition".into(),
                                pos: it.pos.clone(),
                            },
                            Node::synthetic(Value::Str("service_started".into()), &it.pos),
                        )]),
                        &it.pos,
                    );
                    (
                        Key {
                            name,
                            pos: it.pos.clone(),
                        },
                        cond,
                    )
                })
                .collect();
            Node {
                v: Value::Map(m),
                pos: n.pos,
            }
        }
        v => Node { v, pos: n.pos },
    }
}

/// The identity of a sequence item for keyed merges (volumes by target, secrets and
/// configs by source), or None for a plain append.
fn item_key(field: &str, it: &Node) -> Option<String> {
    match field {
        "volumes" => match &it.v {
            Value::Str(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                Some(if parts.len() >= 2 { parts[1] } else { parts[0] }.to_string())
            }
            Value::Map(_) => it.get("target").and_then(Node::scalar_text),
            _ => None,
        },
        "secrets" | "configs" => match &it.v {
            Value::Str(s) => Some(s.clone()),
            Value::Map(_) => it.get("source").and_then(Node::scalar_text),
            _ => None,
        },
        _ => None,
    }
}

/// Merges `over` into `base` following the Compose Specification's merge rules; `path` is
/// where the nodes live (`services`, NAME, field, ...).
pub(crate) fn merge(path: &[&str], base: Node, over: Node) -> Node {
    let field = path.last().copied().unwrap_or("");
    let in_service = path.len() >= 2 && path[0] == "services";
    let (base, over) = if in_service && path.len() == 3 && MAPPING_LISTS.contains(&field) {
        let sep: &[char] = if field == "extra_hosts" {
            &['=', ':']
        } else {
            &['=']
        };
        (list_to_map(base, sep), list_to_map(over, sep))
    } else if in_service && path.len() == 3 && field == "depends_on" {
        (depends_to_map(base), depends_to_map(over))
    } else if in_service && path.len() == 4 && path[2] == "build" && field == "args" {
        (list_to_map(base, &['=']), list_to_map(over, &['=']))
    } else {
        (base, over)
    };
    match (base.v, over.v) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, v) in o {
                match b.iter().position(|(x, _)| x.name == k.name) {
                    Some(i) => {
                        let old = std::mem::replace(
                            &mut b[i].1,
                            Node::synthetic(Value::Null, &Pos::default()),
                        );
                        let mut p: Vec<&str> = path.to_vec();
                        p.push(&k.name);
                        b[i].1 = merge(&p, old, v);
                    }
                    None => b.push((k, v)),
                }
            }
            Node {
                v: Value::Map(b),
                pos: base.pos,
            }
        }
        (Value::Seq(mut b), Value::Seq(o)) if !REPLACED.contains(&field) => {
            for it in o {
                if let Some(key) = item_key(field, &it)
                    && let Some(i) = b
                        .iter()
                        .position(|x| item_key(field, x).as_deref() == Some(key.as_str()))
                {
                    b[i] = it;
                    continue;
                }
                if b.iter().any(|x| x.to_json() == it.to_json()) {
                    continue;
                }
                b.push(it);
            }
            Node {
                v: Value::Seq(b),
                pos: base.pos,
            }
        }
        (_, v) => Node { v, pos: over.pos },
    }
}
