//! Docker Compose files as Kubernetes objects: pure translation, no API calls.
//!
//! [`load`] reads the files (`-f`, or the default names), the `.env` file, interpolates
//! variables, resolves `extends`, merges several files the way Compose does and applies
//! profiles, giving a typed [`Project`]; any content error names the file, line and
//! column. [`translate`] turns the project into Kubernetes objects (`serde_json::Value`s)
//! plus [`Warning`]s for what a cluster cannot honour.
//!
//! What becomes what:
//! - a service → a Deployment (a DaemonSet for `deploy.mode: global`, a Job when it runs
//!   to completion) and a Service named after it (ClusterIP with its ports and `expose`,
//!   headless when it has none, so the name still resolves to its ready pods);
//! - a published port in 30000-32767 → that NodePort; a published port outside the range
//!   → `hostPort` on the container; a port published without a host port → a NodePort
//!   the cluster picks;
//! - named volumes → hostPath `VOLUME_DIR/PROJECT_VOLUME` (DirectoryOrCreate), anonymous
//!   volumes → emptyDir, bind mounts → hostPath, tmpfs → emptyDir in memory;
//! - configs/secrets → ConfigMaps/Secrets named `PROJECT-NAME`, mounted file by file;
//! - healthcheck → readiness and liveness exec probes (and a startup probe, so liveness
//!   only starts once healthy); depends_on → init containers that
//!   wait for the dependency's name (started) or a TCP connection through its Service,
//!   which only ready pods receive (healthy); `service_completed_successfully` → the
//!   dependency is a Job and the workload carries [`AFTER_ANNOTATION`].
#![forbid(unsafe_code)]

mod error;
mod interp;
mod load;
mod model;
mod translate;
pub mod yaml;

pub use error::{Error, Warning};
pub use interp::parse_dotenv;
pub use load::{DEFAULT_FILES, LoadOptions, Source, load, load_sources, normalize_project_name};
pub use model::{
    Condition, Dependency, Deploy, FileDef, FileMount, Healthcheck, Mount, MountKind, Port,
    Project, Service, VolumeDef, shell_split,
};
pub use translate::{
    AFTER_ANNOTATION, CONFIG_HASH_ANNOTATION, CONFIG_LABEL, PROJECT_LABEL, SERVICE_LABEL,
    TranslateOptions, Translation, WorkloadKind, k8s_name, object_keys, ordered, project_selector,
    translate, workload_kind,
};
pub use yaml::Pos;

#[cfg(test)]
mod tests;

/// The objects as a YAML stream (`---` between documents), what `kubectl apply -f`
/// takes.
pub fn to_yaml_stream(
    objects: &[serde_json::Value],
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
