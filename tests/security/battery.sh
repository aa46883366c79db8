#!/bin/sh
# The security battery: classic container escapes, tried from inside a guest
# as the guest's root. POSIX sh; runs under busybox sh, dash and bash.
#
# Usage, inside the guest:
#   HOST_PID=<pid> HOST_DISK_MAJMIN=<maj:min> PROBE=<path> sh battery.sh
# (the three may also be given as NAME=VALUE arguments)
#   HOST_PID          a host process the guest must neither see nor signal
#   HOST_DISK_MAJMIN  the host's root block device, "major:minor" in decimal
#                     (e.g. 254:0); /proc/partitions adds the kernel's disks
#   PROBE             the static helper built from probe.c
#   BATTERY_HOSTNAME  optional: set the guest's hostname to this and leave it,
#                     so the host side can check its own name did not change
#
# Prints one line per check, "PASS name: why blocked", "FAIL name: what
# succeeded", or "SKIP name: missing precondition", INFO lines for facts that
# are allowed, then "battery: N passed, M failed[, K skipped]". Exits 1 when a
# check failed, 2 on bad usage.
#
# Every check must be able to fail: a refusal counts only when the attempt was
# really made (a missing command is a SKIP, never a PASS). And the battery must
# not harm a host even when isolation is broken, so it writes nothing that
# changes state: values written are the ones just read, files tried for
# writing are opened and closed unwritten, the clock is set to the current
# time, device nodes are only read.

passed=0
failed=0
skipped=0
scratch=
mounted=
only_try_unmask=

usage() {
    echo "usage: [HOST_PID=pid] [HOST_DISK_MAJMIN=maj:min] [PROBE=path] sh battery.sh" >&2
    exit 2
}

for arg in "$@"; do
    case $arg in
        HOST_PID=* | HOST_DISK_MAJMIN=* | PROBE=* | BATTERY_HOSTNAME=*)
            # shellcheck disable=SC2163 # exports NAME=VALUE, as intended
            export "$arg"
            ;;
        # Internal: the masks check runs the script again in a new mount namespace.
        --try-unmask) only_try_unmask=1 ;;
        *) usage ;;
    esac
done
HOST_PID=${HOST_PID:-}
HOST_DISK_MAJMIN=${HOST_DISK_MAJMIN:-}
PROBE=${PROBE:-}
BATTERY_HOSTNAME=${BATTERY_HOSTNAME:-}

pass() { passed=$((passed + 1)); echo "PASS $1: $2"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $1: $2"; }
info() { echo "INFO $1: $2"; }
have() { command -v "$1" >/dev/null 2>&1; }
# The first line of a command's error output, for the record.
firstline() { printf '%s\n' "$1" | sed -n '1{s/^[^:]*: //;p;}'; }

cleanup() {
    for m in $mounted; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    [ -n "$scratch" ] && rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 2' HUP INT TERM

# Runs the probe; its exit code says blocked (0), allowed (1), or error (2).
probe_out=
probe() {
    probe_out=$("$PROBE" "$@" 2>&1)
    probe_rc=$?
    return $probe_rc
}
have_probe() { [ -n "$PROBE" ] && [ -x "$PROBE" ]; }

# Reports one probe call as a whole check.
probe_check() {
    name=$1
    shift
    if ! have_probe; then
        skip "$name" "PROBE not given or not executable"
        return
    fi
    probe "$@"
    case $probe_rc in
        0) pass "$name" "$probe_out" ;;
        1) fail "$name" "$probe_out" ;;
        *) fail "$name" "inconclusive, probe said: $probe_out" ;;
    esac
}

make_scratch() {
    for dir in "${TMPDIR:-}" /tmp /var/tmp /run /dev/shm /root /; do
        [ -n "$dir" ] && [ -d "$dir" ] || continue
        scratch=${dir%/}/.battery.$$
        mkdir "$scratch" 2>/dev/null && return 0
    done
    scratch=
    echo "battery: no writable directory for scratch files" >&2
    exit 2
}

# --- identity -----------------------------------------------------------------

