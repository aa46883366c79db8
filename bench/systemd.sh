#!/usr/bin/env bash
# systemd guest benchmark: hangar beside LXC on one debootstrapped Debian root
# filesystem with systemd as init.
#
# Usage (as root, from anywhere):
#   bench/systemd.sh
# Environment:
#   HANGAR            the hangar binary (default: target/release/hangar of this repo)
#   RUNS              boots per tool (default 5)
#   SUITE             Debian suite (default bookworm)
#   HANGAR_CACHE_DIR  where the debootstrap result is cached (default
#                     /var/tmp/hangar-test-cache, the test suite's)
#
# Measures, for each tool: (a) boot: from the start command until `systemctl
# is-system-running --wait` answers inside the guest (its answer is printed);
# (b) the memory of the idle guest 10 s after boot (its memory cgroup's use:
# every process of the guest, page cache included) and of its per-guest monitor
# (PSS). hangar builds the guest; LXC boots the very same directory, mapped to
# the same host ids, with `lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed`.
# It prints a report with the ratios and cleans up everything it created, also
# when interrupted. LXC missing or failing is reported, and hangar still measured.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
script="${repo}/bench/$(basename "$0")"

# shellcheck source=bench/lib.sh
source "${repo}/bench/lib.sh"
bench_start "${script}" "$@"

RUNS=${RUNS:-5}
SUITE=${SUITE:-bookworm}
export HANGAR_CACHE_DIR=${HANGAR_CACHE_DIR:-/var/tmp/hangar-test-cache}


for tool in python3 "${HANGAR}"; do
    if ! command -v "${tool}" >/dev/null; then
        log "${tool} is missing: run scripts/setup-host.sh and cargo build --release"
        exit 1
    fi
done

work=$(mktemp -d /var/tmp/hangar-bench-systemd.XXXXXX)
chmod 0755 "${work}"
export HANGAR_ROOT=${work}/hangar-root
mkdir -p "${HANGAR_ROOT}/etc/hangar"
echo 'network = "none"' >"${HANGAR_ROOT}/etc/hangar/defaults.toml"
lxcpath=${work}/lxc
built=
subid_added=()
id_base=

