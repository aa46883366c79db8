#!/usr/bin/env bash
# Resource-control benchmark: what hangar's limits cost a running guest.
#
# Usage (as root, from anywhere):
#   bench/limits.sh
# Environment:
#   HANGAR     the hangar binary (default: target/release/hangar of this repo)
#   READS      reads of each /proc file per round (default 2000)
#   ROUNDS     rounds of those reads; the median round is reported (default 5)
#   RUNS       hyperfine runs per value of a `set` measurement (default 30; 3 warm-up)
#   BENCH_OUT  keep hyperfine's JSON exports in this directory
#
# Measures (1) the virtualised /proc: a static C reader opens, reads to EOF and
# closes /proc/meminfo, stat, cpuinfo and uptime READS times in one process, on
# the host, inside a hangar busybox guest (where lxcfs, a FUSE filesystem, serves
# those files) and inside an LXC container given the same lxcfs files the way
# lxcfs's own LXC hook gives them; /proc/version, which lxcfs does not serve,
# is the control. (2) `hangar set` on a running guest (memory.max, cpu.max)
# against LXC's `lxc-cgroup` on a running container, a shell `echo > FILE` and a
# bare static writer, all timed by hyperfine -N. It prints two tables and cleans
# up everything it created (guests, the lxcfs keeper and its mount, cgroups,
# the LXC container, subordinate-id entries, temp dirs), also when interrupted.
# LXC is optional: without it the ratios are taken against the shell echo.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
script="${repo}/bench/$(basename "$0")"

# shellcheck source=bench/lib.sh
source "${repo}/bench/lib.sh"
bench_start "${script}" "$@"

READS=${READS:-2000}
ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-30}
WARMUP=3
GUEST=bench
# The LXC container (its own name: bench/start.sh may run beside us) and its
# subordinate ids (root -> 1000000, as in bench/start.sh).
LXC_NAME=benchlimits
IDMAP_BASE=1000000
IDMAP_SIZE=65536
# The files lxcfs serves that we time, and a control it does not serve.
PROC_FILES=(/proc/meminfo /proc/stat /proc/cpuinfo /proc/uptime /proc/version)



for tool in hyperfine python3 busybox gcc; do
    if ! command -v "${tool}" >/dev/null; then
        log "${tool} is missing: run scripts/setup-host.sh"
        exit 1
    fi
done
if [[ ! -x ${HANGAR} ]]; then
    log "no hangar binary at ${HANGAR}: cargo build --release --workspace"
    exit 1
fi

work=$(mktemp -d /var/tmp/hangar-limits.XXXXXX)
# The guests' roots (host uid 1000000 and up) must be able to walk down to their trees.
chmod 0755 "${work}"
export HANGAR_ROOT=${work}/hangar-root
mkdir -p "${HANGAR_ROOT}"

