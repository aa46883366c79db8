#!/usr/bin/env bash
# The main job, end to end: prepare the host, build hangar, build a demo guest from the
# embedded default (busybox, from Debian's busybox-static), start it, run a service in
# it, show that the service answers, and show `hangar list`.
#
# Usage (as root): scripts/demo.sh
# Uses the host's real hangar root (/etc/hangar, /var/lib/hangar, ...) unless HANGAR_ROOT
# is set. An existing guest named "demo" is replaced.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [[ ${EUID} -ne 0 ]]; then
    echo "demo: run as root (guests need namespaces, cgroups and mounts)" >&2
    exit 1
fi

step "host setup"
./scripts/setup-host.sh

step "building hangar (release)"
cargo build --release --workspace --quiet
hangar=target/release/hangar

if "$hangar" config show demo >/dev/null 2>&1; then
    step "removing the previous demo guest"
    "$hangar" delete demo --force
fi

step "hangar build demo -m busybox"
"$hangar" build demo -m busybox --hostname demo.hangar.test

step "hangar start demo"
"$hangar" start demo

step "starting a web server inside the guest (busybox httpd on port 8080)"
"$hangar" exec demo -- sh -c '
    mkdir -p /srv/www
    echo "hello from $(hostname), served inside a hangar guest" > /srv/www/index.html
    httpd -p 8080 -h /srv/www
'

step "the guest on the default NAT network: it finds and reaches the host by name"
"$hangar" exec demo -- sh -c 'grep nameserver /etc/resolv.conf; ping -c1 -W2 host'

address=$("$hangar" config show demo | sed -n 's/^ipv4 = "\(.*\)\/.*"/\1/p' | head -n1)
step "asking the service from the host, at the guest's address ${address}"
timeout 10 busybox wget -qO- "http://${address}:8080/"

step "what the guest sees: its processes, its network, its user"
"$hangar" exec demo -- sh -c 'ps; ip -o addr; echo "uid in guest: $(id -u)"'
echo "the same root user on the host: uid $(stat -c %u "/proc/$("$hangar" list --format json | python3 -c 'import json,sys; print(next(g["init_pid"] for g in json.load(sys.stdin) if g["name"]=="demo"))')")"

step "hangar list"
"$hangar" list

echo
echo "The demo guest keeps running. Try: $hangar enter demo, $hangar stop demo, $hangar delete demo"
