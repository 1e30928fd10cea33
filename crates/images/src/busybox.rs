//! A minimal image built from the static busybox binary, for tests and air-gapped nodes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::error::io_err;
use crate::oci_archive::{LayerBuilder, write_oci_archive as write_archive};
use crate::{ImageConfig, ImageError};

/// The PATH set in the image config.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The busybox layer as an uncompressed tar: /bin/busybox plus a symlink per applet, /etc/passwd
/// (root, nobody 65534), /etc/group, /tmp (1777), /root, /var/www.
pub fn layer_tar(busybox: &Path) -> Result<Vec<u8>, ImageError> {
    let bin =
        std::fs::read(busybox).map_err(ImageError::io(format!("reading {}", busybox.display())))?;
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| io_err(format!("running {} --list-full", busybox.display()), e))?;
    if !out.status.success() {
        return Err(ImageError::Format(format!(
            "{} --list-full failed ({}); is it a busybox binary?",
            busybox.display(),
            out.status
        )));
    }
    let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox" && !l.contains(".."))
        .collect();
    let mut dirs: BTreeSet<String> = [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "var", "var/www", "proc", "sys", "dev",
        "home",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for a in &applets {
        let mut p = Path::new(a).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    let mut b = LayerBuilder::new();
    for d in &dirs {
        b.dir(d, 0o755)?;
    }
    b.dir("tmp", 0o1777)?;
    b.dir("root", 0o700)?;
    b.file("bin/busybox", 0o755, &bin)?;
    for a in &applets {
        b.symlink(a, "/bin/busybox")?;
    }
    b.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    b.file("etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n")?;
    b.finish()
}

/// The busybox image's config: Cmd ["sh"] and a standard PATH.
pub fn config() -> ImageConfig {
    ImageConfig {
        cmd: vec!["sh".into()],
        env: vec![PATH_ENV.into()],
        ..Default::default()
    }
}

/// Writes an OCI image archive (tar of an OCI layout, importable by `import` and by `skopeo copy oci-archive:`)
/// of a minimal image from the static busybox binary: /bin/busybox plus a symlink per applet (`busybox --list-full`),
/// /etc/passwd (root, nobody 65534), /etc/group, /tmp (1777), /root, /var/www; config Cmd ["sh"], Env PATH.
/// The layer is gzip-compressed and the tag is `reference` (org.opencontainers.image.ref.name = the tag, and the
/// io.containerd.image.name annotation = the full reference, so import names it `reference`).
pub fn write_oci_archive(busybox: &Path, reference: &str, out: &Path) -> Result<(), ImageError> {
    write_archive(&[layer_tar(busybox)?], &config(), reference, out)
}