# The cgroup parent hangar uses for this root: "hangar-" and the FNV-1a hash of
# the root's path, truncated to 32 bits (crates/hangar-core/src/paths.rs).
cgroup_parent=$(python3 -c '
import sys
h = 0xcbf29ce484222325
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("hangar-%08x" % (h & 0xffffffff))
' "${HANGAR_ROOT}")
lxcfs_mp=${HANGAR_ROOT}/var/lib/hangar/lxcfs
lxcfs_state=${HANGAR_ROOT}/run/hangar/lxcfs.json

# --- cleanup ----------------------------------------------------------------------

lxcpath=${work}/lxc
hangar_built=
subid_added=()
# LXC's shared helper cgroups (lxc.pivot): removed at the end only if this run
# made them.
lxc_pivots=()

# gone PID: the process has exited (or is a zombie waiting to be reaped).
gone() { [[ ! -e /proc/$1 ]] || grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
# json_field FILE KEY: one field of a JSON object, or nothing.
json_field() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null
}

stop_lxcfs() {
    local keeper lxcfs i
    [[ -r ${lxcfs_state} ]] || return 0
    keeper=$(json_field "${lxcfs_state}" keeper_pid)
    lxcfs=$(json_field "${lxcfs_state}" lxcfs_pid)
    # The keeper stops lxcfs and unmounts it on SIGTERM.
    if [[ -n ${keeper} ]] && ! gone "${keeper}" && refers_to_root "${keeper}"; then
        kill -TERM "${keeper}"
        for ((i = 0; i < 50; i++)); do
            gone "${keeper}" && break
            sleep 0.1
        done
        if ! gone "${keeper}"; then
            log "warning: lxcfs keeper ${keeper} ignored SIGTERM; killing it"
            kill -KILL "${keeper}"
        fi
    fi
    if [[ -n ${lxcfs} ]] && ! gone "${lxcfs}" && refers_to_root "${lxcfs}"; then
        kill -KILL "${lxcfs}"
    fi
    if awk -v m="${lxcfs_mp}" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; then
        umount -l "${lxcfs_mp}"
    fi
}

# Every monitor of a guest of ours that is still alive (hangar kill failed).
kill_monitors() {
    local f pid
    for f in "${HANGAR_ROOT}"/run/hangar/guests/*/state.json; do
        [[ -r ${f} ]] || continue
        pid=$(json_field "${f}" monitor_pid)
        if [[ -n ${pid} && ${pid} != None ]] && ! gone "${pid}" && refers_to_root "${pid}"; then
            kill -KILL "${pid}"
        fi
    done
}

# The cgroups hangar made for this root, in every hierarchy; a cgroup whose
# last process is still exiting refuses rmdir for a moment, so retry.
remove_cgroups() {
    local dirs=() d i
    for d in /sys/fs/cgroup/*/"${cgroup_parent}" "/sys/fs/cgroup/${cgroup_parent}"; do
        [[ -d ${d} ]] && dirs+=("${d}")
    done
    [[ ${#dirs[@]} -gt 0 ]] || return 0
    for ((i = 0; i < 50; i++)); do
        for d in "${dirs[@]}"; do
            [[ -d ${d} ]] && find "${d}" -depth -type d -exec rmdir {} + 2>/dev/null
        done
        for d in "${dirs[@]}"; do
            [[ -d ${d} ]] && continue 2
        done
        return 0
    done
    log "warning: cgroups left behind: ${dirs[*]}"
}

cleanup() {
    set +e
    if [[ -d ${lxcpath}/${LXC_NAME} ]]; then
        lxc-stop -P "${lxcpath}" -n "${LXC_NAME}" -k >/dev/null 2>&1
    fi
    for d in "${lxc_pivots[@]}"; do
        [[ -d ${d} ]] && rmdir "${d}" 2>/dev/null
    done
    if [[ -n ${hangar_built} ]]; then
        "${HANGAR}" kill "${GUEST}" >/dev/null 2>&1
        "${HANGAR}" delete "${GUEST}" --force >/dev/null 2>&1
    fi
    kill_monitors
    stop_lxcfs
    # Whatever of ours is still alive (say, interrupted between spawning the
    # keeper and its writing lxcfs.json).
    for pid in $(pgrep -x hangar-monitor) $(pgrep -x lxcfs); do
        refers_to_root "${pid}" && kill -KILL "${pid}"
    done
    remove_cgroups
    for f in "${subid_added[@]}"; do
        sed -i "/^root:${IDMAP_BASE}:${IDMAP_SIZE}\$/d" "${f}"
    done
    # Nothing may stay mounted below the work dir before it is removed.
    awk -v w="${work}" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "${m}"; done
    rm -rf --one-file-system "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- the reader: open + read to EOF + close, N times, in one process ----------------

reader=${work}/procread
cat >"${work}/procread.c" <<'EOF'
/* procread N FILE...      per FILE: 20 untimed reads, then N timed ones (open,
 *                         read to EOF, close); prints "FILE µs-per-read bytes"
 * procread -w FILE VALUE  writes VALUE to FILE once (a bare cgroup write) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 16];

static long read_once(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
    return n < 0 ? -1 : total;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "-w") == 0) {
        int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
        size_t len = strlen(argv[3]);
        if (fd < 0 || write(fd, argv[3], len) != (ssize_t)len) { perror(argv[2]); return 1; }
        return close(fd) == 0 ? 0 : 1;
    }
    if (argc < 3) { fprintf(stderr, "usage: procread N FILE... | procread -w FILE VALUE\n"); return 2; }
    long n = atol(argv[1]);
    for (int f = 2; f < argc; f++) {
        long bytes = 0;
        for (int i = 0; i < 20; i++) bytes = read_once(argv[f]);
        if (bytes < 0) { perror(argv[f]); return 1; }
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++)
            if (read_once(argv[f]) < 0) { perror(argv[f]); return 1; }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n;
        printf("%s %.2f %ld\n", argv[f], us, bytes);
    }
    return 0;
}
EOF
if ! quietly "${work}/gcc.log" gcc -static -O2 -Wall -o "${reader}" "${work}/procread.c"; then
    log "compiling the reader failed (static libc: apt-get install libc6-dev): $(last_line "${work}/gcc.log")"
    exit 1
fi

# --- the hangar guest -----------------------------------------------------------------

hangar_why=
hangar_rootfs=${HANGAR_ROOT}/var/lib/hangar/guests/${GUEST}/rootfs
if ! quietly "${work}/hangar.log" "${HANGAR}" build "${GUEST}" -m busybox --network none; then
    hangar_why="build failed: $(last_line "${work}/hangar.log")"
else
    hangar_built=1
    if ! quietly "${work}/hangar.log" "${HANGAR}" start "${GUEST}"; then
        hangar_why="start failed: $(last_line "${work}/hangar.log")"
    fi
fi
if [[ -n ${hangar_why} ]]; then
    log "hangar: ${hangar_why}"
    exit 1
fi
# The reader, owned by the guest's root like the rest of its tree.
cp "${reader}" "${hangar_rootfs}/root/procread"
chown "$(stat -c %u:%g "${hangar_rootfs}")" "${hangar_rootfs}/root/procread"

# in_guest CMD...: run CMD inside the hangar guest, output on our stdout.
in_guest() { "${HANGAR}" exec "${GUEST}" -- "$@" </dev/null; }

# cgroup_dir PID CONTROLLER: the cgroupfs directory of PID for CONTROLLER
# (its v1 hierarchy when it has one, else the cgroup2 one).
cgroup_dir() {
    python3 - "$1" "$2" <<'EOF'
import sys
pid, ctrl = sys.argv[1], sys.argv[2]
mounts = []
for line in open("/proc/self/mountinfo"):
    pre, post = line.split(" - ")
    fstype, _src, opts = post.split()[:3]
    if fstype in ("cgroup", "cgroup2"):
        mounts.append((fstype, pre.split()[4], set(opts.split(","))))
for line in open("/proc/%s/cgroup" % pid):
    hid, ctrls, path = line.rstrip("\n").split(":", 2)
    if ctrl in ctrls.split(","):
        for fstype, mp, opts in mounts:
            if fstype == "cgroup" and ctrl in opts:
                print(mp + path)
                sys.exit(0)
for line in open("/proc/%s/cgroup" % pid):
    hid, ctrls, path = line.rstrip("\n").split(":", 2)
    if hid == "0":
        for fstype, mp, _opts in mounts:
            if fstype == "cgroup2":
                try:
                    if ctrl in open(mp + "/cgroup.controllers").read().split():
                        print(mp + path)
                        sys.exit(0)
                except OSError:
                    pass
sys.exit(1)
EOF
}

init_pid=$(json_field "${HANGAR_ROOT}/run/hangar/guests/${GUEST}/state.json" init_pid)
mem_dir=$(cgroup_dir "${init_pid}" memory) || { log "no memory cgroup for the guest's init"; exit 1; }
cpu_dir=$(cgroup_dir "${init_pid}" cpu) || { log "no cpu cgroup for the guest's init"; exit 1; }
# The kernel's file names, v1 or v2, and the values `hangar set` writes to them.
if [[ -e ${mem_dir}/memory.limit_in_bytes ]]; then
    cg=v1 mem_file=memory.limit_in_bytes cpu_file=cpu.cfs_quota_us
    cpu_values='50000,25000'
    lxc_mem_key=lxc.cgroup.memory.limit_in_bytes
else
    cg=v2 mem_file=memory.max cpu_file=cpu.max
    cpu_values='50000 100000,25000 100000'
    lxc_mem_key=lxc.cgroup2.memory.max
fi
# The guest's memory limit (hangar's default unless the host defaults say otherwise).
guest_mem_limit=$(<"${mem_dir}/${mem_file}")

# Does lxcfs serve the guest's /proc?
lxcfs_why=
if ! command -v lxcfs >/dev/null; then
    lxcfs_why="lxcfs not installed: guests read the kernel's /proc"
elif ! grep -q ' /proc/meminfo .* fuse.lxcfs ' <<<"$(in_guest cat /proc/self/mountinfo)"; then
    lxcfs_why="the guest's /proc/meminfo is not served by lxcfs"
fi

# --- the LXC container, with the same lxcfs files ------------------------------------

lxc_why=
lxc_rootfs=${work}/lxc-rootfs
setup_lxc() {
    command -v lxc-start >/dev/null || { lxc_why="lxc-start not installed"; return 1; }
    cp -a "${hangar_rootfs}" "${lxc_rootfs}"
    chown -hR "${IDMAP_BASE}:${IDMAP_BASE}" "${lxc_rootfs}"
    mkdir -p "${lxc_rootfs}"/{dev,proc,sys,tmp,run}
    # LXC insists that even root's maps are reserved in /etc/sub[ug]id once
    # newuidmap is installed: reserve ours for the duration of the run.
    local f
    for f in /etc/subuid /etc/subgid; do
        if ! grep -q "^root:${IDMAP_BASE}:${IDMAP_SIZE}\$" "${f}" 2>/dev/null; then
            echo "root:${IDMAP_BASE}:${IDMAP_SIZE}" >>"${f}"
            subid_added+=("${f}")
        fi
    done
    local d
    for d in /sys/fs/cgroup/*/; do
        [[ -e ${d}lxc.pivot ]] || lxc_pivots+=("${d}lxc.pivot")
    done
    mkdir -p "${lxcpath}/${LXC_NAME}"
    # bench/start.sh's container, with the guest's memory limit. lxcfs's own
    # hooks are replaced: its mount hook binds /var/lib/lxcfs/proc/* over the
    # container's /proc/* (a host-wide lxcfs this benchmark does not start);
    # the mount entries below bind hangar's lxcfs the same way, so both read
    # through the one lxcfs process. Its post-stop hook only sleeps.
    {
        cat <<EOF
lxc.include = /usr/share/lxc/config/common.conf
lxc.include = /usr/share/lxc/config/userns.conf
lxc.hook.mount =
lxc.hook.post-stop =
lxc.uts.name = ${LXC_NAME}
lxc.rootfs.path = dir:${lxc_rootfs}
lxc.init.cmd = /sbin/init
lxc.idmap = u 0 ${IDMAP_BASE} ${IDMAP_SIZE}
lxc.idmap = g 0 ${IDMAP_BASE} ${IDMAP_SIZE}
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
${lxc_mem_key} = ${guest_mem_limit}
EOF
        if [[ -z ${lxcfs_why} ]]; then
            for f in "${lxcfs_mp}"/proc/*; do
                echo "lxc.mount.entry = ${f} proc/${f##*/} none bind,optional,create=file 0 0"
            done
        fi
    } >"${lxcpath}/${LXC_NAME}/config"
    if ! quietly "${work}/lxc.out" lxc-start -P "${lxcpath}" -n "${LXC_NAME}" -d -l ERROR -o "${work}/lxc.log"; then
        lxc_why="lxc-start failed: $(last_line "${work}/lxc.log")"
        return 1
    fi
    if ! quietly "${work}/lxc.out" lxc-attach -P "${lxcpath}" -n "${LXC_NAME}" -- /bin/true; then
        lxc_why="lxc-attach failed: $(last_line "${work}/lxc.out")"
        return 1
    fi
}
in_lxc() { lxc-attach -P "${lxcpath}" -n "${LXC_NAME}" -- "$@" </dev/null; }

# --- (1) the virtualised /proc -----------------------------------------------------------

declare -A us   # us[ENV:FILE] = µs per read, one line per round
declare -A read_why
# read_round ENV CMD...: run the reader through CMD, record its lines under ENV.
read_round() {
    local env=$1 out file t
    shift
    if ! out=$("$@" 2>&1); then
        read_why[${env}]=$(tail -n1 <<<"${out}")
        return 1
    fi
    while read -r file t _; do
        file=${file#"${lxcfs_mp}"}
        us[${env}:${file}]+="${t} "
    done <<<"${out}"
}
# median_of "VALUES": the median of space-separated numbers (the lower middle one when even).
median_of() { tr ' ' '\n' <<<"$1" | awk NF | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

declare -A memtotal
# mem_total RUNNER...: MemTotal in kB as read through RUNNER (on_host, in_guest, in_lxc).
mem_total() { "$@" cat /proc/meminfo 2>/dev/null | awk '/^MemTotal:/ { print $2 }'; }
on_host() { "$@"; }

measure_proc() {
    local envs=(host hangar) round f lxcfs_files=()
    [[ -z ${lxc_why} ]] && envs+=(lxc)
    # The same lxcfs files read on the host, through the mount point: lxcfs's
    # own cost, without any namespace.
    if [[ -z ${lxcfs_why} ]]; then
        envs+=(hostfuse)
        for f in "${PROC_FILES[@]}"; do
            [[ -e ${lxcfs_mp}${f} ]] && lxcfs_files+=("${lxcfs_mp}${f}")
        done
    fi
    log "/proc reads: ${ROUNDS} rounds of ${READS} reads of each file in ${envs[*]}"
    for ((round = 1; round <= ROUNDS; round++)); do
        read_round host "${reader}" "${READS}" "${PROC_FILES[@]}" || true
        read_round hangar in_guest /root/procread "${READS}" "${PROC_FILES[@]}" || true
        [[ -z ${lxc_why} ]] && { read_round lxc in_lxc /root/procread "${READS}" "${PROC_FILES[@]}" || true; }
        [[ -z ${lxcfs_why} ]] && { read_round hostfuse "${reader}" "${READS}" "${lxcfs_files[@]}" || true; }
    done
    # What the readers saw: the guests' MemTotal is their memory limit.
    memtotal[host]=$(mem_total on_host)
    memtotal[hangar]=$(mem_total in_guest)
    [[ -z ${lxc_why} ]] && memtotal[lxc]=$(mem_total in_lxc)
    if [[ -n ${BENCH_OUT:-} ]]; then
        mkdir -p "${BENCH_OUT}"
        for f in "${!us[@]}"; do echo "${f} ${us[${f}]}"; done | sort >"${BENCH_OUT}/proc-reads.txt"
    fi
}

# --- (2) hangar set and its equivalents ----------------------------------------------------

declare -A median
# measure KEY VALUES CMD: hyperfine -N over a parameter list ({v} in CMD takes
# each of the comma-separated VALUES in turn, RUNS runs each); records the median
# in ms over all runs as ${median[KEY]}; returns non-zero (reason in ${why}) on failure.
why=
measure() {
    local key=$1 values=$2 cmd=$3 json=${work}/${1}.json res
    if ! quietly "${work}/${key}.log" hyperfine -N --warmup "${WARMUP}" --runs "${RUNS}" \
        --style basic --export-json "${json}" --parameter-list v "${values}" "${cmd}"; then
        why=$(grep -m1 -i -E 'error|fail' "${work}/${key}.log" || last_line "${work}/${key}.log")
        return 1
    fi
    res=$(python3 -c '
import json, statistics, sys
t = [x * 1000 for r in json.load(open(sys.argv[1]))["results"] for x in r["times"]]
print("%.2f\tmedian %.2f ms, mean %.2f ± %.2f ms, range %.2f … %.2f ms (%d runs)" % (
    statistics.median(t), statistics.median(t), statistics.mean(t), statistics.stdev(t),
    min(t), max(t), len(t)))
' "${json}")
    median[${key}]=${res%%$'\t'*}
    log "  ${res#*$'\t'}"
    if [[ -n ${BENCH_OUT:-} ]]; then
        mkdir -p "${BENCH_OUT}"
        cp "${json}" "${BENCH_OUT}/"
    fi
}

declare -A set_why
# try KEY LABEL VALUES CMD: measure, or remember why not.
try() {
    log "$2"
    measure "$1" "$3" "$4" || set_why[$1]=${why}
}
# expect FILE VALUE KEY: after a measurement, the kernel holds the last value written.
expect() {
    local got
    got=$(<"$1")
    [[ ${got} == "$2" ]] || set_why[$3]="${set_why[$3]:-wrote ${2} last, the kernel holds ${got}}"
}

measure_set() {
    local lxc=(lxc-cgroup -P "${lxcpath}" -n "${LXC_NAME}")
    local mem=${mem_dir}/${mem_file} cpu=${cpu_dir}/${cpu_file} last_cpu=${cpu_values##*,}
    try hangar_mem "hangar set memory.max" 256M,512M "'${HANGAR}' set ${GUEST} memory.max={v}"
    expect "${mem}" 536870912 hangar_mem
    try hangar_cpu "hangar set cpu.max" 50%,25% "'${HANGAR}' set ${GUEST} cpu.max={v}"
    expect "${cpu}" "${last_cpu}" hangar_cpu
    if [[ -z ${lxc_why} ]]; then
        try lxc_mem "lxc-cgroup ${mem_file}" 256M,512M "${lxc[*]@Q} ${mem_file} {v}"
        try lxc_cpu "lxc-cgroup ${cpu_file}" "${cpu_values}" "${lxc[*]@Q} ${cpu_file} '{v}'"
    fi
    try echo_mem "sh -c 'echo > ${mem_file}'" 256M,512M "sh -c 'echo {v} > ${mem}'"
    expect "${mem}" 536870912 echo_mem
    try echo_cpu "sh -c 'echo > ${cpu_file}'" "${cpu_values}" "sh -c 'echo {v} > ${cpu}'"
    try floor_mem "hangar --version" x "'${HANGAR}' --version"
    median[floor_cpu]=${median[floor_mem]:-}
    try raw_mem "static writer, ${mem_file}" 256M,512M "'${reader}' -w '${mem}' {v}"
    expect "${mem}" 536870912 raw_mem
    try raw_cpu "static writer, ${cpu_file}" "${cpu_values}" "'${reader}' -w '${cpu}' '{v}'"
    expect "${cpu}" "${last_cpu}" raw_cpu
}

# --- run and report ------------------------------------------------------------------------

log "$(nproc) cpus, kernel $(uname -r), cgroup ${cg}; guest cgroup ${mem_dir}"
setup_lxc || log "LXC: ${lxc_why}"
measure_proc
measure_set

ratio() { # ratio A B: A/B, or "-"
    if [[ -n ${1} && -n ${2} ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN {
            if (b <= 0) print "-"; else if (a / b >= 10) printf "%.0f\n", a / b; else printf "%.2f\n", a / b }'
    else
        echo "-"
    fi
}

echo
echo "== /proc reads, µs per open + read to EOF + close, one process (median of ${ROUNDS} rounds of ${READS}) =="
if [[ -n ${lxcfs_why} ]]; then echo "note: ${lxcfs_why}"; fi
printf '%-14s %8s %9s %9s %9s %9s %11s %13s\n' file host hangar hang÷host LXC LXC÷host hang÷LXC "host→lxcfs"
for f in "${PROC_FILES[@]}"; do
    h=$(median_of "${us[host:${f}]:-}")
    g=$(median_of "${us[hangar:${f}]:-}")
    l=$(median_of "${us[lxc:${f}]:-}")
    x=$(median_of "${us[hostfuse:${f}]:-}")
    label=${f}
    [[ ${f} == /proc/version ]] && label="${f}*"
    printf '%-14s %8s %9s %9s %9s %9s %11s %13s\n' "${label}" "${h:--}" "${g:--}" "$(ratio "${g}" "${h}")" \
        "${l:--}" "$(ratio "${l}" "${h}")" "$(ratio "${g}" "${l}")" "${x:--}"
done
for env in "${!read_why[@]}"; do echo "${env}: reader failed (${read_why[${env}]})"; done
[[ -n ${lxc_why} ]] && echo "LXC: unavailable (${lxc_why})"
echo "* not served by lxcfs: the control (namespaces alone)."
echo "host→lxcfs: the host reading the same lxcfs files at its mount point (FUSE + lxcfs, no namespace)."
echo "MemTotal kB: host ${memtotal[host]:--}, hangar ${memtotal[hangar]:--}, LXC ${memtotal[lxc]:--} (both guests' memory limit: ${guest_mem_limit} bytes)."
[[ -z ${lxc_why} ]] && echo "LXC $(lxc-start --version): the same lxcfs process, its /proc files bound as lxcfs's LXC hook binds them."

echo
ref=lxc ref_label="lxc-cgroup"
if [[ -n ${lxc_why} ]]; then ref=echo ref_label="sh echo"; fi
echo "== changing a limit of a running guest, ms per command (hyperfine -N, median of 2×${RUNS} runs) =="
printf '%-24s %8s %8s %15s %15s\n' command "memory" "cpu" "mem÷${ref_label}" "cpu÷${ref_label}"
set_row() { # set_row LABEL KEY
    local m=${median[$2_mem]:-} c=${median[$2_cpu]:-}
    printf '%-24s %8s %8s %15s %15s\n' "$1" "${m:--}" "${c:--}" \
        "$(ratio "${m}" "${median[${ref}_mem]:-}")" "$(ratio "${c}" "${median[${ref}_cpu]:-}")"
    local k
    for k in "$2_mem" "$2_cpu"; do
        [[ -n ${set_why[${k}]:-} ]] && printf '  %s: %s\n' "${k}" "${set_why[${k}]}"
    done
    return 0
}
set_row "hangar set" hangar
if [[ -n ${lxc_why} ]]; then printf '%-24s unavailable (%s)\n' lxc-cgroup "${lxc_why}"; else
    set_row "lxc-cgroup" lxc; fi
set_row "sh -c 'echo V > FILE'" echo
set_row "static writer" raw
set_row "hangar --version" floor
echo "memory: hangar set NAME memory.max=256M|512M; the others ${mem_file} 256M|512M (${RUNS} runs each)."
echo "cpu: hangar set NAME cpu.max=50%|25%; the others ${cpu_file} ${cpu_values//,/|}."
echo "lxc-cgroup asks the container's running monitor to write the file; the static writer is one exec + one write(2)."
echo "hangar set also validates, rewrites every limit of the guest, saves its config (fsync) under the guest's lock."
echo "hangar --version: the floor of any hangar command (exec of the binary), same in both columns."
