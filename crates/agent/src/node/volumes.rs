//! A pod's volumes on the node, under `pods/<uid>/volumes/<name>`: emptyDir (a
//! directory, or tmpfs for medium Memory), hostPath, and the files of configMap,
//! secret, downwardAPI and projected volumes (rewritten when their source changes).

use crate::node::env::{data_of, field_ref, resource_field};
use client::{Client, Resource};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a volume cannot be set up (FailedMount).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A source object is missing and the volume is not optional.
    #[error("MountVolume.SetUp failed for volume {volume:?}: {message}")]
    Setup {
        /// The volume.
        volume: String,
        /// Why.
        message: String,
    },
    /// The node's filesystem refused.
    #[error("volume {volume:?}: {source}")]
    Io {
        /// The volume.
        volume: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The API could not be read.
    #[error("volume {volume:?}: reading {what}: {source}")]
    Api {
        /// The volume.
        volume: String,
        /// What was being read.
        what: String,
        /// The client error.
        source: client::Error,
    },
}

/// Prepared volumes: name → (host path, read-only).
pub type Prepared = BTreeMap<String, (PathBuf, bool)>;

fn io(volume: &str) -> impl Fn(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        volume: volume.to_string(),
        source,
    }
}

/// Writes `files` (relative path → content, mode) into `dir`, each atomically, and
/// removes files that are no longer wanted.
fn sync_files(
    volume: &str,
    dir: &Path,
    files: &BTreeMap<String, (Vec<u8>, u32)>,
) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(volume))?;
    for (rel, (content, mode)) in files {
        let rel_path = Path::new(rel);
        if rel_path.is_absolute()
            || rel_path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(VolumeError::Setup {
                volume: volume.to_string(),
                message: format!("invalid path {rel:?}"),
            });
        }
        let path = dir.join(rel_path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(volume))?;
        }
        if std::fs::read(&path).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        let tmp = path.with_extension("drover-tmp");
        std::fs::write(&tmp, content).map_err(io(volume))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))
            .map_err(io(volume))?;
        std::fs::rename(&tmp, &path).map_err(io(volume))?;
    }
    // Top-level entries no longer wanted go.
    let wanted: std::collections::BTreeSet<&str> =
        files.keys().filter_map(|k| k.split('/').next()).collect();
    for entry in std::fs::read_dir(dir).map_err(io(volume))?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !wanted.contains(name.as_str()) {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    Ok(())
}

/// Selected keys (items with paths and modes) or every key.
fn project(
    data: &BTreeMap<String, String>,
    items: &Value,
    default_mode: u32,
    volume: &str,
    optional: bool,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, VolumeError> {
    let mut out = BTreeMap::new();
    match items.as_array() {
        Some(items) if !items.is_empty() => {
            for it in items {
                let key = it["key"].as_str().unwrap_or("");
                let path = it["path"].as_str().unwrap_or(key);
                let mode = it["mode"].as_u64().map_or(default_mode, |m| m as u32);
                match data.get(key) {
                    Some(v) => {
                        out.insert(path.to_string(), (v.clone().into_bytes(), mode));
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::Setup {
                            volume: volume.to_string(),
                            message: format!("configmap/secret references non-existent key {key}"),
                        });
                    }
                }
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone().into_bytes(), default_mode));
            }
        }
    }
    Ok(out)
}

