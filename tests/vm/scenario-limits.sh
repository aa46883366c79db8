#!/bin/sh
# Resource control on cgroup v2, run inside the test VM by tests/vm/run.sh (whose
# /init mounted cgroup2 alone at /sys/fs/cgroup and set HANGAR_ROOT). Only hangar's
# CLI changes anything; the VM's side (the guests' host) only reads, to report:
#   - a busybox guest g given memory.max=20M memory.swap=0 pids.max=64 cpu.max=25%
#     by `hangar set` while stopped (saved, applied at start): its cgroup v2 files,
#   - /proc/meminfo inside g when the image carries lxcfs (build-initramfs.sh puts
#     it in /opt/lxcfs/bin; this scenario puts that on the PATH),
#   - a 30 MiB allocation in g (tests/vm/eat.c): OOM-killed, g still running,
#   - a busy loop in g: its share of one CPU from `hangar limits g --format json`
#     (counters.cpu.usage_us) over a window, at cpu.max 25% and, after a live
#     `hangar set g cpu.max=50%`, at 50%,
#   - a live `hangar set g memory.max=64M` read back (and meminfo again),
#   - a fork bomb (100 background sleeps) against pids.max 64,
#   - `hangar limits g` as a table,
#   - two guests with cpu.weight 100 and 200, both pinned to CPU 0 (cpu.pin=0),
#     each running a busy loop: the ratio of their CPU time over a window.
# Shares and ratios are reported with their raw counters and times; the bounds are
# in crates/hangar-cli/tests/cgroup2_vm.rs. "key: value" lines are read there;
# "ok"/"FAIL" lines are this script's own exact checks, and it exits 1 if any failed.
#
# Times come from /proc/uptime (10 ms steps; busybox date has no %N). A window is a
# sleep of WINDOW seconds (default 4), begun 1 s after the loops started, between two
# `hangar limits` calls, each timed at its midpoint (a call takes ~0.5-2 s under TCG).

set -u
window=${WINDOW:-4}
# shellcheck source=tests/vm/scenario-lib.sh
. /scenario-lib.sh
# guest_cgroup NAME: the guest's cgroup directory, /sys/fs/cgroup/hangar-*/CTX
guest_cgroup() {
    _ctx=$(sed -n 's/^context *= *\([0-9]*\).*/\1/p' "${HANGAR_ROOT}/etc/hangar/guests/$1.toml")
    for _d in /sys/fs/cgroup/hangar*/"${_ctx}"; do
        [ -d "${_d}" ] && printf '%s\n' "${_d}" && return 0
    done
    return 1
}
# usage_us NAME: the guest's CPU time (µs) as `hangar limits` reports it
usage_us() {
    hangar limits "$1" --format json | tr -d ' \n' | sed -n 's/.*"usage_us":\([0-9]*\).*/\1/p'
}
# sample NAME: sets $at and $us: the guest's CPU time from `hangar limits`, and when
# it was read: the midpoint of the call (under TCG a call takes up to a second or
# two, and the counter is read somewhere inside it).
sample() {
    _a=$(now)
    us=$(usage_us "$1")
    _b=$(now)
    at=$(awk -v a="${_a}" -v b="${_b}" 'BEGIN { printf "%.3f", (a + b) / 2 }')
}
# share US0 AT0 US1 AT1: CPU time per wall time between two samples (1 = one CPU)
share() {
    awk -v u0="$1" -v t0="$2" -v u1="$3" -v t1="$4" 'BEGIN { printf "%.3f", (u1 - u0) / ((t1 - t0) * 1e6) }'
}
# measure KEY NAME CGROUP: report the share of one CPU that guest NAME used over
# the window as "KEY: SHARE", and the raw numbers as "KEY-raw: ...", with the share
# from the cgroup's cpu.stat read directly (a cheap read, so its own timing is tight).
measure() {
    _s0=$(now)
    _c0=$(sed -n 's/^usage_usec //p' "$3/cpu.stat")
    _n0=$(sed -n 's/^nr_throttled //p' "$3/cpu.stat")
    sample "$2"
    _u0=${us} _t0=${at}
    sleep "${window}"
    sample "$2"
    _u1=${us} _t1=${at}
    _s1=$(now)
    _c1=$(sed -n 's/^usage_usec //p' "$3/cpu.stat")
    _n1=$(sed -n 's/^nr_throttled //p' "$3/cpu.stat")
    say "$1: $(share "${_u0}" "${_t0}" "${_u1}" "${_t1}")"
    say "$1-raw: usage_us ${_u0} -> ${_u1} (+$((_u1 - _u0))) at uptime ${_t0} -> ${_t1};" \
        "cpu.stat usage_usec +$((_c1 - _c0)) over ${_s0} -> ${_s1} = $(share "${_c0}" "${_s0}" "${_c1}" "${_s1}"), nr_throttled +$((_n1 - _n0))"
}
# busy NAME: start a busy loop in the guest, in the background
busy() {
    run hangar exec "$1" -- sh -c '(while :; do :; done) >/dev/null 2>&1 &'
    check "busy-loop-started-$1" "${rc}" 0
}

