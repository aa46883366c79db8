#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this and nothing else):
# host setup, formatting, lints, build, every Rust test, then a short fuzz run.
# The privileged integration tests, the security battery of tests/security among
# them, need root; run as another user they skip themselves and say so.
#
# Usage: scripts/test.sh            (from anywhere; root for the full suite)
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [[ ${EUID} -eq 0 ]]; then
    step "host setup"
    ./scripts/setup-host.sh
else
    step "host setup skipped: not root (privileged tests will skip)"
fi

step "cargo fmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build"
cargo build --workspace --all-targets

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    echo "cargo-nextest not found: falling back to cargo test"
    cargo test --workspace --no-fail-fast
fi

# The fuzz targets of fuzz/ for a few seconds each (about 1.5 min with their build). It
# needs no privileges, only cargo-fuzz, which the host setup installs: without root, it
# runs where cargo-fuzz is already installed and skips, saying so, where it is not.
if [[ ${EUID} -eq 0 ]] || cargo fuzz --version >/dev/null 2>&1; then
    step "fuzz (short)"
    ./scripts/fuzz.sh short
else
    step "fuzz skipped: cargo-fuzz not installed (scripts/setup-host.sh installs it, as root)"
fi
