#!@shell@
# bin/agenixd: node from agenixd's V8 startup snapshot, or from the plain bundle if node refuses
# the snapshot, so that a boot still gets its secrets. A template: nix/package.nix and
# scripts/launch.ts (renderLauncher, for the boot harness and the tests) fill in the @…@ values.
#
# node refuses a blob built by another node or with other V8 flags (exit 14), one it cannot read
# (14), a corrupt or truncated one (a failed check: 133 or 134; a crash: 139). Whether node got as
# far as agenixd is told by agenixd itself: the snapshot's first act writes a byte on fd 3, a pipe
# to this script (src/snapshot.ts). Without that byte agenixd did nothing, and the plain bundle
# runs, once, with the reason in the journal; with it, agenixd's exit status (1 for a failed
# secret, a crash mid-way) is final: nothing runs twice. A kill from outside (SIGTERM, SIGKILL)
# is passed on, not retried.
#
# This script stays the unit's main process while node runs, so node sends its sd_notify
# messages on its behalf ($AGENIXD_MAIN_PID, src/notify.ts): systemd's NotifyAccess=main holds.
set -u
node='@node@'
dist='@dist@'

# V8 flags from NODE_OPTIONS would make node refuse the blob; nothing else may add any either.
unset NODE_OPTIONS
# glibc's malloc on transparent huge pages for the 5.6 MB blob (scripts/launch.ts says why).
GLIBC_TUNABLES='@glibcTunables@'"${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
export GLIBC_TUNABLES
AGENIXD_MAIN_PID=$$
export AGENIXD_MAIN_PID

exec 4>&1
started=$(AGENIXD_SNAPSHOT_STARTED_FD=3 "$node" @snapshotNodeFlags@ --snapshot-blob "$dist/agenixd.blob" -- "$@" 3>&1 1>&4 4>&-; echo " $?")
exec 4>&-
status=${started##* }

case $started in
S*) exit "$status" ;; # agenixd ran: its status is final
esac
case $status in
0) exit 0 ;;
129 | 130 | 137 | 141 | 143) exit "$status" ;; # SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGTERM: stopped from outside
esac

echo "agenixd: node did not start the snapshot $dist/agenixd.blob (exit status $status, node's message if any above); activating with $dist/agenixd.cjs instead" >&2
exec "$node" "$dist/agenixd.cjs" "$@"
