#!/bin/sh
# A guest whose init manages its own cgroups, on cgroup v2 (what this project's hosts,
# cgroup v1/hybrid, cannot show): run inside the test VM by tests/vm/run.sh.
#
# The guest is busybox with a /sbin/init that resolves to a file named `systemd`, so
# hangar takes it for systemd: it delegates the guest's cgroup and mounts it in the
# guest. That init does towards its cgroups what systemd does: it moves itself into
# /sys/fs/cgroup/init.scope and enables the pids and memory controllers for its
# children; then it execs busybox init. Reported, as "key: value" lines read by
# crates/hangar-cli/tests/cgroup2_vm.rs:
#   - what the guest sees at /sys/fs/cgroup and in /proc/1/cgroup,
#   - the guest cgroup's subtree_control on the host (the guest could write it),
#   - a command run by `hangar exec` (it must join init's cgroup: the guest's top
#     cgroup takes no process once its controllers are enabled for children),
#   - the guest writing its own memory.max (refused) and the host's value,
#   - a 30 MiB allocation under memory.max 20M (OOM-killed: the limit holds),
#   - /proc/loadavg inside after a busy loop, when the image carries lxcfs,
#   - after `hangar kill`, whether the guest's cgroup (with init.scope) is gone.

set -u
# shellcheck source=tests/vm/scenario-lib.sh
. /scenario-lib.sh
[ -x /opt/lxcfs/bin/lxcfs ] && PATH=/opt/lxcfs/bin:${PATH}

config=${HANGAR_ROOT}/etc/hangar/guests/d.toml

section "build"
run hangar build d -m busybox
[ "${rc}" -eq 0 ] || die "hangar build d -m busybox"
rootfs=${HANGAR_ROOT}/var/lib/hangar/guests/d/rootfs
mkdir -p "${rootfs}/lib/systemd"
cat >"${rootfs}/lib/systemd/systemd" <<'EOF'
#!/bin/sh
# What systemd does with a delegated cgroup2 tree, then busybox init.
mkdir -p /sys/fs/cgroup/init.scope
echo $$ >/sys/fs/cgroup/init.scope/cgroup.procs
echo "+pids +memory" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/console
exec /bin/busybox init
EOF
chmod 0755 "${rootfs}/lib/systemd/systemd"
rm -f "${rootfs}/sbin/init"
ln -s /lib/systemd/systemd "${rootfs}/sbin/init"
cp /usr/local/bin/eat "${rootfs}/bin/eat" && chmod 0755 "${rootfs}/bin/eat"
run hangar set d memory.max=20M memory.swap=0
[ "${rc}" -eq 0 ] || die "hangar set d memory.max=20M"

section "start"
run hangar start d
[ "${rc}" -eq 0 ] || {
    cat "${HANGAR_ROOT}"/var/log/hangar/d/*.log 2>&1
    die "hangar start d"
}
ctx=$(sed -n 's/^context *= *\([0-9]*\).*/\1/p' "${config}")
cg=
for d in /sys/fs/cgroup/hangar*/"${ctx}"; do
    [ -d "${d}" ] && cg=${d}
done
[ -n "${cg}" ] || die "guest cgroup not found"
# The init has moved and enabled its controllers by the time its first child runs.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -n "$(cat "${cg}/cgroup.subtree_control")" ] && break
    sleep 0.5
done

section "the guest's view"
say "d-cgroup-fs: $(hangar exec d -- stat -f -c %t /sys/fs/cgroup)"
say "d-init-cgroup: $(hangar exec d -- cat /proc/1/cgroup)"
say "d-exec-cgroup: $(hangar exec d -- cat /proc/self/cgroup)"
say "d-subtree-control: $(cat "${cg}/cgroup.subtree_control")"
say "d-init-scope-procs: $(wc -l <"${cg}/init.scope/cgroup.procs")"

section "the limits hold"
run hangar exec d -- sh -c 'echo max > /sys/fs/cgroup/memory.max'
say "d-write-memory-max-rc: ${rc}"
say "d-memory-max: $(cat "${cg}/memory.max")"
run hangar exec d -- /bin/eat 30
say "d-eat-rc: ${rc}"
say "d-state-after-eat: $(hangar list --format json | tr -d ' \n' | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')"

section "load average"
if command -v lxcfs >/dev/null; then
    hangar exec d -- sh -c 'timeout 12 sh -c "while :; do :; done"' &
    sleep 12
    say "d-loadavg: $(hangar exec d -- cat /proc/loadavg)"
    wait
else
    say "d-loadavg: no lxcfs in this image"
fi

section "stop"
run hangar kill d
sleep 1
if [ -d "${cg}" ]; then
    say "d-cgroup-after-kill: present"
    find "${cg}" -type d
else
    say "d-cgroup-after-kill: gone"
fi
exit "${failed}"