check_userns() {
    if [ ! -r /proc/self/uid_map ]; then
        skip userns "/proc/self/uid_map unreadable"
        return
    fi
    # The map shows ids of the parent user namespace. The host's own namespace maps
    # every id to itself ("0 0 4294967295"); a guest's maps a slice, either of the host
    # (uid 0 is host uid $2) or, nested, of a namespace that is itself such a slice.
    # shellcheck disable=SC2046
    set -- $(sed -n 1p /proc/self/uid_map)
    if [ "$1" = 0 ] && [ "$2" = 0 ] && [ "$3" = 4294967295 ]; then
        fail userns "root is the host's root (uid_map: $*)"
    elif [ "$2" = 0 ]; then
        pass userns "uid 0 is root of a parent user namespace of $3 ids, not the host's (uid_map: $*)"
    else
        pass userns "uid 0 is host uid $2 (uid_map: $*)"
    fi
}

# --- devices ------------------------------------------------------------------

# "maj:min" pairs to try: the one given, then those the kernel lists (which
# /proc/partitions shows even inside a guest).
disk_majmins() {
    if [ -n "$HOST_DISK_MAJMIN" ]; then
        echo "$HOST_DISK_MAJMIN"
    fi
    [ -r /proc/partitions ] && awk 'NR > 2 && NF == 4 { print $1 ":" $2 }' /proc/partitions | head -n 4
}

check_mknod_disk() {
    if ! have mknod; then
        skip mknod_disk "no mknod command"
        return
    fi
    pairs=$(disk_majmins | awk '!seen[$0]++')
    if [ -z "$pairs" ]; then
        skip mknod_disk "HOST_DISK_MAJMIN not given and /proc/partitions empty"
        return
    fi
    read_from=
    refused=
    unreadable=
    for pair in $pairs; do
        node=$scratch/disk.$(echo "$pair" | tr : .)
        if err=$(mknod "$node" b "${pair%%:*}" "${pair#*:}" 2>&1); then
            bytes=$(dd if="$node" bs=512 count=1 2>/dev/null | wc -c | tr -d ' ')
            if [ "${bytes:-0}" -gt 0 ]; then
                read_from="$read_from $pair($bytes bytes)"
            else
                err=$(dd if="$node" bs=512 count=1 2>&1 >/dev/null)
                unreadable="$unreadable $pair($(firstline "$err"))"
            fi
            rm -f "$node"
        else
            refused="$refused $pair($(firstline "$err"))"
        fi
    done
    if [ -n "$read_from" ]; then
        fail mknod_disk "read the host disk through a new node:$read_from"
    else
        pass mknod_disk "mknod refused:${refused:- none}; created but unreadable:${unreadable:- none}"
    fi
}

check_dev_nodes() {
    if ! have find; then
        skip dev_nodes "no find command"
        return
    fi
    bad=$(find /dev -type b 2>/dev/null | head -n 8 | tr '\n' ' ')
    # Memory, I/O ports and the kernel log (char major 1: 1 mem, 2 kmem,
    # 4 port, 11 kmsg), whatever they are called; /dev/null masks are fine.
    if have stat; then
        bad="$bad$(find /dev -type c 2>/dev/null | while read -r dev; do
            case $(stat -c '%t:%T' "$dev" 2>/dev/null) in
                1:1 | 1:2 | 1:4 | 1:b) printf '%s ' "$dev" ;;
            esac
        done)"
    else
        for dev in /dev/mem /dev/kmem /dev/port /dev/kmsg; do
            [ -e "$dev" ] && bad="$bad$dev "
        done
    fi
    if [ -n "$bad" ]; then
        fail dev_nodes "host devices present: $bad"
    else
        pass dev_nodes "no block devices, no mem/kmem/port/kmsg under /dev"
    fi
}

# --- sysfs ----------------------------------------------------------------------

sysfs_was_ro=
check_sysfs_remount() {
    if ! have mount; then
        skip sysfs_remount "no mount command"
        return
    fi
    if awk '$2 == "/sys" { split($4, o, ","); if (o[1] == "ro") f = 1 } END { exit !f }' /proc/self/mounts 2>/dev/null; then
        sysfs_was_ro=1
    fi
    if err=$(mount -o remount,rw /sys 2>&1); then
        info sysfs_remount "mount -o remount,rw /sys succeeded (was ${sysfs_was_ro:+ro}${sysfs_was_ro:-rw}); writes are checked next"
    else
        info sysfs_remount "mount -o remount,rw /sys refused: $(firstline "$err")"
        sysfs_was_ro=
    fi
}

