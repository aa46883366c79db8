# shellcheck shell=sh
# What every VM scenario uses: its report lines and checks. build-initramfs.sh puts
# this file at /scenario-lib.sh; a scenario starts with `. /scenario-lib.sh`.
#
# Report lines: "key: value" (read by the Rust tests), "ok NAME: ..." and
# "FAIL NAME: ..." for the scenario's own checks; `failed` is 1 once one failed.

# shellcheck disable=SC2034 # read by the scenario that sources this file
failed=0
say() { printf '%s\n' "$*"; }
now() { cut -d' ' -f1 /proc/uptime; }
section() { printf '\n--- %s (uptime %ss)\n' "$*" "$(now)"; }
# check NAME GOT WANT
check() {
    if [ "$2" = "$3" ]; then
        say "ok $1: $2"
    else
        say "FAIL $1: got '$2', want '$3'"
        failed=1
    fi
}
# run CMD...: show the command and its output, keep its status in $rc
run() {
    say "\$ $*"
    "$@" 2>&1
    rc=$?
    [ "${rc}" -eq 0 ] || say "(exit status ${rc})"
    return 0
}
die() {
    say "FAIL $*"
    exit 1
}
