#!/usr/bin/env bash
# Start-up benchmark: hangar side by side with LXC, crun, systemd-nspawn and a
# bare unshare+chroot, all on one busybox root filesystem, timed by hyperfine.
#
# Usage (as root, from anywhere):
#   bench/start.sh
# Environment:
#   HANGAR     the hangar binary (default: target/release/hangar of this repo)
#   RUNS       hyperfine runs per measurement (default 20; 3 warm-up runs)
#   BENCH_OUT  keep hyperfine's JSON exports in this directory
#
# Measures (a) start: from the start command to the guest's init running;
# (b) start + stop; (c) the memory (PSS) of the per-guest monitor process with
# one guest running; (d) start and start + stop with one NIC on a bridge, hangar
# against LXC. It prints a report and cleans up everything it created
# (containers, cgroup mounts, subordinate-id entries, temp dirs), also when
# interrupted. A tool that is missing or fails is reported as unavailable and
# the others are still measured.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
script="${repo}/bench/$(basename "$0")"

# shellcheck source=bench/lib.sh
source "${repo}/bench/lib.sh"
bench_start "${script}" "$@"

RUNS=${RUNS:-20}
WARMUP=3
# Subordinate ids of the LXC, crun and nspawn guests (root -> 1000000).
IDMAP_BASE=1000000
IDMAP_SIZE=65536



for tool in hyperfine python3 busybox; do
    if ! command -v "${tool}" >/dev/null; then
        log "${tool} is missing: run scripts/setup-host.sh"
        exit 1
    fi
done

work=$(mktemp -d /var/tmp/hangar-bench.XXXXXX)
# The guests' roots (host uid 1000000) must be able to walk down to their trees.
chmod 0755 "${work}"
export HANGAR_ROOT=${work}/hangar-root
mkdir -p "${HANGAR_ROOT}"

# --- cleanup ----------------------------------------------------------------------

lxcpath=${work}/lxc
bundle=${work}/crun-bundle
nspawn_machine=benchnspawn
nspawn_pid=
hangar_built=
nic_built=
moved_controllers=()
subid_added=()