# Opens each existing file for writing; fails when one opens.
open_wr_check() {
    name=$1
    shift
    if ! have_probe; then
        skip "$name" "PROBE not given or not executable"
        return
    fi
    opened=
    refused=
    for f in "$@"; do
        [ -e "$f" ] || continue
        probe open_wr "$f"
        case $probe_rc in
            0) refused="$refused $f(${probe_out#blocked: })" ;;
            *) opened="$opened $f(${probe_out})" ;;
        esac
    done
    if [ -n "$opened" ]; then
        fail "$name" "opened for writing:$opened"
    elif [ -n "$refused" ]; then
        pass "$name" "refused:$refused"
    else
        skip "$name" "none of $* exists"
    fi
}

check_sysfs_write() {
    open_wr_check sysfs_global_write /sys/kernel/uevent_helper /sys/kernel/mm/ksm/run \
        /sys/kernel/mm/transparent_hugepage/enabled /sys/power/state /sys/kernel/profiling
    open_wr_check sysfs_net_write /sys/class/net/lo/mtu
    if [ -n "$sysfs_was_ro" ]; then
        mount -o remount,ro /sys 2>/dev/null
    fi
}

# --- procfs ---------------------------------------------------------------------

# Writes the current value back into each file; fails when a write lands.
rewrite_check() {
    name=$1
    shift
    if ! have_probe; then
        skip "$name" "PROBE not given or not executable"
        return
    fi
    wrote=
    refused=
    for f in "$@"; do
        [ -e "$f" ] || continue
        probe rewrite "$f"
        case $probe_rc in
            0) refused="$refused $f(${probe_out#blocked: })" ;;
            *) wrote="$wrote $f(${probe_out})" ;;
        esac
    done
    if [ -n "$wrote" ]; then
        fail "$name" "wrote:$wrote"
    elif [ -n "$refused" ]; then
        pass "$name" "refused:$refused"
    else
        skip "$name" "none of $* exists"
    fi
}

check_proc_sysctl() {
    rewrite_check proc_sysctl_write /proc/sys/kernel/core_pattern /proc/sys/kernel/modprobe \
        /proc/sys/vm/panic_on_oom
}

check_sysrq() {
    if [ ! -e /proc/sysrq-trigger ]; then
        pass sysrq_trigger "absent (kernel without magic SysRq)"
        return
    fi
    open_wr_check sysrq_trigger /proc/sysrq-trigger
}

check_proc_fresh() {
    if ! have mount; then
        skip proc_fresh_mount "no mount command"
        return
    fi
    if ! have_probe; then
        skip proc_fresh_mount "PROBE not given or not executable"
        return
    fi
    dir=$scratch/proc
    mkdir "$dir"
    if ! err=$(mount -t proc proc "$dir" 2>&1); then
        pass proc_fresh_mount "mount -t proc refused: $(firstline "$err")"
        return
    fi
    mounted="$dir $mounted"
    opened=
    refused=
    for f in "$dir/sys/kernel/core_pattern" "$dir/sys/kernel/hostname"; do
        probe rewrite "$f"
        case $probe_rc in
            0) refused="$refused ${f#"$dir"}(${probe_out#blocked: })" ;;
            *) opened="$opened ${f#"$dir"}($probe_out)" ;;
        esac
    done
    if [ -e "$dir/sysrq-trigger" ]; then
        probe open_wr "$dir/sysrq-trigger"
        case $probe_rc in
            0) refused="$refused /sysrq-trigger(${probe_out#blocked: })" ;;
            *) opened="$opened /sysrq-trigger($probe_out)" ;;
        esac
    fi
    umount "$dir" 2>/dev/null && mounted=${mounted#"$dir "}
    if [ -n "$opened" ]; then
        fail proc_fresh_mount "through a fresh proc mount:$opened"
    else
        pass proc_fresh_mount "fresh proc mounted, but refused:$refused"
    fi
}

# The host's firmware (ACPI tables, DMI, memory map) is none of a guest's business.
check_sys_firmware() {
    if [ ! -d /sys/firmware ]; then
        skip sys_firmware "no /sys/firmware to look at"
        return
    fi
    entries=$(ls -A /sys/firmware 2>&1)
    if [ -z "$entries" ]; then
        pass sys_firmware "/sys/firmware is empty"
    else
        fail sys_firmware "/sys/firmware shows: $(echo "$entries" | tr '\n' ' ')"
    fi
}

# Every mask and read-only mount the runtime made must stay: not removable, nor
# remountable read-write, neither here nor from a new mount namespace of the guest's
# own (where root holds every right over its copies of the mounts unless the kernel
# locked them).
masked_mounts="/proc/keys /proc/timer_list /proc/kmsg /proc/kallsyms /proc/sched_debug \
/proc/acpi /proc/scsi /proc/sys /proc/irq /proc/bus /proc/fs /proc/sysrq-trigger \
/sys/firmware /sys/devices/virtual/powercap /proc/meminfo /proc/uptime"

