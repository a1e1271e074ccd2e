#!/bin/sh
# start_clamd.sh DIR [PORT]: a private, real clamd for tests, with test-only
# signatures (no internet, no freshclam, no system database).
#
#   sock=$(tests/tools/start_clamd.sh "$dir")          # Unix socket only
#   sock=$(tests/tools/start_clamd.sh "$dir" 3399)     # also TCP on 127.0.0.1:3399
#   ... scan ...
#   kill "$(cat "$dir/clamd.pid")"
#
# Creates in DIR (which must exist or be creatable; keep its path short, a Unix
# socket path has at most 107 bytes):
#   DIR/db/sluice-test.hdb  Sluice.Test.Hash: a file whose content is exactly
#                           the 26 bytes SLUICE-TEST-MALWARE-MARKER (no newline)
#   DIR/db/sluice-test.ndb  Sluice.Test.Ndb: any file containing the bytes
#                           EVIL-PAYLOAD-XYZ anywhere
#   DIR/clamd.conf          Foreground, LocalSocket DIR/clamd.sock, optional
#                           TCPSocket PORT on TCPAddr 127.0.0.1, StreamMaxLength 1M
#                           (so a stream over 1 MiB gets "INSTREAM size limit
#                           exceeded. ERROR"), LogFile DIR/clamd.log
#   DIR/clamd.pid           clamd's pid, written once it answers PING
#   DIR/clamd.out           clamd's stdout and stderr
# clamd reports test signatures with the suffix ".UNOFFICIAL" (Sluice.Test.Hash.UNOFFICIAL),
# as it does for every signature outside the official databases.
#
# Waits (up to 30 s) until clamd answers zPING with PONG, then prints the
# socket path on stdout and exits 0; on failure prints clamd's log to stderr,
# stops clamd and exits 1. clamd keeps running in the background: the caller
# stops it with SIGTERM (pid in DIR/clamd.pid).
#
# CLAMD_STREAM_MAX (default 1M) sets StreamMaxLength (the demo scans 64 MiB
# model weights; clamd's own MaxFileSize default is 100M).
#
# If CLAMD_WATCH_PID is set, a watchdog stops clamd when that process is gone,
# so a test binary that crashes does not leave clamd behind.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 DIR [PORT]" >&2
    exit 2
fi
dir=$1
port=${2:-}
clamd=${CLAMD:-/usr/sbin/clamd}
clamdscan=${CLAMDSCAN:-/usr/bin/clamdscan}
[ -x "$clamd" ] || { echo "$0: $clamd not found (apt-get install clamav-daemon)" >&2; exit 1; }
[ -x "$clamdscan" ] || { echo "$0: $clamdscan not found (apt-get install clamdscan)" >&2; exit 1; }

mkdir -p "$dir/db"
dir=$(cd "$dir" && pwd)

# The markers: keep them in sync with the documentation above (system tests use them).
hash_marker='SLUICE-TEST-MALWARE-MARKER'
ndb_marker='EVIL-PAYLOAD-XYZ'

hash_md5=$(printf '%s' "$hash_marker" | md5sum | cut -d' ' -f1)
hash_size=$(printf '%s' "$hash_marker" | wc -c | tr -d ' ')
ndb_hex=$(printf '%s' "$ndb_marker" | od -An -tx1 | tr -d ' \n')
echo "$hash_md5:$hash_size:Sluice.Test.Hash" >"$dir/db/sluice-test.hdb"
echo "Sluice.Test.Ndb:0:*:$ndb_hex" >"$dir/db/sluice-test.ndb"

sock=$dir/clamd.sock
rm -f "$sock" "$dir/clamd.pid"
{
    echo "Foreground yes"
    echo "LocalSocket $sock"
    echo "LocalSocketMode 660"
    if [ -n "$port" ]; then
        echo "TCPSocket $port"
        echo "TCPAddr 127.0.0.1"
    fi
    echo "DatabaseDirectory $dir/db"
    echo "LogFile $dir/clamd.log"
    echo "LogTime yes"
    echo "StreamMaxLength ${CLAMD_STREAM_MAX:-1M}"
    echo "MaxThreads 4"
    echo "SelfCheck 3600"
    echo "ConcurrentDatabaseReload no"
    # Without User, clamd keeps the identity it was started with. Naming
    # root is only possible (and only needed, for clarity) when we are root.
    if [ "$(id -u)" -eq 0 ]; then echo "User root"; fi
} >"$dir/clamd.conf"

# Detached from the caller's stdout: a pipe held open by clamd would make the
# caller (std::system, ctest) wait for it.
"$clamd" --config-file="$dir/clamd.conf" </dev/null >"$dir/clamd.out" 2>&1 &
pid=$!

# Alive and not a zombie: clamd's zombie lingers if nobody reaps it (our own
# child until we exit; afterwards init's, which in a container may not reap).
alive() {
    state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

if [ -n "${CLAMD_WATCH_PID:-}" ]; then
    (
        while alive "$CLAMD_WATCH_PID" && alive "$pid"; do sleep 1; done
        kill "$pid" 2>/dev/null || true
    ) </dev/null >/dev/null 2>&1 &
fi

fail() {
    echo "$0: $1" >&2
    [ -f "$dir/clamd.log" ] && tail -n 20 "$dir/clamd.log" >&2
    [ -f "$dir/clamd.out" ] && tail -n 20 "$dir/clamd.out" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
}

# The socket appears once the database is loaded; then PING must answer.
tries=0
while :; do
    alive "$pid" || fail "clamd exited during start-up"
    if [ -S "$sock" ] &&
        "$clamdscan" --config-file="$dir/clamd.conf" --ping 1 2>/dev/null | grep -qx PONG; then
        break
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || fail "clamd did not answer PING within 30 s"
    sleep 0.1
done

echo "$pid" >"$dir/clamd.pid"
echo "$sock"
