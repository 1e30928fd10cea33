//! Test helpers: a throwaway Debian `docker-registry` on loopback, skopeo pushes, a busybox archive.
//! These panic on failure (they are for tests) with messages saying which tool is missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A real registry (Debian's /usr/bin/docker-registry) on `127.0.0.1:<free port>` with storage in a temp
/// dir; killed (by PID) and removed on Drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Registry {
    /// Starts an open registry and waits until `GET /v2/` answers.
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// Starts a registry that requires HTTP basic auth (htpasswd with a bcrypt hash).
    pub fn with_basic_auth(user: &str, pass: &str) -> Registry {
        Self::start_with(Some((user, pass)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install -y docker-registry"
        );
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("drover-registry-")
                .tempdir()
                .expect("temp dir");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let storage = dir.path().join("storage");
            std::fs::create_dir_all(&storage).expect("storage dir");
            let mut auth_yaml = String::new();
            if let Some((user, pass)) = auth {
                let hash = bcrypt::hash_with_result(pass, 5)
                    .expect("bcrypt")
                    .format_for_version(bcrypt::Version::TwoY);
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: drover-test\n    path: {}\n",
                    htpasswd.display()
                );
            }
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: drover-test-secret\n{auth_yaml}",
                storage.display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawning docker-registry");
            let mut reg = Registry { child, dir, addr };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = reg.child.try_wait() {
                    last_log = std::fs::read_to_string(reg.dir.path().join("registry.log"))
                        .unwrap_or_default();
                    break; // probably lost the port race; try another port
                }
                if http_status(&reg.addr, "/v2/").is_some() {
                    return reg;
                }
                assert!(
                    Instant::now() < deadline,
                    "docker-registry on {} did not answer GET /v2/ within 30s",
                    reg.addr
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("docker-registry failed to start 5 times; last log:\n{last_log}");
    }

    /// "127.0.0.1:PORT".
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The registry's storage root (blobs live under `docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the blob with this digest.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status of `GET path` on addr, or None if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Pushes an OCI archive with `skopeo copy --dest-tls-verify=false oci-archive:PATH docker://TARGET`.
pub fn push(archive: &Path, target_reference: &str, creds: Option<(&str, &str)>) {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
    ]);
    if let Some((u, p)) = creds {
        cmd.arg(format!("--dest-creds={u}:{p}"));
    }
    cmd.arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{target_reference}"));
    let out = cmd
        .output()
        .expect("running skopeo (apt-get install -y skopeo)");
    assert!(
        out.status.success(),
        "skopeo push of {} to {target_reference} failed: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the busybox archive once per process (from /usr/bin/busybox) and returns its path. The file
/// is cached in the system temp dir under a name derived from the binary's hash, so repeated runs
/// reuse one file instead of leaving new ones behind.
pub fn busybox_archive() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let bin = Path::new("/usr/bin/busybox");
        let bytes = std::fs::read(bin)
            .expect("/usr/bin/busybox is missing: apt-get install -y busybox-static");
        let hash = hex::encode(Sha256::digest(&bytes));
        let out = std::env::temp_dir().join(format!("drover-busybox-oci-{}-v1.tar", &hash[..16]));
        if !out.is_file() {
            crate::busybox::write_oci_archive(bin, "docker.io/library/busybox:latest", &out)
                .expect("writing the busybox archive");
        }
        out
    })
    .clone()
}
