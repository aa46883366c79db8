#!/bin/sh
# 802.1Q VLAN tagging on a bridge network's uplink, run inside the test VM by
# tests/vm/run.sh (whose kernel has the 8021q module this host's kernel lacks; the
# image carries the host's iproute2, nft and nsenter, named below). The VM's side
# plays a switch and hangar's host at once:
#   - a veth pair up0/sw0: up0 is the uplink, sw0 is made in a network namespace
#     "switch" (`ip netns add`) and given an untagged address 10.1.0.1/24 and two
#     802.1Q sub-devices, sw0.10 (VLAN 10, 10.1.10.1/24) and sw0.20 (VLAN 20,
#     10.1.20.1/24);
#   - `hangar network create lan --kind bridge --uplink up0 --no-dns`;
#   - busybox guests: u untagged (10.1.0.2/24), a on VLAN 10 (10.1.10.2/24), b on
#     VLAN 20 with an address of VLAN 10's subnet (10.1.10.3/24: only the tags keep
#     it from VLAN 10), c on VLAN 20 (10.1.20.2/24);
#   - pings: u -> 10.1.0.1 and a -> 10.1.10.1 and c -> 10.1.20.1 must be answered
#     (through the tagged uplink), b -> 10.1.10.1 and a -> b (same subnet, other
#     VLAN) and a -> c must not; from the switch, 10.1.20.2 (c) answers over sw0.20
#     and 10.1.10.3 (b) does not over sw0.10; and on which of its interfaces the
#     switch heard each guest (its neighbour table);
#   - the 802.1Q devices hangar made on up0 (`ip -d link`): one per VLAN, named
#     PREFIXqN-lan (ARCHITECTURE.md, "Interface names"), with its id N, in its
#     VLAN's bridge PREFIXvN-lan;
#   - after the guests are stopped (u, a) or killed (b, c) and deleted and the
#     network deleted: which of hangar's links are left (none may be), and that up0
#     is back on its own.
# A ping is reported as "ok" (answered), "fail" (ping ran and got no answer) or
# "error ..." (ping did not run: the guest is not running, hangar exec failed), so
# an isolation check cannot pass because a guest is down.
# "key: value" lines are read by crates/hangar-cli/tests/vlan_vm.rs; "ok"/"FAIL"
# lines are this script's own checks, and it exits 1 if any failed.
#
# vm-modules: veth bridge 8021q nf_tables nft_chain_nat nft_fib_inet nft_meta_bridge
# vm-tools: ip tc nft nsenter

set -u
# busybox's sh runs its own applets before it searches the PATH (Debian builds it
# with FEATURE_SH_STANDALONE), so this script calls the host's tools, which
# build-initramfs.sh put in /usr/local/bin, by their path. hangar's own children
# (`ip`, `tc`, `nft`, `nsenter --net=... ip`) look the names up on the PATH, where
# /usr/local/bin comes first.
for t in ip nsenter; do
    eval "${t}() { /usr/local/bin/${t} \"\$@\"; }"
