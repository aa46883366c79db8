#!/usr/bin/env bash
# Storage benchmark: what `hangar snapshot create` and `hangar clone` cost on each pool
# driver for guests of 100 MB and 1 GB, beside the seeds' way of duplicating a guest
# (`cp -a`, `rsync -a` of its tree, as `vserver build -m rsync` did) on the same
# filesystem; `hangar export`/`import` throughput beside plain `tar | zstd`; and the
# space `hangar unify` gives back on two Debian guests. Prints a table.
#
# Usage (as root, from anywhere):
#   bench/storage.sh
# Environment:
#   HANGAR     the hangar binary (default: target/release/hangar of this repo, built
#              if missing)
#   RUNS       runs per copy measurement, the median printed (default 3)
#   SIZES      guest sizes in MiB (default "100 1024")
#
# A guest of N MiB is a busybox guest plus N files of 1 MiB of random bytes (random so
# that nothing compresses). Everything lives under a temporary directory in /var/tmp
# (the host's filesystem: the dir pool's) and a btrfs pool on a sparse image there,
# all removed at the end, also when interrupted.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
script="${repo}/bench/$(basename "$0")"
# shellcheck source=bench/lib.sh
source "${repo}/bench/lib.sh"
bench_start "${script}" "$@"

RUNS=${RUNS:-3}
SIZES=${SIZES:-100 1024}

for tool in rsync zstd tar busybox python3; do
    if ! command -v "${tool}" >/dev/null; then
        log "${tool} is missing: run scripts/setup-host.sh"
        exit 1
    fi
done
if [[ ! -x ${HANGAR} ]]; then
    log "building hangar (release)"
    (cd "${repo}" && cargo build --release --quiet)
fi

work=$(mktemp -d /var/tmp/hangar-bench.XXXXXX)
export HANGAR_ROOT=${work}/root
export HANGAR_CACHE_DIR=${HANGAR_CACHE_DIR:-/var/tmp/hangar-test-cache}
mkdir -p "${HANGAR_ROOT}"
h() { "${HANGAR}" "$@"; }

cleanup() {
    set +e
    for g in $(h list --format json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin)))'); do
        h delete "${g}" --force >/dev/null 2>&1
    done
    for p in $(h pool list --format json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(r["name"] for r in json.load(sys.stdin) if r["name"] != "default"))'); do
        h pool delete "${p}" >/dev/null 2>&1
    done
    bench_remove_work "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# now_ms: a monotonic clock in milliseconds.
now_ms() { python3 -c 'import time; print(int(time.monotonic() * 1000))'; }

