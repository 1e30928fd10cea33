//! Running the external tools the scenarios compare against or set up with.

use crate::BenchError;
use std::path::Path;
use std::process::Command;

/// Runs `cmd` to completion; its stdout on success, else an error naming `what` with the
/// exit status and stderr.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<String, BenchError> {
    let out = cmd.output().map_err(|e| BenchError::Tool {
        what: what.to_string(),
        detail: format!("cannot start it: {e}"),
    })?;
    if !out.status.success() {
        return Err(BenchError::Tool {
            what: what.to_string(),
            detail: format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails unless the benchmark runs as root (runc, CNI and dockerd need it).
pub(crate) fn require_root(scenario: &str) -> Result<(), BenchError> {
    if crate::procs::is_root() {
        Ok(())
    } else {
        Err(BenchError::Missing(format!(
            "`drover bench {scenario}` runs real containers and must run as root"
        )))
    }
}

/// Fails unless `path` exists, telling how to install the Debian package that has it.
pub(crate) fn require_file(path: &str, package: &str) -> Result<(), BenchError> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(BenchError::Missing(format!(
            "{path} is missing: install it with `apt-get install -y {package}`"
        )))
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a child to take).
pub(crate) fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BenchError::io("picking a free loopback port"))
}
