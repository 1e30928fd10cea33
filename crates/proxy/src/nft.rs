//! Running `nft`: listing our table, applying a script, deleting the table.

use crate::ProxyError;
use crate::rules::{Existing, parse_existing};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

async fn nft(args: &[&str], stdin: Option<&str>) -> Result<std::process::Output, ProxyError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ProxyError::NftMissing)?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())
            .await
            .map_err(ProxyError::NftMissing)?;
    }
    child
        .wait_with_output()
        .await
        .map_err(ProxyError::NftMissing)
}

/// The chains and sets of `ip <table>` now in the kernel (empty if it does not exist).
pub(crate) async fn existing(table: &str) -> Result<Existing, ProxyError> {
    let out = nft(&["-t", "list", "table", "ip", table], None).await?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") {
            return Ok(Existing::default());
        }
        return Err(ProxyError::Nft {
            what: format!("list table ip {table}"),
            stderr: err.trim().to_string(),
        });
    }
    Ok(parse_existing(&String::from_utf8_lossy(&out.stdout)))
}

/// Applies `script` as one transaction.
pub(crate) async fn apply(table: &str, script: &str) -> Result<(), ProxyError> {
    let out = nft(&["-f", "-"], Some(script)).await?;
    if out.status.success() {
        return Ok(());
    }
    Err(ProxyError::Nft {
        what: format!("update table ip {table}"),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Deletes `ip <table>`; absent is fine.
pub(crate) async fn delete_table(table: &str) -> Result<(), ProxyError> {
    let out = nft(&["delete", "table", "ip", table], None).await?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("No such file or directory") {
        return Ok(());
    }
    Err(ProxyError::Nft {
        what: format!("delete table ip {table}"),
        stderr: err.trim().to_string(),
    })
}
