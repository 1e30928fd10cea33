//! Importing images from OCI layouts, OCI archives and docker-archives.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::io_err;
use crate::layers::{HashingReader, hex_digest, open_decompressed};
use crate::pull::{parse_config, unpack_layers};
use crate::store::{Inner, LayerRec, NewImage, TempDir, digest_hex};
use crate::{Image, ImageError, reference};

const ANN_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(serde::Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Desc {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(serde::Deserialize, Clone)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(serde::Deserialize)]
struct Index {
    manifests: Vec<Desc>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    config: Desc,
    layers: Vec<Desc>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The GOARCH-style name of the machine's architecture.
pub(crate) fn current_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

pub(crate) fn import(inner: &Arc<Inner>, archive: &Path) -> Result<Vec<Image>, ImageError> {
    let md =
        fs::metadata(archive).map_err(ImageError::io(format!("opening {}", archive.display())))?;
    if md.is_dir() {
        return import_dir(inner, archive);
    }
    let staging = inner.staging("import")?;
    extract(archive, &staging.0)?;
    import_dir(inner, &staging.0)
}

/// Unpacks an archive's regular files and directories (and relative symlinks, which older
/// docker-archives use for repeated layers).
fn extract(archive: &Path, dir: &Path) -> Result<(), ImageError> {
    let ctx = || format!("reading archive {}", archive.display());
    let mut ar = tar::Archive::new(open_decompressed(archive)?);
    for entry in ar.entries().map_err(|e| io_err(ctx(), e))? {
        let mut entry = entry.map_err(|e| io_err(ctx(), e))?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry.link_name().map_err(|e| io_err(ctx(), e))?;
            if target
                .as_ref()
                .is_none_or(|t| t.components().any(|c| matches!(c, Component::RootDir)))
            {
                continue;
            }
        } else if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        entry.unpack_in(dir).map_err(|e| io_err(ctx(), e))?;
    }
    Ok(())
}

fn import_dir(inner: &Arc<Inner>, dir: &Path) -> Result<Vec<Image>, ImageError> {
    if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
        import_oci(inner, dir)
    } else if dir.join("manifest.json").is_file() {
        import_docker(inner, dir)
    } else {
        Err(ImageError::Format(format!(
            "{} is neither an OCI layout (oci-layout + index.json) nor a docker-archive (manifest.json)",
            dir.display()
        )))
    }
}

fn read_file(p: &Path) -> Result<Vec<u8>, ImageError> {
    fs::read(p).map_err(ImageError::io(format!("reading {}", p.display())))
}

fn layout_blob(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    Ok(dir.join("blobs/sha256").join(digest_hex(digest)?))
}

/// Reads a small blob of an OCI layout and checks its digest.
fn read_verified(dir: &Path, digest: &str) -> Result<Vec<u8>, ImageError> {
    let bytes = read_file(&layout_blob(dir, digest)?)?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

/// Copies `src` to `dst` and returns the content's digest and size.
fn copy_hashed(src: &Path, dst: &Path) -> Result<(String, u64), ImageError> {
    let f = fs::File::open(src).map_err(ImageError::io(format!("opening {}", src.display())))?;
    let mut r = HashingReader {
        inner: f,
        hasher: Sha256::new(),
        count: 0,
    };
    let mut out =
        fs::File::create(dst).map_err(ImageError::io(format!("creating {}", dst.display())))?;
    io::copy(&mut r, &mut out).map_err(ImageError::io(format!("copying {}", src.display())))?;
    out.flush()
        .and_then(|()| out.sync_all())
        .map_err(ImageError::io(format!("writing {}", dst.display())))?;
    Ok((hex_digest(r.hasher), r.count))
}

fn sniff_media_type(p: &Path) -> Result<&'static str, ImageError> {
    let mut head = [0u8; 4];
    let mut f = fs::File::open(p).map_err(ImageError::io(format!("opening {}", p.display())))?;
    let n = f
        .read(&mut head)
        .map_err(ImageError::io(format!("reading {}", p.display())))?;
    Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    })
}

/// One image found in an archive, with its blobs still in the archive.
struct Found {
    config: Vec<u8>,
    config_digest: String,
    /// (path in the archive, expected digest if known, media type)
    layers: Vec<(PathBuf, Option<String>, String)>,
    references: Vec<String>,
    repo_digests: Vec<String>,
}

fn import_oci(inner: &Arc<Inner>, dir: &Path) -> Result<Vec<Image>, ImageError> {
    let index: Index = serde_json::from_slice(&read_file(&dir.join("index.json"))?)
        .map_err(|e| ImageError::Format(format!("{}/index.json: {e}", dir.display())))?;
    let mut images = Vec::new();
    for top in &index.manifests {
        let ann = top.annotations.clone().unwrap_or_default();
        let name = ann
            .get(ANN_CONTAINERD_NAME)
            .or_else(|| {
                ann.get(ANN_REF_NAME)
                    .filter(|n| n.contains('/') || n.contains(':'))
            })
            .and_then(|n| reference::parse(n).ok());
        let Some((_, manifest)) = resolve_manifest(dir, top, 0)? else {
            continue;
        };
        let mut references = Vec::new();
        let mut repo_digests = Vec::new();
        if let Some(p) = name {
            references.extend(p.tagged());
            repo_digests.push(format!("{}@{}", p.repo_name(), top.digest));
        }
        let config = read_verified(dir, &manifest.config.digest)?;
        let mut layers = Vec::new();
        for l in &manifest.layers {
            let mt = l
                .media_type
                .clone()
                .unwrap_or_else(|| "application/vnd.oci.image.layer.v1.tar".into());
            layers.push((layout_blob(dir, &l.digest)?, Some(l.digest.clone()), mt));
        }
        let found = Found {
            config,
            config_digest: manifest.config.digest.clone(),
            layers,
            references,
            repo_digests,
        };
        images.push(install(inner, found)?);
    }
    if images.is_empty() {
        return Err(ImageError::Format(format!(
            "{} holds no image for linux/{}",
            dir.display(),
            current_arch()
        )));
    }
    Ok(images)
}

