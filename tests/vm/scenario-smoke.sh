#!/bin/sh
# Smoke test of hangar's cgroup v2 backend, run inside the test VM by
# tests/vm/run.sh (whose /init mounted cgroup2 alone at /sys/fs/cgroup and set
# HANGAR_ROOT). Builds a busybox guest limited to 20M of memory and 32 pids,
# starts it, and reports from the VM's side (the guest's host):
#   - the cgroup filesystem and what the root offers and enables,
#   - the guest's cgroup directory, its memory.max and pids.max,
#   - which processes are in it (the guest's init must be),
#   - /proc/self/cgroup as seen from inside the guest,
#   - a 30 MiB allocation inside the guest (tests/vm/eat.c): it must be
#     OOM-killed by the guest's cgroup while the VM and the guest's monitor live on,
#   - a pids test: 40 background sleeps against pids.max 32,
#   - stop, and whether the guest's cgroup is removed.
# "key: value" lines are read by crates/hangar-cli/tests/cgroup2_vm.rs; "ok"/"FAIL"
# lines are this script's own checks, and it exits 1 if any failed.

set -u
# shellcheck source=tests/vm/scenario-lib.sh
. /scenario-lib.sh

config=${HANGAR_ROOT}/etc/hangar/guests/g.toml

section "host (the VM)"
# The type of the filesystem mounted at /sys/fs/cgroup, and its magic number
# (63677270 is CGROUP2_SUPER_MAGIC, 27e0eb is the v1 CGROUP_SUPER_MAGIC).
say "cgroup-fs: $(awk '$5 == "/sys/fs/cgroup" { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo) (magic $(stat -f -c %t /sys/fs/cgroup))"
say "root-controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
say "root-subtree-control-before: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
say "hangar: $(hangar --version 2>&1)"

section "build"
run hangar build g -m busybox
[ "${rc}" -eq 0 ] || die "hangar build g -m busybox"
# set_limits MEMORY_KEY PIDS_KEY: write the two limits into the [limits] table.
set_limits() {
    sed -i -e '/^memory\(\.max\)\? *=/d' -e '/^pids\(\.max\)\? *=/d' \
        -e "s/^\\[limits\\]\$/&\\n$1 = \"20M\"\\n$2 = 32/" "${config}"
}
# `memory.max = "20M"` / `pids.max = 32` since the limits model of 3d7a4ea; before it
# `memory = "20M"` / `pids = 32`. Whichever this hangar accepts (config show validates).
set_limits memory.max pids.max
if ! hangar config show g >/dev/null 2>&1; then
    set_limits memory pids
fi
run hangar config show g
[ "${rc}" -eq 0 ] || die "the guest's config with the limits is refused"
say "limits in ${config}:"
sed -n '/^\[limits\]/,/^$/p' "${config}"
# The memory eater, into the guest's root filesystem.
rootfs=${HANGAR_ROOT}/var/lib/hangar/guests/g/rootfs
cp /usr/local/bin/eat "${rootfs}/bin/eat" && chmod 0755 "${rootfs}/bin/eat"

