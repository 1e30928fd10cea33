//! OCI images for the node agent: registry pulls (`oci-client`), archive imports, a content-addressed
//! blob store, unpacked layers shared between containers, and per-container rootfs mounts (overlayfs,
//! with a copy fallback).
//!
//! On-disk layout under the store root (every file is written to a temp name and renamed, so a crash
//! never leaves a half blob, layer or record behind):
//! - `blobs/sha256/<hex>`: verified blobs (configs, compressed layers, manifests of imports)
//! - `layers/<diff-id hex>/`: each layer unpacked once, in overlayfs format (whiteouts are 0/0 char
//!   devices, opaque directories carry `trusted.overlay.opaque=y`)
//! - `images/<config hex>.json`: one record per image (references, repo digests, last use)
//! - `tmp/`: staging for pulls and imports, emptied on open
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod import;
mod layers;
mod pull;
mod reference;
mod rootfs;
mod store;

pub mod busybox;
pub mod oci_archive;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ImageError;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// When to contact the registry, as in a container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Re-resolve the tag at the registry every time (cheap when the blobs are already present).
    Always,
    /// Use the stored image if the reference is known, pull otherwise.
    IfNotPresent,
    /// Never contact the registry; fail with [`ImageError::NotPresent`] if the image is missing.
    Never,
}

/// Per-pull settings derived from the node config and the pod's pull secrets.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// "HOST:PORT" registries reached over plain HTTP; 127.0.0.0/8 and localhost always are (as Docker).
    pub insecure_registries: Vec<String>,
    /// Credentials from imagePullSecrets (the agent decodes dockerconfigjson and picks the registry's entry).
    pub auth: Option<RegistryAuth>,
    /// "HOST[:PORT]" mirrors of Docker Hub, tried in order before docker.io itself (Docker's
    /// `registry-mirrors`); the image keeps its docker.io name.
    pub mirrors: Vec<String>,
}

/// Username and password for one registry (basic auth, or exchanged for a bearer token).
#[derive(Clone)]
pub struct RegistryAuth {
    /// The user name.
    pub username: String,
    /// The password or identity token.
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The parts of an image's config that decide how its containers run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    /// The image's ENTRYPOINT (empty when unset).
    pub entrypoint: Vec<String>,
    /// The image's CMD (empty when unset).
    pub cmd: Vec<String>,
    /// "KEY=VALUE" environment entries.
    pub env: Vec<String>,
    /// The working directory ("" when unset).
    pub working_dir: String,
    /// "uid", "uid:gid", "name" or "" (root).
    pub user: String,
}

/// One image in the store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Image {
    /// `sha256:<config digest>`, stable across registries and imports.
    pub id: String,
    /// Normalized tags: "docker.io/library/busybox:latest", "127.0.0.1:5000/busybox:latest".
    pub references: Vec<String>,
    /// `127.0.0.1:5000/busybox@sha256:<manifest digest>` (what a pod's status reports as imageID).
    pub repo_digests: Vec<String>,
    /// Bytes of the (compressed) layer blobs.
    pub size: u64,
    /// How containers of this image run.
    pub config: ImageConfig,
}

/// Download progress of one layer, for events and logs.
#[derive(Clone, Debug)]
pub struct PullProgress {
    /// The layer's digest.
    pub layer: String,
    /// Bytes received so far.
    pub done_bytes: u64,
    /// The layer's size from the manifest.
    pub total_bytes: u64,
}

/// How [`ImageStore::mount_rootfs_with`] builds a rootfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RootfsMode {
    /// overlayfs, falling back to a copy when the mount fails.
    #[default]
    Auto,
    /// overlayfs only; a failed mount is an error.
    Overlay,
    /// A private copy of all layers with whiteouts applied (for filesystems without overlay support).
    Copy,
}

/// Normalizes a reference like Docker: "busybox" -> "docker.io/library/busybox:latest"; keeps digests.
pub fn normalize_reference(r: &str) -> Result<String, ImageError> {
    Ok(reference::parse(r)?.normalized())
}

