//! Per-container root filesystems: an overlay mount of the shared layers, or a private copy.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::io_err;
use crate::layers::{OPAQUE_XATTR, remove_any};
use crate::{ImageError, RootfsMode};

/// Marks a completed copy-mode rootfs (a copy interrupted halfway is redone).
const COPY_MARKER: &str = ".rootfs-copied";
/// The kernel limits mount data to one page.
const MAX_MOUNT_DATA: usize = 4000;

/// The mount id of `path` (differs from its parent's when `path` is a mount point).
fn mount_id(path: &Path) -> io::Result<u64> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let st = statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID)?;
    Ok(st.stx_mnt_id)
}

pub(crate) fn is_mountpoint(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return false;
    };
    match (mount_id(path), mount_id(parent)) {
        (Ok(a), Ok(b)) => a != b,
        _ => false,
    }
}

pub(crate) fn mount(
    layers: &[PathBuf],
    dir: &Path,
    mode: RootfsMode,
) -> Result<PathBuf, ImageError> {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(dir).map_err(ImageError::io(format!("creating {}", dir.display())))?;
    if is_mountpoint(&rootfs) || dir.join(COPY_MARKER).exists() {
        return Ok(rootfs);
    }
    if mode != RootfsMode::Copy {
        match mount_overlay(layers, dir, &rootfs) {
            Ok(()) => return Ok(rootfs),
            Err(e) if mode == RootfsMode::Overlay => return Err(e),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "overlay mount failed; copying the image instead");
                cleanup(dir)?;
            }
        }
    }
    copy_rootfs(layers, dir, &rootfs)?;
    Ok(rootfs)
}

fn mount_overlay(layers: &[PathBuf], dir: &Path, rootfs: &Path) -> Result<(), ImageError> {
    use rustix::mount::{MountFlags, mount};
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [rootfs, &upper, &work] {
        fs::create_dir_all(d).map_err(ImageError::io(format!("creating {}", d.display())))?;
    }
    if layers.is_empty() {
        return Err(ImageError::Format("image has no layers to mount".into()));
    }
    let utf8 = |p: &Path| -> Result<String, ImageError> {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| ImageError::Format(format!("path {} is not UTF-8", p.display())))
    };
    let lowers: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| utf8(l))
        .collect::<Result<_, _>>()?;
    let (upper, work) = (utf8(&upper)?, utf8(&work)?);
    let data = format!(
        "lowerdir={},upperdir={upper},workdir={work}",
        lowers.join(":")
    );
    let unescapable = lowers
        .iter()
        .chain([&upper, &work])
        .any(|p| p.contains([',', ':', '\\']));
    if data.len() > MAX_MOUNT_DATA || unescapable {
        // Too long for one page of mount data, or unescapable characters: pass the layers one by one
        // through the new mount API (`lowerdir+`, Linux 6.8+).
        return mount_overlay_fsconfig(&lowers, &upper, &work, rootfs).map_err(|e| {
            io_err(
                format!(
                    "mounting overlay of {} layers at {} with fsconfig lowerdir+ (needs Linux 6.8+)",
                    layers.len(),
                    rootfs.display()
                ),
                e.into(),
            )
        });
    }
    let cdata =
        std::ffi::CString::new(data.clone()).map_err(|e| ImageError::Format(e.to_string()))?;
    mount(
        "overlay",
        rootfs,
        "overlay",
        MountFlags::empty(),
        Some(cdata.as_c_str()),
    )
    .map_err(|e| {
        io_err(
            format!("mounting overlay at {} ({data})", rootfs.display()),
            e.into(),
        )
    })
}

fn mount_overlay_fsconfig(
    lowers: &[String],
    upper: &str,
    work: &str,
    target: &Path,
) -> rustix::io::Result<()> {
    use rustix::fs::CWD;
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create,
        fsconfig_set_string, fsmount, fsopen, move_mount,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in lowers {
        fsconfig_set_string(&fs, "lowerdir+", l.as_str())?;
    }
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

pub(crate) fn unmount(dir: &Path) -> Result<(), ImageError> {
    use rustix::mount::{UnmountFlags, unmount};
    let rootfs = dir.join("rootfs");
    let mut tries = 0;
    while is_mountpoint(&rootfs) {
        tries += 1;
        let flags = if tries > 1 {
            UnmountFlags::DETACH
        } else {
            UnmountFlags::empty()
        };
        if let Err(e) = unmount(&rootfs, flags) {
            if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT {
                break;
            }
            if tries > 3 {
                return Err(io_err(format!("unmounting {}", rootfs.display()), e.into()));
            }
        }
    }
    if is_mountpoint(&rootfs) {
        return Err(ImageError::Io {
            context: format!("unmounting {}", rootfs.display()),
            source: io::Error::other("still mounted"),
        });
    }
    cleanup(dir)
}

fn cleanup(dir: &Path) -> Result<(), ImageError> {
    // The marker goes first so a half-deleted copy is never taken for a complete one.
    for name in [COPY_MARKER, "rootfs", "upper", "work"] {
        let p = dir.join(name);
        remove_any(&p).map_err(ImageError::io(format!("removing {}", p.display())))?;
    }
    Ok(())
}

fn copy_rootfs(layers: &[PathBuf], dir: &Path, rootfs: &Path) -> Result<(), ImageError> {
    remove_any(rootfs).map_err(ImageError::io(format!(
        "removing stale {}",
        rootfs.display()
    )))?;
    fs::create_dir_all(rootfs).map_err(ImageError::io(format!("creating {}", rootfs.display())))?;
    for layer in layers {
        let mut links = HashMap::new();
        apply_dir(layer, rootfs, &mut links).map_err(|e| {
            io_err(
                format!(
                    "copying layer {} into {}",
                    layer.display(),
                    rootfs.display()
                ),
                e,
            )
        })?;
    }
    let marker = dir.join(COPY_MARKER);
    fs::write(&marker, b"").map_err(ImageError::io(format!("writing {}", marker.display())))
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

fn set_owner_mode(path: &Path, md: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(md.uid()), Some(md.gid()))?;
    if !md.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    Ok(())
}

/// Copies one layer directory over `dst`, applying whiteouts (0/0 char devices delete, opaque directories
/// hide what lower layers put there).
fn apply_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    if is_opaque(src) {
        for e in fs::read_dir(dst)? {
            remove_any(&e?.path())?;
        }
    }
    for e in fs::read_dir(src)? {
        let e = e?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let md = fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            remove_any(&to)?;
            continue;
        }
        if ft.is_dir() {
            match fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&to)?;
                    fs::create_dir(&to)?;
                }
                Err(_) => fs::create_dir(&to)?,
            }
            apply_dir(&from, &to, links)?;
            set_owner_mode(&to, &md)?;
            continue;
        }
        remove_any(&to)?;
        if md.nlink() > 1
            && let Some(first) = links.get(&(md.dev(), md.ino()))
        {
            fs::hard_link(first, &to)?;
            continue;
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
        } else {
            use rustix::fs::{CWD, FileType, Mode, mknodat};
            let kind = FileType::from_raw_mode(md.mode());
            mknodat(
                CWD,
                &to,
                kind,
                Mode::from_raw_mode(md.mode() & 0o7777),
                md.rdev(),
            )
            .map_err(io::Error::from)?;
        }
        set_owner_mode(&to, &md)?;
        if md.nlink() > 1 {
            links.insert((md.dev(), md.ino()), to);
        }
    }
    Ok(())
}