try_unmask() {
    for m in $masked_mounts; do
        [ -e "$m" ] || continue
        grep -q " $m " /proc/self/mountinfo || continue
        if umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; then
            echo "unmounted $m"
            return
        fi
    done
    if mount -o remount,rw /proc/sys 2>/dev/null && [ -w /proc/sys/kernel/hostname ]; then
        echo "remounted /proc/sys read-write"
    fi
}

check_masks_locked() {
    here=$(try_unmask)
    if [ -n "$here" ]; then
        fail masks_locked "in the guest's own mount namespace: $here"
        return
    fi
    if ! command -v unshare >/dev/null 2>&1; then
        skip masks_locked "no unshare to make a new mount namespace with"
        return
    fi
    # This script again, inside the new namespace, doing only that.
    inner=$(unshare -m sh "$0" --try-unmask 2>&1)
    if [ "$?" -ne 0 ] && [ -z "$inner" ]; then
        skip masks_locked "unshare -m refused: a new mount namespace could not be made"
    elif echo "$inner" | grep -q "^unmounted\|^remounted"; then
        fail masks_locked "from a new mount namespace: $(firstline "$inner")"
    else
        pass masks_locked "no mask removable, here or from a new mount namespace"
    fi
}

check_kcore() {
    if [ ! -e /proc/kcore ]; then
        pass kcore "absent"
        return
    fi
    err=$(dd if=/proc/kcore bs=4096 count=1 2>&1 >/dev/null)
    bytes=$(dd if=/proc/kcore bs=4096 count=1 2>/dev/null | wc -c | tr -d ' ')
    if [ "${bytes:-0}" -gt 0 ]; then
        fail kcore "read $bytes bytes of kernel memory"
    else
        pass kcore "no data (masked or unreadable): $(firstline "$err")"
    fi
}

# --- cgroups --------------------------------------------------------------------

# CVE-2022-0492: mount a cgroup v1 hierarchy, write its release_agent.
check_release_agent() {
    if ! have mount; then
        skip cgroup_release_agent "no mount command"
        return
    fi
    if ! have_probe; then
        skip cgroup_release_agent "PROBE not given or not executable"
        return
    fi
    dir=$scratch/cg
    mkdir "$dir"
    errors=
    for opts in rdma memory none,name=battery; do
        if err=$(mount -t cgroup -o "$opts" cgroup "$dir" 2>&1); then
            mounted="$dir $mounted"
            if [ ! -e "$dir/release_agent" ]; then
                result="pass:mounted -o $opts, but it has no release_agent (not the hierarchy root)"
            elif probe rewrite "$dir/release_agent"; then
                result="pass:mounted -o $opts, release_agent $probe_out"
            else
                result="fail:mounted -o $opts and release_agent: $probe_out"
            fi
            umount "$dir" 2>/dev/null && mounted=${mounted#"$dir "}
            case $result in
                pass:*) pass cgroup_release_agent "${result#pass:}" ;;
                fail:*) fail cgroup_release_agent "${result#fail:}" ;;
            esac
            return
        fi
        errors="$errors -o $opts($(firstline "$err"))"
    done
    pass cgroup_release_agent "cgroup v1 mounts refused:$errors"
}

check_cgroupfs() {
    if [ ! -d /sys/fs/cgroup ]; then
        pass cgroupfs_write "/sys/fs/cgroup absent"
        return
    fi
    if ! have_probe; then
        skip cgroupfs_write "PROBE not given or not executable"
        return
    fi
    made=
    opened=
    refused=0
    # A guest whose init manages cgroups (systemd) has its own cgroup2 tree here,
    # delegated: it may make cgroups and move its processes (cgroup.procs,
    # cgroup.subtree_control) but never open a limit file, and the tree's root is
    # its own cgroup (its cgroup namespace's root), so nothing above it is in reach.
    delegated=
    control="cgroup.procs cgroup.subtree_control"
    if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
        delegated=1
        control=
        if ! grep -qx '0::/.*' /proc/self/cgroup || grep -q '^0::/\.\.' /proc/self/cgroup; then
            fail cgroupfs_write "the cgroup2 tree is not rooted at the guest's cgroup: $(grep '^0::' /proc/self/cgroup)"
            return
        fi
    fi
    for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
        [ -d "$d" ] || continue
        if mkdir "$d/battery.$$" 2>/dev/null; then
            rmdir "$d/battery.$$"
            [ -n "$delegated" ] || made="$made $d"
        else
            refused=$((refused + 1))
        fi
        for f in $control release_agent devices.allow \
            memory.max memory.high memory.limit_in_bytes memory.memsw.limit_in_bytes \
            memory.swap.max pids.max cpu.max cpu.weight cpu.cfs_quota_us io.max; do
            [ -e "$d/$f" ] || continue
            if probe open_wr "$d/$f"; then
                refused=$((refused + 1))
            else
                opened="$opened $d/$f"
            fi
        done
    done
    if [ -n "$made$opened" ]; then
        fail cgroupfs_write "${made:+created cgroups under:$made; }${opened:+opened for writing:$opened}"
    else
        pass cgroupfs_write "$refused mkdir/open-for-write attempts under /sys/fs/cgroup refused${delegated:+ (the guest's own delegated cgroup2 tree: no limit file opened for writing)}"
    fi
}

