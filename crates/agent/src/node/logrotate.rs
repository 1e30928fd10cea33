//! Size-based rotation of container log files (the kubelet's containerLogMaxSize):
//! conmon appends to the CRI log file with O_APPEND, so copying it aside and
//! truncating it in place keeps the writer working without telling it.

use std::path::{Path, PathBuf};

/// The rotated copy of `log` (one generation is kept, as `<log>.1`).
pub fn rotated(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Rotates `log` when it is larger than `max_bytes`; returns whether it did.
pub fn rotate_if_needed(log: &Path, max_bytes: u64) -> std::io::Result<bool> {
    let size = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if max_bytes == 0 || size <= max_bytes {
        return Ok(false);
    }
    let target = rotated(log);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::copy(log, &tmp)?;
    std::fs::rename(&tmp, &target)?;
    // Lines written between the copy and the truncation are lost: a few at most.
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)?
        .set_len(0)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_appending_writer_keeps_writing_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        writer.write_all(&vec![b'a'; 2000]).unwrap();
        assert!(!rotate_if_needed(&log, 4096).unwrap());
        writer.write_all(&vec![b'b'; 3000]).unwrap();
        assert!(rotate_if_needed(&log, 4096).unwrap());
        assert_eq!(std::fs::metadata(rotated(&log)).unwrap().len(), 5000);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        writer.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"after\n");
        assert!(!rotate_if_needed(&dir.path().join("missing.log"), 1).unwrap());
    }
}