done
# shellcheck source=tests/vm/scenario-lib.sh
. /scenario-lib.sh
# ping_result OUTPUT: ok, fail or error, from the output of a shell that ran ping
# and then echoed "ping-exit $?" (busybox ping exits 1 when nothing answered)
ping_result() {
    case $(printf '%s\n' "$1" | sed -n 's/^ping-exit //p') in
    0) echo ok ;;
    1) echo fail ;;
    '') echo "error (ping did not run: $(printf '%s' "$1" | tr '\n' ' '))" ;;
    *) echo "error ($(printf '%s' "$1" | tr '\n' ' '))" ;;
    esac
}
# ping_check KEY GUEST ADDR WANT: report "KEY: RESULT" for GUEST pinging ADDR
ping_check() {
    say "\$ hangar exec $2 -- ping -c 1 -W 2 $3"
    _out=$(hangar exec "$2" -- sh -c "ping -c 1 -W 2 $3 2>&1; echo ping-exit \$?" 2>&1)
    printf '%s\n' "${_out}" | sed '/^$/d; s/^/  /'
    _res=$(ping_result "${_out}")
    say "$1: ${_res}"
    check "$1" "${_res}" "$4"
}
# switch_ping_check KEY ADDR WANT: the same, pinging from the switch's namespace
switch_ping_check() {
    say "\$ nsenter --net=/run/netns/switch ping -c 1 -W 2 $2"
    _out=$(nsenter --net=/run/netns/switch sh -c "ping -c 1 -W 2 $2 2>&1; echo ping-exit \$?" 2>&1)
    printf '%s\n' "${_out}" | sed '/^$/d; s/^/  /'
    _res=$(ping_result "${_out}")
    say "$1: ${_res}"
    check "$1" "${_res}" "$3"
}
# vlan_devices: one line "NAME ID PARENT MASTER" per 802.1Q device in this namespace
vlan_devices() {
    ip -d -o link show | awk '/ vlan protocol 802\.1Q id / {
        name = $2; sub(/:$/, "", name); parent = "-"
        if (i = index(name, "@")) { parent = substr(name, i + 1); name = substr(name, 1, i - 1) }
        master = "-"; id = "-"
        for (f = 3; f < NF; f++) {
            if ($f == "master") master = $(f + 1)
            if ($f == "id" && $(f - 1) == "802.1Q") id = $(f + 1)
        }
        print name, id, parent, master
    }' | sort -k2n
}

section "host (the VM)"
say "hangar: $(hangar --version 2>&1)"
# What a program that searches the PATH finds (which does, as hangar does), and
# what util-linux's nsenter runs when hangar asks it for `ip`.
for t in ip tc nft nsenter; do
    say "path-${t}: $(which "${t}")"
done
say "ip: $(ip -V 2>&1)"
say "nsenter-ip: $(nsenter --net=/proc/self/ns/net ip -V 2>&1)"
say "nft: $(/usr/local/bin/nft --version 2>&1)"
say "modules: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"

section "the switch: sw0 in namespace switch, untagged and VLANs 10 and 20"
run ip netns add switch
[ "${rc}" -eq 0 ] || die "ip netns add switch"
run ip link add up0 type veth peer name sw0 netns switch
[ "${rc}" -eq 0 ] || die "making the veth pair up0/sw0"
for step in "link set lo up" "link set sw0 up" "addr add 10.1.0.1/24 dev sw0" \
    "link add link sw0 name sw0.10 type vlan id 10" "addr add 10.1.10.1/24 dev sw0.10" \
    "link set sw0.10 up" "link add link sw0 name sw0.20 type vlan id 20" \
    "addr add 10.1.20.1/24 dev sw0.20" "link set sw0.20 up"; do
    # shellcheck disable=SC2086 # one step, split into words
    run ip -n switch ${step}
    [ "${rc}" -eq 0 ] || die "ip -n switch ${step}"
done
# One namespace stands for the hosts of both VLANs: each of its interfaces answers
# ARP for its own addresses only, as separate hosts would (by default Linux answers
# for any address of the namespace on any interface, which would let sw0.20 answer
# for 10.1.10.1).
run nsenter --net=/run/netns/switch sh -c 'echo 1 >/proc/sys/net/ipv4/conf/all/arp_ignore'
run ip link set up0 up
run ip -n switch -br addr

section "the network: a bridge with up0 as its uplink"
run hangar network create lan --kind bridge --uplink up0 --no-dns
[ "${rc}" -eq 0 ] || die "hangar network create lan"
bridge=$(ip -o link show up0 | sed -n 's/.* master \([^ ]*\) .*/\1/p')
prefix=${bridge%b-lan}
say "bridge: ${bridge}"
say "link-prefix: ${prefix}"
[ -n "${bridge}" ] && [ "${prefix}" != "${bridge}" ] || die "up0 is not in a bridge named PREFIXb-lan"

