//! The shared top of the agents' cgroup trees (`/drover`), removed once no agent uses it.

use std::path::Path;

/// Removes `rel` in every hierarchy where it is empty (it is shared with other agents,
/// so it is never removed recursively).
pub fn remove_if_empty(rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path().join(rel));
        }
    }
    let _ = std::fs::remove_dir(root.join(rel));
}
