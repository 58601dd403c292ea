#!/usr/bin/env bash
# The checks a change must pass before it is committed, the same as CI's:
# formatting, clippy with warnings as errors, rustdoc with warnings as
# errors. `bash scripts/check.sh`; CI (.ci/run) runs it before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== rustdoc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
