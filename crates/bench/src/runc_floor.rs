//! The floor under pod start-up: `runc run -d` of an equivalent busybox bundle with no
//! orchestrator (no API, no scheduler, no network set-up, no monitor).

use crate::tools::{require_file, run};
use crate::{BenchError, progress};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const RUNC: &str = "/usr/sbin/runc";

/// A busybox bundle and a private runc state root; every container started from it is
/// killed and deleted, and the directory removed, on drop.
pub struct Floor {
    dir: tempfile::TempDir,
    prefix: String,
    started: Vec<String>,
}

impl Floor {
    /// Makes the bundle: /usr/bin/busybox as /bin/busybox (+ /bin/sh), `runc spec`, then
    /// args `busybox sleep 3600` without a terminal.
    pub fn prepare() -> Result<Floor, BenchError> {
        require_file(RUNC, "runc")?;
        require_file("/usr/bin/busybox", "busybox-static")?;
        let dir = tempfile::tempdir().map_err(BenchError::io("creating the runc bundle dir"))?;
        let bin = dir.path().join("bundle/rootfs/bin");
        std::fs::create_dir_all(&bin).map_err(BenchError::io("creating the bundle's rootfs"))?;
        std::fs::copy("/usr/bin/busybox", bin.join("busybox"))
            .map_err(BenchError::io("copying /usr/bin/busybox into the bundle"))?;
        std::os::unix::fs::symlink("busybox", bin.join("sh"))
            .map_err(BenchError::io("linking /bin/sh in the bundle"))?;
        let bundle = dir.path().join("bundle");
        run(
            Command::new(RUNC).arg("spec").arg("--bundle").arg(&bundle),
            "runc spec",
        )?;
        let path = bundle.join("config.json");
        let text = std::fs::read(&path).map_err(BenchError::io("reading runc's config.json"))?;
        let mut spec: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| BenchError::Tool {
                what: "runc spec".into(),
                detail: format!("wrote a config.json that is not JSON: {e}"),
            })?;
        spec["process"]["args"] = json!(["/bin/busybox", "sleep", "3600"]);
        spec["process"]["terminal"] = json!(false);
        let text = serde_json::to_vec_pretty(&spec).map_err(|e| BenchError::Tool {
            what: "editing config.json".into(),
            detail: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(BenchError::io("writing runc's config.json"))?;
        let prefix = format!("bench-floor-{:08x}", rand::random::<u32>());
        Ok(Floor {
            dir,
            prefix,
            started: Vec::new(),
        })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    /// Starts one more container and returns how long `runc run -d` took, in ms.
    pub fn start_one(&mut self) -> Result<f64, BenchError> {
        let id = format!("{}-{}", self.prefix, self.started.len());
        let mut cmd = Command::new(RUNC);
        cmd.arg("--root")
            .arg(self.root())
            .args(["run", "-d", "--bundle"])
            .arg(self.bundle())
            .arg(&id)
            // The detached container inherits these: a pipe would never see EOF.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t = Instant::now();
        let status = cmd.status().map_err(|e| BenchError::Tool {
            what: "runc run -d".into(),
            detail: format!("cannot start {RUNC}: {e}"),
        })?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        self.started.push(id.clone());
        if !status.success() {
            // Run it again with stderr captured, for the message.
            let again = Command::new(RUNC)
                .arg("--root")
                .arg(self.root())
                .args(["run", "-d", "--bundle"])
                .arg(self.bundle())
                .arg(format!("{id}-retry"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .output();
            self.started.push(format!("{id}-retry"));
            let why = again
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                .unwrap_or_default();
            return Err(BenchError::Tool {
                what: format!("runc run -d {id}"),
                detail: format!("{status}: {why}"),
            });
        }
        Ok(ms)
    }

    /// Stops and deletes every container started so far.
    pub fn clean(&mut self) {
        for id in std::mem::take(&mut self.started) {
            for args in [
                vec!["kill", id.as_str(), "KILL"],
                vec!["delete", "-f", id.as_str()],
            ] {
                let _ = Command::new(RUNC)
                    .arg("--root")
                    .arg(self.root())
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// The bundle directory (for messages).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.clean();
    }
}

/// Times `count` sequential `runc run -d` (after `warmup` untimed ones) and removes the
/// containers; the samples in ms.
pub fn measure(count: usize, warmup: usize) -> Result<Vec<f64>, BenchError> {
    let mut floor = Floor::prepare()?;
    for _ in 0..warmup {
        floor.start_one()?;
    }
    let bar = progress(count as u64, "runc run -d");
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        crate::check_interrupted()?;
        samples.push(floor.start_one()?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    floor.clean();
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real runc: the containers run, are timed, and are gone afterwards.
    #[test]
    fn times_runc_run_and_removes_every_container() {
        assert!(
            crate::procs::is_root(),
            "this test runs runc and must run as root"
        );
        let mut floor = Floor::prepare().unwrap();
        let ms = floor.start_one().unwrap();
        assert!(ms > 0.0);
        let list = Command::new(RUNC)
            .arg("--root")
            .arg(floor.root())
            .args(["list", "-q"])
            .output()
            .unwrap();
        let ids = String::from_utf8_lossy(&list.stdout).to_string();
        assert!(ids.contains(&floor.prefix), "{ids}");
        let id = format!("{}-0", floor.prefix);
        let state = Command::new(RUNC)
            .arg("--root")
            .arg(floor.root())
            .args(["state", &id])
            .output()
            .unwrap();
        let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
        assert_eq!(state["status"], "running", "{state}");
        let pid = u32::try_from(state["pid"].as_u64().unwrap()).unwrap();
        assert!(crate::procs::alive(pid));
        let prefix = floor.prefix.clone();
        let state = floor.root();
        floor.clean();
        let list = Command::new(RUNC)
            .arg("--root")
            .arg(&state)
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&prefix));
        assert!(crate::procs::wait_gone(
            &[pid],
            std::time::Duration::from_secs(10)
        ));
        drop(floor);
        assert!(!state.exists());
    }
}
