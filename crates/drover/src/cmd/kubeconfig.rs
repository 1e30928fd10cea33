//! `drover kubeconfig`: prints the admin kubeconfig the server wrote.

use anyhow::Context;
use std::path::PathBuf;

/// Prints `DATA_DIR/kubeconfig`.
pub fn run(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = data_dir.unwrap_or_else(super::default_data_dir);
    let path = dir.join("kubeconfig");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}; has `drover server --data-dir {}` been started?",
            path.display(),
            dir.display()
        )
    })?;
    print!("{text}");
    Ok(())
}
