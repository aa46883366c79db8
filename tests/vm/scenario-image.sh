#!/bin/sh
# An image pool's live resize, run inside the test VM by tests/vm/run.sh: growing a
# mounted ext4 takes CAP_SYS_RESOURCE, which this host and CI keep out of every
# process's bounding set (there hangar grows a guest's disk once it is stopped);
# the VM's root has it. The image carries the host's util-linux mount/umount,
# e2fsprogs and coreutils' cp (hangar's children run them), and loads `loop`:
#   - `hangar pool create im --driver image`, a busybox guest g with
#     --disk-size 64M, started; the size of / as `df -k` inside shows it;
#   - 40M written into g, then `hangar set g disk.size=128M` while it runs: the
#     size df shows inside after, the file still whole, the config's size;
#   - `hangar set g disk.size=100M` while it runs: refused (a disk shrinks only
#     while its guest is stopped);
#   - g deleted and the pool deleted: the loop devices and mounts left (none).
# "key: value" lines are read by crates/hangar-cli/tests/image_pool_vm.rs; "ok"/"FAIL"
# lines are this script's own checks, and it exits 1 if any failed.
#
# vm-modules: loop
# vm-tools: mount umount mkfs.ext4 e2fsck resize2fs cp

set -u
# shellcheck source=tests/vm/scenario-lib.sh
. /scenario-lib.sh

# The size of / inside guest g, in KiB.
df_inside() {
    hangar exec g -- df -k / | tail -1 | awk '{ print $2 }'
}

section "host (the VM)"
caps=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
# CAP_SYS_RESOURCE is bit 24.
say "cap-sys-resource: $(( (0x${caps} >> 24) & 1 ))"
say "hangar: $(hangar --version 2>&1)"

section "build"
run hangar pool create im --driver image
[ "${rc}" -eq 0 ] || die "hangar pool create im --driver image"
run hangar build g -m busybox --pool im --disk-size 64M
[ "${rc}" -eq 0 ] || die "hangar build g"
run hangar start g
[ "${rc}" -eq 0 ] || die "hangar start g"
say "df-before: $(df_inside)"

section "grow live"
run hangar exec g -- dd if=/dev/zero of=/data bs=1M count=40
run hangar set g disk.size=128M
say "set-live: ${rc}"
say "df-after: $(df_inside)"
say "data-after: $(hangar exec g -- wc -c /data | awk '{ print $1 }')"
say "config-size: $(sed -n 's/^size = "\(.*\)"$/\1/p' "${HANGAR_ROOT}/etc/hangar/guests/g.toml")"
run hangar exec g -- dd if=/dev/zero of=/more bs=1M count=40
say "write-after: ${rc}"

section "shrink live"
run hangar set g disk.size=100M
say "shrink-live: ${rc}"

section "cleanup"
run hangar delete g --force
run hangar pool delete im
say "pool-delete: ${rc}"
loops=0
for f in /sys/block/loop*/loop/backing_file; do
    [ -e "${f}" ] && loops=$((loops + 1))
done
say "loops-left: ${loops}"
say "mounts-left: $(grep -c " ${HANGAR_ROOT}/var/lib/hangar/pools" /proc/self/mountinfo)"

exit "${failed}"
