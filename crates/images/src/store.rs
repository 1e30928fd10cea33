//! Shared state of the store: image records, blob files, unpacked layers, pins and pull locks.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::io_err;
use crate::{Image, ImageConfig, ImageError, reference};

/// One layer of an image record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LayerRec {
    /// Digest of the blob as stored (compressed or not).
    pub digest: String,
    /// Digest of the uncompressed tar; names the unpacked directory.
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

/// What `images/<id>.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    pub references: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Layers bottom to top.
    pub layers: Vec<LayerRec>,
    pub config: ImageConfig,
    /// Microseconds since the epoch of the last pull/ensure/mount (strictly increasing per store).
    pub last_used: u64,
}

impl Record {
    pub fn image(&self) -> Image {
        Image {
            id: self.id.clone(),
            references: self.references.clone(),
            repo_digests: self.repo_digests.clone(),
            size: self.layers.iter().map(|l| l.size).sum(),
            config: self.config.clone(),
        }
    }
}

/// A new image whose blobs are committed (and pinned) and whose layers are unpacked.
pub(crate) struct NewImage {
    pub config_digest: String,
    pub layers: Vec<LayerRec>,
    pub config: ImageConfig,
    /// Tags to point at this image (moved away from any other image).
    pub references: Vec<String>,
    pub repo_digests: Vec<String>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    records: Mutex<HashMap<String, Record>>,
    pins: Mutex<HashMap<String, usize>>,
    pull_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    registry_pulls: AtomicU64,
    /// Last `last_used` handed out, so uses within one clock tick still order strictly.
    clock: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data that is still consistent enough to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `sha256:<hex>` -> `<hex>`, rejecting anything that is not a sha256 digest (it becomes a path).
pub(crate) fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    if reference::valid_digest(digest) {
        Ok(&digest[7..])
    } else {
        Err(ImageError::Format(format!(
            "unsupported or malformed digest {digest:?} (only sha256 is supported)"
        )))
    }
}

/// A random suffix for temp names.
pub(crate) fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Writes `data` to `path` via a synced temp file and rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    let tmp = path.with_extension(format!("tmp-{}", random_suffix()));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(format!("writing {}", path.display()), e));
    }
    Ok(())
}

/// Disk usage of a file or directory tree (apparent sizes; hard links counted once).
pub(crate) fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(md) = fs::symlink_metadata(p) else {
            return 0;
        };
        let mut total = 0;
        if md.nlink() <= 1 || seen.insert((md.dev(), md.ino())) {
            total += md.len();
        }
        if md.is_dir()
            && let Ok(rd) = fs::read_dir(p)
        {
            for e in rd.flatten() {
                total += walk(&e.path(), seen);
            }
        }
        total
    }
    walk(path, &mut HashSet::new())
}

/// Keeps blobs and layers from being garbage-collected while a pull or import is assembling an image.
pub(crate) struct Pins {
    inner: Arc<Inner>,
    keys: Vec<String>,
}

impl Pins {
    pub fn add(&mut self, key: &str) {
        *lock(&self.inner.pins).entry(key.to_string()).or_insert(0) += 1;
        self.keys.push(key.to_string());
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let mut pins = lock(&self.inner.pins);
        for k in &self.keys {
            if let Some(n) = pins.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(k);
                }
            }
        }
    }
}

/// Removes a staging directory on drop.
pub(crate) struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every image record on disk.
fn read_records(root: &Path) -> Result<HashMap<String, Record>, ImageError> {
    let mut records = HashMap::new();
    let images = root.join("images");
    let rd =
        fs::read_dir(&images).map_err(ImageError::io(format!("listing {}", images.display())))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let parsed = fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => {
                records.insert(r.id.clone(), r);
            }
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "ignoring unreadable image record")
            }
        }
    }
    Ok(records)
}

