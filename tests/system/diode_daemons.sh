#!/usr/bin/env bash
# System test: drives the real daemons as an operator would. sluice-sender and
# sluice-receiver run on 127.0.0.1 (ports picked free at run time), some lanes
# through the seeded impairment proxy udp_impair; bundles are made, pushed and
# checked with the `sluice` command line and independent tools (cmp, python3).
#
#   tests/system/diode_daemons.sh path/to/sluice path/to/sluice-sender \
#                                 path/to/sluice-receiver path/to/udp_impair
#
# Scenarios (each check is labelled with its number):
#   1  several bundles over 2 impaired lanes with a link key arrive byte-identical
#   2  kill -9 of the receiver mid-transfer: it resumes and completes on a later pass
#   3  a receiver started after pass 1 still gets the bundle from a later pass
#   4  refusals: untrusted/unsigned pushes, bad spool files (a good one is delivered),
#      a bundle the receiver does not trust kept under state/refused/
#   5  frames under the wrong link key are dropped and counted; nothing delivered
#   6  `sluice queue` lists a high-priority push first, and it is sent next
#   7  SIGHUP reloads; SIGTERM: exit 0, event=stopped, control socket removed; a slow sender keeps
#      pinging the systemd watchdog and stops promptly
#   8  configuration errors: exit 2 naming FILE:LINE: KEY
# Set SLUICE_KEEP_WORK=1 to keep the work directory.
# shellcheck disable=SC2154  # ID_<name> variables are set by make_bundle (printf -v)
set -euo pipefail

