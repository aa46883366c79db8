#!/usr/bin/env bash
# Network benchmark: a hangar bridge network against a bare veth pair.
#
# Usage (as root, from anywhere):
#   bench/net.sh
# Environment:
#   HANGAR     the hangar binary (default: target/release/hangar of this repo;
#              built with cargo build --release --workspace when missing)
#   SECONDS_PER_RUN  iperf3 duration per path (default 5)
#   PINGS      pings per path (default 50, 10 ms apart)
#
# Measures, side by side in one run, single-stream TCP throughput (iperf3, or
# busybox nc + dd when iperf3 is missing) and ICMP round-trip time (busybox
# ping) on:
#   baseline     two network namespaces joined by a veth pair (10.249.9.1/24,
#                10.249.9.2/24), no bridge, no firewall;
#   guest↔guest  two busybox guests on a hangar network (bridge 10.249.0.1/24);
#   guest→host   a guest to the host's address on that bridge.
# iperf3 and ping run from the host, inside a guest's network namespace
# (nsenter --net=/proc/INIT/ns/net): the traffic takes the guest's real path
# (its eth0, veth, bridge, hangar's nftables rules), but the tools are not in
# the guest's cgroup, so the guest's CPU limit does not apply to them. Only
# addresses in the namespaces and on the bridge created here are contacted.
# Everything created (guests, the network, namespaces, veths, the lxcfs keeper,
# servers, temp dirs) is removed on exit, also when interrupted.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
script="${repo}/bench/$(basename "$0")"

# shellcheck source=bench/lib.sh
source "${repo}/bench/lib.sh"
bench_start "${script}" "$@"

DURATION=${SECONDS_PER_RUN:-5}
PINGS=${PINGS:-50}
PORT=5299
NET=bn
BRIDGE_ADDR=10.249.0.1
NS_A=hangar-bench-a NS_B=hangar-bench-b
VETH_A=hbench-va VETH_B=hbench-vb
BASE_A=10.249.9.1 BASE_B=10.249.9.2

log() { printf 'bench: %s\n' "$*" >&2; }

for tool in python3 busybox nsenter ip; do
    if ! command -v "${tool}" >/dev/null; then
        log "${tool} is missing: run scripts/setup-host.sh"
        exit 1
    fi
done
if [[ ! -x ${HANGAR} ]]; then
    log "building hangar (cargo build --release --workspace)"
    (cd "${repo}" && cargo build --release --workspace) >&2
fi
have_iperf=
if command -v iperf3 >/dev/null && [[ -z ${NO_IPERF:-} ]]; then have_iperf=1; fi

work=$(mktemp -d /var/tmp/hangar-bench.XXXXXX)
chmod 0755 "${work}"
export HANGAR_ROOT=${work}/hangar-root
mkdir -p "${HANGAR_ROOT}"

# --- cleanup ----------------------------------------------------------------------

guests=()
net_created=
netns_created=()
servers=()


