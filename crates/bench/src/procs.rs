//! Processes as /proc shows them: resident memory, finding the helpers a run started
//! (conmon, containerd shims) by their command line, and signalling them by PID.

use std::path::Path;
use std::time::{Duration, Instant};

/// A numeric field of /proc/PID/status in kB (e.g. `VmRSS:`); 0 when absent (kernel threads).
pub fn status_kb(pid: u32, field: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// The summed resident set size of `pids` in MiB; processes that exited count as 0.
pub fn rss_mb(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|&p| status_kb(p, "VmRSS:").unwrap_or(0))
        .sum::<u64>() as f64
        / 1024.0
}

/// The PIDs whose command name (`/proc/PID/comm`, 15 characters at most) starts with
/// `comm` and whose command line contains `needle` (a path unique to one run).
pub fn find(comm: &str, needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if !c.trim_end().starts_with(comm) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Sends SIGTERM (or SIGKILL when `hard`) to one process; errors (already gone) are ignored.
pub fn signal(pid: u32, hard: bool) {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let sig = if hard {
        rustix::process::Signal::KILL
    } else {
        rustix::process::Signal::TERM
    };
    let _ = rustix::process::kill_process(p, sig);
}

/// True while /proc/PID exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive, up to `timeout`; true if they all went.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pids.iter().any(|&p| alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when this process runs as root (the node agent, runc and dockerd need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The mount points at or under `dir`, deepest first (for unmounting before removal).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_measures_this_process() {
        let me = std::process::id();
        assert!(status_kb(me, "VmRSS:").unwrap() > 0);
        assert!(rss_mb(&[me]) > 0.0);
        assert!(alive(me));
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().to_string();
        assert!(find(comm.trim_end(), &name).contains(&me));
        assert!(find(comm.trim_end(), "/no/such/needle/anywhere").is_empty());
    }

    #[test]
    fn signals_and_waits_for_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(alive(pid));
        signal(pid, false);
        let _ = child.wait();
        assert!(wait_gone(&[pid], Duration::from_secs(5)));
    }
}
