//! End to end with a real node agent and a real registry (Debian's docker-registry on
//! loopback, images pushed with skopeo): pulls, pull failures and corrupted layers.

mod common;

use common::node::BUSYBOX;
use common::{Server, wait_for};
use std::time::Duration;

fn pod(name: &str, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: app
    image: {image}
    command: ["sleep", "3600"]
"#
    )
}

fn waiting_reason(p: &serde_json::Value) -> String {
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn events(s: &Server, pod: &str) -> String {
    s.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

/// Pushes a busybox image whose layer differs from the imported one (the binary gets a
/// few trailing bytes, which ELF ignores), so the node must really pull it.
fn push_busybox(s: &Server, reg: &images::testing::Registry, repo: &str) {
    let archive = s.dir.path().join("push.tar");
    let bin = s.dir.path().join("busybox-variant");
    let mut bytes = std::fs::read("/usr/bin/busybox").unwrap();
    bytes.extend_from_slice(format!("variant-{}", common::node::unique()).as_bytes());
    std::fs::write(&bin, bytes).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    s.drover(&[
        "image",
        "build-busybox",
        "--busybox",
        bin.to_str().unwrap(),
        "--tag",
        "drover.local/push:1",
        "--output",
        archive.to_str().unwrap(),
    ]);
    images::testing::push(&archive, &format!("{}/{repo}", reg.addr()), None);
}

#[test]
fn pods_pull_from_a_loopback_registry_with_events() {
    let reg = images::testing::Registry::start();
    let s = Server::start_with_node(&[]);
    push_busybox(&s, &reg, "tools/busybox:1.0");
    let image = format!("{}/tools/busybox:1.0", reg.addr());
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("pulled", &image));
    let p = s.wait_pod_ready("pulled");
    let image_id = p["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap();
    assert!(image_id.contains("@sha256:"), "{image_id}");
    let ev = events(&s, "pulled");
    assert!(ev.contains(&format!("Pulling image \"{image}\"")), "{ev}");
    assert!(ev.contains("Successfully pulled image"), "{ev}");
    let ls = s.drover(&["image", "ls", "--data-dir", s.dir.path().to_str().unwrap()]);
    assert!(
        ls.contains("tools/busybox:1.0") && ls.contains("busybox:1.36"),
        "{ls}"
    );
}

#[test]
fn missing_images_and_unreachable_registries_back_off() {
    let reg = images::testing::Registry::start();
    let s = Server::start_with_node(&[]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("nosuch", &format!("{}/nosuch/image:1.0", reg.addr())),
    );
    let p = s.wait_pod(
        "nosuch",
        "in ImagePullBackOff",
        Duration::from_secs(60),
        |p| waiting_reason(p) == "ImagePullBackOff",
    );
    assert_eq!(p["status"]["phase"], "Pending");
    let ev = events(&s, "nosuch");
    assert!(
        ev.contains("Failed to pull image") && ev.contains("ErrImagePull"),
        "{ev}"
    );
    // A registry that is down (nothing listens on its port any more).
    let down = reg.addr();
    drop(reg);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("unreachable", &format!("{down}/busybox:1.0")),
    );
    s.wait_pod(
        "unreachable",
        "failing to pull",
        Duration::from_secs(60),
        |p| {
            matches!(
                waiting_reason(p).as_str(),
                "ErrImagePull" | "ImagePullBackOff"
            )
        },
    );
    // imagePullPolicy Never without the image.
    let never = pod("never", "drover.local/absent:1")
        .replace("command:", "imagePullPolicy: Never\n    command:");
    s.kubectl_stdin(&["apply", "-f", "-"], &never);
    s.wait_pod("never", "ErrImageNeverPull", Duration::from_secs(30), |p| {
        waiting_reason(p) == "ErrImageNeverPull"
    });
    // The imported image still runs.
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("local", BUSYBOX));
    s.wait_pod_ready("local");
}

