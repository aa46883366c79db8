#!/usr/bin/env bash
# Prepares a Debian 12 host for hangar: the packages it needs at run time, in
# its tests and in bench/start.sh, and cargo-fuzz for scripts/fuzz.sh.
# Idempotent: when everything is already installed it touches nothing (no
# apt-get update, no cargo install, no network).
#
# Usage (as root): scripts/setup-host.sh
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# What hangar itself uses at run time, and what its tests use.
runtime_pkgs=(
    busybox-static # the `busybox` build method and the test guests
    debootstrap    # the `debootstrap` build method
    rsync          # the `rsync` build method, clones
    tar            # the `tarball` build method, export/import
    iproute2       # networks (ip link/addr/route)
    nftables       # guest firewalling and NAT
    dnsmasq-base   # the DNS service of each hangar network
    lxcfs          # virtualised /proc (meminfo, uptime, cpuinfo, ...) inside guests
    btrfs-progs    # btrfs storage pools (mkfs.btrfs, subvolumes, qgroups)
    e2fsprogs      # image storage pools (mkfs.ext4, e2fsck, resize2fs)
    procps         # kill (stopping dnsmasq), ps/pgrep in tests
    psmisc         # fuser/killall in tests
    util-linux     # unshare, nsenter, mount, losetup
    gcc            # the static C probe of tests/security
    libc6-dev
    qemu-system-x86 # tests/vm: the test VM (cgroup v2, 802.1Q VLANs; TCG)
    cpio           # tests/vm: packing its initramfs
    xz-utils       # tests/vm: unpacking compressed kernel modules; tests/images.rs: xz tarballs
    zstd
    python3        # scripts/demo.sh and bench/: reading hangar's JSON output
    openssh-client # tests: an ssh login into a systemd guest
)
# The tools bench/start.sh measures hangar against.
bench_pkgs=(crun lxc systemd-container hyperfine iperf3)

log() { printf 'setup-host: %s\n' "$*"; }

if [[ ${EUID} -ne 0 ]]; then
    log "must run as root" >&2
    exit 1
fi

missing=()
for pkg in "${runtime_pkgs[@]}" "${bench_pkgs[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null || true)
    if [[ ${status} != installed ]]; then
        missing+=("${pkg}")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all $(( ${#runtime_pkgs[@]} + ${#bench_pkgs[@]} )) packages present"
else
    log "installing: ${missing[*]}"
    # Without systemd as pid 1 (containers, CI sandboxes) a package's attempt
    # to start its service (lxc-net, nftables) can fail its postinst: forbid
    # service starts for the duration of the install, as Debian's
    # policy-rc.d interface allows.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e ${policy} && ! -d /run/systemd/system ]]; then
        printf '#!/bin/sh\nexit 101\n' >"${policy}"
        chmod 0755 "${policy}"
        trap 'rm -f "${policy}"' EXIT
    fi
    apt_opts=(-q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    # apt's chatter goes to a log that is shown only when a step fails.
    apt_log=$(mktemp /tmp/setup-host.XXXXXX.log)
    run_apt() {
        log "apt-get $1"
        if ! apt-get "${apt_opts[@]}" "$@" </dev/null >>"${apt_log}" 2>&1; then
            cat "${apt_log}" >&2
            log "apt-get $1 failed (log above, kept in ${apt_log})" >&2
            exit 1
        fi
    }
    # Machines whose qemu-utils comes from bookworm-backports cannot take bookworm's
    # qemu-system-x86 beside it (its qemu-system-common is older and they conflict):
    # bring qemu-utils back to bookworm's version in the same transaction.
    if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]] &&
        [[ $(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true) == *bpo* ]]; then
        missing+=(qemu-utils/bookworm)
        apt_opts+=(--allow-downgrades)
    fi
    run_apt update
    run_apt install --no-install-recommends "${missing[@]}"
    rm -f "${apt_log}"
    log "installed ${#missing[@]} packages"
fi

# cargo-fuzz, for scripts/fuzz.sh (the fuzz step of scripts/test.sh): from crates.io,
# the version whose flags scripts/fuzz.sh was written against, only when missing.
cargo_fuzz_version=0.13.2
if cargo fuzz --version >/dev/null 2>&1; then
    log "$(cargo fuzz --version) present"
else
    log "installing cargo-fuzz ${cargo_fuzz_version}"
    cargo_log=$(mktemp /tmp/setup-host.XXXXXX.log)
    if ! cargo install --locked cargo-fuzz --version "${cargo_fuzz_version}" >"${cargo_log}" 2>&1; then
        cat "${cargo_log}" >&2
        log "cargo install cargo-fuzz failed (log above, kept in ${cargo_log})" >&2
        exit 1
    fi
    rm -f "${cargo_log}"
    log "installed $(cargo fuzz --version)"
fi

# Facts that decide which code paths the tests exercise; printed, not fixed.
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    cgroup_mode=unified
elif [[ -d /sys/fs/cgroup/unified ]]; then
    cgroup_mode=hybrid
else
    cgroup_mode=legacy
fi
log "kernel $(uname -r), cgroup ${cgroup_mode}"