/// Follows an index entry down to one image manifest for this platform (None: no matching platform).
fn resolve_manifest(
    dir: &Path,
    desc: &Desc,
    depth: u32,
) -> Result<Option<(String, Manifest)>, ImageError> {
    if depth > 4 {
        return Err(ImageError::Format("image indexes nested too deeply".into()));
    }
    let bytes = read_verified(dir, &desc.digest)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::Format(format!("manifest {}: {e}", desc.digest)))?;
    if v.get("manifests").is_some() {
        let idx: Index = serde_json::from_value(v)
            .map_err(|e| ImageError::Format(format!("index {}: {e}", desc.digest)))?;
        let pick = idx
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == current_arch())
            })
            .or_else(|| {
                if idx.manifests.len() == 1 {
                    idx.manifests.first()
                } else {
                    None
                }
            });
        return match pick {
            Some(m) => resolve_manifest(dir, m, depth + 1),
            None => Ok(None),
        };
    }
    if let Some(p) = &desc.platform
        && (p.os != "linux" || p.architecture != current_arch())
    {
        return Ok(None);
    }
    let m: Manifest = serde_json::from_value(v)
        .map_err(|e| ImageError::Format(format!("manifest {}: {e}", desc.digest)))?;
    Ok(Some((desc.digest.clone(), m)))
}

fn import_docker(inner: &Arc<Inner>, dir: &Path) -> Result<Vec<Image>, ImageError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(&read_file(&dir.join("manifest.json"))?)
        .map_err(|e| ImageError::Format(format!("{}/manifest.json: {e}", dir.display())))?;
    let mut images = Vec::new();
    for e in entries {
        let config = read_file(&safe_join(dir, &e.config)?)?;
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
        let mut layers = Vec::new();
        for l in &e.layers {
            let p = safe_join(dir, l)?;
            let mt = sniff_media_type(&p)?.to_string();
            layers.push((p, None, mt));
        }
        let mut references = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            references.extend(reference::parse(&t)?.tagged());
        }
        images.push(install(
            inner,
            Found {
                config,
                config_digest,
                layers,
                references,
                repo_digests: Vec::new(),
            },
        )?);
    }
    Ok(images)
}

fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ImageError::Format(format!(
            "archive path {rel:?} escapes the archive"
        )));
    }
    Ok(dir.join(p))
}

/// Copies an image's blobs into the store (verifying them), unpacks its layers and records it.
fn install(inner: &Arc<Inner>, f: Found) -> Result<Image, ImageError> {
    let mut pins = inner.pins();
    let staging: TempDir = inner.staging("import-blobs")?;
    let mut staged: Vec<(PathBuf, String)> = Vec::new();
    pins.add(&f.config_digest);
    let (config, diff_ids) = parse_config(&f.config)?;
    if diff_ids.len() != f.layers.len() {
        return Err(ImageError::Format(format!(
            "image {} has {} layers but its config lists {} diff ids",
            f.config_digest,
            f.layers.len(),
            diff_ids.len()
        )));
    }
    if !inner.blob_path(&f.config_digest)?.is_file() {
        let p = staging.0.join(digest_hex(&f.config_digest)?);
        fs::write(&p, &f.config).map_err(ImageError::io(format!("writing {}", p.display())))?;
        staged.push((p, f.config_digest.clone()));
    }
    let mut layers = Vec::new();
    for ((src, expected, media_type), diff_id) in f.layers.into_iter().zip(diff_ids) {
        pins.add(&diff_id);
        if let Some(d) = &expected {
            pins.add(d);
            if inner.blob_path(d)?.is_file() {
                let size = fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
                layers.push(LayerRec {
                    digest: d.clone(),
                    diff_id,
                    media_type,
                    size,
                });
                continue;
            }
        }
        let tmp = staging.0.join(format!("layer-{}", layers.len()));
        let (digest, size) = copy_hashed(&src, &tmp)?;
        if let Some(d) = &expected
            && *d != digest
        {
            return Err(ImageError::DigestMismatch {
                expected: d.clone(),
                actual: digest,
            });
        }
        pins.add(&digest);
        if !staged.iter().any(|(_, d)| *d == digest) {
            staged.push((tmp, digest.clone()));
        }
        layers.push(LayerRec {
            digest,
            diff_id,
            media_type,
            size,
        });
    }
    for (p, d) in &staged {
        inner.commit_blob(p, d)?;
    }
    if let Err(e) = unpack_layers(inner, &layers) {
        inner.discard_blobs(&staged.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>());
        return Err(e);
    }
    drop(staging);
    let image = inner.add_image(NewImage {
        config_digest: f.config_digest,
        layers,
        config,
        references: f.references,
        repo_digests: f.repo_digests,
    })?;
    drop(pins);
    Ok(image)
}