#[test]
fn a_corrupted_layer_is_refused_and_nothing_is_cached() {
    let reg = images::testing::Registry::start();
    let s = Server::start_with_node(&[]);
    push_busybox(&s, &reg, "bad/busybox:1.0");
    // Overwrite every layer blob in the registry's storage with other bytes.
    let mut corrupted = 0;
    let blobs = reg.storage_dir();
    for entry in walk(&blobs) {
        if entry.file_name().is_some_and(|n| n == "data")
            && std::fs::metadata(&entry)
                .map(|m| m.len() > 100_000)
                .unwrap_or(false)
        {
            let mut bytes = std::fs::read(&entry).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&entry, bytes).unwrap();
            corrupted += 1;
        }
    }
    assert!(
        corrupted >= 1,
        "no layer blob found under {}",
        blobs.display()
    );
    let image = format!("{}/bad/busybox:1.0", reg.addr());
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("corrupt", &image));
    wait_for("a digest error event", Duration::from_secs(60), || {
        let ev = events(&s, "corrupt");
        (ev.to_lowercase().contains("digest")).then_some(())
    });
    let ls = s.drover(&["image", "ls", "--data-dir", s.dir.path().to_str().unwrap()]);
    assert!(
        !ls.contains("bad/busybox"),
        "a corrupted image was cached: {ls}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn image_pull_secrets_authenticate_to_a_private_registry() {
    let reg = images::testing::Registry::with_basic_auth("puller", "s3cret");
    let s = Server::start_with_node(&[]);
    let archive = s.dir.path().join("private.tar");
    let bin = s.dir.path().join("busybox-private");
    let mut bytes = std::fs::read("/usr/bin/busybox").unwrap();
    bytes.extend_from_slice(format!("private-{}", common::node::unique()).as_bytes());
    std::fs::write(&bin, bytes).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    s.drover(&[
        "image",
        "build-busybox",
        "--busybox",
        bin.to_str().unwrap(),
        "--tag",
        "drover.local/private:1",
        "--output",
        archive.to_str().unwrap(),
    ]);
    images::testing::push(
        &archive,
        &format!("{}/team/app:1.0", reg.addr()),
        Some(("puller", "s3cret")),
    );
    let image = format!("{}/team/app:1.0", reg.addr());
    // Without credentials the registry refuses.
    s.kubectl_stdin(&["apply", "-f", "-"], &pod("anonymous", &image));
    s.wait_pod("anonymous", "refused", Duration::from_secs(60), |p| {
        matches!(
            waiting_reason(p).as_str(),
            "ErrImagePull" | "ImagePullBackOff"
        )
    });
    // With a docker-registry secret it pulls.
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", reg.addr()),
        "--docker-username=puller",
        "--docker-password=s3cret",
    ]);
    let with_secret = pod("authorized", &image)
        .replace("spec:\n", "spec:\n  imagePullSecrets: [{name: regcred}]\n");
    s.kubectl_stdin(&["apply", "-f", "-"], &with_secret);
    s.wait_pod_ready("authorized");
}

#[test]
fn docker_hub_names_are_pulled_through_a_mirror() {
    let mirror = images::testing::Registry::start();
    let s = Server::start_with_node(&["--registry-mirror", &mirror.addr()]);
    // The mirror holds library/mirrored-busybox; the pod names it as Docker Hub would.
    push_busybox(&s, &mirror, "library/mirrored-busybox:1.0");
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("mirrored", "mirrored-busybox:1.0"),
    );
    let p = s.wait_pod_ready("mirrored");
    assert_eq!(
        p["status"]["containerStatuses"][0]["image"],
        "mirrored-busybox:1.0"
    );
    let ls = s.drover(&["image", "ls", "--data-dir", s.dir.path().to_str().unwrap()]);
    assert!(
        ls.contains("docker.io/library/mirrored-busybox:1.0"),
        "{ls}"
    );
}
