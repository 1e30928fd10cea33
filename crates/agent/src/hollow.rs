//! Hollow nodes (placeholder while the module is written).

/// Options of one hollow node.
#[derive(Debug, Clone, Default)]
pub struct HollowOptions {}

/// Runs one hollow node.
pub async fn run(_client: client::Client, _opts: HollowOptions) {}