config=${HANGAR_ROOT}/etc/hangar/guests/g.toml

section "host (the VM)"
say "cgroup-fs: $(awk '$5 == "/sys/fs/cgroup" { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo) (magic $(stat -f -c %t /sys/fs/cgroup))"
say "root-controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
say "cpus: $(grep -c ^processor /proc/cpuinfo)"
say "hangar: $(hangar --version 2>&1)"
if [ -x /opt/lxcfs/bin/lxcfs ]; then
    PATH=/opt/lxcfs/bin:${PATH}
    export PATH
    say "lxcfs: yes ($(lxcfs --version 2>&1 | head -n1); fuse $(grep -w fuse /proc/filesystems | tr -s '\t ' ' '))"
else
    say "lxcfs: no (the image carries none; see tests/vm/build-initramfs.sh)"
fi

section "build g, set its limits while it is stopped"
run hangar build g -m busybox
[ "${rc}" -eq 0 ] || die "hangar build g -m busybox"
run hangar set g memory.max=20M memory.swap=0 pids.max=64 cpu.max=25%
check set-stopped-status "${rc}" 0
say "limits in ${config}:"
awk '/^\[/ { p = ($0 ~ /^\[limits[].]/) } p' "${config}"
rootfs=${HANGAR_ROOT}/var/lib/hangar/guests/g/rootfs
cp /usr/local/bin/eat "${rootfs}/bin/eat" && chmod 0755 "${rootfs}/bin/eat"