# --- kernel-wide operations -----------------------------------------------------

check_modules() {
    probe_check init_module init_module
    probe_check finit_module finit_module
}

check_clock() {
    probe_check set_clock settime
}

check_hostname() {
    if ! have hostname; then
        skip hostname "no hostname command"
        return
    fi
    old=$(hostname)
    new=${BATTERY_HOSTNAME:-$old}
    if err=$(hostname "$new" 2>&1); then
        info hostname "sethostname allowed (uts namespace): '$old' -> '$new'"
    else
        info hostname "sethostname refused: $(firstline "$err")"
    fi
}

# --- other processes --------------------------------------------------------------

check_host_pid() {
    case $HOST_PID in
        '' | *[!0-9]*)
            skip host_proc "HOST_PID not given"
            skip host_kill "HOST_PID not given"
            skip host_ptrace "HOST_PID not given"
            return
            ;;
    esac
    if [ -e "/proc/$HOST_PID" ]; then
        fail host_proc "/proc/$HOST_PID exists: $(tr '\0' ' ' <"/proc/$HOST_PID/cmdline" 2>/dev/null)"
    else
        pass host_proc "/proc/$HOST_PID does not exist"
    fi
    if err=$(kill -0 "$HOST_PID" 2>&1); then
        fail host_kill "kill -0 $HOST_PID succeeded"
    else
        pass host_kill "kill -0 $HOST_PID refused: $(firstline "$err")"
    fi
    probe_check host_ptrace ptrace "$HOST_PID"
}

# runc CVE-2019-5736: open a running host binary through /proc/PID/exe.
check_proc_exe() {
    if ! have_probe; then
        skip proc_exe_write "PROBE not given or not executable"
        return
    fi
    opened=
    seen=0
    reasons=
    for exe in /proc/[0-9]*/exe; do
        [ -e "$exe" ] || continue
        seen=$((seen + 1))
        if probe write_exe "$exe"; then
            case $reasons in
                *"${probe_out#blocked: }"*) ;;
                *) reasons="$reasons; ${probe_out#blocked: }" ;;
            esac
        else
            opened="$opened $exe($probe_out)"
        fi
    done
    if [ -n "$opened" ]; then
        fail proc_exe_write "$opened"
    elif [ "$seen" -gt 0 ]; then
        pass proc_exe_write "$seen /proc/*/exe refused: ${reasons#; }"
    else
        skip proc_exe_write "no /proc/PID/exe readable"
    fi
}

check_fds() {
    if have_probe; then
        # A freshly exec'd process: only what the exec chain leaked is left.
        probe_check leaked_fds fds
        return
    fi
    skip leaked_fds "PROBE not given or not executable"
}

check_open_by_handle() {
    probe_check open_by_handle open_by_handle
}

check_chroot() {
    probe_check chroot_escape chroot_escape "$scratch"
}

make_scratch
if [ -n "${only_try_unmask:-}" ]; then
    try_unmask
    exit 0
fi

check_userns
check_mknod_disk
check_dev_nodes
check_sysfs_remount
check_sysfs_write
check_proc_sysctl
check_sysrq
check_proc_fresh
check_sys_firmware
check_masks_locked
check_kcore
check_release_agent
check_cgroupfs
check_modules
check_clock
check_hostname
check_host_pid
check_proc_exe
check_fds
check_open_by_handle
check_chroot

if [ "$skipped" -gt 0 ]; then
    echo "battery: $passed passed, $failed failed, $skipped skipped"
else
    echo "battery: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
