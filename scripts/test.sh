#!/usr/bin/env bash
# The whole test suite: unit tests of every crate, the store conformance suite, and the
# end-to-end tests that drive the real drover binary with the real kubectl and kube-rs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Style first: cheap, and a failure here says exactly what to fix.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast "$@"
fi
