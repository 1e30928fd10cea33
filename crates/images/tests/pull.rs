//! Pulls from a real docker-registry on loopback (plain HTTP), images pushed with skopeo.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;

use common::*;
use images::testing::{Registry, busybox_archive, push};
use images::{ImageError, PullOptions, PullPolicy, RegistryAuth, RootfsMode};

#[tokio::test]
async fn pull_busybox_and_run_it() {
    require_root();
    let reg = Registry::start();
    let target = format!("{}/busybox:latest", reg.addr());
    push(&busybox_archive(), &target, None);
    let (tmp, store) = store();
    let seen = Mutex::new(Vec::new());
    let progress = |p: images::PullProgress| seen.lock().unwrap().push(p);
    let img = store
        .ensure(
            &target,
            PullPolicy::IfNotPresent,
            &PullOptions::default(),
            &progress,
        )
        .await
        .unwrap();
    assert_eq!(img.references, vec![target.clone()]);
    assert_eq!(img.repo_digests.len(), 1);
    assert!(
        img.repo_digests[0].starts_with(&format!("{}/busybox@sha256:", reg.addr())),
        "{:?}",
        img.repo_digests
    );
    assert!(img.id.starts_with("sha256:") && img.id.len() == 71);
    assert_eq!(img.config.cmd, vec!["sh"]);
    assert!(img.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert!(img.size > 500_000, "size {}", img.size);
    let seen = seen.into_inner().unwrap();
    let last = seen.last().expect("progress reported");
    assert_eq!(last.done_bytes, last.total_bytes);
    assert_eq!(last.total_bytes, img.size);

    assert_eq!(store.get(&img.id).unwrap().unwrap(), img);
    assert_eq!(store.get(&img.id[7..19]).unwrap().unwrap().id, img.id);
    assert_eq!(store.get(&img.repo_digests[0]).unwrap().unwrap().id, img.id);
    assert!(
        store
            .get("docker.io/library/busybox:latest")
            .unwrap()
            .is_none()
    );

    let cdir = tmp.path().join("ctr1");
    {
        let m = Mounted::new(&store, &img, &cdir, RootfsMode::Overlay);
        assert_eq!(chroot_echo(&m.rootfs, "hi"), "hi");
        assert_eq!(
            chroot_sh(&m.rootfs, "echo hello from sh; id -u nobody"),
            "hello from sh\n65534"
        );
        // Idempotent.
        assert_eq!(store.mount_rootfs(&img, &cdir).unwrap(), m.rootfs);
        // Writes land in upper, not in the shared layer: a second container does not see them.
        std::fs::write(m.rootfs.join("tmp/scratch"), b"x").unwrap();
        assert!(cdir.join("upper/tmp/scratch").exists());
        let m2 = Mounted::new(&store, &img, &tmp.path().join("ctr2"), RootfsMode::Auto);
        assert!(!m2.rootfs.join("tmp/scratch").exists());
        assert_eq!(chroot_echo(&m2.rootfs, "two"), "two");
    }
    assert!(
        !cdir.join("rootfs").exists()
            && !cdir.join("upper").exists()
            && !cdir.join("work").exists()
    );
    store.unmount_rootfs(&cdir).unwrap();

    // Reopening the store finds the image.
    let reopened = images::ImageStore::open(store.root()).unwrap();
    assert_eq!(reopened.get(&target).unwrap().unwrap().id, img.id);
}

#[tokio::test]
async fn if_not_present_works_offline_and_always_does_not() {
    require_root();
    let reg = Registry::start();
    let target = format!("{}/busybox:1", reg.addr());
    push(&busybox_archive(), &target, None);
    let (_tmp, store) = store();
    let opts = PullOptions::default();
    let img = store
        .ensure(&target, PullPolicy::IfNotPresent, &opts, &noop)
        .await
        .unwrap();
    assert_eq!(store.registry_pulls(), 1);
    drop(reg);
    let again = store
        .ensure(&target, PullPolicy::IfNotPresent, &opts, &noop)
        .await
        .unwrap();
    assert_eq!(again.id, img.id);
    let never = store
        .ensure(&target, PullPolicy::Never, &opts, &noop)
        .await
        .unwrap();
    assert_eq!(never.id, img.id);
    assert_eq!(store.registry_pulls(), 1);
    let err = store
        .ensure(&target, PullPolicy::Always, &opts, &noop)
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn always_rechecks_the_tag() {
    require_root();
    let reg = Registry::start();
    let target = format!("{}/app:v1", reg.addr());
    push(&busybox_archive(), &target, None);
    let (tmp, store) = store();
    let opts = PullOptions::default();
    let first = store
        .ensure(&target, PullPolicy::Always, &opts, &noop)
        .await
        .unwrap();
    push(&custom_archive(tmp.path(), "second"), &target, None);
    let cached = store
        .ensure(&target, PullPolicy::IfNotPresent, &opts, &noop)
        .await
        .unwrap();
    assert_eq!(cached.id, first.id);
    assert_eq!(store.registry_pulls(), 1);
    let second = store
        .ensure(&target, PullPolicy::Always, &opts, &noop)
        .await
        .unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(store.registry_pulls(), 2);
    assert_eq!(store.get(&target).unwrap().unwrap().id, second.id);
    assert!(
        store.get(&first.id).unwrap().unwrap().references.is_empty(),
        "the tag moved to the new image"
    );
    let m = Mounted::new(&store, &second, &tmp.path().join("c"), RootfsMode::Overlay);
    assert_eq!(
        std::fs::read_to_string(m.rootfs.join("etc/marker")).unwrap(),
        "second"
    );
}

#[tokio::test]
async fn never_without_image_is_not_present() {
    let (_tmp, store) = store();
    let err = store
        .ensure("busybox", PullPolicy::Never, &PullOptions::default(), &noop)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::NotPresent(r) if r == "docker.io/library/busybox:latest"),
        "{err}"
    );
    let err = store
        .ensure(
            "Not A Ref",
            PullPolicy::Always,
            &PullOptions::default(),
            &noop,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
}

#[tokio::test]
async fn registry_down_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_tmp, store) = store();
    let err = store
        .ensure(
            &format!("127.0.0.1:{port}/busybox"),
            PullPolicy::IfNotPresent,
            &PullOptions::default(),
            &noop,
        )
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn missing_tag_and_repo_are_not_found() {
    let reg = Registry::start();
    push(
        &busybox_archive(),
        &format!("{}/busybox:latest", reg.addr()),
        None,
    );
    let (_tmp, store) = store();
    for r in [
        format!("{}/busybox:nope", reg.addr()),
        format!("{}/nothing:latest", reg.addr()),
    ] {
        let err = store
            .ensure(&r, PullPolicy::IfNotPresent, &PullOptions::default(), &noop)
            .await
            .unwrap_err();
        eprintln!("{err}");
        assert!(matches!(err, ImageError::NotFound { .. }), "{r}: {err}");
    }
    assert!(dir_is_empty(&store.root().join("blobs/sha256")));
}