cleanup() {
    set +e
    if [[ -d ${lxcpath}/benchsd ]]; then
        lxc-stop -P "${lxcpath}" -n benchsd -k >/dev/null 2>&1
    fi
    if [[ -n ${built} ]]; then
        "${HANGAR}" kill sd >/dev/null 2>&1
        "${HANGAR}" delete sd --force >/dev/null 2>&1
    fi
    # lxc-start leaves an empty lxc.pivot cgroup in every hierarchy.
    for d in /sys/fs/cgroup/*/lxc.pivot /sys/fs/cgroup/lxc.pivot; do
        [[ -d ${d} ]] && rmdir "${d}" 2>/dev/null
    done
    for f in "${subid_added[@]}"; do
        sed -i "/^root:${id_base}:65536\$/d" "${f}"
    done
    bench_remove_work "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_ms() { date +%s%3N; }

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# pss_kib PID: proportional set size of one process.
pss_kib() { awk '/^Pss:/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# boot_times START WAIT STOP: RUNS times, START then WAIT (which prints systemd's
# answer), then STOP; prints one line per boot: milliseconds and the answer.
boot_times() {
    local start=$1 wait=$2 stop=$3 t0 answer
    for _ in $(seq "${RUNS}"); do
        t0=$(now_ms)
        eval "${start}" </dev/null >/dev/null 2>"${work}/start.err" || { echo "fail $(last_line "${work}/start.err")"; return; }
        answer=$(eval "${wait}" </dev/null 2>/dev/null | head -n1)
        echo "$(($(now_ms) - t0)) ${answer:-none}"
        eval "${stop}" </dev/null >/dev/null 2>&1 || true
    done
}

log "building a Debian ${SUITE} guest with systemd (hangar build -m debootstrap)"
"${HANGAR}" build sd -m debootstrap -- -d "${SUITE}" >"${work}/build.log" 2>&1 || {
    log "build failed: $(last_line "${work}/build.log")"
    exit 1
}
built=1
rootfs=${HANGAR_ROOT}/var/lib/hangar/guests/sd/rootfs
id_base=$(stat -c %u "${rootfs}")

# The time until systemd answers, from a start command; the guest is killed between boots.
wait_hangar="'${HANGAR}' exec sd -- sh -c 'until systemctl is-system-running --wait 2>/dev/null; do case \$? in 1) sleep 0.05;; *) break;; esac; done' | tail -n1"
log "hangar: ${RUNS} boots"
mapfile -t hangar_boots < <(boot_times "'${HANGAR}' start sd" "timeout 120 ${wait_hangar}" "'${HANGAR}' kill sd")

"${HANGAR}" start sd >/dev/null
eval "timeout 120 ${wait_hangar}" >/dev/null || true
sleep 10
hangar_mem=$("${HANGAR}" limits sd --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["memory"]["current"] // 1024)')
hangar_monitor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitor_pid"])' "${HANGAR_ROOT}/run/hangar/guests/sd/state.json")
hangar_monitor_pss=$(pss_kib "${hangar_monitor}")
"${HANGAR}" kill sd >/dev/null

# --- LXC, on the same directory and host ids ---------------------------------------
lxc_why=
lxc_boots=()
lxc_mem=0
lxc_monitor_pss=0
if ! command -v lxc-start >/dev/null; then
    lxc_why="lxc-start not installed"
else
    for f in /etc/subuid /etc/subgid; do
        if ! grep -q "^root:${id_base}:65536\$" "${f}" 2>/dev/null; then
            echo "root:${id_base}:65536" >>"${f}"
            subid_added+=("${f}")
        fi
    done
    mkdir -p "${lxcpath}/benchsd"
    # Debian's unprivileged defaults, minus lxcfs's hooks (no host lxcfs service here).
    cat >"${lxcpath}/benchsd/config" <<EOF
lxc.include = /usr/share/lxc/config/common.conf
lxc.include = /usr/share/lxc/config/userns.conf
lxc.hook.mount =
lxc.hook.post-stop =
lxc.uts.name = sd
lxc.rootfs.path = dir:${rootfs}
lxc.idmap = u 0 ${id_base} 65536
lxc.idmap = g 0 ${id_base} 65536
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed
EOF
    lxc_start="lxc-start -P '${lxcpath}' -n benchsd -d -l ERROR -o '${work}/lxc.log'"
    lxc_stop="lxc-stop -P '${lxcpath}' -n benchsd -k"
    wait_lxc="lxc-attach -P '${lxcpath}' -n benchsd -- sh -c 'until systemctl is-system-running --wait 2>/dev/null; do case \$? in 1) sleep 0.05;; *) break;; esac; done' | tail -n1"
    log "LXC: ${RUNS} boots"
    mapfile -t lxc_boots < <(boot_times "${lxc_start}" "timeout 120 ${wait_lxc}" "${lxc_stop}")
    if [[ ${lxc_boots[0]:-fail} == fail* ]]; then
        lxc_why="lxc-start failed: ${lxc_boots[0]#fail }"
        lxc_boots=()
    else
        eval "${lxc_start}" && eval "timeout 120 ${wait_lxc}" >/dev/null || true
        sleep 10
        lxc_mem=$(($(lxc-cgroup -P "${lxcpath}" -n benchsd memory.usage_in_bytes 2>/dev/null || echo 0) / 1024))
        lxc_monitor=$(pgrep -f "lxc monitor.*${lxcpath} benchsd" | head -n1 || true)
        [[ -n ${lxc_monitor} ]] && lxc_monitor_pss=$(pss_kib "${lxc_monitor}")
        eval "${lxc_stop}" >/dev/null 2>&1 || true
    fi
fi

# --- report -----------------------------------------------------------------------------
report_boots() {
    local name=$1
    shift
    printf '  %-8s' "${name}"
    printf ' %s' "$@" | tr '\n' ' '
    echo
}
hangar_ms=$(printf '%s\n' "${hangar_boots[@]}" | awk '$1 ~ /^[0-9]+$/ { print $1 }' | median)
echo
echo "systemd guest, Debian ${SUITE}, ${RUNS} boots each (ms and systemd's answer):"
report_boots hangar "${hangar_boots[@]/%/;}"
if [[ -n ${lxc_why} ]]; then
    echo "  LXC      unavailable: ${lxc_why}"
else
    report_boots LXC "${lxc_boots[@]/%/;}"
fi
lxc_ms=$(printf '%s\n' "${lxc_boots[@]:-}" | awk '$1 ~ /^[0-9]+$/ { print $1 }' | median)
printf '\n%-38s %10s %10s %8s\n' "" hangar LXC ratio
ratio() { python3 -c 'import sys; a, b = float(sys.argv[1] or 0), float(sys.argv[2] or 0); print("%.2f" % (a / b) if a and b else "-")' "$1" "$2"; }
printf '%-38s %10s %10s %8s\n' "boot to is-system-running, median ms" "${hangar_ms:-?}" "${lxc_ms:--}" "$(ratio "${hangar_ms}" "${lxc_ms}")"
printf '%-38s %10s %10s %8s\n' "idle guest memory (cgroup), KiB" "${hangar_mem}" "${lxc_mem}" "$(ratio "${hangar_mem}" "${lxc_mem}")"
printf '%-38s %10s %10s %8s\n' "monitor PSS, KiB" "${hangar_monitor_pss}" "${lxc_monitor_pss}" "$(ratio "${hangar_monitor_pss}" "${lxc_monitor_pss}")"
echo "(ratio: hangar / LXC; below 1 is hangar ahead)"
