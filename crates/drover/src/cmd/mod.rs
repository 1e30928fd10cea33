//! One module per CLI verb.

pub mod agent;
pub mod bench;
pub mod compose;
pub mod image;
pub mod kubeconfig;
pub mod reset;
pub mod server;
pub mod token;

use std::path::PathBuf;

/// The default data directory: `/var/lib/drover` as root, else `$XDG_DATA_HOME/drover`.
pub fn default_data_dir() -> PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/drover");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("drover");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/drover")
}