cleanup() {
    set +e
    local pid g ns keeper
    for pid in "${servers[@]}"; do
        kill "${pid}" 2>/dev/null
        wait "${pid}" 2>/dev/null
    done
    for g in "${guests[@]}"; do
        "${HANGAR}" kill "${g}" >/dev/null 2>&1
        "${HANGAR}" delete "${g}" --force >/dev/null 2>&1
    done
    if [[ -n ${net_created} ]]; then
        "${HANGAR}" network delete "${NET}" >/dev/null 2>&1 || log "warning: hangar network delete ${NET} failed"
    fi
    for ns in "${netns_created[@]}"; do
        ip netns del "${ns}" 2>/dev/null
    done
    ip link del "${VETH_A}" 2>/dev/null
    bench_remove_work "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- measuring tools ----------------------------------------------------------------

# Each side is a command prefix that runs a program in a network namespace.
# throughput SERVER_PREFIX CLIENT_PREFIX ADDR: Gbit/s from client to server.
throughput() {
    local -a srv cli
    read -ra srv <<<"$1"
    read -ra cli <<<"$2"
    local addr=$3 log=${work}/tp.log pid
    if [[ -n ${have_iperf} ]]; then
        "${srv[@]}" iperf3 -s -1 -B "${addr}" -p "${PORT}" </dev/null >"${work}/srv.log" 2>&1 &
        pid=$!
        servers+=("${pid}")
        sleep 0.5
        if ! "${cli[@]}" iperf3 -c "${addr}" -p "${PORT}" -t "${DURATION}" -J </dev/null >"${log}" 2>&1; then
            log "iperf3 to ${addr} failed: $(grep -m1 error "${log}" || last_line "${work}/srv.log")"
            kill "${pid}" 2>/dev/null
            wait "${pid}" 2>/dev/null || true
            return 1
        fi
        wait "${pid}" 2>/dev/null || true
        python3 -c '
import json, sys
print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "${log}"
    else
        # busybox nc + dd: 1 GiB of zeros, from the client's start to the
        # server's exit (it exits when the client closes after the last byte).
        # The server's stdin is a FIFO it opens read-write, so never at EOF (at
        # EOF on stdin it would close the connection). busybox nc has no -s: it listens on all of the
        # namespace's addresses.
        local mib=1024 t0 t1 hold=${work}/hold
        [[ -p ${hold} ]] || mkfifo "${hold}"
        "${srv[@]}" busybox nc -l -p "${PORT}" <>"${hold}" >/dev/null 2>"${work}/srv.log" &
        pid=$!
        servers+=("${pid}")
        sleep 0.5
        t0=$(date +%s.%N)
        if ! dd if=/dev/zero bs=1M count="${mib}" 2>/dev/null |
            timeout 120 "${cli[@]}" busybox nc "${addr}" "${PORT}" >/dev/null 2>"${log}"; then
            log "nc to ${addr} failed: $(last_line "${log}")"
            kill "${pid}" 2>/dev/null
            wait "${pid}" 2>/dev/null || true
            return 1
        fi
        wait "${pid}" 2>/dev/null || true
        t1=$(date +%s.%N)
        awk -v m="${mib}" -v a="${t0}" -v b="${t1}" 'BEGIN { printf "%.2f\n", m * 8 * 1048576 / (b - a) / 1e9 }'
    fi
}

# latency CLIENT_PREFIX ADDR: "AVG MEDIAN" round trip in µs over PINGS pings.
latency() {
    local -a cli
    read -ra cli <<<"$1"
    local addr=$2 log=${work}/ping.log
    if ! "${cli[@]}" busybox ping -c "${PINGS}" -i 0.01 "${addr}" </dev/null >"${log}" 2>&1; then
        log "ping ${addr} failed: $(last_line "${log}")"
        return 1
    fi
    sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "${log}" | sort -g |
        awk '{ v[NR] = $1 * 1000; s += $1 * 1000 } END {
            if (!NR) exit 1
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.0f %.0f\n", s / NR, m }'
}

declare -A tp avg med
# measure KEY SERVER_PREFIX CLIENT_PREFIX ADDR
measure() {
    local key=$1 l
    log "${key}: throughput to $4"
    tp[${key}]=$(throughput "$2" "$3" "$4") || tp[${key}]=
    log "${key}: ${PINGS} pings to $4"
    if l=$(latency "$3" "$4"); then
        avg[${key}]=${l% *} med[${key}]=${l#* }
    fi
}

# --- baseline: two namespaces, one veth pair ------------------------------------------

for ns in "${NS_A}" "${NS_B}"; do
    if ip netns list | grep -qw "${ns}"; then
        log "network namespace ${ns} exists already (another run?)"
        exit 1
    fi
    ip netns add "${ns}"
    netns_created+=("${ns}")
    ip -n "${ns}" link set lo up
done
ip link add "${VETH_A}" netns "${NS_A}" type veth peer name "${VETH_B}" netns "${NS_B}"
ip -n "${NS_A}" addr add "${BASE_A}/24" dev "${VETH_A}"
ip -n "${NS_B}" addr add "${BASE_B}/24" dev "${VETH_B}"
ip -n "${NS_A}" link set "${VETH_A}" up
ip -n "${NS_B}" link set "${VETH_B}" up

# --- hangar: a network and two guests ----------------------------------------------------

quietly "${work}/hangar.log" "${HANGAR}" network create "${NET}" --ipv4 "${BRIDGE_ADDR}/24" --no-dns ||
    { log "network create failed: $(last_line "${work}/hangar.log")"; exit 1; }
net_created=1
for g in a b; do
    guests+=("${g}")
    quietly "${work}/hangar.log" "${HANGAR}" build "${g}" -m busybox --network "${NET}" ||
        { log "build ${g} failed: $(last_line "${work}/hangar.log")"; exit 1; }
    quietly "${work}/hangar.log" "${HANGAR}" start "${g}" ||
        { log "start ${g} failed: $(last_line "${work}/hangar.log")"; exit 1; }
done
"${HANGAR}" list --format json </dev/null >"${work}/list.json"
declare -A init_pid guest_ip
for g in a b; do
    init_pid[${g}]=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
rows = d if isinstance(d, list) else d.get("guests", [])
print(next(r["init_pid"] for r in rows if r["name"] == sys.argv[2]))' "${work}/list.json" "${g}")
    guest_ip[${g}]=$(nsenter --net="/proc/${init_pid[${g}]}/ns/net" ip -4 -o addr show dev eth0 |
        awk '{ sub("/.*", "", $4); print $4; exit }')
    [[ -n ${guest_ip[${g}]} ]] || { log "guest ${g} has no IPv4 address on eth0"; exit 1; }
done
log "guests: a ${guest_ip[a]} (init ${init_pid[a]}), b ${guest_ip[b]} (init ${init_pid[b]}); bridge ${BRIDGE_ADDR}"
# Sanity: the guest itself sees its peer (busybox ping run by the guest via hangar exec).
if ! quietly "${work}/exec.log" "${HANGAR}" exec -T a -- ping -c 1 -W 2 "${guest_ip[b]}"; then
    log "note: ping from inside guest a (hangar exec) failed: $(last_line "${work}/exec.log")"
fi

# --- measure -----------------------------------------------------------------------------

in_ns() { echo "ip netns exec $1"; }
in_guest() { echo "nsenter --net=/proc/${init_pid[$1]}/ns/net"; }

measure baseline "$(in_ns "${NS_B}")" "$(in_ns "${NS_A}")" "${BASE_B}"
measure guest_guest "$(in_guest b)" "$(in_guest a)" "${guest_ip[b]}"
measure guest_host "" "$(in_guest a)" "${BRIDGE_ADDR}"

# --- report ----------------------------------------------------------------------------

ratio() { # ratio A B: A/B, or "-"
    if [[ -n ${1} && -n ${2} ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "-"; else printf "%.2f\n", a / b }'
    else
        echo "-"
    fi
}
echo
tool="iperf3 $(iperf3 --version 2>/dev/null | awk 'NR == 1 { print $2 }'), 1 TCP stream, ${DURATION} s"
[[ -n ${have_iperf} ]] || tool="busybox nc + dd (no iperf3; nc's small buffers bound it), 1 GiB, 1 TCP stream"
echo "== network: ${tool}; busybox ping -c ${PINGS} -i 0.01; $(nproc) cpus, kernel $(uname -r) =="
printf '%-36s %8s %8s %8s %10s %9s\n' path Gbit/s tp/base avg_us median_us avg/base
row() { # row LABEL KEY
    printf '%-36s %8s %8s %8s %10s %9s\n' "$1" "${tp[$2]:--}" "$(ratio "${tp[$2]:-}" "${tp[baseline]:-}")" \
        "${avg[$2]:--}" "${med[$2]:--}" "$(ratio "${avg[$2]:-}" "${avg[baseline]:-}")"
}
row "baseline: netns a -> netns b, veth" baseline
row "hangar: guest a -> guest b, bridge" guest_guest
row "hangar: guest a -> host ${BRIDGE_ADDR}" guest_host
echo "baseline: ${NS_A} ${BASE_A} → ${NS_B} ${BASE_B}, one veth pair, no bridge, no nftables."
echo "hangar: network ${NET} (${BRIDGE_ADDR}/24, --no-dns), busybox guests a ${guest_ip[a]} → b ${guest_ip[b]};"
echo "  each guest's path: eth0 → veth → bridge (→ veth → eth0), with hangar's nftables rules."
echo "The tools run from the host inside the guests' network namespaces (nsenter --net=/proc/INIT/ns/net):"
echo "  the guests' real network path, but outside their cgroups (their CPU limits do not apply)."
echo "tp/base < 1 and avg/base > 1 are hangar's costs; Gbit/s is the receiver's rate; latency in µs (ICMP round trip)."
