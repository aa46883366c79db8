#!/bin/busybox sh
# /init of the hangar test VM's initramfs (built by tests/vm/build-initramfs.sh).
#
# Moves itself from the initramfs onto a tmpfs root, then sets up a minimal host
# the way a cgroup-v2-only machine looks: proc, sysfs, devtmpfs with devpts and
# shm, tmpfs on /tmp and /run, and the unified cgroup hierarchy (cgroup2 alone) at
# /sys/fs/cgroup, so every controller the kernel has (memory, pids, cpu, io,
# cpuset, ...) is offered in its cgroup.controllers.
# Enabling controllers in cgroup.subtree_control is left to hangar: that is part of
# what the scenarios test.
#
# Then it runs /scenario.sh with HANGAR_ROOT=/tmp/hangar, its stdout and stderr
# captured, prints them on the console between the result markers followed by
# "exit-status: N", and powers the machine off. If anything here fails the kernel
# panics (init exits) and QEMU, started with -no-reboot and panic=-1, exits too.
#
# The kernel parameter hangar_timeout (the kernel hands unknown name=value
# parameters to init as environment variables) is how long the scenario may run,
# in seconds (default 200). Modules listed in /lib/modules/extra/load-order (by
# build-initramfs.sh -M) are loaded first.

export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin

# Stage 1: the initramfs is the kernel's rootfs, which pivot_root(2) cannot leave
# (EINVAL), and hangar's guests pivot_root. So copy it into a tmpfs and make that
# the root (switch_root frees the initramfs), as a real host's root is a real mount.
if [ -z "${HANGAR_VM_STAGE:-}" ]; then
    /bin/busybox mkdir -p /newroot
    /bin/busybox mount -t tmpfs -o mode=0755 newroot /newroot
    for e in /*; do
        [ "${e}" = /newroot ] || /bin/busybox cp -a "${e}" /newroot/
    done
    export HANGAR_VM_STAGE=2
    exec /bin/busybox switch_root /newroot /init
fi

# Stage 2, on the tmpfs root.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
/bin/busybox mount -t proc -o nosuid,nodev,noexec proc /proc
/bin/busybox mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
/bin/busybox mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
# As systemd mounts it on a unified host.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup
hostname hangar-vm
ip link set lo up 2>/dev/null

# Modules the kernel has only as modules, copied in by build-initramfs.sh in load order.
if [ -s /lib/modules/extra/load-order ]; then
    while read -r ko; do
        insmod "/lib/modules/extra/${ko}" || echo "init: insmod ${ko} failed" >/dev/console
    done </lib/modules/extra/load-order
fi

export HANGAR_ROOT=/tmp/hangar
export HOME=/root
mkdir -p "${HANGAR_ROOT}" /root
# Guests get no NIC unless a scenario asks: only an image that carries the host's
# network tools and modules (a scenario's vm-tools and vm-modules lines, see
# tests/vm/run.sh) can give them one.
mkdir -p "${HANGAR_ROOT}/etc/hangar"
echo 'network = "none"' >"${HANGAR_ROOT}/etc/hangar/defaults.toml"

# Only errors and worse from the kernel while the scenario runs (an OOM kill's
# report is one of them), nothing while the results are printed.
echo 4 >/proc/sys/kernel/printk
timeout_s=${hangar_timeout:-200}
start=$(cut -d' ' -f1 /proc/uptime)
echo "init: running scenario (timeout ${timeout_s}s, uptime ${start}s)" >/dev/console
cd /root || cd /
timeout -s KILL "${timeout_s}" sh /scenario.sh </dev/null >/tmp/scenario.out 2>&1
status=$?
[ -n "$(tail -c 1 /tmp/scenario.out)" ] && echo >>/tmp/scenario.out
end=$(cut -d' ' -f1 /proc/uptime)
if [ "${status}" -eq 137 ] &&
    awk -v a="${start}" -v b="${end}" -v t="${timeout_s}" 'BEGIN { exit !(b - a >= t - 1) }'; then
    echo "init: scenario killed after the ${timeout_s}s timeout" >>/tmp/scenario.out
fi

echo 1 >/proc/sys/kernel/printk
{
    echo "=== hangar-vm results begin ==="
    echo "vm-kernel: $(uname -r)"
    echo "vm-scenario-seconds: ${start} -> ${end} (uptime)"
    cat /tmp/scenario.out
    echo "exit-status: ${status}"
    echo "=== hangar-vm results end ==="
} >/dev/console 2>&1
sync
poweroff -f