impl Inner {
    /// Picks up images another process recorded since this store was opened (e.g.
    /// `drover image import` while the agent runs).
    pub fn refresh(&self) -> Result<(), ImageError> {
        let on_disk = read_records(&self.root)?;
        let mut records = lock(&self.records);
        for (id, rec) in on_disk {
            let known = records.entry(id).or_insert_with(|| rec.clone());
            for r in rec.references {
                if !known.references.contains(&r) {
                    known.references.push(r);
                }
            }
        }
        Ok(())
    }

    pub fn open(root: &Path) -> Result<Inner, ImageError> {
        for sub in ["blobs/sha256", "layers", "images", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(ImageError::io(format!("creating {}", p.display())))?;
        }
        let root = fs::canonicalize(root)
            .map_err(ImageError::io(format!("resolving {}", root.display())))?;
        // Leftovers of interrupted pulls, imports and unpacks. Only old ones: another
        // process (the agent, while `drover image import` runs) may be working in here.
        let stale = |e: &fs::DirEntry| {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(600))
        };
        let tmp = root.join("tmp");
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten().filter(stale) {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
        for dir in [
            root.join("layers"),
            root.join("blobs/sha256"),
            root.join("images"),
        ] {
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten().filter(stale) {
                    if e.file_name().to_string_lossy().contains("tmp-") {
                        let p = e.path();
                        let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
                    }
                }
            }
        }
        let records = read_records(&root)?;
        Ok(Inner {
            root,
            records: Mutex::new(records),
            pins: Mutex::new(HashMap::new()),
            pull_locks: Mutex::new(HashMap::new()),
            registry_pulls: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        })
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("layers").join(digest_hex(diff_id)?))
    }

    /// A fresh staging directory under `tmp/`, removed when the guard drops.
    pub fn staging(&self, what: &str) -> Result<TempDir, ImageError> {
        let p = self
            .root
            .join("tmp")
            .join(format!("{what}-{}", random_suffix()));
        fs::create_dir_all(&p).map_err(ImageError::io(format!("creating {}", p.display())))?;
        Ok(TempDir(p))
    }

    pub fn pins(self: &Arc<Self>) -> Pins {
        Pins {
            inner: self.clone(),
            keys: Vec::new(),
        }
    }

    /// A strictly increasing "now" in microseconds for LRU ordering.
    fn tick(&self) -> u64 {
        let now = now_micros();
        let prev = self.clock.fetch_max(now, Ordering::SeqCst);
        if prev >= now {
            self.clock.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            now
        }
    }

    pub fn count_registry_pull(&self) {
        self.registry_pulls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn registry_pulls(&self) -> u64 {
        self.registry_pulls.load(Ordering::Relaxed)
    }

    pub fn pull_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.pull_locks)
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    pub fn release_pull_lock(&self, key: &str, l: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = lock(&self.pull_locks);
        drop(l);
        if locks.get(key).is_some_and(|m| Arc::strong_count(m) == 1) {
            locks.remove(key);
        }
    }

    /// Moves a verified staged blob into the store (or drops it if the store has it already).
    pub fn commit_blob(&self, staged: &Path, digest: &str) -> Result<(), ImageError> {
        let dest = self.blob_path(digest)?;
        if dest.exists() {
            let _ = fs::remove_file(staged);
            return Ok(());
        }
        fs::rename(staged, &dest)
            .map_err(ImageError::io(format!("storing blob {}", dest.display())))
    }

    /// Deletes blobs a failed pull committed, unless an image or another in-flight pull uses them.
    pub fn discard_blobs(&self, digests: &[String]) {
        let records = lock(&self.records);
        let pins = lock(&self.pins);
        for d in digests {
            let used = records
                .values()
                .any(|r| r.id == *d || r.layers.iter().any(|l| l.digest == *d));
            if used || pins.get(d).is_some_and(|n| *n > 1) {
                continue;
            }
            if let Ok(p) = self.blob_path(d) {
                let _ = fs::remove_file(p);
            }
        }
    }

    fn find<'a>(records: &'a HashMap<String, Record>, key: &str) -> Option<&'a Record> {
        let k = key.trim();
        if k.starts_with("sha256:") {
            return records.get(k);
        }
        if k.len() >= 12
            && k.len() <= 64
            && k.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            let mut hits = records.values().filter(|r| r.id[7..].starts_with(k));
            if let (Some(r), None) = (hits.next(), hits.next()) {
                return Some(r);
            }
        }
        let p = reference::parse(k).ok()?;
        if let Some(d) = &p.digest {
            let rd = format!("{}@{}", p.repo_name(), d);
            return records.values().find(|r| r.repo_digests.contains(&rd));
        }
        let n = p.normalized();
        records.values().find(|r| r.references.contains(&n))
    }

    pub fn get(&self, key: &str) -> Result<Option<Image>, ImageError> {
        self.refresh_if_missing(key)?;
        Ok(Self::find(&lock(&self.records), key).map(Record::image))
    }

    /// Re-reads the records on disk when `key` is unknown here.
    fn refresh_if_missing(&self, key: &str) -> Result<(), ImageError> {
        if Self::find(&lock(&self.records), key).is_none() {
            self.refresh()?;
        }
        Ok(())
    }

    /// Finds an image and records the use (for LRU garbage collection).
    pub fn find_and_touch(&self, key: &str) -> Result<Option<Image>, ImageError> {
        self.refresh_if_missing(key)?;
        let mut records = lock(&self.records);
        let Some(id) = Self::find(&records, key).map(|r| r.id.clone()) else {
            return Ok(None);
        };
        let Some(rec) = records.get_mut(&id) else {
            return Ok(None);
        };
        rec.last_used = self.tick();
        let rec = rec.clone();
        drop(records);
        if let Err(e) = self.persist(&rec) {
            tracing::warn!(error = %e, "could not record image use");
        }
        Ok(Some(rec.image()))
    }

    pub fn list(&self) -> Vec<Image> {
        let mut v: Vec<Image> = lock(&self.records).values().map(Record::image).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The unpacked layer directories of an image, bottom to top.
    pub fn layer_dirs(&self, id: &str) -> Result<Vec<PathBuf>, ImageError> {
        let mut records = lock(&self.records);
        let rec = match records.get_mut(id) {
            Some(r) => r,
            None => return Err(ImageError::NoSuchImage(id.to_string())),
        };
        rec.last_used = self.tick();
        let rec = rec.clone();
        drop(records);
        let _ = self.persist(&rec);
        let mut dirs = Vec::new();
        for l in &rec.layers {
            let d = self.layer_path(&l.diff_id)?;
            if !d.is_dir() {
                return Err(ImageError::Format(format!(
                    "layer {} of image {} is missing from {} (remove and pull the image again)",
                    l.diff_id,
                    rec.id,
                    d.display()
                )));
            }
            dirs.push(d);
        }
        Ok(dirs)
    }

    fn record_path(&self, id: &str) -> Result<PathBuf, ImageError> {
        Ok(self
            .root
            .join("images")
            .join(format!("{}.json", digest_hex(id)?)))
    }

    fn persist(&self, rec: &Record) -> Result<(), ImageError> {
        let data = serde_json::to_vec_pretty(rec).map_err(|e| ImageError::Format(e.to_string()))?;
        write_atomic(&self.record_path(&rec.id)?, &data)
    }

    /// Records a fully assembled image, moving its tags away from other images.
    pub fn add_image(&self, new: NewImage) -> Result<Image, ImageError> {
        let id = new.config_digest.clone();
        let mut records = lock(&self.records);
        let mut changed = Vec::new();
        for r in records.values_mut() {
            if r.id != id && r.references.iter().any(|x| new.references.contains(x)) {
                r.references.retain(|x| !new.references.contains(x));
                changed.push(r.clone());
            }
        }
        let rec = records.entry(id.clone()).or_insert_with(|| Record {
            id: id.clone(),
            references: Vec::new(),
            repo_digests: Vec::new(),
            layers: new.layers.clone(),
            config: new.config.clone(),
            last_used: 0,
        });
        for r in new.references {
            if !rec.references.contains(&r) {
                rec.references.push(r);
            }
        }
        for d in new.repo_digests {
            if !rec.repo_digests.contains(&d) {
                rec.repo_digests.push(d);
            }
        }
        rec.last_used = self.tick();
        changed.push(rec.clone());
        let image = rec.image();
        for r in &changed {
            self.persist(r)?;
        }
        Ok(image)
    }

    pub fn remove(&self, key: &str) -> Result<(), ImageError> {
        let mut records = lock(&self.records);
        let Some(rec) = Self::find(&records, key).cloned() else {
            return Err(ImageError::NoSuchImage(key.to_string()));
        };
        // Removing by tag only untags while other tags remain (as `docker rmi`).
        if let Ok(p) = reference::parse(key)
            && p.digest.is_none()
            && rec.references.len() > 1
            && rec.references.contains(&p.normalized())
        {
            let n = p.normalized();
            let mut r = rec;
            r.references.retain(|x| *x != n);
            records.insert(r.id.clone(), r.clone());
            return self.persist(&r);
        }
        self.delete_locked(&mut records, &rec.id).map(|_| ())
    }

    /// Deletes a record and every blob and layer no other image (or in-flight pull) uses; returns bytes freed.
    fn delete_locked(
        &self,
        records: &mut HashMap<String, Record>,
        id: &str,
    ) -> Result<u64, ImageError> {
        let Some(rec) = records.remove(id) else {
            return Ok(0);
        };
        let path = self.record_path(id)?;
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            records.insert(rec.id.clone(), rec);
            return Err(io_err(format!("removing {}", path.display()), e));
        }
        let mut used: HashSet<&str> = HashSet::new();
        for r in records.values() {
            used.insert(&r.id);
            for l in &r.layers {
                used.insert(&l.digest);
                used.insert(&l.diff_id);
            }
        }
        let pins = lock(&self.pins);
        let keep = |k: &str| used.contains(k) || pins.contains_key(k);
        let mut freed = 0;
        let mut doomed_blobs = vec![rec.id.clone()];
        doomed_blobs.extend(rec.layers.iter().map(|l| l.digest.clone()));
        for d in doomed_blobs {
            if keep(&d) {
                continue;
            }
            let p = self.blob_path(&d)?;
            if let Ok(md) = fs::metadata(&p)
                && fs::remove_file(&p).is_ok()
            {
                freed += md.len();
            }
        }
        for l in &rec.layers {
            if keep(&l.diff_id) {
                continue;
            }
            let p = self.layer_path(&l.diff_id)?;
            if !p.exists() {
                continue;
            }
            // Rename first so a half-deleted tree never looks like a complete layer.
            let tomb = self
                .root
                .join("tmp")
                .join(format!("deleted-{}", random_suffix()));
            let size = disk_usage(&p);
            if fs::rename(&p, &tomb).is_ok() {
                let _ = fs::remove_dir_all(&tomb);
                freed += size;
            }
        }
        Ok(freed)
    }

    pub fn gc(&self, in_use: &HashSet<String>, bytes_to_free: u64) -> Result<u64, ImageError> {
        let mut records = lock(&self.records);
        let mut candidates: Vec<(u64, String)> = records
            .values()
            .filter(|r| !in_use.contains(&r.id))
            .map(|r| (r.last_used, r.id.clone()))
            .collect();
        candidates.sort();
        let mut freed = 0;
        for (_, id) in candidates {
            if freed >= bytes_to_free {
                break;
            }
            freed += self.delete_locked(&mut records, &id)?;
        }
        Ok(freed)
    }
}
