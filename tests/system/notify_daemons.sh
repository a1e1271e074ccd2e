#!/usr/bin/env bash
# System test of the systemd notification protocol, without systemd: each daemon
# runs with NOTIFY_SOCKET naming a datagram socket this script owns (a python3
# listener that timestamps every line with CLOCK_MONOTONIC) and WATCHDOG_USEC=1 s,
# as systemd would start a Type=notify unit with WatchdogSec=1s.
#
#   tests/system/notify_daemons.sh path/to/sluice path/to/sluice-sender path/to/sluice-receiver
#
# Scenarios (each check is labelled with its letter):
#   a  a sender and a receiver (sender -> receiver on 127.0.0.1, WATCHDOG_PID = their own
#      pid): READY=1 only once the control socket accepts connections; STATUS= says what
#      `sluice status` says before and after a bundle crosses; WATCHDOG=1 every 0.5 s;
#      SIGHUP: RELOADING=1 (with MONOTONIC_USEC) then READY=1; SIGTERM: STOPPING=1, exit 0
#   b  a sender and a receiver armed with SLUICE_FAULT_STALL_AFTER (WATCHDOG_PID unset):
#      WATCHDOG=1 regular until the stall, none from (stall + WATCHDOG_USEC) on; the stalled
#      sender still answers its control socket and sends STATUS= (the watchdog follows its
#      send thread, not the io thread); what SIGTERM does to each stalled daemon; SIGKILL
#   c  a bad SLUICE_FAULT_STALL_AFTER is a start-up error (exit 2) naming the variable
# Set SLUICE_KEEP_WORK=1 to keep the work directory.
set -euo pipefail

usage="usage: notify_daemons.sh SLUICE SLUICE-SENDER SLUICE-RECEIVER"
SLUICE=$(realpath "${1:?$usage}")
SENDER=$(realpath "${2:?$usage}")
RECEIVER=$(realpath "${3:?$usage}")
# A missing prerequisite skips the test (exit 77) on a developer's machine, and fails it in CI.
if ! command -v python3 >/dev/null; then
    if [ -n "${CI:-}" ]; then echo "notify_daemons: FAIL: python3 is not installed" >&2; exit 1; fi
    echo "notify_daemons: SKIPPED: python3 is not installed"; exit 77