async fn source_files(
    client: &Client,
    ns: &str,
    volume: &str,
    src: &Value,
    secret: bool,
    default_mode: u32,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, VolumeError> {
    let name = if secret {
        src["secretName"].as_str().or(src["name"].as_str())
    } else {
        src["name"].as_str()
    }
    .unwrap_or("");
    let optional = src["optional"].as_bool() == Some(true);
    let mode = src["defaultMode"]
        .as_u64()
        .map_or(default_mode, |m| m as u32);
    let r = if secret {
        Resource::SECRETS
    } else {
        Resource::CONFIGMAPS
    };
    let kind = if secret { "secret" } else { "configmap" };
    match client.get(&r, Some(ns), name).await {
        Ok(o) => project(&data_of(&o, secret), &src["items"], mode, volume, optional),
        Err(e) if e.is_not_found() && optional => Ok(BTreeMap::new()),
        Err(e) if e.is_not_found() => Err(VolumeError::Setup {
            volume: volume.to_string(),
            message: format!("{kind} \"{name}\" not found"),
        }),
        Err(source) => Err(VolumeError::Api {
            volume: volume.to_string(),
            what: format!("{kind} {ns}/{name}"),
            source,
        }),
    }
}

fn downward_files(
    pod: &Value,
    src: &Value,
    default_mode: u32,
    volume: &str,
    node_cpu_millis: i64,
    node_memory: i64,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, VolumeError> {
    let mut out = BTreeMap::new();
    for it in src["items"].as_array().into_iter().flatten() {
        let path = it["path"].as_str().unwrap_or("");
        let mode = it["mode"].as_u64().map_or(default_mode, |m| m as u32);
        let value = if let Some(fp) = it["fieldRef"]["fieldPath"].as_str() {
            field_ref(pod, fp)
        } else {
            let r = &it["resourceFieldRef"];
            let cname = r["containerName"].as_str().unwrap_or("");
            let c = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == cname)
                .cloned()
                .unwrap_or(Value::Null);
            resource_field(
                &c,
                r["resource"].as_str().unwrap_or(""),
                r["divisor"].as_str(),
                node_cpu_millis,
                node_memory,
            )
        }
        .map_err(|e| VolumeError::Setup {
            volume: volume.to_string(),
            message: e.to_string(),
        })?;
        out.insert(path.to_string(), (value.into_bytes(), mode));
    }
    Ok(out)
}

/// Whether `path` is a mount point (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

async fn run(cmd: &str, args: &[&str]) -> Result<(), std::io::Error> {
    super::tool::run(cmd, args)
        .await
        .map(|_| ())
        .map_err(std::io::Error::other)
}

/// Sets up (or refreshes) every volume of the pod under `dir`.
pub async fn prepare(
    client: &Client,
    pod: &Value,
    dir: &Path,
    node_cpu_millis: i64,
    node_memory: i64,
) -> Result<Prepared, VolumeError> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut out = Prepared::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("").to_string();
        let path = dir.join(&name);
        if let Some(ed) = v.get("emptyDir").filter(|x| x.is_object()) {
            std::fs::create_dir_all(&path).map_err(io(&name))?;
            if ed["medium"] == "Memory" && !is_mount_point(&path) {
                let size = ed["sizeLimit"]
                    .as_str()
                    .and_then(|s| api::quantity::Quantity::parse(s).ok())
                    .map(|q| format!("mode=1777,size={}", q.value()))
                    .unwrap_or_else(|| "mode=1777".into());
                let p = path.to_string_lossy().to_string();
                run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", &p])
                    .await
                    .map_err(io(&name))?;
            } else {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                    .map_err(io(&name))?;
            }
            out.insert(name, (path, false));
        } else if let Some(hp) = v.get("hostPath").filter(|x| x.is_object()) {
            let host = PathBuf::from(hp["path"].as_str().unwrap_or("/"));
            match hp["type"].as_str().unwrap_or("") {
                "DirectoryOrCreate" => std::fs::create_dir_all(&host).map_err(io(&name))?,
                "FileOrCreate" if !host.exists() => {
                    if let Some(p) = host.parent() {
                        std::fs::create_dir_all(p).map_err(io(&name))?;
                    }
                    std::fs::write(&host, b"").map_err(io(&name))?;
                }
                "Directory" if !host.is_dir() => {
                    return Err(VolumeError::Setup {
                        volume: name,
                        message: format!(
                            "hostPath type check failed: {} is not a directory",
                            host.display()
                        ),
                    });
                }
                "File" if !host.is_file() => {
                    return Err(VolumeError::Setup {
                        volume: name,
                        message: format!(
                            "hostPath type check failed: {} is not a file",
                            host.display()
                        ),
                    });
                }
                _ => {}
            }
            out.insert(name, (host, false));
        } else if v["configMap"].is_object() || v["secret"].is_object() {
            let secret = v["secret"].is_object();
            let src = if secret {
                &v["secret"]
            } else {
                &v["configMap"]
            };
            let files = source_files(client, ns, &name, src, secret, 0o644).await?;
            sync_files(&name, &path, &files)?;
            out.insert(name, (path, true));
        } else if v["downwardAPI"].is_object() {
            let mode = v["downwardAPI"]["defaultMode"]
                .as_u64()
                .map_or(0o644, |m| m as u32);
            let files = downward_files(
                pod,
                &v["downwardAPI"],
                mode,
                &name,
                node_cpu_millis,
                node_memory,
            )?;
            sync_files(&name, &path, &files)?;
            out.insert(name, (path, true));
        } else if v["projected"].is_object() {
            let mode = v["projected"]["defaultMode"]
                .as_u64()
                .map_or(0o644, |m| m as u32);
            let mut files = BTreeMap::new();
            for s in v["projected"]["sources"].as_array().into_iter().flatten() {
                if s["configMap"].is_object() {
                    files.extend(
                        source_files(client, ns, &name, &s["configMap"], false, mode).await?,
                    );
                } else if s["secret"].is_object() {
                    files.extend(source_files(client, ns, &name, &s["secret"], true, mode).await?);
                } else if s["downwardAPI"].is_object() {
                    files.extend(downward_files(
                        pod,
                        &s["downwardAPI"],
                        mode,
                        &name,
                        node_cpu_millis,
                        node_memory,
                    )?);
                }
                // serviceAccountToken sources need token issuance, which the API server does not do yet.
            }
            sync_files(&name, &path, &files)?;
            out.insert(name, (path, true));
        } else {
            return Err(VolumeError::Setup { volume: name, message: "this volume type is not supported by drover's agent (supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected)".into() });
        }
    }
    Ok(out)
}

