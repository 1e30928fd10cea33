//! Imports, whiteouts, rootfs copies and garbage collection (no registry).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;
use images::oci_archive::{LayerBuilder, write_oci_archive};
use images::testing::busybox_archive;
use images::{ImageError, PullOptions, PullPolicy, RootfsMode};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

#[test]
fn import_oci_archive_and_run() {
    require_root();
    let (tmp, store) = store();
    let imgs = store.import(&busybox_archive()).unwrap();
    assert_eq!(imgs.len(), 1);
    let img = &imgs[0];
    assert_eq!(img.references, vec![BUSYBOX.to_string()]);
    assert!(img.repo_digests[0].starts_with("docker.io/library/busybox@sha256:"));
    assert_eq!(store.get("busybox").unwrap().unwrap().id, img.id);
    let m = Mounted::new(&store, img, &tmp.path().join("c"), RootfsMode::Overlay);
    assert_eq!(chroot_echo(&m.rootfs, "hi"), "hi");
    // The layout the busybox archive promises.
    let tmpdir = std::fs::metadata(m.rootfs.join("tmp")).unwrap();
    assert_eq!(tmpdir.permissions().mode() & 0o7777, 0o1777);
    assert!(m.rootfs.join("var/www").is_dir() && m.rootfs.join("root").is_dir());
    assert_eq!(
        std::fs::read_link(m.rootfs.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert!(
        std::fs::read_to_string(m.rootfs.join("etc/passwd"))
            .unwrap()
            .contains("nobody:x:65534:65534")
    );
    // Importing again is a no-op that returns the same image.
    assert_eq!(store.import(&busybox_archive()).unwrap()[0].id, img.id);
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn import_gzipped_archive_and_layout_dir() {
    require_root();
    let (tmp, store) = store();
    let gz = tmp.path().join("busybox.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(busybox_archive()).unwrap())
        .unwrap();
    enc.finish().unwrap();
    let a = store.import(&gz).unwrap();
    assert_eq!(a[0].references, vec![BUSYBOX.to_string()]);

    let (_tmp2, store2) = common::store();
    let layout = tmp.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(busybox_archive())
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    let b = store2.import(&layout).unwrap();
    assert_eq!(b[0].id, a[0].id);
    let m = Mounted::new(&store2, &b[0], &tmp.path().join("c"), RootfsMode::Auto);
    assert_eq!(chroot_echo(&m.rootfs, "layout"), "layout");
}

#[test]
fn import_docker_archive() {
    require_root();
    let (tmp, store) = store();
    let out = tmp.path().join("docker.tar");
    let st = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(format!("oci-archive:{}", busybox_archive().display()))
        .arg(format!(
            "docker-archive:{}:example.com/tools/busybox:1.0",
            out.display()
        ))
        .status()
        .expect("skopeo (apt-get install -y skopeo)");
    assert!(st.success());
    let imgs = store.import(&out).unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(
        imgs[0].references,
        vec!["example.com/tools/busybox:1.0".to_string()]
    );
    assert_eq!(imgs[0].config.cmd, vec!["sh"]);
    let m = Mounted::new(&store, &imgs[0], &tmp.path().join("c"), RootfsMode::Overlay);
    assert_eq!(chroot_echo(&m.rootfs, "docker"), "docker");
    // Same config as the OCI archive, so the same id.
    let (_t2, store2) = common::store();
    assert_eq!(store2.import(&busybox_archive()).unwrap()[0].id, imgs[0].id);
}

#[test]
fn import_rejects_garbage_and_bad_digests() {
    let (tmp, store) = store();
    let junk = tmp.path().join("junk.tar");
    let mut b = LayerBuilder::new();
    b.file("hello", 0o644, b"x").unwrap();
    std::fs::write(&junk, b.finish().unwrap()).unwrap();
    assert!(matches!(store.import(&junk), Err(ImageError::Format(_))));

    // A layout whose layer blob was tampered with.
    let layout = tmp.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(busybox_archive())
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = std::fs::read(&biggest).unwrap();
    data[5000] ^= 0xff;
    std::fs::write(&biggest, data).unwrap();
    let err = store.import(&layout).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(dir_is_empty(&store.root().join("blobs/sha256")));
    assert!(dir_is_empty(&store.root().join("layers")));
}

/// Busybox plus a layer 2 that deletes /etc/gone, replaces /data/old wholesale, and adds files.
fn whiteout_image(dir: &Path) -> std::path::PathBuf {
    let mut l1 = LayerBuilder::new();
    l1.dir("data", 0o755).unwrap();
    l1.file("data/keep", 0o644, b"keep").unwrap();
    l1.dir("data/old", 0o755).unwrap();
    l1.file("data/old/x", 0o644, b"x").unwrap();
    l1.file("etc/gone", 0o644, b"gone").unwrap();
    l1.dir("data/tree", 0o755).unwrap();
    l1.file("data/tree/leaf", 0o600, b"leaf").unwrap();
    l1.hardlink("data/keep-link", "data/keep").unwrap();
    let mut l2 = LayerBuilder::new();
    l2.whiteout("etc/gone").unwrap();
    l2.whiteout("data/tree").unwrap();
    l2.opaque("data/old").unwrap();
    l2.file("data/old/new", 0o644, b"new").unwrap();
    l2.file("data/added", 0o640, b"added").unwrap();
    let base = images::busybox::layer_tar(Path::new("/usr/bin/busybox")).unwrap();
    let out = dir.join("whiteouts.tar");
    write_oci_archive(
        &[base, l1.finish().unwrap(), l2.finish().unwrap()],
        &images::busybox::config(),
        "example.com/whiteouts:1",
        &out,
    )
    .unwrap();
    out
}

fn check_whiteouts(rootfs: &Path) {
    assert!(!rootfs.join("etc/gone").exists(), "whiteout ignored");
    assert!(rootfs.join("etc/passwd").exists());
    assert!(
        !rootfs.join("data/tree").exists(),
        "directory whiteout ignored"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/keep")).unwrap(),
        "keep"
    );
    assert!(
        !rootfs.join("data/old/x").exists(),
        "opaque directory leaked a lower file"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/old/new")).unwrap(),
        "new"
    );
    let added = std::fs::metadata(rootfs.join("data/added")).unwrap();
    assert_eq!(added.permissions().mode() & 0o777, 0o640);
    let keep = std::fs::metadata(rootfs.join("data/keep")).unwrap();
    let link = std::fs::metadata(rootfs.join("data/keep-link")).unwrap();
    assert_eq!(
        (keep.ino(), keep.nlink()),
        (link.ino(), 2),
        "hard link not preserved"
    );
    // And as the container sees it.
    assert_eq!(
        chroot_sh(
            rootfs,
            "ls /data | tr '\\n' ' '; cat /etc/gone 2>/dev/null || echo absent"
        ),
        "added keep keep-link old absent"
    );
}

#[test]
fn whiteouts_in_overlay_and_copy() {
    require_root();
    let (tmp, store) = store();
    let img = store.import(&whiteout_image(tmp.path())).unwrap().remove(0);
    assert_eq!(img.references, vec!["example.com/whiteouts:1".to_string()]);
    {
        let m = Mounted::new(
            &store,
            &img,
            &tmp.path().join("overlay"),
            RootfsMode::Overlay,
        );
        check_whiteouts(&m.rootfs);
        // Deleting in one container writes a whiteout into its upper dir only.
        std::fs::remove_file(m.rootfs.join("data/keep")).unwrap();
    }
    let m = Mounted::new(&store, &img, &tmp.path().join("copy"), RootfsMode::Copy);
    check_whiteouts(&m.rootfs);
    assert!(
        !tmp.path().join("copy/upper").exists(),
        "copy mode does not use overlay"
    );
    assert_eq!(
        store
            .mount_rootfs_with(&img, &tmp.path().join("copy"), RootfsMode::Copy)
            .unwrap(),
        m.rootfs
    );
    drop(m);
    assert!(!tmp.path().join("copy/rootfs").exists());
    store.unmount_rootfs(&tmp.path().join("copy")).unwrap();
}

#[tokio::test]
async fn gc_keeps_in_use_images_and_removes_lru_first() {
    let (tmp, store) = store();
    let busybox = store.import(&busybox_archive()).unwrap().remove(0);
    let a = store
        .import(&custom_archive(tmp.path(), "a"))
        .unwrap()
        .remove(0);
    // custom_archive names every image custom:latest, so tag b separately.
    let b = store
        .import(&custom_archive(tmp.path(), "b"))
        .unwrap()
        .remove(0);
    assert_ne!(a.id, b.id);
    assert!(
        store.get(&a.id).unwrap().unwrap().references.is_empty(),
        "tag moved to b"
    );
    // Use a after b: b is now the least recently used.
    store
        .ensure(&a.id, PullPolicy::Never, &PullOptions::default(), &noop)
        .await
        .unwrap();
    let in_use: HashSet<String> = [busybox.id.clone()].into();
    let freed = store.gc(&in_use, 1).unwrap();
    assert!(freed > 0);
    let left: Vec<String> = store.list().unwrap().into_iter().map(|i| i.id).collect();
    assert!(
        left.contains(&busybox.id) && left.contains(&a.id) && !left.contains(&b.id),
        "{left:?}"
    );
    // a's own layer went, the shared busybox layer stayed.
    let freed = store.gc(&in_use, u64::MAX).unwrap();
    assert!(freed > 0);
    assert_eq!(
        store
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        vec![busybox.id.clone()]
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("layers"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(store.gc(&in_use, u64::MAX).unwrap(), 0);
    // The survivor still mounts.
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        let m = Mounted::new(&store, &busybox, &tmp.path().join("c"), RootfsMode::Auto);
        assert_eq!(chroot_echo(&m.rootfs, "ok"), "ok");
    }
}

#[test]
fn remove_untags_then_deletes() {
    let (tmp, store) = store();
    let img = store.import(&busybox_archive()).unwrap().remove(0);
    // Give it a second tag by importing a docker-archive of the same image.
    let out = tmp.path().join("d.tar");
    assert!(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci-archive:{}", busybox_archive().display()))
            .arg(format!("docker-archive:{}:busybox:other", out.display()))
            .status()
            .unwrap()
            .success()
    );
    store.import(&out).unwrap();
    let both = store.get(&img.id).unwrap().unwrap();
    assert_eq!(both.references.len(), 2, "{:?}", both.references);
    store.remove("busybox:other").unwrap();
    assert_eq!(
        store.get(&img.id).unwrap().unwrap().references,
        vec![BUSYBOX.to_string()]
    );
    store.remove("busybox").unwrap();
    assert!(store.get(&img.id).unwrap().is_none());
    assert!(matches!(
        store.remove("busybox"),
        Err(ImageError::NoSuchImage(_))
    ));
    assert!(dir_is_empty(&store.root().join("layers")));
    assert!(dir_is_empty(&store.root().join("images")));
}

#[test]
fn zstd_and_uncompressed_layers() {
    require_root();
    use images::oci_archive::{LayerCompression, write_oci_archive_with};
    let (tmp, store) = store();
    let base = images::busybox::layer_tar(Path::new("/usr/bin/busybox")).unwrap();
    let mut ids = HashSet::new();
    for (i, c) in [
        LayerCompression::Zstd,
        LayerCompression::None,
        LayerCompression::Gzip,
    ]
    .into_iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("c{i}.tar"));
        write_oci_archive_with(
            std::slice::from_ref(&base),
            &images::busybox::config(),
            &format!("example.com/c:{i}"),
            &out,
            c,
        )
        .unwrap();
        let img = store.import(&out).unwrap().remove(0);
        ids.insert(img.id.clone());
        let m = Mounted::new(
            &store,
            &img,
            &tmp.path().join(format!("m{i}")),
            RootfsMode::Overlay,
        );
        assert_eq!(chroot_echo(&m.rootfs, "compressed"), "compressed");
    }
    // Same uncompressed content, same diff id: one image, one unpacked layer.
    assert_eq!(ids.len(), 1);
    assert_eq!(
        std::fs::read_dir(store.root().join("layers"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        4,
        "3 layer blobs + config"
    );
}

#[test]
fn many_layers_exceed_one_page_of_mount_options() {
    require_root();
    let (tmp, store) = store();
    let mut layers = vec![images::busybox::layer_tar(Path::new("/usr/bin/busybox")).unwrap()];
    for i in 0..50 {
        let mut l = LayerBuilder::new();
        l.file(&format!("layers/{i}"), 0o644, i.to_string().as_bytes())
            .unwrap();
        if i > 0 {
            l.whiteout(&format!("layers/{}", i - 1)).unwrap();
        }
        layers.push(l.finish().unwrap());
    }
    let out = tmp.path().join("many.tar");
    write_oci_archive(
        &layers,
        &images::busybox::config(),
        "example.com/many:1",
        &out,
    )
    .unwrap();
    let img = store.import(&out).unwrap().remove(0);
    for mode in [RootfsMode::Overlay, RootfsMode::Copy] {
        let m = Mounted::new(&store, &img, &tmp.path().join(format!("{mode:?}")), mode);
        assert_eq!(chroot_sh(&m.rootfs, "ls /layers"), "49", "{mode:?}");
        assert_eq!(chroot_echo(&m.rootfs, "deep"), "deep");
    }
}

#[test]
fn devices_fifos_and_symlink_escapes() {
    require_root();
    use std::os::unix::fs::FileTypeExt;
    let (tmp, store) = store();
    let base = images::busybox::layer_tar(Path::new("/usr/bin/busybox")).unwrap();
    let mut l = LayerBuilder::new();
    l.char_device("dev/null", 1, 3).unwrap();
    l.fifo("run/pipe").unwrap();
    let out = tmp.path().join("dev.tar");
    write_oci_archive(
        &[base.clone(), l.finish().unwrap()],
        &images::busybox::config(),
        "example.com/dev:1",
        &out,
    )
    .unwrap();
    let img = store.import(&out).unwrap().remove(0);
    for mode in [RootfsMode::Overlay, RootfsMode::Copy] {
        let m = Mounted::new(&store, &img, &tmp.path().join(format!("{mode:?}")), mode);
        let null = std::fs::metadata(m.rootfs.join("dev/null")).unwrap();
        assert!(
            null.file_type().is_char_device() && null.rdev() == 0x103,
            "{mode:?}: {null:?}"
        );
        assert!(
            std::fs::metadata(m.rootfs.join("run/pipe"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(
            chroot_sh(&m.rootfs, "echo quiet >/dev/null && echo fine"),
            "fine"
        );
    }

    // A whiteout reached through a symlink must not delete anything outside the layer.
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("file"), b"precious").unwrap();
    let mut evil = LayerBuilder::new();
    evil.symlink("evil", victim.to_str().unwrap()).unwrap();
    evil.whiteout("evil/file").unwrap();
    evil.char_device("evil/dev", 1, 3).unwrap();
    let out = tmp.path().join("evil.tar");
    write_oci_archive(
        &[evil.finish().unwrap()],
        &images::busybox::config(),
        "example.com/evil:1",
        &out,
    )
    .unwrap();
    let err = store.import(&out).unwrap_err();
    assert!(matches!(err, ImageError::Format(_)), "{err}");
    assert_eq!(std::fs::read(victim.join("file")).unwrap(), b"precious");
    assert!(!victim.join("dev").exists());
}
