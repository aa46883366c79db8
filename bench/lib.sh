# shellcheck shell=bash
# Shared pieces of the benchmark scripts: `source` it, then call
# `bench_start SCRIPT "$@"` before anything else.

# The hangar binary a benchmark runs (HANGAR overrides it) and its progress lines.
HANGAR=${HANGAR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/hangar}
log() { printf 'bench: %s\n' "$*"; }

# Refuse to run without root, then re-run SCRIPT under a child subreaper.
#
# pid 1 of some machines (CI sandboxes, containers) reaps orphans late: the detached
# processes a benchmark starts (hangar's monitors and lxcfs keeper, crun's inits, the
# LXC monitor) then linger as zombies, hold their cgroups and skew the next run. Under
# a subreaper that reaps at once, as systemd would, they do not.
bench_start() {
    local script=$1
    shift
    if [[ ${EUID} -ne 0 ]]; then
        echo "bench: must run as root" >&2
        exit 1
    fi
    [[ -n ${BENCH_REAPED:-} ]] && return 0
    export BENCH_REAPED=1
    exec python3 -c '
import ctypes, os, signal, sys
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    os.execv("/bin/bash", ["bash"] + sys.argv[1:])
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda n, _f: os.kill(child, n))
while True:
    try:
        pid, status = os.wait()
    except InterruptedError:
        continue
    if pid == child:
        sys.exit(os.waitstatus_to_exitcode(status))
' "${script}" "$@"
}

# refers_to_root PID: the process names our HANGAR_ROOT in its environment, its
# command line or an open file (so a recycled pid is never killed).
refers_to_root() {
    local fd
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qx "HANGAR_ROOT=${HANGAR_ROOT}" && return 0
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "${HANGAR_ROOT}" && return 0
    for fd in "/proc/$1/fd/"*; do
        [[ $(readlink "${fd}" 2>/dev/null) == "${HANGAR_ROOT}"/* ]] && return 0
    done
    return 1
}

# bench_cgroup_parent: the cgroup parent hangar gives this HANGAR_ROOT,
# `hangar-<FNV-1a of the root's path, low 32 bits>` (hangar-core's paths.rs).
bench_cgroup_parent() {
    python3 -c '
import sys
h = 0xcbf29ce484222325
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("hangar-%08x" % (h & 0xffffffff))
' "${HANGAR_ROOT}"
}

# bench_remove_work WORK: stop this HANGAR_ROOT's lxcfs keeper (on SIGTERM it stops
# lxcfs and unmounts it), unmount whatever is left below WORK, remove the root's
# (by now empty) cgroup parent in every hierarchy, and remove WORK.
bench_remove_work() {
    local work=$1 keeper
    keeper=$(sed -n 's/.*"keeper_pid":\([0-9]*\).*/\1/p' "${HANGAR_ROOT}/run/hangar/lxcfs.json" 2>/dev/null)
    if [[ -n ${keeper} ]] && refers_to_root "${keeper}"; then
        kill -TERM "${keeper}"
        for _ in $(seq 50); do
            if [[ ! -d /proc/${keeper} ]] || grep -qE '^State:\s+Z' "/proc/${keeper}/status" 2>/dev/null; then break; fi
            sleep 0.1
        done
    fi
    awk -v w="${work}" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "${m}"; done
    local parent dir
    parent=$(bench_cgroup_parent)
    for dir in /sys/fs/cgroup/*/"${parent}" /sys/fs/cgroup/"${parent}"; do
        [[ -d ${dir} ]] && find "${dir}" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    rm -rf --one-file-system "${work}"
}

# quietly LOG CMD...: runs CMD with its output in LOG, never in a pipe of
# ours: a daemon (a guest's init, a monitor) that inherited such a pipe would
# keep a command substitution waiting forever.
quietly() {
    local out=$1
    shift
    "$@" </dev/null >"${out}" 2>&1
}
# last_line LOG: the reason to print when a command failed.
last_line() { tail -n1 "$1" 2>/dev/null | grep . || echo "no output"; }
