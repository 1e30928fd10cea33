//! Removal of the agent's cgroup directories. runc removes a container's own cgroup;
//! the pod and node levels above it (`/drover/NODE/podUID`) are the agent's to remove.

use std::path::Path;

/// Removes `rel` (e.g. `/drover/node-1/pod1234`) and everything below it in every
/// mounted hierarchy (cgroup v1 controllers and the v2 tree). Directories that still
/// hold processes stay (rmdir fails with EBUSY); returns how many were left.
pub fn remove_tree(rel: &str) -> usize {
    remove_tree_under(Path::new("/sys/fs/cgroup"), rel)
}

/// Removes `rel` in every hierarchy where it is empty (a parent shared with other agents).
pub fn remove_if_empty(rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path().join(rel));
        }
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(rel));
}

fn remove_tree_under(root: &Path, rel: &str) -> usize {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return 0;
    }
    let mut left = 0;
    let mut roots = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                roots.push(e.path());
            }
        }
    }
    for r in roots {
        let p = r.join(rel);
        if p.is_dir() {
            left += remove_dirs(&p);
        }
    }
    left
}

fn remove_dirs(dir: &Path) -> usize {
    let mut left = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                left += remove_dirs(&e.path());
            }
        }
    }
    if std::fs::remove_dir(dir).is_err() {
        left += 1;
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_climb_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cpu/drover/n1/pod1/c1")).unwrap();
        std::fs::create_dir_all(dir.path().join("cpu/other")).unwrap();
        assert_eq!(remove_tree_under(dir.path(), "/drover/../other"), 0);
        assert!(dir.path().join("cpu/other").exists());
        assert_eq!(remove_tree_under(dir.path(), "/drover/n1"), 0);
        assert!(!dir.path().join("cpu/drover/n1").exists());
        assert!(dir.path().join("cpu/drover").exists());
    }
}