cleanup() {
    set +e
    if [[ -n ${hangar_built} ]]; then
        "${HANGAR}" kill bench >/dev/null 2>&1
        "${HANGAR}" delete bench --force >/dev/null 2>&1
    fi
    if [[ -n ${nic_built} ]]; then
        "${HANGAR}" kill benchnic >/dev/null 2>&1
        "${HANGAR}" delete benchnic --force >/dev/null 2>&1
        "${HANGAR}" network delete benchnet >/dev/null 2>&1
    fi
    for c in benchlxc benchlxcnic; do
        if [[ -d ${lxcpath}/${c} ]]; then
            lxc-stop -P "${lxcpath}" -n "${c}" -k >/dev/null 2>&1
        fi
    done
    if command -v crun >/dev/null; then
        crun delete -f benchcrun >/dev/null 2>&1
    fi
    if [[ -n ${nspawn_pid} ]]; then
        kill "${nspawn_pid}" 2>/dev/null
        wait "${nspawn_pid}" 2>/dev/null
    fi
    restore_cgroup_v2
    for f in "${subid_added[@]}"; do
        sed -i "/^root:${IDMAP_BASE}:${IDMAP_SIZE}\$/d" "${f}"
    done
    rm -rf "/run/systemd/nspawn/propagate/${nspawn_machine}"
    bench_remove_work "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- measuring --------------------------------------------------------------------

# measure KEY PREPARE COMMAND: runs hyperfine, records the median in ms as
# ${median[KEY]}; returns non-zero (with the reason in ${why}) on failure.
declare -A median
why=
measure() {
    local key=$1 prepare=$2 cmd=$3 json=${work}/${1}.json
    local args=(--warmup "${WARMUP}" --runs "${RUNS}" --style basic --export-json "${json}")
    [[ -n ${prepare} ]] && args+=(--prepare "${prepare}")
    if ! quietly "${work}/${key}.log" hyperfine "${args[@]}" "${cmd}"; then
        why=$(grep -m1 -i -E 'error|fail' "${work}/${key}.log" || last_line "${work}/${key}.log")
        return 1
    fi
    local res
    res=$(python3 -c '
import json, sys
r = {k: v * 1000 for k, v in json.load(open(sys.argv[1]))["results"][0].items()
     if k in ("median", "mean", "stddev", "min", "max")}
print("%.1f\tmedian %.1f ms, mean %.1f ± %.1f ms, range %.1f … %.1f ms" % (
    r["median"], r["median"], r["mean"], r["stddev"], r["min"], r["max"]))
' "${json}")
    median[${key}]=${res%%$'\t'*}
    log "  ${res#*$'\t'}"
    if [[ -n ${BENCH_OUT:-} ]]; then
        mkdir -p "${BENCH_OUT}"
        cp "${json}" "${BENCH_OUT}/"
    fi
}

# pss_kb PID: proportional set size of one process, in kB.
pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }
rss_kb() { awk '/^Rss:/ { print $2 }' "/proc/$1/smaps_rollup"; }

# --- the root filesystem ------------------------------------------------------------

# A tiny busybox system: busybox, its applets, init with an inittab that
# only runs /bin/true, and the mount points runtimes expect.
make_busybox_rootfs() {
    local root=$1 applet
    mkdir -p "${root}"/{bin,sbin,etc,dev,proc,sys,tmp,root,run,usr,var}
    cp "$(command -v busybox)" "${root}/bin/busybox"
    for applet in $("${root}/bin/busybox" --list); do
        [[ -e ${root}/bin/${applet} ]] || ln -s busybox "${root}/bin/${applet}"
    done
    ln -sf ../bin/busybox "${root}/sbin/init"
    echo '::sysinit:/bin/true' >"${root}/etc/inittab"
    # systemd-nspawn wants to see an OS tree (/usr, os-release).
    printf 'ID=busybox\nNAME=busybox\n' >"${root}/etc/os-release"
    chmod 1777 "${root}/tmp"
}

hangar_why=
hangar_rootfs=${HANGAR_ROOT}/var/lib/hangar/guests/bench/rootfs
if [[ ! -x ${HANGAR} ]]; then
    hangar_why="no binary at ${HANGAR} (cargo build --release)"
elif ! quietly "${work}/hangar.log" "${HANGAR}" build bench -m busybox --network none; then
    hangar_why="build failed: $(last_line "${work}/hangar.log")"
elif ! quietly "${work}/hangar.log" "${HANGAR}" start bench ||
    ! quietly "${work}/hangar.log" "${HANGAR}" kill bench; then
    hangar_built=1
    hangar_why="start/kill failed: $(last_line "${work}/hangar.log")"
else
    hangar_built=1
fi

rootfs=${work}/rootfs
if [[ -z ${hangar_why} && -x ${hangar_rootfs}/bin/busybox ]]; then
    log "root filesystem: copy of hangar's busybox guest"
    cp -a "${hangar_rootfs}" "${rootfs}"
    chown -hR 0:0 "${rootfs}"
    mkdir -p "${rootfs}"/{usr,dev,proc,sys,tmp,run}
    [[ -e ${rootfs}/etc/os-release ]] || printf 'ID=busybox\n' >"${rootfs}/etc/os-release"
else
    log "root filesystem: busybox $(busybox 2>&1 | head -n1 | awk '{print $2}'), built here"
    make_busybox_rootfs "${rootfs}"
fi
# The user-namespaced guests get a copy owned by their mapped root.
mapped=${work}/rootfs-mapped
cp -a "${rootfs}" "${mapped}"
chown -hR "${IDMAP_BASE}:${IDMAP_BASE}" "${mapped}"

# LXC insists that even root's maps are reserved in /etc/sub[ug]id once
# newuidmap is installed: reserve ours for the duration of the run.
for f in /etc/subuid /etc/subgid; do
    if ! grep -q "^root:${IDMAP_BASE}:${IDMAP_SIZE}\$" "${f}" 2>/dev/null; then
        echo "root:${IDMAP_BASE}:${IDMAP_SIZE}" >>"${f}"
        subid_added+=("${f}")
    fi
done

# --- hangar ---------------------------------------------------------------------

measure_hangar() {
    if [[ -n ${hangar_why} ]]; then
        return
    fi
    log "hangar: start"
    if ! measure hangar_start "'${HANGAR}' kill bench >/dev/null 2>&1 || true" "'${HANGAR}' start bench"; then
        hangar_why="start: ${why}"
        return
    fi
    "${HANGAR}" kill bench >/dev/null 2>&1 || true
    log "hangar: start + kill"
    if ! measure hangar_cycle "" "'${HANGAR}' start bench && '${HANGAR}' kill bench"; then
        hangar_why="start + kill: ${why}"
    fi
}

# --- LXC ------------------------------------------------------------------------------

lxc_why=
setup_lxc() {
    command -v lxc-start >/dev/null || { lxc_why="lxc-start not installed"; return 1; }
    mkdir -p "${lxcpath}/benchlxc"
    # Debian's defaults for an unprivileged container, minus lxcfs's hooks:
    # its post-stop hook is a bare `sleep 0.5s`, which would swamp the numbers.
    cat >"${lxcpath}/benchlxc/config" <<EOF
lxc.include = /usr/share/lxc/config/common.conf
lxc.include = /usr/share/lxc/config/userns.conf
lxc.hook.mount =
lxc.hook.post-stop =
lxc.uts.name = benchlxc
lxc.rootfs.path = dir:${mapped}
lxc.init.cmd = /sbin/init
lxc.idmap = u 0 ${IDMAP_BASE} ${IDMAP_SIZE}
lxc.idmap = g 0 ${IDMAP_BASE} ${IDMAP_SIZE}
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
EOF
    if ! quietly "${work}/lxc.out" lxc-start -P "${lxcpath}" -n benchlxc -d -l ERROR -o "${work}/lxc.log"; then
        lxc_why="lxc-start failed: $(last_line "${work}/lxc.log")"
        return 1
    fi
    lxc-stop -P "${lxcpath}" -n benchlxc -k
}

lxc_start="lxc-start -P '${lxcpath}' -n benchlxc -d"
lxc_stop="lxc-stop -P '${lxcpath}' -n benchlxc -k"
measure_lxc() {
    setup_lxc || return 0
    log "LXC: start"
    if ! measure lxc_start "${lxc_stop} >/dev/null 2>&1 || true" "${lxc_start}"; then
        lxc_why="start: ${why}"
        return
    fi
    eval "${lxc_stop}" >/dev/null 2>&1 || true
    log "LXC: start + stop"
    measure lxc_cycle "" "${lxc_start} && ${lxc_stop}" || lxc_why="start + stop: ${why}"
}

# --- one NIC on a bridge: hangar and LXC ----------------------------------------------------

# Both guests get one veth on the same bridge (hangar's network `benchnet`, no DNS):
# hangar also sets the guest's address and route and installs its anti-spoofing guard;
# LXC's config gives the address too, and has no guard to install.
nic_why=
lxc_nic_why=
bench_bridge=
setup_nic() {
    [[ -z ${hangar_why} ]] || { nic_why="hangar unavailable"; return 1; }
    if ! quietly "${work}/nic.log" "${HANGAR}" network create benchnet --kind bridge \
        --ipv4 10.254.254.1/24 --no-dns; then
        nic_why="network create failed: $(last_line "${work}/nic.log")"
        return 1
    fi
    nic_built=1
    bench_bridge=$("${HANGAR}" network show benchnet |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["network"]["bridge"])')
    if ! quietly "${work}/nic.log" "${HANGAR}" build benchnic -m busybox \
        --nic network=benchnet,ip=10.254.254.2/24; then
        nic_why="build failed: $(last_line "${work}/nic.log")"
        return 1
    fi
}

measure_nic() {
    setup_nic || return 0
    log "hangar, one NIC: start"
    measure hangar_nic_start "'${HANGAR}' kill benchnic >/dev/null 2>&1 || true" \
        "'${HANGAR}' start benchnic" || { nic_why="start: ${why}"; return 0; }
    "${HANGAR}" kill benchnic >/dev/null 2>&1 || true
    log "hangar, one NIC: start + kill"
    measure hangar_nic_cycle "" "'${HANGAR}' start benchnic && '${HANGAR}' kill benchnic" ||
        { nic_why="start + kill: ${why}"; return 0; }
    [[ -z ${lxc_why} ]] || return 0
    mkdir -p "${lxcpath}/benchlxcnic"
    sed -e 's/^lxc.uts.name = .*/lxc.uts.name = benchlxcnic/' -e '/^lxc.net.0.type/d' \
        "${lxcpath}/benchlxc/config" >"${lxcpath}/benchlxcnic/config"
    printf '%s\n' "lxc.net.0.type = veth" "lxc.net.0.link = ${bench_bridge}" \
        "lxc.net.0.flags = up" "lxc.net.0.ipv4.address = 10.254.254.3/24" \
        "lxc.net.0.ipv4.gateway = 10.254.254.1" >>"${lxcpath}/benchlxcnic/config"
    local start="lxc-start -P '${lxcpath}' -n benchlxcnic -d"
    local stop="lxc-stop -P '${lxcpath}' -n benchlxcnic -k"
    log "LXC, one NIC: start"
    measure lxc_nic_start "${stop} >/dev/null 2>&1 || true" "${start}" ||
        { lxc_nic_why="start: ${why}"; return 0; }
    eval "${stop}" >/dev/null 2>&1 || true
    log "LXC, one NIC: start + stop"
    measure lxc_nic_cycle "" "${start} && ${stop}" || lxc_nic_why="start + stop: ${why}"
}

# --- crun -------------------------------------------------------------------------------

# crun refuses the "hybrid" layout while cgroup2 still holds controllers (here
# the lone hugetlb): move them to v1 hierarchies for the crun runs only.
move_cgroup_v2_controllers() {
    local unified=/sys/fs/cgroup/unified ctrl ctrls=()
    [[ -r ${unified}/cgroup.controllers ]] || return 0
    read -ra ctrls <"${unified}/cgroup.controllers"
    for ctrl in "${ctrls[@]}"; do
        [[ -e /sys/fs/cgroup/${ctrl} ]] && continue
        mkdir "/sys/fs/cgroup/${ctrl}"
        if mount -t cgroup -o "${ctrl}" cgroup "/sys/fs/cgroup/${ctrl}"; then
            moved_controllers+=("${ctrl}")
        else
            rmdir "/sys/fs/cgroup/${ctrl}"
            return 1
        fi
    done
}
# The kernel hands a controller back to cgroup2 only once its v1 hierarchy is
# destroyed, which lags the umount until the last cgroup of the hierarchy is
# freed; meanwhile other tools (systemd-nspawn) see a v1 hugetlb they cannot
# mount. So wait for the hand-back.
restore_cgroup_v2() {
    local ctrl i
    for ctrl in "${moved_controllers[@]}"; do
        umount "/sys/fs/cgroup/${ctrl}" && rmdir "/sys/fs/cgroup/${ctrl}"
        for ((i = 0; i < 100; i++)); do
            grep -qw "${ctrl}" /sys/fs/cgroup/unified/cgroup.controllers && break
            sleep 0.1
        done
        grep -qw "${ctrl}" /sys/fs/cgroup/unified/cgroup.controllers ||
            log "warning: ${ctrl} has not returned to cgroup2 yet"
    done
    moved_controllers=()
}

crun_why=
setup_crun() {
    command -v crun >/dev/null || { crun_why="crun not installed"; return 1; }
    mkdir -p "${bundle}"
    (cd "${bundle}" && crun spec)
    # crun's default spec, made a system container: init as the process, a
    # user namespace mapped like the others, a cgroup namespace, no terminal.
    python3 - "${bundle}/config.json" "${mapped}" "${IDMAP_BASE}" "${IDMAP_SIZE}" <<'EOF'
import json, sys
path, root, base, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = json.load(open(path))
c["root"] = {"path": root, "readonly": False}
c["hostname"] = "benchcrun"
c["process"]["args"] = ["/sbin/init"]
c["process"]["terminal"] = False
ns = c["linux"]["namespaces"]
for kind in ("user", "cgroup", "network"):
    if not any(n["type"] == kind for n in ns):
        ns.append({"type": kind})
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": base, "size": size}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": base, "size": size}]
# A capability the host's bounding set lacks makes crun fail.
bounding = int(next(l for l in open("/proc/self/status") if l.startswith("CapBnd:")).split()[1], 16)
if not bounding & (1 << 24):
    for kind, caps in c["process"]["capabilities"].items():
        c["process"]["capabilities"][kind] = [x for x in caps if x != "CAP_SYS_RESOURCE"]