section "guests: u untagged, a on VLAN 10, b and c on VLAN 20"
# build_start NAME NIC: build and start a busybox guest with that NIC; reports
# "build-NAME: ok" or the refusal, "start-NAME: ..." likewise
build_start() {
    _out=$(hangar build "$1" -m busybox --nic "$2" 2>&1)
    _rc=$?
    say "\$ hangar build $1 -m busybox --nic $2"
    [ -z "${_out}" ] || say "${_out}"
    if [ "${_rc}" -ne 0 ]; then
        say "build-$1: refused: $(printf '%s' "${_out}" | tail -n 1)"
        return 1
    fi
    say "build-$1: ok"
    _out=$(hangar start "$1" 2>&1)
    _rc=$?
    say "\$ hangar start $1"
    [ -z "${_out}" ] || say "${_out}"
    if [ "${_rc}" -ne 0 ]; then
        say "start-$1: refused: $(printf '%s' "${_out}" | tail -n 1)"
        cat "${HANGAR_ROOT}"/var/log/hangar/"$1"/*.log 2>&1 | tail -n 20
        return 1
    fi
    say "start-$1: ok"
}
build_start u network=lan,ip=10.1.0.2/24
build_start a network=lan,vlan=10,ip=10.1.10.2/24
build_start b network=lan,vlan=20,ip=10.1.10.3/24
build_start c network=lan,vlan=20,ip=10.1.20.2/24
run hangar list
run ip -br link

section "pings"
ping_check u-ping-switch u 10.1.0.1 ok
ping_check a-ping-switch10 a 10.1.10.1 ok
ping_check b-ping-switch10 b 10.1.10.1 fail
ping_check c-ping-switch20 c 10.1.20.1 ok
ping_check a-ping-b a 10.1.10.3 fail
ping_check a-ping-c a 10.1.20.2 fail
switch_ping_check switch20-ping-c 10.1.20.2 ok
switch_ping_check switch10-ping-b 10.1.10.3 fail
say "switch neighbours:"
ip -n switch neigh show 2>&1 | sed 's/^/  /'
# Whom the switch heard, on which of its interfaces: the guests' frames arrived
# untagged (sw0), tagged 10 (sw0.10) or tagged 20 (sw0.20).
say "switch-heard: $(ip -n switch neigh show | awk '/ lladdr / { print $1 "@" $3 }' | sort | tr '\n' ' ' | sed 's/ $//')"

section "802.1Q devices on up0"
run ip -d link show type vlan
devices=$(vlan_devices)
say "vlan-devices: $(printf '%s\n' "${devices}" | grep -c .)"
printf '%s\n' "${devices}" | while read -r name id parent master; do
    [ -n "${name}" ] || continue
    say "vlan-device-${id}: ${name} on ${parent}, master ${master}"
done
for id in 10 20; do
    got=$(printf '%s\n' "${devices}" | awk -v id="${id}" '$2 == id { print $1, $3, $4 }')
    check "vlan-device-${id}-name-parent-master" "${got}" "${prefix}q${id}-lan up0 ${prefix}v${id}-lan"
done

section "stop, delete, network delete"
# u and a shut down cleanly (their monitors unplug their NICs), b and c are killed by
# delete --force (~5 s less each under TCG: busybox init's shutdown sleeps).
for g in u a; do
    run hangar stop "${g}"
    check "stop-${g}-status" "${rc}" 0
    run hangar delete "${g}"
    check "delete-${g}-status" "${rc}" 0
done
for g in b c; do
    run hangar delete --force "${g}"
    check "delete-force-${g}-status" "${rc}" 0
done
run hangar list
run hangar network delete lan
check network-delete-status "${rc}" 0
left=$(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
    grep "^${prefix}" | tr '\n' ' ')
say "links-left: ${left:-none}"
check links-left "${left:-none}" none
left=$(vlan_devices | awk '{ print $1 }' | tr '\n' ' ')
say "vlan-devices-left: ${left:-none}"
check vlan-devices-left "${left:-none}" none
master=$(ip -o link show up0 2>&1 | sed -n 's/.* master \([^ ]*\) .*/\1/p')
say "uplink-after-delete: $(ip -o link show up0 >/dev/null 2>&1 && echo present || echo gone), master ${master:-none}"
say "nft-tables-left: $(nft list tables 2>&1 | tr '\n' ' ')"

section "result"
if [ "${failed}" -eq 0 ]; then
    say "vlan: all checks passed"
else
    say "vlan: some checks FAILED"
fi
exit "${failed}"