section "start"
run hangar start g
[ "${rc}" -eq 0 ] || {
    say "monitor log:"
    cat "${HANGAR_ROOT}"/var/log/hangar/g/*.log 2>&1
    die "hangar start g"
}
run hangar list
ctx=$(sed -n 's/^context *= *\([0-9]*\).*/\1/p' "${config}")
init_pid=$(hangar list --format json | tr -d ' \n' | sed -n 's/.*"init_pid":\([0-9]*\).*/\1/p')
say "context: ${ctx}"
say "init-pid: ${init_pid}"

section "the guest's cgroup"
say "root-subtree-control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
cg=
for d in /sys/fs/cgroup/hangar*/"${ctx}"; do
    [ -d "${d}" ] && cg=${d}
done
[ -n "${cg}" ] || {
    say "no /sys/fs/cgroup/hangar*/${ctx}; the tree:"
    find /sys/fs/cgroup -maxdepth 2 -type d
    die "guest cgroup not found"
}
parent=${cg%/*}
say "guest-cgroup: ${cg}"
say "parent-subtree-control: $(cat "${parent}/cgroup.subtree_control")"
say "guest-controllers: $(cat "${cg}/cgroup.controllers")"
say "memory.max: $(cat "${cg}/memory.max" 2>&1)"
say "pids.max: $(cat "${cg}/pids.max" 2>&1)"
for f in memory.swap.max memory.current pids.current cpu.max cpuset.cpus.effective cgroup.type; do
    say "${f}: $(cat "${cg}/${f}" 2>&1)"
done
check memory.max "$(cat "${cg}/memory.max" 2>&1)" 20971520
check pids.max "$(cat "${cg}/pids.max" 2>&1)" 32
say "cgroup.procs (host pid, comm, host view of its cgroup):"
while read -r p; do
    say "  ${p} $(cat "/proc/${p}/comm" 2>/dev/null) $(cat "/proc/${p}/cgroup" 2>/dev/null)"
done <"${cg}/cgroup.procs"
if grep -qx "${init_pid}" "${cg}/cgroup.procs"; then
    say "init-in-guest-cgroup: yes"
else
    say "init-in-guest-cgroup: no"
    failed=1
fi
say "init-pid-cgroup: $(cat "/proc/${init_pid}/cgroup" 2>&1)"
check init-pid-cgroup "$(cat "/proc/${init_pid}/cgroup" 2>&1)" "0::${cg#/sys/fs/cgroup}"

section "exec"
run hangar exec g -- sh -c 'echo in guest; cat /proc/self/cgroup; ls /sys/fs/cgroup | wc -l'
check exec-status "${rc}" 0

section "memory: eat 30 MiB under memory.max 20M"
say "memory.events before:"
sed 's/^/  /' "${cg}/memory.events"
oom_before=$(sed -n 's/^oom_kill //p' "${cg}/memory.events")
run hangar exec g -- /bin/eat 30
say "eat-exit: ${rc}"
say "memory.events after:"
sed 's/^/  /' "${cg}/memory.events"
oom_kill=$(sed -n 's/^oom_kill //p' "${cg}/memory.events")
say "oom_kill: ${oom_kill}"
if [ "${oom_kill}" -gt "${oom_before}" ]; then
    say "ok oom_kill rose: ${oom_before} -> ${oom_kill}"
else
    say "FAIL oom_kill did not rise: ${oom_before} -> ${oom_kill}"
    failed=1
fi
check eat-exit "${rc}" 137
say "kernel's report:"
dmesg | grep -i -E 'oom|killed process' | sed 's/^/  /' | tail -n 6
say "host-alive-after-oom: yes"
run hangar exec g -- echo guest alive after oom
check guest-alive-after-oom "${rc}" 0
say "state-after-oom: $(hangar list --format json | tr -d ' \n' | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')"

section "pids: 40 background sleeps under pids.max 32"
# ash gives up at the first fork the pids controller refuses ("can't fork").
# shellcheck disable=SC2016 # expanded by the guest's shell
run hangar exec g -- sh -c 'i=0; while [ $i -lt 40 ]; do i=$((i+1)); sleep 5 </dev/null >/dev/null 2>&1 & echo "sleep $i started"; done 2>&1 | tail -n 2'
say "pids.events: $(cat "${cg}/pids.events")"
pids_max_events=$(sed -n 's/^max //p' "${cg}/pids.events")
say "pids-max-events: ${pids_max_events}"

section "stop"
run hangar stop g
check stop-status "${rc}" 0
run hangar list --format json
if [ -d "${cg}" ]; then
    say "guest-cgroup-after-stop: present"
    say "  procs: $(cat "${cg}/cgroup.procs" | tr '\n' ' ')"
else
    say "guest-cgroup-after-stop: gone"
fi
say "parent-after-stop: $(ls -d "${parent}" 2>&1)"

section "result"
if [ "${failed}" -eq 0 ]; then
    say "smoke: all checks passed"
else
    say "smoke: some checks FAILED"
fi
exit "${failed}"