json.dump(c, open(path, "w"), indent=1)
EOF
    if ! move_cgroup_v2_controllers; then
        crun_why="could not move cgroup2 controllers to v1 (crun refuses hybrid mode)"
        return 1
    fi
    if ! quietly "${work}/crun.log" crun run -d --bundle "${bundle}" benchcrun; then
        crun_why="crun run failed: $(last_line "${work}/crun.log")"
        return 1
    fi
    crun delete -f benchcrun
}

crun_start="crun run -d --bundle '${bundle}' benchcrun </dev/null >/dev/null 2>&1"
crun_stop="crun kill benchcrun KILL && crun delete -f benchcrun"
measure_crun() {
    if setup_crun; then
        log "crun: start"
        if measure crun_start "crun delete -f benchcrun >/dev/null 2>&1 || true" "${crun_start}"; then
            crun delete -f benchcrun >/dev/null 2>&1 || true
            log "crun: start + kill + delete"
            measure crun_cycle "" "${crun_start} && ${crun_stop}" || crun_why="start + stop: ${why}"
        else
            crun_why="start: ${why}"
        fi
        crun delete -f benchcrun >/dev/null 2>&1 || true
    fi
    restore_cgroup_v2
}

# --- systemd-nspawn and unshare: run /bin/true to completion -----------------------------

