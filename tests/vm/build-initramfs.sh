#!/usr/bin/env bash
# Builds the initramfs of the hangar test VM (see tests/vm/run.sh) and prints its path.
#
# Usage: tests/vm/build-initramfs.sh [-k KERNEL_TREE] [-M "MODULE ..."] [-B "TOOL ..."]
#                                   BIN_DIR SCENARIO OUT_DIR
#   BIN_DIR     holds the `hangar` and `hangar-monitor` binaries to test
#   SCENARIO    shell script run as /scenario.sh inside the VM (by tests/vm/init.sh)
#   OUT_DIR     where images are kept: OUT_DIR/initramfs-<sha256>.cpio.gz
#   -k TREE     the extracted kernel package (TREE/lib/modules/VERSION), for -M
#   -M MODULES  kernel modules to carry and insmod at boot (with what they depend
#               on); the cgroup scenarios need none: the cloud kernel has
#               namespaces, cgroup2 controllers, devpts, tmpfs and seccomp built in
#               (fuse, which lxcfs needs, is added by this script; see below); a
#               network scenario needs veth, bridge, 8021q and nftables' modules
#               (tests/vm/scenario-vlan.sh names them)
#   -B TOOLS    host programs to carry, by name (e.g. "ip tc nft nsenter"): found on
#               the host's PATH or in /usr/sbin, /usr/bin, /sbin, /bin, copied with
#               their libraries to /usr/local/bin, the first directory of the VM's
#               PATH, and every busybox applet link of the same name is pointed at
#               the copy, so a program that looks the name up finds the host's tool
#               (hangar runs iproute2's `ip -j`/`-batch`, `tc`, `nft` and
#               util-linux's `nsenter --net=... ip`, which busybox's applets cannot
#               stand in for). busybox's sh still prefers its own applets: scripts
#               in the VM call these by path
#
# The image holds:
#   /init                    tests/vm/init.sh
#   /scenario.sh             SCENARIO
#   /scenario-lib.sh         tests/vm/scenario-lib.sh, which every scenario sources
#   /usr/local/bin/hangar, /usr/local/bin/hangar-monitor
#                            the binaries, debug info stripped (symbols kept)
#   their shared libraries and the dynamic loader, at the paths ldd names
#   /bin/busybox             the host's static busybox (Debian's busybox-static),
#                            with a link for every applet; hangar's busybox build
#                            method copies it into guests from here
#   /usr/local/bin/eat       tests/vm/eat.c, built static: allocates N MiB
#   /opt/lxcfs/bin/lxcfs     the host's lxcfs (Debian's lxcfs package), when the host
#                            has it and -k is given: with liblxcfs.so and libfuse3 at
#                            their host paths, and the kernel's fuse module added to
#                            the -M modules. It is kept off the PATH, so hangar starts
#                            no lxcfs unless a scenario puts /opt/lxcfs/bin on its PATH
#                            (tests/vm/scenario-limits.sh does; the smoke one does not)
#   /lib/modules/extra       the -M modules, uncompressed, and their load order
#   /usr/local/bin/TOOL      the -B tools, with their shared libraries at the paths
#                            ldd names; sbin/ip, usr/bin/nsenter, ... (busybox's links
#                            of those names) link to them
#
# Everything is staged first and the image is named after the hash of the staged
# tree (paths, modes, link targets, contents), so an image is reused exactly when
# its contents would be the same; packing is the only step skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kernel_tree=
modules=
tools=
usage="usage: $0 [-k KERNEL_TREE] [-M MODULES] [-B TOOLS] BIN_DIR SCENARIO OUT_DIR"
while getopts 'k:M:B:' opt; do
    case ${opt} in
    k) kernel_tree=${OPTARG} ;;
    M) modules=${OPTARG} ;;
    B) tools=${OPTARG} ;;
    *) echo "${usage}" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -ne 3 ]]; then
    echo "${usage}" >&2
    exit 2
fi
bin_dir=$1
scenario=$2
out_dir=$3

