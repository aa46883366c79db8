#!/usr/bin/env bash
# Density benchmark: many idle busybox guests with one NIC each on the default NAT
# network, in one hangar root. Run by hand (it takes minutes), never by CI.
#
# Usage (as root, from anywhere):
#   bench/density.sh
# Environment:
#   HANGAR  the hangar binary (default: target/release/hangar of this repo)
#   N       guests (default 1000; the default network, a /22, holds 1,021)
#
# Reports: the mean start time of the first and of the last hundred guests and their
# ratio (a start must not cost more the more guests run); memory per running guest
# (MemAvailable before and after, page cache dropped both times: kernel and user space
# together) and the PSS of the first and the last guest's monitor; `hangar list` and
# `list --format json` with all N running; that the host still answers at N (a guest
# reaches its gateway, one more guest starts); kill + delete of all of them. For the
# start time with one NIC side by side with LXC, run bench/start.sh. Everything it made
# is removed at the end, also when interrupted.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
script="${repo}/bench/$(basename "$0")"

# shellcheck source=bench/lib.sh
source "${repo}/bench/lib.sh"
bench_start "${script}" "$@"

N=${N:-1000}

work=$(mktemp -d /var/tmp/hangar-bench-density.XXXXXX)
chmod 0755 "${work}"
export HANGAR_ROOT=${work}/hangar-root
mkdir -p "${HANGAR_ROOT}"

cleanup() {
    set +e
    log "cleaning up"
    for f in "${HANGAR_ROOT}"/etc/hangar/guests/*.toml; do
        [[ -e ${f} ]] || continue
        g=$(basename "${f}" .toml)
        "${HANGAR}" kill "${g}" >/dev/null 2>&1
        "${HANGAR}" delete --force "${g}" >/dev/null 2>&1
    done
    for f in "${HANGAR_ROOT}"/etc/hangar/networks/*.toml; do
        [[ -e ${f} ]] && "${HANGAR}" network delete "$(basename "${f}" .toml)" >/dev/null 2>&1
    done
    bench_remove_work "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

python3 - "${HANGAR}" "${N}" "${HANGAR_ROOT}" <<'EOF'
import json, os, statistics, subprocess, sys, time

hangar, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def run(*args, check=True):
    r = subprocess.run([hangar, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"bench: hangar {' '.join(args)} failed: {r.stderr.strip()}")
    return r

def timed(*args):
    t = time.monotonic()
    run(*args)
    return (time.monotonic() - t) * 1000

def available_kib():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    time.sleep(1)
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])

def pss_kib(pid):
    try:
        return sum(int(l.split()[1]) for l in open(f"/proc/{pid}/smaps_rollup") if l.startswith("Pss:"))
    except OSError:
        return 0

def monitor_pid(name):
    with open(f"{root}/run/hangar/guests/{name}/state.json") as f:
        return json.load(f)["monitor_pid"]

names = [f"d{i:04d}" for i in range(1, n + 1)]
print(f"bench: building {n} busybox guests with one NIC on the default network")
t = time.monotonic()
for g in names:
    run("build", g, "-m", "busybox", "--network", "default")
build_s = time.monotonic() - t
# The first start also brings the network and the lxcfs keeper up: not counted.
run("start", names[0])
run("kill", names[0])
before = available_kib()
print(f"bench: starting {n} guests one after another")
starts = [timed("start", g) for g in names]
after = available_kib()
first_pss, last_pss = pss_kib(monitor_pid(names[0])), pss_kib(monitor_pid(names[-1]))
list_ms = statistics.median(timed("list") for _ in range(5))
json_ms = statistics.median(timed("list", "--format", "json") for _ in range(5))
rows = json.loads(run("list", "--format", "json").stdout)
running = sum(1 for r in rows if r["state"] == "running")
ping = run("exec", names[-1], "--", "sh", "-c", "ping -c1 -W2 gateway >/dev/null && echo ok", check=False)
extra = "d9999"
run("build", extra, "-m", "busybox", "--network", "default")
extra_ms = timed("start", extra)
print(f"bench: killing and deleting {n + 1} guests")
t = time.monotonic()
for g in names + [extra]:
    run("kill", g)
    run("delete", g)
gone_s = time.monotonic() - t

hundred = min(100, n)
first = statistics.mean(starts[:hundred])
last = statistics.mean(starts[-hundred:])
print()
print(f"{n} idle busybox guests, one NIC each on the default NAT network")
print(f"  build, all                          {build_s:8.1f} s ({build_s / n * 1000:.1f} ms a guest)")
print(f"  start, first {hundred}, mean              {first:8.1f} ms")
print(f"  start, last {hundred}, mean               {last:8.1f} ms   ratio {last / first:.2f}")
print(f"  start at {n} (guest {n + 1})            {extra_ms:8.1f} ms")
print(f"  memory per guest (MemAvailable)     {(before - after) / n:8.0f} KiB")
print(f"  monitor PSS, first / last guest     {first_pss:8d} / {last_pss} KiB")
print(f"  list, table / json, {running} running   {list_ms:8.1f} / {json_ms:.1f} ms")
print(f"  a guest reaches its gateway at {n}:  {'yes' if ping.stdout.strip() == 'ok' else 'NO: ' + ping.stderr.strip()}")
print(f"  kill + delete, all                  {gone_s:8.1f} s ({gone_s / (n + 1) * 1000:.1f} ms a guest)")
EOF
