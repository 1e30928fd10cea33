//! Unpacking layer tars into overlayfs-format directories, and reading blobs whatever their compression.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ImageError;
use crate::error::io_err;
use crate::store::random_suffix;

/// Overlayfs marks a directory as hiding the lower layers' contents with this xattr.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Passes bytes through while hashing them.
pub(crate) struct HashingReader<R> {
    pub inner: R,
    pub hasher: Sha256,
    pub count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

pub(crate) fn hex_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Opens `path` and transparently decompresses gzip or zstd (detected by magic bytes, so a mislabeled
/// media type does not matter).
pub(crate) fn open_decompressed(path: &Path) -> Result<Box<dyn Read + Send>, ImageError> {
    let f = fs::File::open(path).map_err(ImageError::io(format!("opening {}", path.display())))?;
    decompress(BufReader::with_capacity(256 * 1024, f))
        .map_err(ImageError::io(format!("reading {}", path.display())))
}

pub(crate) fn decompress<R: BufRead + Send + 'static>(
    mut r: R,
) -> io::Result<Box<dyn Read + Send>> {
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

/// A layer entry's path made relative and free of `..`, or None for the root itself.
fn clean_path(p: &Path) -> Result<Option<PathBuf>, ImageError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::Format(format!(
                    "layer entry {} escapes the root",
                    p.display()
                )));
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Makes a 0/0 character device, overlayfs's whiteout.
pub(crate) fn make_whiteout(path: &Path) -> Result<(), ImageError> {
    use rustix::fs::{CWD, FileType, Mode, makedev, mknodat};
    mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        makedev(0, 0),
    )
    .map_err(|e| io_err(format!("creating whiteout {}", path.display()), e.into()))
}

/// Removes whatever is at `path` (file, symlink or tree), if anything.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Unpacks the layer blob at `blob` into `dest` (which must not exist yet) unless it is already there,
/// checking the uncompressed stream against `diff_id`. Works in a temp dir next to `dest` and renames it
/// into place when complete.
pub(crate) fn unpack_layer(blob: &Path, diff_id: &str, dest: &Path) -> Result<(), ImageError> {
    if dest.is_dir() {
        return Ok(());
    }
    let parent = dest
        .parent()
        .ok_or_else(|| ImageError::Format("layer path has no parent".into()))?;
    let tmp = parent.join(format!("tmp-{}", random_suffix()));
    let res = unpack_into(blob, diff_id, &tmp).and_then(|()| match fs::rename(&tmp, dest) {
        Ok(()) => Ok(()),
        // Someone else unpacked the same layer meanwhile.
        Err(_) if dest.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(io_err(
            format!("moving unpacked layer into {}", dest.display()),
            e,
        )),
    });
    if res.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    res
}

/// Creates (and returns) the parent directory of layer entry `rel` inside `dir`, refusing to pass
/// through symlinks so that whiteouts and device nodes can never land outside the layer.
fn safe_parent(dir: &Path, rel: &Path) -> Result<PathBuf, ImageError> {
    let mut cur = dir.to_path_buf();
    for c in rel
        .parent()
        .map(|p| p.components().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(ImageError::Format(format!(
                    "layer entry {} passes through {} which is not a directory",
                    rel.display(),
                    cur.display()
                )));
            }
            Err(_) => fs::create_dir(&cur)
                .map_err(ImageError::io(format!("creating {}", cur.display())))?,
        }
    }
    Ok(cur)
}

/// Creates a device node or FIFO from a tar entry, with its owner and mode.
fn make_special<R: Read>(entry: &tar::Entry<'_, R>, target: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, FileType, Mode, makedev, mknodat};
    let h = entry.header();
    let kind = h.entry_type();
    let ft = if kind.is_character_special() {
        FileType::CharacterDevice
    } else if kind.is_block_special() {
        FileType::BlockDevice
    } else {
        FileType::Fifo
    };
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    let mode = h.mode()? & 0o7777;
    remove_any(target)?;
    mknodat(
        CWD,
        target,
        ft,
        Mode::from_raw_mode(mode),
        makedev(major, minor),
    )?;
    std::os::unix::fs::lchown(target, Some(h.uid()? as u32), Some(h.gid()? as u32))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(target, fs::Permissions::from_mode(mode))
}

fn unpack_into(blob: &Path, diff_id: &str, dir: &Path) -> Result<(), ImageError> {
    fs::create_dir(dir).map_err(ImageError::io(format!("creating {}", dir.display())))?;
    let reader = open_decompressed(blob)?;
    let mut hr = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
        count: 0,
    };
    let ctx = |what: &str| format!("unpacking layer {} ({what})", blob.display());
    {
        let mut ar = tar::Archive::new(&mut hr);
        ar.set_preserve_permissions(true);
        ar.set_preserve_ownerships(true);
        ar.set_preserve_mtime(true);
        ar.set_unpack_xattrs(true);
        ar.set_overwrite(true);
        let entries = ar.entries().map_err(|e| io_err(ctx("reading tar"), e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| io_err(ctx("reading tar entry"), e))?;
            let raw = entry
                .path()
                .map_err(|e| io_err(ctx("entry path"), e))?
                .into_owned();
            let Some(rel) = clean_path(&raw)? else {
                continue;
            };
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let kind = entry.header().entry_type();
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let parent = safe_parent(dir, &rel)?;
                if hidden == ".wh..opq" {
                    rustix::fs::setxattr(
                        &parent,
                        OPAQUE_XATTR,
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(|e| {
                        io_err(format!("marking {} opaque", parent.display()), e.into())
                    })?;
                } else if !hidden.is_empty() && hidden != "." && hidden != ".." {
                    let target = parent.join(hidden);
                    remove_any(&target).map_err(|e| io_err(ctx("replacing by whiteout"), e))?;
                    make_whiteout(&target)?;
                }
                continue;
            }
            if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                // tar would write these as regular files.
                let target = safe_parent(dir, &rel)?.join(rel.file_name().unwrap_or_default());
                make_special(&entry, &target)
                    .map_err(|e| io_err(format!("creating {}", target.display()), e))?;
                continue;
            }
            // Hard links point at earlier entries by their archive path; tar's unpack_in resolves them
            // inside `dir` and refuses paths that escape it.
            entry.unpack_in(dir).map_err(|e| {
                io_err(
                    format!("unpacking {} from layer {}", rel.display(), blob.display()),
                    e,
                )
            })?;
        }
    }
    // Hash the tar's trailing padding too.
    io::copy(&mut hr, &mut io::sink()).map_err(|e| io_err(ctx("reading to the end"), e))?;
    let actual = hex_digest(hr.hasher);
    if actual != diff_id {
        return Err(ImageError::DigestMismatch {
            expected: diff_id.to_string(),
            actual,
        });
    }
    Ok(())
}