fi
# The interpreter itself: a version manager's shim can cost a second per call.
PY=$(python3 -I -c 'import sys; print(sys.executable)')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-notify-XXXXXX")
if [ ${#WORK} -gt 80 ]; then   # sockets live in here: sun_path holds 108 bytes
    rmdir "$WORK"
    WORK=$(mktemp -d /tmp/sluice-notify-XXXXXX)
fi
cd "$WORK"
STARTED=$(date +%s%N)

PIDS=()          # every background process this script started and has not reaped
passed=0
failed=0
cleanup() {
    local rc=$?
    set +e
    stop_all
    finish_work notify_daemons "$rc" "$WORK"/*.log "$WORK"/*.notify
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ok, bad, check, alive, not, wait_until, stop_process, stop_all, log_has, dump_logs
source "$(dirname "${BASH_SOURCE[0]}")/lib/daemons.sh"

WATCHDOG_USEC=1000000   # WatchdogSec=1s: the daemons ping every 0.5 s
# The longest gap between pings accepted: half the interval, plus 0.25 s for the
# timer being re-armed after its handler (drift), the scheduling of the daemon and of
# the listener on a loaded 2-core host and sanitizer builds. Still 0.25 s short of
# the 1 s after which systemd would kill the daemon.
MAX_GAP=0.75
# What is late for a datagram already sent: the listener's wake-up and timestamp.
LATE=0.25
STALL_AFTER=4           # seconds after start (scenario b): 6 or more pings before it, even under ASan

# ---- helpers ------------------------------------------------------------------------

free_port() {
    "$PY" -I -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# mono: now on CLOCK_MONOTONIC (the listeners' and the daemons' clock), in seconds.
mono() { "$PY" -I -c 'import time; print(f"{time.monotonic():.3f}")'; }
# sleep_until T: until CLOCK_MONOTONIC reaches T.
sleep_until() { "$PY" -I -c 'import sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.monotonic()))' "$1"; }
# json_true FILE EXPR: succeeds when the Python expression EXPR is true of the JSON document `d`.
json_true() { "$PY" -I -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }
# calc EXPR: prints a Python arithmetic expression; holds EXPR: succeeds when it is true.
calc() { "$PY" -I -c 'import sys; print(eval(sys.argv[1]))' "$1"; }
holds() { "$PY" -I -c 'import sys; sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"; }
# env_has PID LINE: the environment of process PID has a variable matching LINE (a regex).
env_has() { tr '\0' '\n' < "/proc/$1/environ" | grep -qx -- "$2"; }

# listen NAME PROBE: NAME.notify gets "<monotonic seconds> <line>" for every line of
# every datagram on NAME.notify.sock. On each READY=1 it connects to the control socket
# PROBE at once and adds "PROBE=connected" (or PROBE=refused(errno)).
listen() {
    "$PY" -I - "$WORK/$1.notify.sock" "$2" >"$1.notify" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
try:
    while True:
        data = s.recv(4096)
        t = time.monotonic()
        for line in data.decode(errors="replace").splitlines():
            print(f"{t:.3f} {line}", flush=True)
            if line == "READY=1":
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    c.connect(sys.argv[2])
                    result = "connected"
                except OSError as e:
                    result = f"refused({e.errno})"
                finally:
                    c.close()
                print(f"{time.monotonic():.3f} PROBE={result}", flush=True)
except socket.timeout:
    pass
PY
    PIDS+=("$!")
    wait_until 10 test -S "$1.notify.sock"
}
# first_time FILE LINE [N]: the time of the Nth (default first) exact LINE.
first_time() { awk -v l="$2" -v n="${3:-1}" '{ t = $1; sub(/^[^ ]* /, "") } $0 == l && ++k == n { print t; exit }' "$1"; }
count_lines() { grep -cE "^[0-9.]+ $2\$" "$1" || true; }
has_lines() { [ "$(count_lines "$1" "$2")" -ge "$3" ]; }
# pings FILE FROM TO: "count max_gap min_gap last" of the WATCHDOG=1 in [FROM, TO], the gaps
# counted from FROM and up to TO as well (a silence at either end counts).
pings() {
    awk -v from="$1" -v to="$2" '
        BEGIN { last = from; max = 0; min = 1e9 }
        $2 == "WATCHDOG=1" && $1 >= from && $1 <= to {
            if ($1 - last > max) max = $1 - last
            if (n > 0 && $1 - last < min) min = $1 - last
            last = $1; n++
        }
        END { if (to - last > max) max = to - last; printf "%d %.3f %.3f %.3f\n", n, max, (n > 1 ? min : 0), last }' "$3"
}

# write_receiver DIR PORT / write_sender DIR PORT: minimal loopback configurations.
write_receiver() {
    mkdir -p "$1"
    cat > "$1/receiver.toml" <<EOF
[receiver]
state_dir = "state"
incoming_dir = "incoming"
control_socket = "receiver.sock"
trusted_keys = ["$WORK/keys/release.pub"]
dead_link_after = "2s"

[link]
lanes = ["127.0.0.1:$2"]
heartbeat_interval = "250ms"
EOF
}
write_sender() {
    mkdir -p "$1"
    cat > "$1/sender.toml" <<EOF
[sender]
state_dir = "state"
spool_dir = "spool"
control_socket = "sender.sock"
passes = 1
trusted_keys = ["$WORK/keys/release.pub"]

[link]
lanes = ["127.0.0.1:$2"]
rate = "100M"
heartbeat_interval = "250ms"
EOF
}

# run_notified NAME BINARY CONFIG [ENV...]: BINARY --config CONFIG in the background,
# stderr to NAME.log, NOTIFY_SOCKET=NAME.notify.sock, WATCHDOG_USEC set, and ENV. Sets LAST_PID.
# With KEEP_PID set, WATCHDOG_PID is the daemon's own pid (the shell's, then exec'd).
run_notified() {
    local name=$1 binary=$2 config=$3; shift 3
    if [ -n "${KEEP_PID:-}" ]; then
        env -u WATCHDOG_PID NOTIFY_SOCKET="$WORK/$name.notify.sock" WATCHDOG_USEC=$WATCHDOG_USEC "$@" \
            sh -c 'WATCHDOG_PID=$$ exec "$0" --config "$1"' "$binary" "$config" 2>>"$name.log" >/dev/null &
    else
        env -u WATCHDOG_PID NOTIFY_SOCKET="$WORK/$name.notify.sock" WATCHDOG_USEC=$WATCHDOG_USEC "$@" \
            "$binary" --config "$config" 2>>"$name.log" >/dev/null &
    fi
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# ---- a bundle to send -------------------------------------------------------------------
"$SLUICE" keygen release --dir keys >/dev/null
# make_bundle NAME VERSION: bundles/NAME.tar (200 kB), its id in ID.
make_bundle() {
    mkdir -p "src/$1/weights" bags bundles
    head -c 200000 /dev/urandom > "src/$1/weights/model.bin"
    echo "{\"name\": \"$1\"}" > "src/$1/config.json"
    ID=$("$SLUICE" bundle create "src/$1" --out "bags/$1" --channel models --version "$2" \
        --previous 0.9 --changes "notify test" --reason "notify daemons test" --approved-by "test board" \
        --rollback-to 0.9 --sign keys/release.key | tail -n 1)
    "$SLUICE" bundle pack "bags/$1" --out "bundles/$1.tar" >/dev/null
}
make_bundle one 1.0.0; ID_one=$ID
make_bundle two 1.0.1

# ==== b (started first: it runs while a is checked) ======================================
# Both stall STALL_AFTER s after start. Arming happens after `launch` and before READY=1,
# so the moment the stalled loop last proved alive is at most ready + STALL_AFTER.
P_B=$(free_port)
write_receiver rb "$P_B"
write_sender sb "$P_B"
listen rb "$WORK/rb/receiver.sock"
listen sb "$WORK/sb/sender.sock"
launch_rb=$(mono)
run_notified rb "$RECEIVER" rb/receiver.toml SLUICE_FAULT_STALL_AFTER=$STALL_AFTER; RB_PID=$LAST_PID
launch_sb=$(mono)
run_notified sb "$SENDER" sb/sender.toml SLUICE_FAULT_STALL_AFTER=$STALL_AFTER; SB_PID=$LAST_PID

# ==== a. the protocol of a healthy pair ===================================================
P_A=$(free_port)
write_receiver ra "$P_A"
write_sender sa "$P_A"
listen ra "$WORK/ra/receiver.sock"
listen sa "$WORK/sa/sender.sock"
KEEP_PID=1 run_notified ra "$RECEIVER" ra/receiver.toml; RA_PID=$LAST_PID
KEEP_PID=1 run_notified sa "$SENDER" sa/sender.toml; SA_PID=$LAST_PID

RSOCK_A=ra/receiver.sock
SSOCK_A=sa/sender.sock

# ready_checks WHO NAME STATUS-ARGS...: READY=1 came, and the control socket was
# ready for it: the listener's probe connected and `sluice status` answers at once.
ready_checks() {
    local who=$1 name=$2; shift 2
    wait_until 20 grep -q ' READY=1$' "$name.notify" || true
    local rc=0
    "$SLUICE" status "$@" --json >"$name-ready.json" 2>&1 || rc=$?   # at once, no retry
    check "$who: READY=1 sent" grep -q ' READY=1$' "$name.notify"
    check "$who: its control socket accepted a connection the moment READY=1 arrived" \
        grep -q ' PROBE=connected$' "$name.notify"
    check "$who: \`sluice status\` answers as soon as READY=1 was seen" test "$rc" -eq 0
    check "$who: the first STATUS= follows READY=1" \
        awk '$2 == "READY=1" { r = NR } $2 ~ /^STATUS=/ { s = 1; exit !(r && NR > r) } END { if (!s) exit 1 }' "$name.notify"
}
ready_checks "a receiver" ra --receiver --receiver-socket "$RSOCK_A"
ready_checks "a sender" sa --sender --sender-socket "$SSOCK_A"
check "a receiver: WATCHDOG_PID is its own pid (as systemd sets it)" env_has "$RA_PID" "WATCHDOG_PID=$RA_PID"
check "a sender: WATCHDOG_PID is its own pid (as systemd sets it)" env_has "$SA_PID" "WATCHDOG_PID=$SA_PID"

# STATUS= says what `sluice status` says: first before anything was sent (sent before the
# io loop runs, so before any frame is read), then once a bundle has crossed.
first_status() { awk '$2 ~ /^STATUS=/ { sub(/^[^ ]* /, ""); print; exit }' "$1"; }
check "a receiver: first STATUS=link down, 0 in flight, 0 received" \
    test "$(first_status ra.notify)" = "STATUS=link down, 0 in flight, 0 received"
check "a sender: first STATUS=0 queued, 0 passes sent" test "$(first_status sa.notify)" = "STATUS=0 queued, 0 passes sent"
rc=0; "$SLUICE" push bundles/one.tar --socket "$SSOCK_A" >push.out 2>&1 || rc=$?
check "a push a bundle to the sender" test "$rc" -eq 0
wait_until 30 test -f "ra/incoming/$ID_one.tar" || true
check "a the bundle crossed" cmp -s "ra/incoming/$ID_one.tar" bundles/one.tar
wait_until 10 has_lines ra.notify "STATUS=link up, 0 in flight, 1 received" 1 || true
wait_until 10 has_lines sa.notify "STATUS=0 queued, 1 passes sent" 1 || true
"$SLUICE" status --receiver --receiver-socket "$RSOCK_A" --json >ra-status.json
"$SLUICE" status --sender --sender-socket "$SSOCK_A" --json >sa-status.json
check "a receiver: STATUS=link up, 0 in flight, 1 received" has_lines ra.notify "STATUS=link up, 0 in flight, 1 received" 1
check "a ... as \`sluice status\` says (link up, 1 delivered, nothing in flight)" json_true ra-status.json \
    "d['receiver']['link']['up'] is True and d['receiver']['counters']['bundles_delivered'] == 1 and d['receiver']['transfers'] == []"
check "a sender: STATUS=0 queued, 1 passes sent" has_lines sa.notify "STATUS=0 queued, 1 passes sent" 1
check "a ... as \`sluice status\` says (queue empty, 1 pass completed)" json_true sa-status.json \
    "d['sender']['queue'] == [] and d['sender']['counters']['passes_completed'] == 1"

# SIGHUP: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, the listener's clock too), then READY=1.
wait_until 10 has_lines ra.notify WATCHDOG=1 4 || true
wait_until 10 has_lines sa.notify WATCHDOG=1 4 || true
for d in "$RA_PID:ra:receiver" "$SA_PID:sa:sender"; do
    IFS=: read -r pid name who <<<"$d"
    kill -HUP "$pid"
    wait_until 10 has_lines "$name.notify" READY=1 2 || true
    check "a $who: SIGHUP gives RELOADING=1 then READY=1" awk '
        $2 == "READY=1" { ready++ } $2 == "RELOADING=1" { if (ready != 1) exit 1; reloading = NR }
        $2 == "READY=1" && ready == 2 { exit !(reloading && NR > reloading) } END { if (ready < 2) exit 1 }' "$name.notify"
    check "a $who: RELOADING=1 carries MONOTONIC_USEC, now on CLOCK_MONOTONIC" awk '
        $2 == "RELOADING=1" { t = $1; next }
        t { ok = $2 ~ /^MONOTONIC_USEC=[0-9]+$/; if (ok) { split($2, kv, "="); d = kv[2] / 1e6 - t; ok = d < 0.01 && d > -1 }
            exit !ok }
        END { if (!t) exit 1 }' "$name.notify"
    check "a $who: the configuration was reloaded" log_has "$name.log" config_reloaded
done

# Pings keep coming after the reload; then SIGTERM.
wait_until 10 has_lines ra.notify WATCHDOG=1 8 || true
wait_until 10 has_lines sa.notify WATCHDOG=1 8 || true
for d in "$RA_PID:ra:receiver" "$SA_PID:sa:sender"; do
    IFS=: read -r pid name who <<<"$d"
    stop_process "$pid" TERM
    check "a $who: SIGTERM exits 0" test "$rc" -eq 0
    check "a $who: SIGTERM gives STOPPING=1" grep -q ' STOPPING=1$' "$name.notify"
    check "a $who: ... and it is the last word" test "$(tail -n 1 "$name.notify" | cut -d' ' -f2)" = STOPPING=1
    from=$(first_time "$name.notify" READY=1)
    to=$(first_time "$name.notify" STOPPING=1)
    read -r n max min _ <<<"$(pings "$from" "${to:-$from}" "$name.notify")"
    echo "# a $who: $n WATCHDOG=1 in $(calc "round(${to:-$from} - $from, 2)") s from READY=1 to STOPPING=1; gaps: longest $max s, shortest $min s (WATCHDOG_USEC=1 s)"
    check "a $who: WATCHDOG=1 came regularly (8 or more; longest gap $max s <= $MAX_GAP s)" \
        holds "$n >= 8 and $max <= $MAX_GAP"
done

# ==== b. a stalled loop stops the pings ===================================================
# The moment the stalled loop last proved alive is in [launch, ready] + STALL_AFTER: pings
# must come regularly until launch + STALL_AFTER and none from ready + STALL_AFTER +
# WATCHDOG_USEC on (+ LATE for a datagram sent just before and timestamped just after).
wait_until 20 log_has rb.log fault_injected || true
wait_until 20 log_has sb.log fault_injected || true
check "b receiver: warned at start-up that the fault is armed" log_has rb.log fault_injection_armed "variable=SLUICE_FAULT_STALL_AFTER"
check "b sender: warned at start-up that the fault is armed" log_has sb.log fault_injection_armed "variable=SLUICE_FAULT_STALL_AFTER"
check "b receiver: stalled (event=fault_injected)" log_has rb.log fault_injected
check "b sender: stalled (event=fault_injected)" log_has sb.log fault_injected
ready_rb=$(first_time rb.notify READY=1)
ready_sb=$(first_time sb.notify READY=1)
silent_rb=$(calc "${ready_rb:-0} + $STALL_AFTER + $WATCHDOG_USEC / 1e6 + $LATE")
silent_sb=$(calc "${ready_sb:-0} + $STALL_AFTER + $WATCHDOG_USEC / 1e6 + $LATE")

# During the stall the sender's io thread still runs: its control socket answers, a push
# is queued, and the STATUS= line that says so reaches systemd. The watchdog stopped all
# the same, because it follows the send thread's liveness, not the io thread's.
sleep_until "$silent_sb"
rc=0; "$SLUICE" status --sender --sender-socket sb/sender.sock --json >sb-status.json 2>&1 || rc=$?
check "b sender (stalled): \`sluice status\` still answers" test "$rc" -eq 0
rc=0; "$SLUICE" push bundles/two.tar --socket sb/sender.sock >push.out 2>&1 || rc=$?
check "b sender (stalled): a push is still queued" test "$rc" -eq 0
wait_until 10 has_lines sb.notify "STATUS=1 queued, 0 passes sent" 1 || true
status_at=$(first_time sb.notify "STATUS=1 queued, 0 passes sent")
check "b sender (stalled): STATUS=1 queued, 0 passes sent reaches systemd after the pings stopped" \
    holds "${status_at:-0} > $silent_sb"
# The receiver's watchdog timer runs on the io thread that is stalled: nothing answers.
rc=0; timeout 2 "$SLUICE" status --receiver --receiver-socket rb/receiver.sock --json >rb-status.json 2>&1 || rc=$?
check "b receiver (stalled): \`sluice status\` gets no answer (exit $rc)" test "$rc" -ne 0

sleep_until "$(calc "max($silent_rb, $silent_sb) + 3")"
for d in "rb:$RB_PID:receiver:$launch_rb:$ready_rb:$silent_rb" "sb:$SB_PID:sender:$launch_sb:$ready_sb:$silent_sb"; do
    IFS=: read -r name pid who launch ready silent <<<"$d"
    stall_low=$(calc "$launch + $STALL_AFTER")
    read -r n max _ _ <<<"$(pings "$ready" "$stall_low" "$name.notify")"
    read -r _ _ _ last_any <<<"$(pings "$ready" 1e9 "$name.notify")"
    late=$(awk -v s="$silent" '$2 == "WATCHDOG=1" && $1 > s { n++ } END { print n + 0 }' "$name.notify")
    echo "# b $who: $n WATCHDOG=1 before the stall (longest gap $max s); the last one at $(calc "f'{$last_any - $stall_low:+.2f}'") s from the stall (launch + $STALL_AFTER s); after $(calc "f'{$silent - $stall_low:+.2f}'") s: $late, watched for $(calc "round($(mono) - $silent, 1)") s"
    check "b $who: WATCHDOG=1 came regularly until the stall ($n; longest gap $max s <= $MAX_GAP s)" \
        holds "$n >= 3 and $max <= $MAX_GAP"
    check "b $who: no WATCHDOG=1 from stall + WATCHDOG_USEC on, for 3 s and more" test "$late" -eq 0
    check "b $who: WATCHDOG_PID was unset (the watchdog is for whichever process reads it)" \
        not env_has "$pid" "WATCHDOG_PID=.*"
done

# SIGTERM to the stalled daemons.
# - sender: the io thread takes the signal and sends STOPPING=1, then stop() waits to
#   join the stalled send thread, for ever: only SIGKILL (systemd's, after
#   TimeoutStopSec) ends it. A real stall looks the same.
# - receiver: the stalled thread is the io thread itself, which would run the signal
#   handler: Asio's low-level handler only writes the signal to a pipe that thread
#   reads, so nothing happens at all (and systemd's SIGKILL ends it likewise).
kill -TERM "$SB_PID" "$RB_PID"
wait_until 10 grep -q ' STOPPING=1$' sb.notify || true
sleep 2
check "b sender (stalled): SIGTERM still gives STOPPING=1" grep -q ' STOPPING=1$' sb.notify
check "b sender (stalled): ... and logs event=stopping" log_has sb.log stopping
check "b sender (stalled): ... but it does not exit (stop() waits for the stalled send thread)" alive "$SB_PID"
check "b receiver (stalled): SIGTERM gives no STOPPING=1" not grep -q ' STOPPING=1$' rb.notify
check "b receiver (stalled): ... and it does not exit (its io thread cannot run the handler)" alive "$RB_PID"
stop_process "$SB_PID" KILL 10
check "b sender (stalled): SIGKILL ends it (status $rc)" test "$rc" -eq 137
stop_process "$RB_PID" KILL 10
check "b receiver (stalled): SIGKILL ends it (status $rc)" test "$rc" -eq 137

# ==== c. a bad value is refused at start-up ================================================
for value in "3s" "" "-1" "nan" " 3" "1e3"; do
    rc=0; SLUICE_FAULT_STALL_AFTER=$value timeout 20 "$SENDER" --config sa/sender.toml >bad.out 2>bad.err || rc=$?
    check "c SLUICE_FAULT_STALL_AFTER=\"$value\": the sender exits 2 naming the variable" \
        sh -c "[ $rc -eq 2 ] && grep -q 'SLUICE_FAULT_STALL_AFTER' bad.err"
done
rc=0; SLUICE_FAULT_STALL_AFTER=x timeout 20 "$RECEIVER" --config ra/receiver.toml >bad.out 2>bad.err || rc=$?
check "c ... and so does the receiver" sh -c "[ $rc -eq 2 ] && grep -q 'SLUICE_FAULT_STALL_AFTER' bad.err"
check "c ... and neither created its control socket" test ! -e sa/sender.sock -a ! -e ra/receiver.sock

FINISHED=1
echo "system: notify daemons: $passed passed, $failed failed in $(( ($(date +%s%N) - STARTED) / 1000000 )) ms"
if [ "$failed" -ne 0 ]; then dump_logs "$WORK"/*.log "$WORK"/*.notify; exit 1; fi