/// The node's image store. Cheap to clone; all clones share state, so concurrent pulls of one
/// reference are deduplicated.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<store::Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root` and discards leftovers of interrupted pulls.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        Ok(ImageStore {
            inner: Arc::new(store::Inner::open(root)?),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Makes sure the image is present according to `policy` and returns it (marking it used).
    /// `reference` may also be an image id (`sha256:<hex>`), which is never pulled.
    pub async fn ensure(
        &self,
        reference: &str,
        policy: PullPolicy,
        opts: &PullOptions,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<Image, ImageError> {
        // An image id can only be served from the store (registries are addressed by name).
        if reference::valid_digest(reference.trim()) {
            return match self.inner.find_and_touch(reference.trim())? {
                Some(img) => Ok(img),
                None => Err(ImageError::NotPresent(reference.trim().to_string())),
            };
        }
        let parsed = reference::parse(reference)?;
        let key = parsed.normalized();
        if policy == PullPolicy::Never {
            return match self.inner.find_and_touch(&key)? {
                Some(img) => Ok(img),
                None => Err(ImageError::NotPresent(key)),
            };
        }
        let lock = self.inner.pull_lock(&key);
        let guard = lock.lock().await;
        let result = if policy == PullPolicy::IfNotPresent {
            match self.inner.find_and_touch(&key)? {
                Some(img) => Ok(img),
                None => pull::pull(&self.inner, &parsed, opts, progress).await,
            }
        } else {
            pull::pull(&self.inner, &parsed, opts, progress).await
        };
        drop(guard);
        self.inner.release_pull_lock(&key, lock);
        result
    }

    /// Resolves the reference at the registry and downloads whatever is missing.
    pub async fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<Image, ImageError> {
        self.ensure(reference, PullPolicy::Always, opts, progress)
            .await
    }

    /// Looks an image up by reference ("busybox", full reference, repo digest) or id (full or ≥12-hex prefix).
    pub fn get(&self, reference_or_id: &str) -> Result<Option<Image>, ImageError> {
        self.inner.get(reference_or_id)
    }

    /// Loads every image of an OCI archive (tar of an OCI layout), OCI layout directory or docker-archive
    /// (`docker save`), plain or gzip/zstd-compressed.
    pub fn import(&self, archive: &Path) -> Result<Vec<Image>, ImageError> {
        import::import(&self.inner, archive)
    }

    /// All images, sorted by id.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        Ok(self.inner.list())
    }

    /// Removes a tag (when the image has others) or the whole image with its unshared blobs and layers.
    /// The caller must not remove images whose rootfs is mounted.
    pub fn remove(&self, reference_or_id: &str) -> Result<(), ImageError> {
        self.inner.remove(reference_or_id)
    }

    /// Removes least-recently-used images not in `in_use_ids` until `bytes_to_free` bytes of disk
    /// (blobs plus unpacked layers) are freed or nothing else is removable; returns the bytes freed.
    pub fn gc(&self, in_use_ids: &HashSet<String>, bytes_to_free: u64) -> Result<u64, ImageError> {
        self.inner.gc(in_use_ids, bytes_to_free)
    }

    /// Number of times this store fetched a manifest from a registry (for tests and metrics).
    pub fn registry_pulls(&self) -> u64 {
        self.inner.registry_pulls()
    }

    /// Mounts the image's layers as the rootfs of one container under `dir` (overlayfs: lower = the unpacked
    /// layer dirs, upper/work inside `dir`, mounted at `dir/rootfs`); falls back to a copy when overlay is
    /// unavailable. Idempotent (already mounted -> Ok). Returns the rootfs path.
    pub fn mount_rootfs(&self, image: &Image, dir: &Path) -> Result<PathBuf, ImageError> {
        self.mount_rootfs_with(image, dir, RootfsMode::Auto)
    }

    /// [`ImageStore::mount_rootfs`] with an explicit strategy.
    pub fn mount_rootfs_with(
        &self,
        image: &Image,
        dir: &Path,
        mode: RootfsMode,
    ) -> Result<PathBuf, ImageError> {
        let layers = self.inner.layer_dirs(&image.id)?;
        rootfs::mount(&layers, dir, mode)
    }

    /// Unmounts and deletes `dir`'s rootfs, upper and work; idempotent.
    pub fn unmount_rootfs(&self, dir: &Path) -> Result<(), ImageError> {
        rootfs::unmount(dir)
    }
}