section "start g"
run hangar start g
[ "${rc}" -eq 0 ] || {
    say "logs:"
    cat "${HANGAR_ROOT}"/var/log/hangar/g/*.log "${HANGAR_ROOT}"/var/log/hangar/lxcfs.log 2>&1
    die "hangar start g"
}
cg=$(guest_cgroup g) || {
    find /sys/fs/cgroup -maxdepth 2 -type d
    die "the cgroup of g was not found"
}
say "guest-cgroup: ${cg}"
say "guest-controllers: $(cat "${cg}/cgroup.controllers")"
for f in memory.max memory.swap.max pids.max cpu.max cpu.weight; do
    say "${f}: $(cat "${cg}/${f}" 2>&1)"
done
check memory.max "$(cat "${cg}/memory.max" 2>&1)" 20971520
check memory.swap.max "$(cat "${cg}/memory.swap.max" 2>&1)" 0
check pids.max "$(cat "${cg}/pids.max" 2>&1)" 64
check cpu.max "$(cat "${cg}/cpu.max" 2>&1)" "25000 100000"

section "/proc/meminfo inside g"
if [ -x /opt/lxcfs/bin/lxcfs ]; then
    say "lxcfs keeper: $(cat "${HANGAR_ROOT}/run/hangar/lxcfs.json" 2>&1)"
    say "\$ hangar exec g -- grep -E '^(MemTotal|SwapTotal):' /proc/meminfo"
    meminfo=$(hangar exec g -- grep -E '^(MemTotal|SwapTotal):' /proc/meminfo 2>&1)
    say "${meminfo}"
    memtotal=$(printf '%s\n' "${meminfo}" | awk '$1 == "MemTotal:" { print $2, $3 }')
    say "meminfo-memtotal: ${memtotal}"
    check meminfo-memtotal "${memtotal}" "20480 kB"
    [ "${failed}" -eq 0 ] || cat "${HANGAR_ROOT}/var/log/hangar/lxcfs.log" 2>&1
else
    say "meminfo-memtotal: no lxcfs"
fi

section "memory: eat 30 MiB under memory.max 20M"
oom_before=$(sed -n 's/^oom_kill //p' "${cg}/memory.events")
run hangar exec g -- /bin/eat 30
say "eat-exit: ${rc}"
say "memory.events after:"
sed 's/^/  /' "${cg}/memory.events"
say "memory.swap.events: $(tr '\n' ' ' <"${cg}/memory.swap.events" 2>&1)"
oom_kill=$(sed -n 's/^oom_kill //p' "${cg}/memory.events")
say "oom_kill: ${oom_kill} (before: ${oom_before})"
check eat-exit "${rc}" 137
run hangar exec g -- echo guest alive after oom
check guest-alive-after-oom "${rc}" 0
say "state-after-oom: $(hangar list --format json | tr -d ' \n' | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')"

section "cpu.max 25%: a busy loop in g over ${window}s"
busy g
sleep 1
measure cpu-share-25 g "${cg}"

section "cpu.max 50%, set live"
run hangar set g cpu.max=50%
check set-cpu-live-status "${rc}" 0
say "cpu.max-after-set: $(cat "${cg}/cpu.max" 2>&1)"
check cpu.max-after-set "$(cat "${cg}/cpu.max" 2>&1)" "50000 100000"
sleep 1
measure cpu-share-50 g "${cg}"

section "memory.max 64M, set live"
run hangar set g memory.max=64M
check set-memory-live-status "${rc}" 0
say "memory.max-after-set: $(cat "${cg}/memory.max" 2>&1)"
check memory.max-after-set "$(cat "${cg}/memory.max" 2>&1)" 67108864
if [ -x /opt/lxcfs/bin/lxcfs ]; then
    say "meminfo-memtotal-after-set: $(hangar exec g -- grep ^MemTotal: /proc/meminfo 2>&1 | awk '{ print $2, $3 }')"
fi

section "pids: 100 background sleeps under pids.max 64"
say "pids.current before: $(cat "${cg}/pids.current")"
# shellcheck disable=SC2016 # expanded by the guest's shell
hangar exec g -- sh -c 'for i in $(seq 1 100); do sleep 30 & done; wait' >/tmp/bomb.out 2>&1 &
bomb=$!
# Under TCG the forks take seconds: wait until one was refused (pids.events max)
# or the guest's shell gave up ("can't fork" ends it), 30 s at most.
i=0
while [ "${i}" -lt 60 ] && [ "$(sed -n 's/^max //p' "${cg}/pids.events")" = 0 ] &&
    kill -0 "${bomb}" 2>/dev/null; do
    sleep 0.5
    i=$((i + 1))
done
say "bomb-waited: $((i / 2)).$((i % 2 * 5))s"
sleep 1
say "pids-current: $(cat "${cg}/pids.current")"
say "pids.events: $(cat "${cg}/pids.events")"
say "pids-events-max: $(sed -n 's/^max //p' "${cg}/pids.events")"
# hangar exec itself needs a pid in g, so the sleeps are ended from here (with
# shell builtins only: under TCG every fork counts).
sleeps=
while read -r p; do
    comm=
    read -r comm 2>/dev/null <"/proc/${p}/comm"
    [ "${comm}" = sleep ] && sleeps="${sleeps} ${p}"
done <"${cg}/cgroup.procs"
say "sleeps-in-g: $(echo "${sleeps}" | wc -w)"
# shellcheck disable=SC2086 # one pid per word
[ -z "${sleeps}" ] || kill ${sleeps} 2>/dev/null
wait "${bomb}"
say "bomb-exec-exit: $?"
say "bomb-exec-output: $(head -c 300 /tmp/bomb.out | tr '\n' '|')"
sleep 1
say "pids.current after: $(cat "${cg}/pids.current")"
run hangar exec g -- echo guest alive after the fork bomb
check guest-alive-after-bomb "${rc}" 0

section "hangar limits g"
run hangar limits g
check limits-status "${rc}" 0

section "stop g"
run hangar stop g
check stop-g-status "${rc}" 0

section "cpu.weight 100 and 200 on CPU 0 over ${window}s"
for n in light heavy; do
    run hangar build "${n}" -m busybox
    [ "${rc}" -eq 0 ] || die "hangar build ${n} -m busybox"
done
run hangar set light cpu.weight=100 cpu.pin=0
check set-light-status "${rc}" 0
run hangar set heavy cpu.weight=200 cpu.pin=0
check set-heavy-status "${rc}" 0
for n in light heavy; do
    run hangar start "${n}"
    [ "${rc}" -eq 0 ] || die "hangar start ${n}"
done
cg_light=$(guest_cgroup light) || die "the cgroup of light was not found"
cg_heavy=$(guest_cgroup heavy) || die "the cgroup of heavy was not found"
for n in light heavy; do
    eval "c=\${cg_${n}}"
    # shellcheck disable=SC2154 # c is set by the eval
    say "${n}: cpu.weight $(cat "${c}/cpu.weight") cpuset.cpus $(cat "${c}/cpuset.cpus") effective $(cat "${c}/cpuset.cpus.effective") cpu.max $(cat "${c}/cpu.max")"
done
check light-cpu.weight "$(cat "${cg_light}/cpu.weight")" 100
check heavy-cpu.weight "$(cat "${cg_heavy}/cpu.weight")" 200
check light-cpuset "$(cat "${cg_light}/cpuset.cpus.effective")" 0
check heavy-cpuset "$(cat "${cg_heavy}/cpuset.cpus.effective")" 0
busy light
busy heavy
sleep 1
sample light
l0=${us} lt0=${at}
sample heavy
h0=${us} ht0=${at}
sleep "${window}"
sample light
l1=${us} lt1=${at}
sample heavy
h1=${us} ht1=${at}
light_share=$(share "${l0}" "${lt0}" "${l1}" "${lt1}")
heavy_share=$(share "${h0}" "${ht0}" "${h1}" "${ht1}")
say "weight-light: ${light_share} (usage_us +$((l1 - l0)) at uptime ${lt0} -> ${lt1})"
say "weight-heavy: ${heavy_share} (usage_us +$((h1 - h0)) at uptime ${ht0} -> ${ht1})"
# Each guest's CPU time per its own window (the two are read one after the other).
say "weight-ratio: $(awk -v l="${light_share}" -v h="${heavy_share}" 'BEGIN { printf "%.3f", (l > 0 ? h / l : 0) }')"
for n in light heavy; do
    run hangar kill "${n}"
done

section "result"
if [ "${failed}" -eq 0 ]; then
    say "limits: all checks passed"
else
    say "limits: some checks FAILED"
fi
exit "${failed}"