#[tokio::test]
async fn basic_auth() {
    let reg = Registry::with_basic_auth("drover", "s3cret");
    let target = format!("{}/private/busybox:latest", reg.addr());
    push(&busybox_archive(), &target, Some(("drover", "s3cret")));
    let (_tmp, store) = store();
    let with = |u: &str, p: &str| PullOptions {
        auth: Some(RegistryAuth {
            username: u.into(),
            password: p.into(),
        }),
        ..Default::default()
    };
    for opts in [
        PullOptions::default(),
        with("drover", "wrong"),
        with("nobody", "s3cret"),
    ] {
        let err = store
            .ensure(&target, PullPolicy::IfNotPresent, &opts, &noop)
            .await
            .unwrap_err();
        eprintln!("{err}");
        assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    }
    let img = store
        .ensure(
            &target,
            PullPolicy::IfNotPresent,
            &with("drover", "s3cret"),
            &noop,
        )
        .await
        .unwrap();
    assert_eq!(img.references, vec![target]);
}

#[tokio::test]
async fn corrupted_layer_is_a_digest_mismatch_and_leaves_nothing() {
    let reg = Registry::start();
    let target = format!("{}/busybox:latest", reg.addr());
    push(&busybox_archive(), &target, None);
    // Find the layer blob through the registry's storage: the largest blob is the busybox layer.
    let blobs = reg.storage_dir().join("docker/registry/v2/blobs/sha256");
    let mut largest = (0, std::path::PathBuf::new());
    for prefix in std::fs::read_dir(&blobs).unwrap() {
        for b in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let data = b.unwrap().path().join("data");
            let len = std::fs::metadata(&data).unwrap().len();
            if len > largest.0 {
                largest = (len, data);
            }
        }
    }
    let mut bytes = std::fs::read(&largest.1).unwrap();
    for b in bytes.iter_mut().skip(1000).take(64) {
        *b ^= 0xff;
    }
    std::fs::write(&largest.1, &bytes).unwrap();
    let (_tmp, store) = store();
    let err = store
        .ensure(
            &target,
            PullPolicy::IfNotPresent,
            &PullOptions::default(),
            &noop,
        )
        .await
        .unwrap_err();
    eprintln!("{err}");
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, actual } if expected != actual),
        "{err}"
    );
    assert!(
        dir_is_empty(&store.root().join("blobs/sha256")),
        "blobs left behind"
    );
    assert!(
        dir_is_empty(&store.root().join("layers")),
        "layers left behind"
    );
    assert!(
        dir_is_empty(&store.root().join("tmp")),
        "staging left behind"
    );
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ensure_pulls_once() {
    let reg = Registry::start();
    let target = format!("{}/busybox:latest", reg.addr());
    push(&busybox_archive(), &target, None);
    let (_tmp, store) = store();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (s, t) = (store.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            s.ensure(&t, PullPolicy::IfNotPresent, &PullOptions::default(), &noop)
                .await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(store.registry_pulls(), 1);
    assert_eq!(store.list().unwrap().len(), 1);
}

fn skopeo(args: &[String]) {
    let out = std::process::Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn docker_schema2_manifests() {
    require_root();
    let reg = Registry::start();
    let target = format!("{}/v2s2/busybox:latest", reg.addr());
    skopeo(&[
        "copy".into(),
        "--quiet".into(),
        "--dest-tls-verify=false".into(),
        "--format=v2s2".into(),
        format!("oci-archive:{}", busybox_archive().display()),
        format!("docker://{target}"),
    ]);
    let (tmp, store) = store();
    let img = store
        .ensure(
            &target,
            PullPolicy::IfNotPresent,
            &PullOptions::default(),
            &noop,
        )
        .await
        .unwrap();
    assert_eq!(img.config.cmd, vec!["sh"]);
    let m = Mounted::new(&store, &img, &tmp.path().join("c"), RootfsMode::Overlay);
    assert_eq!(chroot_echo(&m.rootfs, "v2s2"), "v2s2");
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

#[tokio::test]
async fn multi_arch_index_picks_this_platform() {
    require_root();
    let (tmp, store) = store();
    // An OCI layout whose index.json points at an image index with an arm64 image listed first.
    let layout = tmp.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    assert!(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(busybox_archive())
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    let blob = |d: &str| layout.join("blobs/sha256").join(&d[7..]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let amd64_desc = index["manifests"][0].clone();
    let amd64: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(amd64_desc["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(amd64["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    cfg["architecture"] = "arm64".into();
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    std::fs::write(blob(&sha(&cfg_bytes)), &cfg_bytes).unwrap();
    let mut arm = amd64.clone();
    arm["config"]["digest"] = sha(&cfg_bytes).into();
    arm["config"]["size"] = cfg_bytes.len().into();
    let arm_bytes = serde_json::to_vec(&arm).unwrap();
    std::fs::write(blob(&sha(&arm_bytes)), &arm_bytes).unwrap();
    let mut amd_entry = amd64_desc.clone();
    amd_entry.as_object_mut().unwrap().remove("annotations");
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&arm_bytes), "size": arm_bytes.len(),
             "platform": {"architecture": "arm64", "os": "linux"}},
            amd_entry,
        ],
    });
    let list_bytes = serde_json::to_vec(&list).unwrap();
    let list_digest = sha(&list_bytes);
    std::fs::write(blob(&list_digest), &list_bytes).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": list_digest, "size": list_bytes.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "example.com/multi:1"}}],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let busybox_id = store.import(&busybox_archive()).unwrap()[0].id.clone();

    // Import picks amd64.
    let imported = store.import(&layout).unwrap().remove(0);
    assert_eq!(imported.id, busybox_id);
    assert!(
        imported
            .references
            .contains(&"example.com/multi:1".to_string()),
        "{:?}",
        imported.references
    );

    // So does a pull of the index from a registry, which reports the index digest.
    let reg = Registry::start();
    let target = format!("{}/multi:1", reg.addr());
    skopeo(&[
        "copy".into(),
        "--quiet".into(),
        "--all".into(),
        "--dest-tls-verify=false".into(),
        format!("oci:{}", layout.display()),
        format!("docker://{target}"),
    ]);
    let (_tmp2, store2) = common::store();
    let pulled = store2
        .ensure(
            &target,
            PullPolicy::IfNotPresent,
            &PullOptions::default(),
            &noop,
        )
        .await
        .unwrap();
    assert_eq!(pulled.id, busybox_id);
    assert_eq!(
        pulled.repo_digests,
        vec![format!("{}/multi@{list_digest}", reg.addr())]
    );
    // Pulling by that digest finds the same image without a second download.
    let by_digest = format!("{}/multi@{list_digest}", reg.addr());
    let again = store2
        .ensure(
            &by_digest,
            PullPolicy::IfNotPresent,
            &PullOptions::default(),
            &noop,
        )
        .await
        .unwrap();
    assert_eq!(again.id, busybox_id);
    assert_eq!(store2.registry_pulls(), 1);
}

#[tokio::test]
async fn pull_zstd_layers() {
    require_root();
    use images::oci_archive::{LayerCompression, write_oci_archive_with};
    let (tmp, store) = store();
    let out = tmp.path().join("zstd.tar");
    let base = images::busybox::layer_tar(std::path::Path::new("/usr/bin/busybox")).unwrap();
    write_oci_archive_with(
        &[base],
        &images::busybox::config(),
        "example.com/z:1",
        &out,
        LayerCompression::Zstd,
    )
    .unwrap();
    let reg = Registry::start();
    let target = format!("{}/zstd:1", reg.addr());
    push(&out, &target, None);
    let img = store
        .ensure(
            &target,
            PullPolicy::IfNotPresent,
            &PullOptions::default(),
            &noop,
        )
        .await
        .unwrap();
    let m = Mounted::new(&store, &img, &tmp.path().join("c"), RootfsMode::Overlay);
    assert_eq!(chroot_echo(&m.rootfs, "zstd"), "zstd");
}
