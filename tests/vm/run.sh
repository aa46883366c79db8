#!/usr/bin/env bash
# Runs a scenario script inside a QEMU virtual machine whose only cgroup
# hierarchy is cgroup v2 with all its controllers, to test hangar's cgroup v2
# backend on hosts (and CI) that are cgroup v1 or hybrid, and hangar's networks
# on a kernel that has what this host's lacks (802.1Q VLAN devices).
#
# Usage: tests/vm/run.sh SCENARIO.sh [HANGAR_BIN_DIR]
#   SCENARIO.sh      run inside the VM as root by tests/vm/init.sh, with
#                    HANGAR_ROOT=/tmp/hangar and hangar, hangar-monitor, eat and
#                    busybox's applets on the PATH; the host's lxcfs is in
#                    /opt/lxcfs/bin (off the PATH) with the fuse module loaded,
#                    when the host has lxcfs (see build-initramfs.sh)
#   HANGAR_BIN_DIR   holds hangar and hangar-monitor (default: the newer build of
#                    target/debug and target/release)
#
# A scenario names the kernel modules and the host programs it needs in header
# lines of its own, which are added to HANGAR_VM_MODULES and HANGAR_VM_TOOLS:
#   # vm-modules: veth bridge 8021q ...
#   # vm-tools: ip tc nft nsenter
# The programs are copied with their libraries to /usr/local/bin, the first
# directory of the PATH, and busybox's links of the same names point at them, so
# hangar's children (`ip -j`, `ip -batch`, `tc`, `nft`, `nsenter --net=... ip`)
# run the real iproute2, nftables and util-linux. busybox's sh itself still runs
# its own applets before it searches the PATH (Debian builds it that way): a
# scenario calls the carried tools by path (/usr/local/bin/ip). Modules load at
# boot, with what they depend on: the VM has no working modprobe, so nothing is
# loaded on demand and a missing one shows as a tool's error (nft: "No such
# file or directory").
#
# The scenarios:
#   scenario-smoke.sh   a guest's cgroup v2 limits reach the files; OOM inside it
#   scenario-limits.sh  memory, CPU bandwidth and weights, pids, live `hangar set`,
#                       lxcfs's /proc/meminfo
#   scenario-vlan.sh    802.1Q tagging on a bridge network's uplink: guests on
#                       VLANs 10 and 20 of an uplinked bridge reach a switch (a
#                       namespace on the uplink's veth peer) only on their own
#                       VLAN, an untagged guest only untagged; hangar makes one
#                       802.1Q device per VLAN on the uplink, in that VLAN's
#                       bridge; deleting the guests and the network leaves none of
#                       hangar's links. It carries ip, tc, nft and nsenter and
#                       loads veth, bridge, 8021q and the nftables modules
#                       hangar's tables need.
#   scenario-image.sh   an image pool's guest grown live (the VM's root has the
#                       CAP_SYS_RESOURCE an online ext4 resize needs, which this
#                       host keeps from every process), a live shrink refused,
#                       nothing left after delete. It carries mount, umount,
#                       mkfs.ext4, e2fsck, resize2fs and cp and loads loop.
# The cgroup scenarios name no modules or tools, and their images carry none.
#
# Prints the scenario's output (the console lines between the result markers,
# ending with "exit-status: N") on stdout, progress and timings on stderr.
# Exits 0 when the scenario exited 0, 1 when it failed, 2 when no results came
# back (boot failure, timeout, panic: the console's end is shown on stderr).
#
# The VM runs Debian's own cloud kernel (the package linux-image-cloud-amd64
# depends on), downloaded with `apt-get download` and unpacked with `dpkg-deb -x`
# into the cache, never installed, and an initramfs built by
# tests/vm/build-initramfs.sh. QEMU runs with software emulation (TCG), no network
# device (a network scenario's links are all inside the VM), 1 GiB and 2 CPUs,
# under a hard timeout.
#
# Environment:
#   HANGAR_VM_CACHE    cache directory (default /var/tmp/hangar-vm-cache)
#   HANGAR_VM_TIMEOUT  seconds before QEMU is killed (default 300); the scenario
#                      itself gets 60 fewer, so its results still come back
#   HANGAR_VM_ACCEL    tcg (default) or kvm: nested KVM did not boot guests where
#                      this was written, so KVM is used only when asked for
#   HANGAR_VM_MODULES  more kernel modules to load at boot (build-initramfs.sh -M)
#   HANGAR_VM_TOOLS    more host programs to carry (build-initramfs.sh -B)
#   HANGAR_VM_CONSOLE  also copy the whole console log to this file
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "${here}/../.." && pwd)
cache=${HANGAR_VM_CACHE:-/var/tmp/hangar-vm-cache}
vm_timeout=${HANGAR_VM_TIMEOUT:-300}
accel=${HANGAR_VM_ACCEL:-tcg}
modules=${HANGAR_VM_MODULES:-}
tools=${HANGAR_VM_TOOLS:-}
meta_pkg=linux-image-cloud-amd64