# median_ms PREPARE CMD...: runs PREPARE then times CMD, RUNS times; prints the median.
median_ms() {
    local prepare=$1
    shift
    local times=() t0 t1
    for _ in $(seq "${RUNS}"); do
        eval "${prepare}"
        sync
        t0=$(now_ms)
        quietly "${work}/cmd.log" "$@" || { log "failed: $* ($(last_line "${work}/cmd.log"))"; echo "-"; return; }
        t1=$(now_ms)
        times+=($((t1 - t0)))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

# fill GUEST MIB: MIB files of 1 MiB of random bytes in the guest's /data.
fill() {
    local root
    root=$(rootfs_of "$1")
    mkdir -p "${root}/data"
    for i in $(seq "$2"); do
        head -c 1048576 /dev/urandom >"${root}/data/f${i}"
    done
    chown -R --reference="${root}" "${root}/data"
}

# rootfs_of GUEST: its root filesystem on the host.
rootfs_of() {
    local pool
    pool=$(h config show "$1" | sed -n 's/^pool = "\(.*\)"/\1/p')
    if [[ -z ${pool} ]]; then
        echo "${HANGAR_ROOT}/var/lib/hangar/guests/$1/rootfs"
    else
        echo "${HANGAR_ROOT}/var/lib/hangar/pools/${pool}/guests/$1/rootfs"
    fi
}

log "making a btrfs pool on a sparse image"
h pool create fast --size 8G >/dev/null
pools=(default fast)
if h pool create img --driver image >/dev/null 2>&1; then
    pools+=(img)
fi

rows=()
row() { rows+=("$(printf '%-8s %-7s %-28s %10s' "$@")"); }

for size in ${SIZES}; do
    for pool in "${pools[@]}"; do
        g=s${size}${pool}
        extra=()
        [[ ${pool} != default ]] && extra=(--pool "${pool}")
        [[ ${pool} == img ]] && extra+=(--disk-size "$((size * 2 + 256))M")
        log "${size} MiB guest on pool ${pool}"
        quietly "${work}/build.log" h build "${g}" -m busybox --network none "${extra[@]}" ||
            { log "build failed: $(last_line "${work}/build.log")"; continue; }
        fill "${g}" "${size}"
        root=$(rootfs_of "${g}")
        row "${size}M" "${pool}" "hangar snapshot create" \
            "$(median_ms "h snapshot delete ${g} b >/dev/null 2>&1 || true" h snapshot create "${g}" b)"
        h snapshot delete "${g}" b >/dev/null 2>&1 || true
        row "${size}M" "${pool}" "hangar clone" \
            "$(median_ms "h delete ${g}c --force >/dev/null 2>&1 || true" h clone "${g}" "${g}c")"
        h delete "${g}c" --force >/dev/null 2>&1 || true
        dst=$(dirname "${root}")/../copy-bench
        row "${size}M" "${pool}" "cp -a (same filesystem)" \
            "$(median_ms "rm -rf ${dst}" cp -a --reflink=never "${root}" "${dst}")"
        rm -rf "${dst}"
        row "${size}M" "${pool}" "rsync -a (same filesystem)" \
            "$(median_ms "rm -rf ${dst}" rsync -a "${root}/" "${dst}/")"
        rm -rf "${dst}"
        if [[ ${pool} == default ]]; then
            archive=${work}/${g}.hangar
            t=$(median_ms "rm -f ${archive}" h export "${g}" "${archive}")
            bytes=$(stat -c %s "${archive}")
            row "${size}M" "${pool}" "hangar export" "${t}"
            row "${size}M" "${pool}" "  (MiB/s)" "$((size * 1000 / (t > 0 ? t : 1)))"
            t=$(median_ms "h delete ${g}i --force >/dev/null 2>&1 || true" h import "${archive}" "${g}i")
            row "${size}M" "${pool}" "hangar import" "${t}"
            row "${size}M" "${pool}" "  (MiB/s)" "$((size * 1000 / (t > 0 ? t : 1)))"
            h delete "${g}i" --force >/dev/null 2>&1 || true
            plain=${work}/plain.tar.zst
            t=$(median_ms "rm -f ${plain}" bash -c "tar -C '${root}' -cf - . | zstd -q -3 -T1 -o '${plain}'")
            row "${size}M" "${pool}" "tar | zstd -3" "${t}"
            t=$(median_ms "rm -rf ${work}/untar; mkdir ${work}/untar" bash -c "zstd -q -d -c '${plain}' | tar -C '${work}/untar' -xf -")
            row "${size}M" "${pool}" "zstd -d | tar -x" "${t}"
            row "${size}M" "${pool}" "  archive size (MiB)" "$((bytes >> 20))"
            rm -rf "${archive}" "${plain}" "${work}/untar"
        fi
        h delete "${g}" --force >/dev/null
    done
done

log "unify: two Debian guests on the btrfs pool"
unify_row="unavailable (debootstrap failed)"
used() { sync -f "$1"; df -B1 --output=used "$1" | tail -n1; }
pool_dir=${HANGAR_ROOT}/var/lib/hangar/pools/fast
empty=$(used "${pool_dir}")
if quietly "${work}/d1.log" h build d1 -m debootstrap --pool fast --network none &&
    quietly "${work}/d2.log" h build d2 -m debootstrap --pool fast --network none; then
    before=$(used "${pool_dir}")
    t0=$(now_ms)
    h unify d1 d2 >"${work}/unify.out"
    t1=$(now_ms)
    after=$(used "${pool_dir}")
    unify_row="the two guests took $(((before - empty) >> 20)) MiB of the pool, $(((after - empty) >> 20)) MiB after: $(((before - after) >> 20)) MiB freed in $((t1 - t0)) ms"
fi

echo
echo "storage benchmark (milliseconds, median of ${RUNS}; host filesystem $(df --output=fstype /var/tmp | tail -n1))"
printf '%-8s %-7s %-28s %10s\n' SIZE POOL OPERATION MS
printf '%s\n' "${rows[@]}"
echo
echo "unify, two Debian guests: ${unify_row}"
