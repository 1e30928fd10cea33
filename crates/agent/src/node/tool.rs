//! Running the host tools the agent drives (`ip`, `bridge`, `mount`, `umount`).

/// Runs `tool args...`; stdout on success, else a message naming the command and its
/// stderr (or the package to install when the tool is missing).
pub async fn run(tool: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .output()
        .await
        .map_err(|e| {
            let package = match tool {
                "ip" | "bridge" => "iproute2",
                _ => "util-linux",
            };
            format!("cannot run {tool} (install {package}): {e}")
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