log() { printf 'build-initramfs: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in cpio gzip gcc strip ldd; do
    command -v "${tool}" >/dev/null || die "${tool} is missing (scripts/setup-host.sh installs what is needed)"
done
for b in hangar hangar-monitor; do
    [[ -x ${bin_dir}/${b} ]] || die "${bin_dir}/${b} is missing: build the workspace (cargo build --workspace) first"
done
[[ -f ${scenario} ]] || die "no scenario ${scenario}"
host_busybox=/bin/busybox
[[ -x ${host_busybox} ]] || die "${host_busybox} is missing: install busybox-static"
if ldd "${host_busybox}" >/dev/null 2>&1; then
    die "${host_busybox} is dynamically linked: install busybox-static"
fi

mkdir -p "${out_dir}"
stage=$(mktemp -d "${out_dir}/.stage.XXXXXX")
trap 'rm -rf "${stage}"' EXIT

# Directory skeleton.
for d in bin sbin usr/bin usr/sbin usr/local/bin etc root proc sys dev tmp run lib/modules/extra; do
    mkdir -p "${stage}/${d}"
done
# The kernel opens /dev/console for /init's stdin, stdout and stderr before devtmpfs
# is mounted; without the node /init starts with them closed (making one needs root).
if [[ ${EUID} -eq 0 ]]; then
    mknod -m 0600 "${stage}/dev/console" c 5 1
    mknod -m 0666 "${stage}/dev/null" c 1 3
fi
chmod 0700 "${stage}/root"
chmod 1777 "${stage}/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"${stage}/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"${stage}/etc/group"
# As on a real host; without it libfuse (lxcfs) runs mount(8) to record its mount.
ln -s ../proc/self/mounts "${stage}/etc/mtab"

# busybox and its applets (relative links, as hangar's own busybox method makes them).
cp "${host_busybox}" "${stage}/bin/busybox"
while read -r applet; do
    [[ ${applet} == */* && ${applet} != bin/busybox ]] || continue
    depth=${applet//[^\/]/}
    target="$(printf '../%.0s' $(seq 1 ${#depth}))bin/busybox"
    [[ -e ${stage}/${applet} || -L ${stage}/${applet} ]] || ln -s "${target}" "${stage}/${applet}"
done < <("${host_busybox}" --list-full)

# hangar's binaries, then every shared library they load and the loader.
for b in hangar hangar-monitor; do
    cp "${bin_dir}/${b}" "${stage}/usr/local/bin/${b}"
    strip --strip-debug "${stage}/usr/local/bin/${b}"
done
# ldd_libs FILE: the libraries FILE loads (and the loader), one path a line.
ldd_libs() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}
libs=()
for b in hangar hangar-monitor; do
    while read -r lib; do
        libs+=("${lib}")
    done < <(ldd_libs "${bin_dir}/${b}")
done
[[ ${#libs[@]} -gt 0 ]] || die "ldd found no libraries for ${bin_dir}/hangar: is it really dynamic?"

# lxcfs, off the PATH (see above). lxcfs dlopens liblxcfs.so from its libdir, so that
# stays at its host path; FUSE is a module in Debian's cloud kernel (CONFIG_FUSE_FS=m).
host_lxcfs=/usr/bin/lxcfs
host_liblxcfs=$(dpkg -L lxcfs 2>/dev/null | grep '/liblxcfs\.so$' | head -n1 || true)
fuse_config=
if [[ -n ${kernel_tree} ]]; then
    fuse_config=$(sed -n 's/^CONFIG_FUSE_FS=//p' "${kernel_tree}"/boot/config-* 2>/dev/null | head -n1 || true)
fi
if [[ ! -x ${host_lxcfs} || -z ${host_liblxcfs} || ! -f ${host_liblxcfs} ]]; then
    log "no lxcfs on this host (install lxcfs): the image carries none"
elif [[ ${fuse_config} != [ym] ]]; then
    log "the kernel's FUSE support is unknown (no -k, or CONFIG_FUSE_FS unset): the image carries no lxcfs"
else
    mkdir -p "${stage}/opt/lxcfs/bin" "${stage}$(dirname "${host_liblxcfs}")"
    cp "${host_lxcfs}" "${stage}/opt/lxcfs/bin/lxcfs"
    cp "${host_liblxcfs}" "${stage}${host_liblxcfs}"
    for f in "${host_lxcfs}" "${host_liblxcfs}"; do
        while read -r lib; do
            libs+=("${lib}")
        done < <(ldd_libs "${f}")
    done
    [[ ${fuse_config} == y ]] || modules="${modules} fuse"
fi
# The host's tools (-B), at the front of the PATH; busybox's links of the same names
# point at them too (relative, like the links above), so that no lookup, by PATH or
# by an absolute /sbin/ip, finds the applet instead.
for tool in ${tools}; do
    [[ ${tool} != */* ]] || die "-B takes tool names, not paths: ${tool}"
    src=$(PATH=${PATH}:/usr/sbin:/usr/bin:/sbin:/bin command -v "${tool}" || true)
    [[ ${src} == /* && -x ${src} ]] || die "-B ${tool}: no such program on this host"
    cp -L "${src}" "${stage}/usr/local/bin/${tool}"
    while read -r lib; do
        libs+=("${lib}")
    done < <(ldd_libs "${src}" 2>/dev/null) # none when it is static
    for d in bin sbin usr/bin usr/sbin; do
        if [[ -L ${stage}/${d}/${tool} ]]; then
            depth=${d//[^\/]/}
            ln -sfn "$(printf '../%.0s' $(seq 0 ${#depth}))usr/local/bin/${tool}" "${stage}/${d}/${tool}"
        fi
    done
done
for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
    mkdir -p "${stage}$(dirname "${lib}")"
    cp -L "${lib}" "${stage}${lib}"
done

# The memory eater.
gcc -static -O2 -Wall -Wextra -Werror -o "${stage}/usr/local/bin/eat" "${here}/eat.c"

# Modules, dependencies first, uncompressed (busybox insmod reads plain .ko only).
# The package ships no modules.dep (its postinst runs depmod), so dependencies
# come from each module's own .modinfo section ("depends=a,b").
if [[ -n ${modules} ]]; then
    [[ -n ${kernel_tree} ]] || die "-M needs -k KERNEL_TREE"
    command -v objcopy >/dev/null || die "objcopy (binutils) is missing"
    declare -A mod_file=() seen=()
    while read -r f; do
        n=$(basename "${f}")
        n=${n%%.ko*}
        mod_file[${n//-/_}]=${f}
    done < <(find "${kernel_tree}/lib/modules" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
    [[ ${#mod_file[@]} -gt 0 ]] || die "no modules under ${kernel_tree}/lib/modules"
    order=()
    add_module() { # add_module NAME: stage it, after what it depends on
        local name=${1//-/_} src dst dep
        [[ -z ${seen[${name}]:-} ]] || return 0
        seen[${name}]=1
        src=${mod_file[${name}]:-}
        [[ -n ${src} ]] || die "module ${name} is not in ${kernel_tree} (built in, or no such module?)"
        dst=${stage}/lib/modules/extra/${name}.ko
        case ${src} in
        *.ko) cp "${src}" "${dst}" ;;
        *.ko.xz) xz -dc "${src}" >"${dst}" ;;
        *.ko.zst) zstd -qdc "${src}" >"${dst}" ;;
        *.ko.gz) gzip -dc "${src}" >"${dst}" ;;
        esac
        for dep in $(objcopy -O binary --only-section=.modinfo "${dst}" /dev/stdout |
            tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
            add_module "${dep}"
        done
        order+=("${name}.ko")
    }
    for m in ${modules}; do
        add_module "${m}"
    done
    printf '%s\n' "${order[@]}" >"${stage}/lib/modules/extra/load-order"
fi

install -m 0755 "${here}/init.sh" "${stage}/init"
install -m 0755 "${scenario}" "${stage}/scenario.sh"
install -m 0644 "${here}/scenario-lib.sh" "${stage}/scenario-lib.sh"

# The image's name: a hash of everything staged.
hash=$(cd "${stage}" && {
    find . -printf '%p %y %m %l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-32)
image=${out_dir}/initramfs-${hash}.cpio.gz
if [[ -s ${image} ]]; then
    log "reusing ${image}"
else
    tmp=$(mktemp "${out_dir}/.initramfs.XXXXXX")
    (cd "${stage}" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 | gzip -1 >"${tmp}")
    mv "${tmp}" "${image}"
    log "built ${image} ($(du -h "${image}" | cut -f1))"
    # Keep the 8 newest images.
    ls -t "${out_dir}"/initramfs-*.cpio.gz 2>/dev/null | tail -n +9 | xargs -r rm -f
fi
printf '%s\n' "${image}"
