#!/usr/bin/env bash
# Fuzzes every parser of user input in hangar-model: the cargo-fuzz targets of fuzz/
# (libFuzzer), built and run with the stable toolchain.
#
# Usage: scripts/fuzz.sh short            each target for FUZZ_SHORT_SECONDS (default 12),
#                                         one after the other; non-zero on any crash
#                                         (scripts/test.sh runs this)
#        scripts/fuzz.sh long [SECONDS]   each target for SECONDS (default 3600), all at
#                                         once; prints a table; non-zero on any crash
#
# The targets are built as cargo fuzz builds them by default (release, debug assertions
# and overflow checks on) but with --sanitizer none: its default, AddressSanitizer, needs
# -Zsanitizer, which stable rustc refuses. hangar-model forbids unsafe code, so what the
# targets look for (panics, overflows, broken round trips) needs no sanitizer.
#
# Corpora: fuzz/corpus/TARGET holds the committed seeds and is never written to. A short
# run fuzzes a throwaway copy of it; a long run grows fuzz/work/TARGET (ignored by git),
# so each long run starts where the last one stopped. A crashing input is saved as
# fuzz/artifacts/TARGET/crash-SHA1 (ignored by git); run the target's binary on it to
# see the panic again, and once it is fixed copy it into fuzz/corpus/TARGET/ under a
# name that says what it was.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"

log() { printf 'fuzz: %s\n' "$*"; }

usage() {
    echo "usage: scripts/fuzz.sh short | long [SECONDS]" >&2
    exit 2
}

mode=${1:-}
case ${mode} in
short) [[ $# -eq 1 ]] || usage ;;
long)
    long_seconds=${2:-3600}
    [[ $# -le 2 && ${long_seconds} =~ ^[1-9][0-9]*$ ]] || usage
    ;;
*) usage ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz is missing: scripts/setup-host.sh installs it" >&2
    exit 1
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=target/${triple}/release
mapfile -t targets < <(cargo fuzz list)

build_start=$(date +%s)
log "building ${#targets[@]} targets: ${targets[*]}"
# Into fuzz/target whatever CARGO_TARGET_DIR says: never the root workspace's.
cargo fuzz build --sanitizer none --target "${triple}" --target-dir "${PWD}/target"
log "built in $(($(date +%s) - build_start)) s"

# Each input parses in microseconds: one that takes 10 s is a hang.
libfuzzer_flags=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

# fuzz_once TARGET SECONDS CORPUS LOG: one libFuzzer run, output appended to LOG; its
# exit status is libFuzzer's (0: the time ran out without a crash).
fuzz_once() {
    local target=$1 seconds=$2 corpus=$3 log_file=$4 fuzzer status
    mkdir -p "artifacts/${target}"
    nice -n 19 "${bin_dir}/${target}" "${libfuzzer_flags[@]}" -max_total_time="${seconds}" \
        -artifact_prefix="artifacts/${target}/" "${corpus}" >>"${log_file}" 2>&1 &
    fuzzer=$!
    # Stopping this shell stops its fuzzer, and starts no other.
    trap 'kill "${fuzzer}" 2>/dev/null; exit 130' TERM INT
    wait "${fuzzer}" && status=0 || status=$?
    trap - TERM INT
    return "${status}"
}

# Executions in a LOG, summed over the runs it holds (libFuzzer prints its final stats
# at the end of a run and after a crash).
executions() {
    awk '/^stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }' "$1"
}

count_files() { find "$1" -maxdepth 1 -type f | wc -l; }

# What a crashed run printed: the panic without its backtrace, libFuzzer's verdict and
# where it saved the input.
show_crash() {
    awk '/ panicked at /, /^stack backtrace:/ { if (!/^stack backtrace:/) print }
        /^==[0-9]+== ERROR: libFuzzer/ || /^SUMMARY: / || /Test unit written to/ { print }
        /^Base64: / { print }' "$1" >&2
}

short() {
    local seconds=${FUZZ_SHORT_SECONDS:-12} target log_file failed=()
    scratch=$(mktemp -d /tmp/hangar-fuzz.XXXXXX)
    trap 'rm -rf "${scratch}"' EXIT
    for target in "${targets[@]}"; do
        cp -r "corpus/${target}" "${scratch}/${target}"
        log_file=${scratch}/${target}.log
        if fuzz_once "${target}" "${seconds}" "${scratch}/${target}" "${log_file}"; then
            log "$(printf '%-16s %10d executions in %d s, corpus %d -> %d inputs' "${target}" \
                "$(executions "${log_file}")" "${seconds}" "$(count_files "corpus/${target}")" \
                "$(count_files "${scratch}/${target}")")"
        else
            log "${target}: CRASH after $(executions "${log_file}") executions:" >&2
            show_crash "${log_file}"
            log "to see it again: (cd fuzz && ${bin_dir}/${target} $(sed -n \
                's/.*Test unit written to //p' "${log_file}" | tail -n 1))" >&2
            failed+=("${target}")
        fi
    done
    if [[ ${#failed[@]} -gt 0 ]]; then
        log "crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
        return 1
    fi
    log "${#targets[@]} targets, no crash"
}

# long_target TARGET SECONDS: fuzz fuzz/work/TARGET until SECONDS have passed, starting
# again after each crash (at most max_crashes times); writes
# "seconds executions crashes" to work/logs/TARGET.result.
max_crashes=20
long_target() {
    local target=$1 seconds=$2 log_file=work/logs/$1.log start left crashes=0
    start=$(date +%s)
    : >"${log_file}"
    while left=$((start + seconds - $(date +%s))) && ((left > 0 && crashes < max_crashes)); do
        if fuzz_once "${target}" "${left}" "work/${target}" "${log_file}"; then
            break
        fi
        crashes=$((crashes + 1))
    done
    if ((crashes >= max_crashes)); then
        log "${target}: stopped after ${crashes} crashes (log: fuzz/${log_file})" >&2
    fi
    echo "$(($(date +%s) - start)) $(executions "${log_file}") ${crashes}" >"work/logs/${target}.result"
}

long() {
    local seconds=$1 target pids=() seconds_run execs crashes total=0
    mkdir -p work/logs
    touch work/logs/started
    for target in "${targets[@]}"; do
        mkdir -p "work/${target}"
        cp -r "corpus/${target}/." "work/${target}/"
        rm -f "work/logs/${target}.result"
        long_target "${target}" "${seconds}" &
        pids+=("$!")
    done
    trap 'kill "${pids[@]}" 2>/dev/null; exit 130' TERM INT
    log "fuzzing ${#targets[@]} targets for ${seconds} s each, all at once (logs: fuzz/work/logs/)"
    wait "${pids[@]}" || true
    trap - TERM INT
    printf '\n%-16s %8s %12s %8s %8s\n' target seconds executions crashes corpus
    for target in "${targets[@]}"; do
        read -r seconds_run execs crashes <"work/logs/${target}.result" || {
            seconds_run=0 execs=0 crashes=1
        }
        printf '%-16s %8d %12d %8d %8d\n' "${target}" "${seconds_run}" "${execs}" "${crashes}" \
            "$(count_files "work/${target}")"
        total=$((total + crashes))
    done
    if ((total > 0)); then
        log "${total} crashes; their inputs:" >&2
        find artifacts -type f -newer work/logs/started -printf '  fuzz/%p\n' >&2 || true
        return 1
    fi
}

case ${mode} in
short) short ;;
long) long "${long_seconds}" ;;
esac
