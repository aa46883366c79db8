#!/usr/bin/env bash
# Chaos by hand: the suite's chaos test (crates/hangar-cli/tests/chaos.rs) with 1,000
# random steps instead of 100 — builds, starts, stops, kills, sets, attaches, detaches,
# execs and deletes over a dozen guests while CLIs, monitors, keepers and dnsmasq are
# SIGKILLed at random, checking after every step that every guest is where `list` says,
# none runs twice, none is lost, state files parse and nothing leaked. Prints its
# figures; fails on the first violations (with the seed that replays them).
#
#   bench/chaos.sh [STEPS] [SEED]
#
# It runs under a subreaper that reaps at once (as systemd does; lib.sh): an adopted
# guest's exit status is then usually gone before its adopter reads it, the path the
# suite (under a late-reaping pid 1) takes less often.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_start "$0" "$@"

steps=${1:-1000}
export HANGAR_CHAOS_STEPS=${steps}
[[ -n ${2:-} ]] && export HANGAR_CHAOS_SEED=$2
log "building the test binaries"
cargo build --quiet --workspace
log "running ${steps} chaos steps"
set +e
cargo test --quiet -p hangar-cli --test chaos -- --nocapture 2>&1 | grep -E '^chaos:|^step|panicked|seed'
status=${PIPESTATUS[0]}
set -e
exit "${status}"