# Without D-Bus (no systemd as pid 1) nspawn needs --register=no --keep-unit.
nspawn_args=(--register=no --keep-unit -q -D "${mapped}" -M "${nspawn_machine}"
    "--private-users=${IDMAP_BASE}:${IDMAP_SIZE}" --private-network)
nspawn_why=
# What nspawn says on every run when /run is not a tmpfs; harmless.
nspawn_noise='Attempted to remove disk file system'
measure_nspawn() {
    command -v systemd-nspawn >/dev/null || { nspawn_why="systemd-nspawn not installed"; return; }
    if ! quietly "${work}/nspawn.log" systemd-nspawn "${nspawn_args[@]}" /bin/true; then
        nspawn_why="systemd-nspawn failed: $(grep -v -m1 "${nspawn_noise}" "${work}/nspawn.log")"
        return
    fi
    log "systemd-nspawn: run /bin/true"
    # nspawn complains on stderr that /run is not a tmpfs; the run itself is fine.
    measure nspawn_cycle "" "systemd-nspawn ${nspawn_args[*]} /bin/true </dev/null 2>/dev/null" ||
        nspawn_why="${why}"
}

unshare_why=
measure_unshare() {
    local cmd="unshare --user --map-root-user --pid --fork --mount --uts --ipc --net chroot '${rootfs}' /bin/true"
    log "unshare + chroot: run /bin/true"
    measure unshare_cycle "" "${cmd}" || unshare_why="${why}"
}