/// Unmounts tmpfs volumes and removes the pod's volume directories (hostPath
/// contents are never touched: they are bind sources, not under `dir`).
pub async fn teardown(dir: &Path) -> Result<(), std::io::Error> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if is_mount_point(&p) {
                run("umount", &[&p.to_string_lossy()]).await?;
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_select_keys_paths_and_modes() {
        let data: BTreeMap<String, String> = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into();
        let all = project(&data, &Value::Null, 0o644, "v", false).unwrap();
        assert_eq!(all.len(), 2);
        let some = project(
            &data,
            &json!([{"key": "a", "path": "dir/x", "mode": 0o600}]),
            0o644,
            "v",
            false,
        )
        .unwrap();
        assert_eq!(some["dir/x"], (b"1".to_vec(), 0o600));
        assert!(
            project(
                &data,
                &json!([{"key": "zz", "path": "p"}]),
                0o644,
                "v",
                false
            )
            .is_err()
        );
        assert!(
            project(
                &data,
                &json!([{"key": "zz", "path": "p"}]),
                0o644,
                "v",
                true
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn files_are_synced_and_stale_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = BTreeMap::new();
        files.insert("a".to_string(), (b"1".to_vec(), 0o600));
        files.insert("d/b".to_string(), (b"2".to_vec(), 0o644));
        sync_files("v", dir.path(), &files).unwrap();
        assert_eq!(std::fs::read(dir.path().join("d/b")).unwrap(), b"2");
        let mode = std::fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        files.remove("a");
        sync_files("v", dir.path(), &files).unwrap();
        assert!(!dir.path().join("a").exists());
        files.insert("../x".to_string(), (vec![], 0o644));
        assert!(sync_files("v", dir.path(), &files).is_err());
    }
}