log() { printf 'vm: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 SCENARIO.sh [HANGAR_BIN_DIR]" >&2
    exit 2
fi
scenario=$1
[[ -f ${scenario} ]] || die "no scenario ${scenario}"
# What the scenario says it needs (see the header).
modules="${modules} $(sed -n 's/^# vm-modules: *//p' "${scenario}" | tr '\n' ' ')"
tools="${tools} $(sed -n 's/^# vm-tools: *//p' "${scenario}" | tr '\n' ' ')"
if [[ $# -eq 2 ]]; then
    bin_dir=$2
else
    target=${CARGO_TARGET_DIR:-${repo}/target}
    bin_dir=${target}/debug
    if [[ ${target}/release/hangar -nt ${bin_dir}/hangar ]]; then
        bin_dir=${target}/release
    fi
fi
command -v qemu-system-x86_64 >/dev/null ||
    die "qemu-system-x86_64 is missing: install qemu-system-x86 (scripts/setup-host.sh does)"
case ${accel} in
tcg | kvm) ;;
*) die "HANGAR_VM_ACCEL must be tcg or kvm, not ${accel}" ;;
esac
if [[ -c /dev/kvm ]]; then
    [[ ${accel} == kvm ]] || log "/dev/kvm exists; using TCG all the same (HANGAR_VM_ACCEL=kvm to try it)"
else
    [[ ${accel} == tcg ]] || die "HANGAR_VM_ACCEL=kvm but there is no /dev/kvm"
fi

mkdir -p "${cache}/kernel" "${cache}/initramfs" "${cache}/logs"
# One preparer at a time (kernel download, image build); VMs may run side by side.
exec 9>"${cache}/lock"
flock -w 900 9 || die "could not lock ${cache}/lock"

# --- the kernel -------------------------------------------------------------
# The meta package names the real image package, e.g. linux-image-6.1.0-56-cloud-amd64.
resolve_kernel_pkg() {
    apt-cache depends "${meta_pkg}" 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ { print $2; exit }'
}
newest_cached_tree() {
    local d newest=
    for d in "${cache}"/kernel/linux-image-*; do
        [[ -f ${d}/.complete ]] || continue
        [[ -n ${newest} && ! ${d} -nt ${newest} ]] || newest=${d}
    done
    printf '%s' "${newest}"
}
t0=$(now)
kernel_pkg=$(resolve_kernel_pkg || true)
if [[ -z ${kernel_pkg} && ${EUID} -eq 0 ]]; then
    log "apt-cache does not know ${meta_pkg}: apt-get update"
    apt-get -q update >/dev/null 2>&1 || log "apt-get update failed"
    kernel_pkg=$(resolve_kernel_pkg || true)
fi
tree=
if [[ -n ${kernel_pkg} ]]; then
    tree=${cache}/kernel/${kernel_pkg}
    if [[ ! -f ${tree}/.complete ]]; then
        log "fetching ${kernel_pkg} (apt-get download; not installed)"
        dl=$(mktemp -d "${cache}/kernel/.download.XXXXXX")
        if (cd "${dl}" && apt-get -q -o APT::Sandbox::User=root download "${kernel_pkg}" >&2) &&
            dpkg-deb -x "${dl}"/"${kernel_pkg}"_*.deb "${dl}/tree"; then
            rm -rf "${dl}/tree/usr/share" "${tree}"
            touch "${dl}/tree/.complete"
            mv "${dl}/tree" "${tree}"
        else
            log "could not fetch ${kernel_pkg}"
            tree=
        fi
        rm -rf "${dl}"
    fi
fi
if [[ -z ${tree} ]]; then
    tree=$(newest_cached_tree)
    [[ -n ${tree} ]] || die "no kernel: ${meta_pkg} cannot be resolved or fetched, and none is cached"
    log "using the cached ${tree##*/}"
fi
vmlinuz=
for f in "${tree}"/boot/vmlinuz-*; do
    [[ -f ${f} ]] && vmlinuz=${f}
done
[[ -n ${vmlinuz} ]] || die "no vmlinuz in ${tree}/boot"
log "kernel ${vmlinuz##*/vmlinuz-} ($(since "${t0}"))"

# --- the initramfs ----------------------------------------------------------
t0=$(now)
build_args=(-k "${tree}")
[[ -z ${modules// /} ]] || build_args+=(-M "${modules}")
[[ -z ${tools// /} ]] || build_args+=(-B "${tools}")
initrd=$("${here}/build-initramfs.sh" "${build_args[@]}" "${bin_dir}" "${scenario}" "${cache}/initramfs") ||
    die "building the initramfs failed"
log "initramfs ${initrd##*/} from ${bin_dir} ($(since "${t0}"))"
flock -u 9

# --- the boot ---------------------------------------------------------------
scenario_timeout=$((vm_timeout - 60))
((scenario_timeout >= 30)) || scenario_timeout=30
append="console=ttyS0 quiet panic=-1 hangar_timeout=${scenario_timeout}"
console=$(mktemp "${cache}/logs/console.XXXXXX")
# Keep the 8 newest console logs.
ls -t "${cache}"/logs/console.* | tail -n +9 | xargs -r rm -f
log "booting (accel ${accel}, timeout ${vm_timeout}s, console log ${console})"
t0=$(now)
qemu_status=0
timeout --kill-after=10 "${vm_timeout}" qemu-system-x86_64 \
    -nographic -no-reboot -m 1024 -smp 2 -accel "${accel}" -nic none \
    -kernel "${vmlinuz}" -initrd "${initrd}" -append "${append}" \
    </dev/null >"${console}" 2>&1 || qemu_status=$?
log "VM ran $(since "${t0}") (qemu exit status ${qemu_status})"
[[ -z ${HANGAR_VM_CONSOLE:-} ]] || cp "${console}" "${HANGAR_VM_CONSOLE}"

results=$(tr -d '\r' <"${console}" |
    sed -n '/^=== hangar-vm results begin ===$/,/^=== hangar-vm results end ===$/p')
if [[ -z ${results} || $(tail -n1 <<<"${results}") != "=== hangar-vm results end ===" ]]; then
    case ${qemu_status} in
    124 | 137) log "QEMU was killed after ${vm_timeout}s" ;;
    esac
    log "no complete results on the console; its last lines:"
    tail -n 40 "${console}" | tr -d '\r' | sed 's/^/vm-console: /' >&2
    # Whatever part of the results did come, for the human.
    [[ -z ${results} ]] || printf '%s\n' "${results}" | sed '1d'
    exit 2
fi
printf '%s\n' "${results}" | sed '1d;$d'
status=$(printf '%s\n' "${results}" | sed -n 's/^exit-status: \([0-9]*\)$/\1/p' | tail -n1)
if [[ ${status} == 0 ]]; then
    exit 0
fi
log "scenario failed (exit status ${status:-unknown})"
exit 1