# --- (c) monitor memory ----------------------------------------------------------------

# The hangar-monitor process of our guest (other guests may run on the host).
hangar_monitor_pid() {
    local pid
    for pid in $(pgrep -x hangar-monitor); do
        if refers_to_root "${pid}"; then
            echo "${pid}"
            return
        fi
    done
    return 1
}

declare -A pss rss
measure_memory() {
    local pid
    if [[ -z ${hangar_why} ]] && "${HANGAR}" start bench >/dev/null 2>&1; then
        sleep 1
        if pid=$(hangar_monitor_pid); then
            pss[hangar]=$(pss_kb "${pid}") rss[hangar]=$(rss_kb "${pid}")
        fi
    fi
    if [[ -z ${lxc_why} ]] && eval "${lxc_start}" >/dev/null 2>&1; then
        sleep 1
        # The monitor is the parent of the container's init.
        pid=$(lxc-info -P "${lxcpath}" -n benchlxc -p -H)
        pid=$(ps -o ppid= -p "${pid}" | tr -d ' ')
        if [[ $(tr '\0' ' ' <"/proc/${pid}/cmdline") == "[lxc monitor]"* ]]; then
            pss[lxc]=$(pss_kb "${pid}") rss[lxc]=$(rss_kb "${pid}")
        fi
    fi
    if [[ -z ${nspawn_why} ]]; then
        systemd-nspawn "${nspawn_args[@]}" /sbin/init </dev/null >/dev/null 2>&1 &
        nspawn_pid=$!
        sleep 1
        if kill -0 "${nspawn_pid}" 2>/dev/null; then
            pss[nspawn]=$(pss_kb "${nspawn_pid}") rss[nspawn]=$(rss_kb "${nspawn_pid}")
        fi
        kill "${nspawn_pid}" 2>/dev/null
        wait "${nspawn_pid}" 2>/dev/null || true
        nspawn_pid=
    fi
    [[ -z ${hangar_why} ]] && { "${HANGAR}" kill bench >/dev/null 2>&1 || true; }
    [[ -z ${lxc_why} ]] && { eval "${lxc_stop}" >/dev/null 2>&1 || true; }
}

# --- run and report ------------------------------------------------------------------------

log "$(nproc) cpus, kernel $(uname -r), ${RUNS} runs + ${WARMUP} warm-up each"
measure_hangar
measure_lxc
measure_nspawn
measure_unshare
measure_memory
measure_nic
# Last: it moves cgroup controllers around (see move_cgroup_v2_controllers).
measure_crun