usage="usage: diode_daemons.sh SLUICE SLUICE-SENDER SLUICE-RECEIVER UDP_IMPAIR"
SLUICE=$(realpath "${1:?$usage}")
SENDER=$(realpath "${2:?$usage}")
RECEIVER=$(realpath "${3:?$usage}")
IMPAIR=$(realpath "${4:?$usage}")
command -v python3 >/dev/null || { echo "diode_daemons: python3 is required" >&2; exit 2; }
# The interpreter itself: a version manager's shim can cost a second per call.
PY=$(python3 -I -c 'import sys; print(sys.executable)')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-daemons-XXXXXX")
if [ ${#WORK} -gt 80 ]; then   # control sockets live in here: sun_path holds 108 bytes
    rmdir "$WORK"
    WORK=$(mktemp -d /tmp/sluice-daemons-XXXXXX)
fi
cd "$WORK"
STARTED=$(date +%s)

# ---- bookkeeping ------------------------------------------------------------------
PIDS=()          # every background process this script started and has not reaped
passed=0
failed=0

cleanup() {
    local rc=$?
    set +e
    stop_all
    finish_work diode_daemons "$rc" "$WORK"/*.log "$WORK"/*.out
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ok, bad, check, expect, log_has, alive, forget_pid, not, wait_until, stop_process, start_daemon,
# stop_all, remove_accounts, dump_logs
source "$(dirname "${BASH_SOURCE[0]}")/lib/daemons.sh"

# free_ports N: N distinct UDP ports on 127.0.0.1 that were free a moment ago.
free_ports() {
    "$PY" -I - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# json_get FILE EXPR: evaluates the Python expression EXPR on the JSON document `d`.
json_get() { "$PY" -I -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# json_true FILE EXPR: succeeds when the expression is true.
json_true() { "$PY" -I -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }

receiver_status() { "$SLUICE" status --receiver --receiver-socket "$1" --json > "$2"; }
sender_status() { "$SLUICE" status --sender --sender-socket "$1" --json > "$2"; }
# counter FILE NAME: a receiver counter from a status file.
counter() { json_get "$1" "d['receiver']['counters']['$2']"; }

# log_field FILE EVENT PATTERN FIELD: FIELD of the first matching line.
log_field() { { grep -E "event=$2( |\$)" "$1" | grep -E -- "$3" | head -n 1 | grep -oE "(^| )$4=[^ ]*" | cut -d= -f2; } || true; }

# ---- daemons ------------------------------------------------------------------------

# write_receiver DIR LANES... : DIR/receiver.toml (paths relative to DIR), optional
# extra lines from $EXTRA_LINK.
write_receiver() {
    local dir=$1; shift
    local lanes="" p
    for p in "$@"; do lanes+="${lanes:+, }\"127.0.0.1:$p\""; done
    mkdir -p "$dir"
    cat > "$dir/receiver.toml" <<EOF
[receiver]
state_dir = "state"
incoming_dir = "incoming"
control_socket = "receiver.sock"
metrics_file = "metrics/receiver.prom"
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1
transfer_timeout = "10s"
dead_link_after = "2s"

[link]
lanes = [$lanes]
receive_buffer = "32M"
heartbeat_interval = "250ms"
${RX_KEY:+key_file = \"$RX_KEY\"}
EOF
}

# write_sender DIR RATE PASSES LANES...: DIR/sender.toml; link key from $TX_KEY,
# trusted keys from $TX_TRUST (default: release.pub).
write_sender() {
    local dir=$1 rate=$2 passes=$3; shift 3
    local lanes="" p
    for p in "$@"; do lanes+="${lanes:+, }\"127.0.0.1:$p\""; done
    mkdir -p "$dir"
    cat > "$dir/sender.toml" <<EOF
[sender]
state_dir = "state"
spool_dir = "spool"
control_socket = "sender.sock"
metrics_file = "metrics/sender.prom"
passes = $passes
trusted_keys = [${TX_TRUST:-\"$WORK/keys/release.pub\"}]
min_signers = 1

[link]
lanes = [$lanes]
rate = "$rate"
heartbeat_interval = "250ms"
${TX_KEY:+key_file = \"$TX_KEY\"}
EOF
}

# ---- keys and bundles -----------------------------------------------------------------
"$SLUICE" keygen release --dir keys >/dev/null
"$SLUICE" keygen mallory --dir keys >/dev/null
head -c 32 /dev/urandom > keys/link.key && chmod 600 keys/link.key
head -c 32 /dev/urandom > keys/wrong.key && chmod 600 keys/wrong.key

# make_bundle NAME VERSION BYTES [SIGNING-KEY]: bags/NAME and bundles/NAME.tar; sets ID_<NAME>.
make_bundle() {
    local name=$1 version=$2 bytes=$3 key=${4:-keys/release.key}
    mkdir -p "src/$name/weights" bags bundles
    head -c "$bytes" /dev/urandom > "src/$name/weights/model.bin"
    echo "{\"name\": \"$name\"}" > "src/$name/config.json"
    local id
    id=$("$SLUICE" bundle create "src/$name" --out "bags/$name" --channel models --version "$version" \
        --previous 0.9 --changes "system test $name" --reason "diode daemons test" --approved-by "test board" \
        --rollback-to 0.9 --sign "$key" | tail -n 1)
    "$SLUICE" bundle pack "bags/$name" --out "bundles/$name.tar" >/dev/null
    printf -v "ID_$name" '%s' "$id"
}

# push_ok WHAT SOCKET PATH [ARGS...]: a push that must succeed.
push_ok() {
    local what=$1 socket=$2 path=$3; shift 3
    local rc=0
    "$SLUICE" push "$path" --socket "$socket" "$@" >push.out 2>push.err || rc=$?
    if [ "$rc" -eq 0 ] && grep -q '^queued ' push.out; then ok "$what"
    else bad "$what (exit $rc: $(cat push.out push.err))"; fi
}

# delivered_same WHAT INCOMING ID ARCHIVE: INCOMING/ID.tar exists and equals ARCHIVE.
delivered_same() {
    local what=$1 incoming=$2 id=$3 archive=$4
    if [ -f "$incoming/$id.tar" ] && cmp -s "$incoming/$id.tar" "$archive"; then ok "$what"
    else bad "$what ($incoming/$id.tar: $(ls -l "$incoming/$id.tar" 2>&1))"; fi
}

make_bundle one 1.0.1 3000000
make_bundle two 1.0.2 5000000
make_bundle three 1.0.3 1500000
make_bundle spooled 1.0.4 700000
make_bundle mallory 1.0.5 200000 keys/mallory.key
make_bundle wrongkey 1.0.6 800000
make_bundle late 1.0.7 10000000
make_bundle q1 2.0.1 700000   # long enough to be on the wire while the others are pushed
for q in q2 q3 qh; do make_bundle "$q" "2.0.$q" 200000; done
make_bundle big 3.0.0 60000000
cp -r bags/one bags/unsigned && rm -rf bags/unsigned/signatures
"$SLUICE" bundle pack bags/unsigned --out bundles/unsigned.tar >/dev/null
echo "# bundles made ($(( $(date +%s) - STARTED )) s)"

# ==== 8. configuration errors ===========================================================
read -r P_A P_B <<<"$(free_ports 2)"
write_receiver cfg "$P_A"
write_sender cfg "$P_B" 1 "$P_B"
sed -i 's/^rate = /rat = /' cfg/sender.toml
sed -i 's/^dead_link_after = /dead_link_aftr = /' cfg/receiver.toml
rate_line=$(grep -n '^rat = ' cfg/sender.toml | cut -d: -f1)
dead_line=$(grep -n '^dead_link_aftr = ' cfg/receiver.toml | cut -d: -f1)
# expect_config_error WHAT NEEDLE CMD...: exits 2 and stderr names NEEDLE.
expect_config_error() {
    local what=$1 needle=$2; shift 2
    local rc=0
    timeout 20 "$@" >cfg.out 2>cfg.err || rc=$?
    if [ "$rc" -eq 2 ] && grep -qF -- "$needle" cfg.err; then ok "$what"
    else bad "$what (exit $rc, stderr: $(cat cfg.err))"; fi
}
expect_config_error "8 sender: unknown key exits 2 naming FILE:LINE: KEY" \
    "cfg/sender.toml:$rate_line: link.rat" "$SENDER" --config cfg/sender.toml
expect_config_error "8 sender --check-config: unknown key exits 2 naming FILE:LINE: KEY" \
    "cfg/sender.toml:$rate_line: link.rat" "$SENDER" --check-config --config cfg/sender.toml
expect_config_error "8 receiver: unknown key exits 2 naming FILE:LINE: KEY" \
    "cfg/receiver.toml:$dead_line: receiver.dead_link_aftr" "$RECEIVER" --config cfg/receiver.toml
expect_config_error "8 receiver --check-config: unknown key exits 2 naming FILE:LINE: KEY" \
    "cfg/receiver.toml:$dead_line: receiver.dead_link_aftr" "$RECEIVER" --check-config --config cfg/receiver.toml
check "8 the refused daemons created no control socket" test ! -e cfg/sender.sock -a ! -e cfg/receiver.sock
cp keys/link.key keys/open.key && chmod 644 keys/open.key
RX_KEY=$WORK/keys/open.key write_receiver cfg2 "$P_A"
expect_config_error "8 a link key readable by others is refused (exit 2, names key_file)" \
    "link.key_file" "$RECEIVER" --check-config --config cfg2/receiver.toml
RX_KEY=$WORK/keys/link.key write_receiver cfg3 "$P_A"
rc=0; "$RECEIVER" --check-config --config cfg3/receiver.toml >cfg.out 2>&1 || rc=$?
check "8 --check-config accepts a good configuration (exit 0)" test "$rc" -eq 0

# ==== 1. several bundles over two impaired lanes, link key on ===========================
read -r PX0 PX1 PR0 PR1 <<<"$(free_ports 4)"
"$IMPAIR" --listen "127.0.0.1:$PX0" --forward "127.0.0.1:$PR0" \
          --listen "127.0.0.1:$PX1" --forward "127.0.0.1:$PR1" \
          --seed 20261129 --drop 0.03 --burst-every 400 --burst-len 4 \
          --reorder 0.02 --reorder-depth 16 --duplicate 0.01 --corrupt 0.01 --truncate 0.005 \
          --stats-file proxy.json >proxy.out 2>proxy.log &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_until 10 grep -qx 'udp_impair: ready' proxy.out || { echo "udp_impair did not get ready" >&2; exit 1; }

RX_KEY=$WORK/keys/link.key write_receiver r1 "$PR0" "$PR1"
TX_KEY=$WORK/keys/link.key write_sender s1 300M 2 "$PX0" "$PX1"
start_daemon r1 "$RECEIVER" r1/receiver.toml r1/receiver.sock; R1_PID=$LAST_PID
start_daemon s1 "$SENDER" s1/sender.toml s1/sender.sock; S1_PID=$LAST_PID

push_ok "1 push bundle one (archive)" s1/sender.sock bundles/one.tar
push_ok "1 push bundle two (archive)" s1/sender.sock bundles/two.tar
push_ok "1 push bundle three (bag directory)" s1/sender.sock bags/three
for b in one two three; do
    id_var="ID_$b"
    wait_until 60 test -f "r1/incoming/${!id_var}.tar" || true
    delivered_same "1 bundle $b is delivered byte-identical through the impaired lanes" r1/incoming "${!id_var}" "bundles/$b.tar"
    check "1 the receiver logged bundle_received for $b with its path" \
        log_has r1.log bundle_received "bundle=${!id_var} .*path=$WORK/r1/incoming/${!id_var}.tar"
done
receiver_status r1/receiver.sock r1-status.json
check "1 receiver status: MAC on" json_true r1-status.json "d['receiver']['link']['mac'] is True"
check "1 receiver status: checksum failures > 0 (corrupted frames seen)" json_true r1-status.json "d['receiver']['counters']['checksum_failures'] > 0"
check "1 receiver status: blocks recovered > 0 (FEC used)" json_true r1-status.json "d['receiver']['counters']['blocks_recovered'] > 0"
check "1 receiver status: kernel drops are reported" json_true r1-status.json "isinstance(d['receiver']['counters']['kernel_drops'], int)"
check "1 receiver status: 3 bundles delivered, none refused" json_true r1-status.json \
    "d['receiver']['counters']['bundles_delivered'] == 3 and d['receiver']['counters']['bundles_refused'] == 0"
check "1 receiver status: no MAC failures from the right key" json_true r1-status.json "d['receiver']['counters']['mac_failures'] == 0"
check "1 receiver status lists the three deliveries" json_true r1-status.json \
    "{r['bundle'] for r in d['receiver']['received']} == {'$ID_one', '$ID_two', '$ID_three'}"
echo "#   receiver counters: $(json_get r1-status.json "{k: d['receiver']['counters'][k] for k in ('datagrams', 'checksum_failures', 'blocks_recovered', 'symbols_rebuilt', 'kernel_drops', 'transfers_incomplete')}")"
sender_status s1/sender.sock s1-status.json
check "1 sender status: MAC on, 2 lanes" json_true s1-status.json \
    "d['sender']['link']['mac'] is True and len(d['sender']['link']['lanes']) == 2"
s1_all_sent() { sender_status s1/sender.sock s1-status.json && json_true s1-status.json "d['sender']['queue'] == [] and len(d['sender']['sent']) == 3"; }
check "1 sender status: queue empty and 3 bundles sent after all passes" wait_until 30 s1_all_sent
check "1 the proxy impaired both lanes (drops, bursts, corruption, truncation, duplicates, reordering)" \
    wait_until 5 json_true proxy.json \
    "all(l['dropped_random'] > 0 and l['dropped_burst'] > 0 and l['corrupted'] > 0 and l['truncated'] > 0 and l['duplicated'] > 0 and l['reordered'] > 0 for l in d['lanes'])"
echo "#   proxy: $(json_get proxy.json "{k: d[k] for k in ('received', 'dropped', 'corrupted', 'truncated', 'duplicated', 'reordered')}")"
echo "# scenario 1 done ($(( $(date +%s) - STARTED )) s)"

# ==== 4. refusals (same daemons) ===========================================================
# expect_refusal WHAT NEEDLE CMD...: the command exits 1 and stderr contains NEEDLE.
expect_refusal() {
    local what=$1 needle=$2; shift 2
    local rc=0
    "$@" >out.txt 2>err.txt || rc=$?
    if [ "$rc" -eq 1 ] && grep -qF -- "$needle" err.txt; then ok "$what"
    else bad "$what (exit $rc, stderr: $(cat err.txt))"; fi
}
expect_refusal "4 pushing an unsigned bundle fails (exit 1) saying it is not signed" "not signed" \
    "$SLUICE" push bundles/unsigned.tar --socket s1/sender.sock
expect_refusal "4 pushing an untrusted bundle fails (exit 1) naming its signature" "signatures/mallory.sig" \
    "$SLUICE" push bundles/mallory.tar --socket s1/sender.sock
check "4 the sender logged push_refused" log_has s1.log push_refused "mallory.tar"
sluice_queue_len() { "$SLUICE" queue --socket s1/sender.sock --json | "$PY" -I -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
check "4 nothing refused was queued" test "$(sluice_queue_len)" = 0

head -c 100000 /dev/urandom > s1/spool/.garbage.partial && mv s1/spool/.garbage.partial s1/spool/garbage.tar
cp bundles/mallory.tar s1/spool/.mallory.partial && mv s1/spool/.mallory.partial s1/spool/mallory.tar
cp bundles/spooled.tar s1/spool/.spooled.partial && mv s1/spool/.spooled.partial s1/spool/spooled.tar
wait_until 15 test -f s1/spool/.rejected/garbage.tar.reason -a -f s1/spool/.rejected/mallory.tar.reason || true
check "4 a garbage file renamed into the spool is moved to .rejected" test -f s1/spool/.rejected/garbage.tar -a ! -e s1/spool/garbage.tar
check "4 ... with a .reason saying it is not a tar archive" grep -q "not a tar archive" s1/spool/.rejected/garbage.tar.reason
check "4 an untrusted bundle renamed into the spool is moved to .rejected" test -f s1/spool/.rejected/mallory.tar -a ! -e s1/spool/mallory.tar
check "4 ... with a .reason naming the untrusted signature" grep -q "signatures/mallory.sig" s1/spool/.rejected/mallory.tar.reason
check "4 the rejected file is kept unchanged" cmp -s s1/spool/.rejected/mallory.tar bundles/mallory.tar
check "4 the sender logged spool_refused for both" sh -c "grep 'event=spool_refused' s1.log | grep -q garbage.tar && grep 'event=spool_refused' s1.log | grep -q mallory.tar"
wait_until 30 test -f "r1/incoming/$ID_spooled.tar" || true
delivered_same "4 a good bundle renamed into the spool is delivered" r1/incoming "$ID_spooled" bundles/spooled.tar
check "4 the good spool file left the spool and was not rejected" test ! -e s1/spool/spooled.tar -a ! -e s1/spool/.rejected/spooled.tar
check "4 the sender logged who queued it (spool)" log_has s1.log bundle_queued "bundle=$ID_spooled .*by=\"?spool"
check "4 nothing untrusted reached incoming" test ! -e "r1/incoming/$ID_mallory.tar"
echo "# scenario 4 done ($(( $(date +%s) - STARTED )) s)"

# ==== 7. SIGTERM of an idle sender ==========================================================
stop_process "$S1_PID" TERM
check "7 sender (idle): SIGTERM exits 0" test "$rc" -eq 0
check "7 sender (idle): logs event=stopped" log_has s1.log stopped
check "7 sender (idle): its control socket is removed" test ! -e s1/sender.sock

# ==== 5. a sender with the wrong link key ====================================================
sleep 0.5   # let the proxy flush what it held back
receiver_status r1/receiver.sock r1-before.json
TX_KEY=$WORK/keys/wrong.key write_sender s5 100M 1 "$PR0" "$PR1"   # straight to the receiver's lanes
start_daemon s5 "$SENDER" s5/sender.toml s5/sender.sock; S5_PID=$LAST_PID
push_ok "5 push a good bundle to the sender with the wrong link key" s5/sender.sock bundles/wrongkey.tar
wait_until 30 log_has s5.log bundle_sent "bundle=$ID_wrongkey" || true
check "5 that sender sent all its passes" log_has s5.log bundle_sent "bundle=$ID_wrongkey"
stop_process "$S5_PID" TERM
check "7 sender (wrong key): SIGTERM exits 0" test "$rc" -eq 0
S5_FRAMES=$(awk '$1 == "sluice_sender_frames_sent_total" {print $2}' s5/metrics/sender.prom)
sleep 0.5
receiver_status r1/receiver.sock r1-after.json
delta() { echo $(( $(counter r1-after.json "$1") - $(counter r1-before.json "$1") )); }
MAC_DELTA=$(delta mac_failures)
DGRAM_DELTA=$(delta datagrams)
DROP_DELTA=$(delta kernel_drops)
echo "#   wrong-key sender: $S5_FRAMES frames sent; receiver: +$DGRAM_DELTA datagrams, +$MAC_DELTA MAC failures, +$DROP_DELTA kernel drops"
check "5 the receiver saw the wrong-key frames" test "$DGRAM_DELTA" -gt 0
check "5 every one of them was counted as a MAC failure" test "$MAC_DELTA" -eq "$DGRAM_DELTA"
check "5 MAC failures account for every frame sent (less kernel drops)" test "$((MAC_DELTA + DROP_DELTA))" -ge "${S5_FRAMES%.*}"
check "5 they are MAC mismatches in the frame error breakdown" json_true r1-after.json \
    "d['receiver']['counters']['frame_errors']['MAC mismatch'] >= $MAC_DELTA"
check "5 nothing was delivered from the wrong-key sender" test ! -e "r1/incoming/$ID_wrongkey.tar"
check "5 no transfer was even started from it" sh -c "! grep -q 'bundle=$ID_wrongkey' r1.log"
check "5 delivered/refused counters unchanged" test "$(delta bundles_delivered)/$(delta bundles_refused)" = "0/0"

# ==== 7. SIGHUP reloads, then SIGTERM of the receiver =========================================
kill -HUP "$R1_PID"
wait_until 10 log_has r1.log config_reloaded || true
check "7 receiver: SIGHUP reloads the configuration (event=config_reloaded)" log_has r1.log config_reloaded
check "7 receiver: still answers after the reload" receiver_status r1/receiver.sock r1-reloaded.json
stop_process "$R1_PID" TERM
check "7 receiver: SIGTERM exits 0" test "$rc" -eq 0
check "7 receiver: logs event=stopped" log_has r1.log stopped
check "7 receiver: its control socket is removed" test ! -e r1/receiver.sock
stop_process "$PROXY_PID" TERM
check "the proxy exits 0 on SIGTERM" test "$rc" -eq 0
echo "# scenarios 5, 7 done ($(( $(date +%s) - STARTED )) s)"

# ==== 6. priorities in `sluice queue` (slow link, nothing listening) ===========================
read -r P_NONE <<<"$(free_ports 1)"
write_sender s6 2M 1 "$P_NONE"   # q1 takes ~3 s after the pacer's initial burst
start_daemon s6 "$SENDER" s6/sender.toml s6/sender.sock; S6_PID=$LAST_PID
push_ok "6 push q1 (normal)" s6/sender.sock bundles/q1.tar
wait_until 10 log_has s6.log pass_started "bundle=$ID_q1" || true
push_ok "6 push q2 (normal)" s6/sender.sock bundles/q2.tar
push_ok "6 push q3 (normal)" s6/sender.sock bundles/q3.tar --priority normal
push_ok "6 push qh (high)" s6/sender.sock bundles/qh.tar --priority high
"$SLUICE" queue --socket s6/sender.sock --json > queue.json
"$SLUICE" queue --socket s6/sender.sock > queue.txt
order=$(json_get queue.json "' '.join({'$ID_q1': 'q1', '$ID_q2': 'q2', '$ID_q3': 'q3', '$ID_qh': 'qh'}[j['bundle']] + ':' + j['priority'] for j in d)")
echo "#   queue order: $order"
check "6 sluice queue --json lists the high-priority push first" test "${order%% *}" = "qh:high"
check "6 ... then the normal ones in push order" sh -c "echo '$order' | grep -qE '^qh:high (q1:normal )?q2:normal q3:normal\$'"
check "6 the text listing shows the high one first" sh -c "sed -n 2p queue.txt | grep -q '${ID_qh:0:16}.* high '"
check "6 the pushes came while q1 was still being sent" json_true queue.json "any(j['bundle'] == '$ID_q1' and j['sending'] for j in d)"
wait_until 20 sh -c "[ \$(grep -c 'event=pass_started' s6.log) -ge 2 ]" || true
second=$(grep 'event=pass_started' s6.log | sed -n 2p | grep -oE 'bundle=[0-9a-f]+' | cut -d= -f2)
check "6 the high-priority bundle is the next one sent" test "$second" = "$ID_qh"

# ==== 7. SIGTERM of a sender in the middle of a pass; the queue persists ========================
stop_process "$S6_PID" TERM
check "7 sender (mid-pass): SIGTERM exits 0" test "$rc" -eq 0
check "7 sender (mid-pass): logs event=stopped" log_has s6.log stopped
check "7 sender (mid-pass): its control socket is removed" test ! -e s6/sender.sock
start_daemon s6 "$SENDER" s6/sender.toml s6/sender.sock; S6_PID=$LAST_PID
"$SLUICE" queue --socket s6/sender.sock --json > queue2.json
check "7 after a restart the unsent bundles are still queued" json_true queue2.json \
    "{'$ID_q2', '$ID_q3'} <= {j['bundle'] for j in d}"
stop_process "$S6_PID" TERM
check "7 sender (restarted): SIGTERM exits 0" test "$rc" -eq 0

# ==== 7. a slow sender under systemd: watchdog pings and SIGTERM while a batch is paced ===========
# At 50 kbit/s a 700 KB bundle (~1 MB on the wire) takes minutes; even its first 256 frames
# take well over 10 s after the pacer's initial burst. The daemon must keep pinging a 2 s watchdog meanwhile (systemd
# kills it otherwise, and the pass starts again from the beginning after the restart) and
# stop promptly on SIGTERM rather than after the frames in flight.
"$PY" -I - "$WORK/notify.sock" >notify.out <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
t0 = time.monotonic()
try:
    while True:
        for line in s.recv(4096).decode().splitlines():
            print(f"{time.monotonic() - t0:.3f} {line}", flush=True)
except socket.timeout:
    pass
PY
NOTIFY_PID=$!
PIDS+=("$NOTIFY_PID")
wait_until 5 test -S notify.sock || true
write_sender s7 50k 1 "$P_NONE"
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=2000000 start_daemon s7 "$SENDER" s7/sender.toml s7/sender.sock
S7_PID=$LAST_PID
push_ok "7 push a bundle to a sender paced at 50 kbit/s" s7/sender.sock bundles/q1.tar
wait_until 10 log_has s7.log pass_started "bundle=$ID_q1" || true
sleep 5
# A mark in the same stream shows how long ago the last ping came.
"$PY" -I -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"MARK=1", sys.argv[1])' "$WORK/notify.sock"
wait_until 5 grep -q ' MARK=1$' notify.out || true
worst_gap=$(awk '$2 == "READY=1" { on = 1; last = $1; next }
                 on && ($2 == "WATCHDOG=1" || $2 == "MARK=1") { if ($1 - last > max) max = $1 - last; last = $1 }
                 END { printf "%.1f", max }' notify.out)
echo "#   slow sender: longest time without WATCHDOG=1 while sending: ${worst_gap} s (WatchdogSec=2s)"
check "7 slow sender: READY=1 sent to systemd" grep -q ' READY=1$' notify.out
check "7 slow sender: still in the middle of its pass" not log_has s7.log pass_finished "bundle=$ID_q1"
check "7 slow sender: WATCHDOG=1 keeps coming while frames are paced (longest gap ${worst_gap} s <= 2 s)" \
    awk -v g="$worst_gap" 'BEGIN { exit !(g > 0 && g <= 2.0) }'
t0=$(date +%s%N)
stop_process "$S7_PID" TERM 40   # (waits out the batch in flight if it must)
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "#   slow sender: SIGTERM to exit took $stop_ms ms"
check "7 slow sender: SIGTERM exits 0" test "$rc" -eq 0
check "7 slow sender: exits within 5 s of SIGTERM in the middle of a paced batch (took $stop_ms ms)" test "$stop_ms" -le 5000
check "7 slow sender: STOPPING=1 sent to systemd" grep -q ' STOPPING=1$' notify.out
stop_process "$NOTIFY_PID" TERM
echo "# scenarios 6, 7 done ($(( $(date +%s) - STARTED )) s)"

# ==== 2. kill -9 of the receiver mid-transfer ==================================================
read -r P2 <<<"$(free_ports 1)"
RX_KEY=$WORK/keys/link.key write_receiver r2 "$P2"
TX_KEY=$WORK/keys/link.key write_sender s2 200M 3 "$P2"
start_daemon r2 "$RECEIVER" r2/receiver.toml r2/receiver.sock; R2_PID=$LAST_PID
start_daemon s2 "$SENDER" s2/sender.toml s2/sender.sock; S2_PID=$LAST_PID
push_ok "2 push a 60 MB bundle (3 passes at 200 Mbit/s)" s2/sender.sock bundles/big.tar
wait_until 20 log_has r2.log transfer_started "bundle=$ID_big" || true
progress_at_least() {
    receiver_status r2/receiver.sock r2-status.json &&
        json_true r2-status.json "any(t['bundle'] == '$ID_big' and t['progress'] >= $1 for t in d['receiver']['transfers'])"
}
progress_file() { compgen -G "r2/state/transfers/staging/*/progress" >/dev/null; }
got=0; wait_until 20 progress_at_least 0.25 && got=1
durable=0; wait_until 5 progress_file && durable=1   # a checkpoint (every second) is on disk
pass1_running=0; log_has s2.log pass_finished "bundle=$ID_big .*pass=1 " || pass1_running=1
stop_process "$R2_PID" KILL
check "2 the receiver got 25 % of the bundle" test "$got" -eq 1
check "2 ... and checkpointed its progress to disk" test "$durable" -eq 1
check "2 ... when it was killed with SIGKILL" test "$rc" -eq 137
check "2 ... while pass 1 was still being sent" test "$pass1_running" -eq 1
check "2 the killed receiver had not assembled the bundle" not log_has r2.log transfer_assembled "bundle=$ID_big"
check "2 its control socket is left behind (stale)" test -S r2/receiver.sock
sleep 0.7   # frames sent now are lost to the receiver
start_daemon r2b "$RECEIVER" r2/receiver.toml r2/receiver.sock; R2_PID=$LAST_PID
check "2 the receiver restarts over the stale control socket" log_has r2b.log receiver_started
wait_until 20 log_has r2b.log transfer_started "bundle=$ID_big" || true
held=$(log_field r2b.log transfer_started "bundle=$ID_big" blocks_held)
total=$(log_field r2b.log transfer_started "bundle=$ID_big" blocks)
echo "#   restarted receiver: transfer_started blocks_held=$held of $total"
check "2 the restarted receiver resumed from persisted progress (blocks_held > 0)" test "${held:-0}" -gt 0
check "2 ... and still missed some blocks (blocks_held < blocks)" test "${held:-0}" -lt "${total:-0}"
wait_until 30 log_has s2.log pass_finished "bundle=$ID_big .*pass=1 " || true
check "2 not complete at the end of pass 1 (the blocks sent while it was down are missing)" \
    test ! -e "r2/incoming/$ID_big.tar"
wait_until 60 test -f "r2/incoming/$ID_big.tar" || true
delivered_same "2 the bundle completes on a later pass, byte-identical" r2/incoming "$ID_big" bundles/big.tar
check "2 the restarted receiver logged bundle_received" log_has r2b.log bundle_received "bundle=$ID_big"
check "2 no staging file is left behind" not compgen -G "r2/state/transfers/staging/*/archive.part"
stop_process "$S2_PID" TERM
check "7 sender (2): SIGTERM exits 0" test "$rc" -eq 0
stop_process "$R2_PID" TERM
check "7 receiver (2): SIGTERM exits 0" test "$rc" -eq 0
check "7 receiver (2): its control socket is removed" test ! -e r2/receiver.sock
echo "# scenario 2 done ($(( $(date +%s) - STARTED )) s)"

# ==== 3. a receiver started after pass 1 ========================================================
read -r P3 <<<"$(free_ports 1)"
write_receiver r3 "$P3"
# This sender also trusts mallory; the receiver does not (receiver-side refusal below).
TX_TRUST="\"$WORK/keys/release.pub\", \"$WORK/keys/mallory.pub\"" write_sender s3 80M 3 "$P3"
start_daemon s3 "$SENDER" s3/sender.toml s3/sender.sock; S3_PID=$LAST_PID
push_ok "3 push a 10 MB bundle (3 passes at 80 Mbit/s) with no receiver running" s3/sender.sock bundles/late.tar
wait_until 30 log_has s3.log pass_finished "bundle=$ID_late .*pass=1 " || true
check "3 the sender finished pass 1 with nobody listening" log_has s3.log pass_finished "bundle=$ID_late .*pass=1 "
start_daemon r3 "$RECEIVER" r3/receiver.toml r3/receiver.sock; R3_PID=$LAST_PID
wait_until 30 test -f "r3/incoming/$ID_late.tar" || true
delivered_same "3 the late receiver gets the bundle, byte-identical" r3/incoming "$ID_late" bundles/late.tar
late_pass=$(log_field r3.log transfer_started "bundle=$ID_late" pass)
check "3 ... from a later pass (transfer_started pass=$late_pass)" test "${late_pass:-0}" -ge 2

# ==== 4. (receiver side) a bundle the sender trusts and the receiver does not ====================
push_ok "4 push a mallory-signed bundle to a sender that trusts mallory" s3/sender.sock bundles/mallory.tar
wait_until 30 log_has s3.log bundle_sent "bundle=$ID_mallory" || true
wait_until 10 log_has r3.log bundle_refused "bundle=$ID_mallory" || true
check "4 the receiver refuses it: event=bundle_refused naming the signature" \
    log_has r3.log bundle_refused "bundle=$ID_mallory .*signatures/mallory.sig"
refused_copies() { compgen -G "r3/state/refused/$ID_mallory*.tar" | wc -l; }
check "4 ... keeps it once under state/refused/ (all 3 passes sent)" test "$(refused_copies)" -eq 1
check "4 ... byte-identical, with a .reason naming the signature" sh -c \
    "f=\$(ls r3/state/refused/$ID_mallory*.tar) && cmp -s \"\$f\" bundles/mallory.tar && grep -q signatures/mallory.sig \"\$f.reason\""
check "4 ... and delivers nothing of it to incoming/" test ! -e "r3/incoming/$ID_mallory.tar"
receiver_status r3/receiver.sock r3-status.json
check "4 receiver status counts it refused (1), and the good one delivered (1)" json_true r3-status.json \
    "d['receiver']['counters']['bundles_refused'] == 1 and d['receiver']['counters']['bundles_delivered'] == 1"

stop_process "$S3_PID" TERM
check "7 sender (3): SIGTERM exits 0" test "$rc" -eq 0
stop_process "$R3_PID" TERM
check "7 receiver (3): SIGTERM exits 0" test "$rc" -eq 0
echo "# scenario 3 done ($(( $(date +%s) - STARTED )) s)"

# ---- every daemon we started logged its stop; nothing was left running -------------------------
for log in s1 s5 s6 s7 s2 s3 r1 r2b r3; do
    check "7 $log.log: every start has its event=stopped" \
        test "$(grep -c 'event=sender_started\|event=receiver_started' $log.log)" = "$(grep -c 'event=stopped' $log.log)"
done
check "no process left running" test "${#PIDS[@]}" -eq 0

echo "system: diode daemons: $passed passed, $failed failed in $(( $(date +%s) - STARTED )) s"
FINISHED=1
if [ "$failed" -ne 0 ]; then dump_logs "$WORK"/*.log "$WORK"/*.out; exit 1; fi
