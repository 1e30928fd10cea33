#![allow(dead_code)]
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use images::{Image, ImageStore, PullProgress, RootfsMode};

pub fn require_root() {
    let uid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    assert_eq!(
        uid, 0,
        "these tests mount overlayfs and chroot: run them as root"
    );
}

pub fn noop(_: PullProgress) {}

/// A fresh store in a temp dir (declare before any `Mounted` so it drops last).
pub fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::Builder::new()
        .prefix("drover-images-test-")
        .tempdir()
        .unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// A mounted rootfs, unmounted on drop (even when the test fails).
pub struct Mounted {
    pub store: ImageStore,
    pub dir: PathBuf,
    pub rootfs: PathBuf,
}

impl Mounted {
    pub fn new(store: &ImageStore, image: &Image, dir: &Path, mode: RootfsMode) -> Mounted {
        let rootfs = store.mount_rootfs_with(image, dir, mode).unwrap();
        Mounted {
            store: store.clone(),
            dir: dir.to_path_buf(),
            rootfs,
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.store.unmount_rootfs(&self.dir);
    }
}

/// Runs `busybox echo` inside the rootfs via chroot.
pub fn chroot_echo(rootfs: &Path, word: &str) -> String {
    let out = Command::new("chroot")
        .arg(rootfs)
        .args(["/bin/busybox", "echo", word])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chroot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `/bin/sh -c script` inside the rootfs via chroot.
pub fn chroot_sh(rootfs: &Path, script: &str) -> String {
    let out = Command::new("chroot")
        .arg(rootfs)
        .args(["/bin/sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chroot sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An archive of busybox plus one more layer holding `marker` (so it has a different id).
pub fn custom_archive(dir: &Path, marker: &str) -> PathBuf {
    let base = images::busybox::layer_tar(Path::new("/usr/bin/busybox")).unwrap();
    let mut l2 = images::oci_archive::LayerBuilder::new();
    l2.file("etc/marker", 0o644, marker.as_bytes()).unwrap();
    let out = dir.join(format!("custom-{marker}.tar"));
    images::oci_archive::write_oci_archive(
        &[base, l2.finish().unwrap()],
        &images::busybox::config(),
        "docker.io/library/custom:latest",
        &out,
    )
    .unwrap();
    out
}

pub fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut r| r.next().is_none())
        .unwrap_or(true)
}