ratio() { # ratio A B: A/B with two decimals, or "-"
    if [[ -n ${1} && -n ${2} ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
    else
        echo "-"
    fi
}
row() { # row LABEL START CYCLE [MARK]
    local start=${2:--} cycle=${3:--}
    printf '%-22s %10s %15s %12s %17s\n' "$1" "${start}" "${cycle}${4:-}" \
        "$(ratio "${2:-}" "${median[lxc_start]:-}")" "$(ratio "${3:-}" "${median[lxc_cycle]:-}")"
}
unavailable() { printf '%-22s unavailable (%s)\n' "$1" "$2"; }

echo
echo "== guest start-up, busybox guest, median of ${RUNS} runs (hyperfine) =="
printf '%-22s %10s %15s %12s %17s\n' tool "start ms" "start+stop ms" "start÷LXC" "start+stop÷LXC"
if [[ -n ${hangar_why} ]]; then unavailable hangar "${hangar_why}"; else
    row hangar "${median[hangar_start]:-}" "${median[hangar_cycle]:-}"; fi
if [[ -n ${lxc_why} ]]; then unavailable "LXC $(lxc-start --version 2>/dev/null)" "${lxc_why}"; else
    row "LXC $(lxc-start --version)" "${median[lxc_start]:-}" "${median[lxc_cycle]:-}"; fi
crun_label="crun $(crun --version 2>/dev/null | awk 'NR == 1 { print $3 }')"
if [[ -n ${crun_why} ]]; then unavailable "${crun_label}" "${crun_why}"; else
    row "${crun_label}" "${median[crun_start]:-}" "${median[crun_cycle]:-}"; fi
nspawn_label="systemd-nspawn $(systemd-nspawn --version 2>/dev/null | awk 'NR == 1 { print $2 }')"
if [[ -n ${nspawn_why} ]]; then unavailable "${nspawn_label}" "${nspawn_why}"; else
    row "${nspawn_label}" "" "${median[nspawn_cycle]:-}" " (*)"; fi
if [[ -n ${unshare_why} ]]; then unavailable "unshare+chroot" "${unshare_why}"; else
    row "unshare+chroot" "" "${median[unshare_cycle]:-}" " (*)"; fi
echo "start: the start command returns with the guest's init running (lxc-start -d, crun run -d)."
echo "start+stop: start, then kill (hangar kill, lxc-stop -k, crun kill KILL + crun delete -f)."
echo "(*) runs /bin/true as the container's command: start, exit and teardown; no init, no stop."
echo "All guests: user namespace (root -> ${IDMAP_BASE}; unshare: root -> root), own pid/mount/uts/ipc/net."

echo
echo "== the same with one NIC on a bridge (veth, address, default route), median of ${RUNS} runs =="
nic_row() { # nic_row LABEL START CYCLE
    printf '%-22s %10s %15s %12s %17s\n' "$1" "${2:--}" "${3:--}" \
        "$(ratio "${2:-}" "${median[lxc_nic_start]:-}")" "$(ratio "${3:-}" "${median[lxc_nic_cycle]:-}")"
}
printf '%-22s %10s %15s %12s %17s\n' tool "start ms" "start+stop ms" "start÷LXC" "start+stop÷LXC"
if [[ -n ${nic_why} ]]; then unavailable hangar "${nic_why}"; else
    nic_row hangar "${median[hangar_nic_start]:-}" "${median[hangar_nic_cycle]:-}"; fi
if [[ -n ${lxc_why}${lxc_nic_why} ]]; then unavailable LXC "${lxc_why:-${lxc_nic_why}}"; else
    nic_row LXC "${median[lxc_nic_start]:-}" "${median[lxc_nic_cycle]:-}"; fi
echo "hangar also installs the NIC's anti-spoofing guard (one nftables transaction); LXC has none."

echo
echo "== monitor memory, one running guest each (PSS from /proc/PID/smaps_rollup) =="
mem_row() { # mem_row LABEL KEY WHY
    if [[ -n ${pss[$2]:-} ]]; then
        printf '%-34s PSS %6s kB   RSS %6s kB\n' "$1" "${pss[$2]}" "${rss[$2]}"
    else
        printf '%-34s unavailable%s\n' "$1" "${3:+ ($3)}"
    fi
}
mem_row "hangar (hangar-monitor)" hangar "${hangar_why:-monitor process not found}"
mem_row "LXC ([lxc monitor])" lxc "${lxc_why:-monitor process not found}"
mem_row "systemd-nspawn (its own process)" nspawn "${nspawn_why:-nspawn exited}"
echo "crun: no monitor process (conmon is not part of crun)"
echo "PSS hangar/LXC: $(ratio "${pss[hangar]:-}" "${pss[lxc]:-}")"
