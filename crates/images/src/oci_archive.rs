//! Writing OCI image archives (a tar of an OCI layout), for the busybox test image and hand-built layers.

use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::import::current_arch;
use crate::store::write_atomic;
use crate::{ImageConfig, ImageError, reference};

/// All entries get this mtime so archives are reproducible (2000-01-01T00:00:00Z).
const MTIME: u64 = 946_684_800;

fn tar_err(e: std::io::Error) -> ImageError {
    ImageError::Io {
        context: "building a layer tar".into(),
        source: e,
    }
}

/// Builds an uncompressed layer tar in memory, owned by root, with OCI whiteout helpers.
pub struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        LayerBuilder { b }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h
    }

    /// Adds a directory ("etc", mode 0o755).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, ImageError> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.b
            .append_data(
                &mut h,
                format!("{}/", path.trim_end_matches('/')),
                std::io::empty(),
            )
            .map_err(tar_err)?;
        Ok(self)
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<&mut Self, ImageError> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data).map_err(tar_err)?;
        Ok(self)
    }

    /// Adds a symlink `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, ImageError> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).map_err(tar_err)?;
        Ok(self)
    }

    /// Adds a hard link `path` to the earlier entry `target`.
    pub fn hardlink(&mut self, path: &str, target: &str) -> Result<&mut Self, ImageError> {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).map_err(tar_err)?;
        Ok(self)
    }

    /// Adds a character device node (e.g. 1, 3 for /dev/null).
    pub fn char_device(
        &mut self,
        path: &str,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, ImageError> {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).map_err(tar_err)?;
        h.set_device_minor(minor).map_err(tar_err)?;
        self.b
            .append_data(&mut h, path, std::io::empty())
            .map_err(tar_err)?;
        Ok(self)
    }

    /// Adds a named pipe.
    pub fn fifo(&mut self, path: &str) -> Result<&mut Self, ImageError> {
        let mut h = Self::header(tar::EntryType::Fifo, 0o600, 0);
        self.b
            .append_data(&mut h, path, std::io::empty())
            .map_err(tar_err)?;
        Ok(self)
    }

    /// Deletes `path` of lower layers (an OCI `.wh.NAME` entry).
    pub fn whiteout(&mut self, path: &str) -> Result<&mut Self, ImageError> {
        let p = Path::new(path);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wh = match p
            .parent()
            .map(|x| x.to_string_lossy().into_owned())
            .filter(|x| !x.is_empty())
        {
            Some(parent) => format!("{parent}/.wh.{name}"),
            None => format!(".wh.{name}"),
        };
        self.file(&wh, 0o644, b"")
    }

    /// Hides everything lower layers put in directory `dir` (an OCI `.wh..wh..opq` entry).
    pub fn opaque(&mut self, dir: &str) -> Result<&mut Self, ImageError> {
        self.file(
            &format!("{}/.wh..wh..opq", dir.trim_end_matches('/')),
            0o644,
            b"",
        )
    }

    /// The finished (uncompressed) tar.
    pub fn finish(self) -> Result<Vec<u8>, ImageError> {
        self.b.into_inner().map_err(tar_err)
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, ImageError> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).map_err(tar_err)?;
    enc.finish().map_err(tar_err)
}

/// How [`write_oci_archive_with`] stores layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayerCompression {
    /// `application/vnd.oci.image.layer.v1.tar+gzip` (what registries and runtimes expect by default).
    #[default]
    Gzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`.
    Zstd,
    /// `application/vnd.oci.image.layer.v1.tar`.
    None,
}

/// Writes an OCI archive of one image made of `layers` (uncompressed tars, bottom first; stored
/// gzip-compressed) and `config`, named `reference` (`org.opencontainers.image.ref.name` = the tag,
/// `io.containerd.image.name` = the full normalized reference).
pub fn write_oci_archive(
    layers: &[Vec<u8>],
    config: &ImageConfig,
    reference: &str,
    out: &Path,
) -> Result<(), ImageError> {
    write_oci_archive_with(layers, config, reference, out, LayerCompression::Gzip)
}

/// [`write_oci_archive`] with a choice of layer compression.
pub fn write_oci_archive_with(
    layers: &[Vec<u8>],
    config: &ImageConfig,
    reference: &str,
    out: &Path,
    compression: LayerCompression,
) -> Result<(), ImageError> {
    let parsed = reference::parse(reference)?;
    let Some(tag) = parsed.tag.clone() else {
        return Err(ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: "an archive needs a tag to name its image".into(),
        });
    };
    let full = parsed.tagged().unwrap_or_else(|| parsed.normalized());
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_descs = Vec::new();
    for l in layers {
        diff_ids.push(sha256(l));
        let (blob, media_type) = match compression {
            LayerCompression::Gzip => (gzip(l)?, "application/vnd.oci.image.layer.v1.tar+gzip"),
            LayerCompression::Zstd => (
                zstd::encode_all(l.as_slice(), 3).map_err(tar_err)?,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
            LayerCompression::None => (l.clone(), "application/vnd.oci.image.layer.v1.tar"),
        };
        let d = sha256(&blob);
        layer_descs
            .push(serde_json::json!({ "mediaType": media_type, "digest": d, "size": blob.len() }));
        blobs.push((d, blob));
    }
    let mut cfg = serde_json::Map::new();
    if !config.env.is_empty() {
        cfg.insert("Env".into(), serde_json::json!(config.env));
    }
    if !config.entrypoint.is_empty() {
        cfg.insert("Entrypoint".into(), serde_json::json!(config.entrypoint));
    }
    if !config.cmd.is_empty() {
        cfg.insert("Cmd".into(), serde_json::json!(config.cmd));
    }
    if !config.working_dir.is_empty() {
        cfg.insert("WorkingDir".into(), serde_json::json!(config.working_dir));
    }
    if !config.user.is_empty() {
        cfg.insert("User".into(), serde_json::json!(config.user));
    }
    let config_json = serde_json::to_vec(&serde_json::json!({
        "created": "2000-01-01T00:00:00Z",
        "architecture": current_arch(),
        "os": "linux",
        "config": cfg,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layers.iter().map(|_| serde_json::json!({"created": "2000-01-01T00:00:00Z", "created_by": "drover images"})).collect::<Vec<_>>(),
    }))
    .map_err(|e| ImageError::Format(e.to_string()))?;
    let config_digest = sha256(&config_json);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_json.len() },
        "layers": layer_descs,
    }))
    .map_err(|e| ImageError::Format(e.to_string()))?;
    let manifest_digest = sha256(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "org.opencontainers.image.ref.name": tag,
                "io.containerd.image.name": full,
            },
            "platform": { "architecture": current_arch(), "os": "linux" },
        }],
    }))
    .map_err(|e| ImageError::Format(e.to_string()))?;
    blobs.push((config_digest, config_json));
    blobs.push((manifest_digest, manifest));

    let mut b = LayerBuilder::new();
    b.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    b.file("index.json", 0o644, &index)?;
    b.dir("blobs", 0o755)?;
    b.dir("blobs/sha256", 0o755)?;
    for (d, data) in &blobs {
        b.file(&format!("blobs/sha256/{}", &d[7..]), 0o644, data)?;
    }
    let tar = b.finish()?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .map_err(ImageError::io(format!("creating {}", parent.display())))?;
    }
    write_atomic(out, &tar)
}
