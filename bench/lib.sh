# Shared start of the benchmark scripts: `source` it, then call
# `bench_start SCRIPT "$@"` before anything else.

# Refuse to run without root, then re-run SCRIPT under a child subreaper.
#
# pid 1 of some machines (CI sandboxes, containers) reaps orphans late: the detached
# processes a benchmark starts (hangar's monitors and lxcfs keeper, crun's inits, the
# LXC monitor) then linger as zombies, hold their cgroups and skew the next run. Under
# a subreaper that reaps at once, as systemd would, they do not.
bench_start() {
    local script=$1
    shift
    if [[ ${EUID} -ne 0 ]]; then
        echo "bench: must run as root" >&2
        exit 1
    fi
    [[ -n ${BENCH_REAPED:-} ]] && return 0
    export BENCH_REAPED=1
    exec python3 -c '
import ctypes, os, signal, sys
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    os.execv("/bin/bash", ["bash"] + sys.argv[1:])
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda n, _f: os.kill(child, n))
while True:
    try:
        pid, status = os.wait()
    except InterruptedError:
        continue
    if pid == child:
        sys.exit(os.waitstatus_to_exitcode(status))
' "${script}" "$@"
}
