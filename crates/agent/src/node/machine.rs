//! What the node is: CPUs, memory, disk, kernel and OS, read from the machine, and
//! the pressure conditions the kubelet reports.

use std::path::Path;

/// Figures read from /proc and the data directory's filesystem.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: u32,
    /// MemTotal in bytes.
    pub memory_bytes: u64,
    /// MemAvailable in bytes.
    pub memory_available: u64,
    /// Size of the filesystem holding the data directory.
    pub disk_bytes: u64,
    /// Free bytes there.
    pub disk_free: u64,
    /// /proc/sys/kernel/osrelease.
    pub kernel: String,
    /// PRETTY_NAME of /etc/os-release.
    pub os_image: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// /proc/sys/kernel/random/boot_id.
    pub boot_id: String,
    /// Running processes and the limit (for PIDPressure).
    pub pids: (u64, u64),
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

impl Machine {
    /// Reads the machine now.
    pub fn read(data_dir: &Path) -> Machine {
        let mem = read("/proc/meminfo");
        let (disk_bytes, disk_free) = rustix::fs::statvfs(data_dir)
            .map(|s| (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize))
            .unwrap_or((0, 0));
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        let pids_running = std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_bytes: meminfo(&mem, "MemTotal").unwrap_or(0),
            memory_available: meminfo(&mem, "MemAvailable").unwrap_or(0),
            disk_bytes,
            disk_free,
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            pids: (
                pids_running,
                read("/proc/sys/kernel/pid_max").parse().unwrap_or(32768),
            ),
        }
    }

    /// MemAvailable under 100 MiB (the kubelet's default hard eviction threshold).
    pub fn memory_pressure(&self) -> bool {
        self.memory_bytes > 0 && self.memory_available < 100 << 20
    }

    /// Less than 10% of the data directory's filesystem free (nodefs.available<10%).
    pub fn disk_pressure(&self) -> bool {
        self.disk_bytes > 0 && self.disk_free * 10 < self.disk_bytes
    }

    /// More than 90% of pid_max in use.
    pub fn pid_pressure(&self) -> bool {
        self.pids.1 > 0 && self.pids.0 * 10 > self.pids.1 * 9
    }
}

/// Kubernetes' name for this CPU architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_fields() {
        let t = "MemTotal:       16384000 kB\nMemFree:  1 kB\nMemAvailable:    8192000 kB\n";
        assert_eq!(meminfo(t, "MemTotal"), Some(16_384_000 * 1024));
        assert_eq!(meminfo(t, "MemAvailable"), Some(8_192_000 * 1024));
        assert_eq!(meminfo(t, "Mem"), None);
    }

    #[test]
    fn reads_this_machine() {
        let m = Machine::read(Path::new("/"));
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > 0 && m.memory_available <= m.memory_bytes);
        assert!(m.disk_bytes > 0);
        assert!(!m.kernel.is_empty());
    }
}
