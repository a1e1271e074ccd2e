#!/usr/bin/env bash
# System test of the import pipeline: the real sluice-sender and sluice-receiver on
# 127.0.0.1 (one lane, a link key), a private real clamd with test signatures, real
# Unix users in a real officer group, and the `sluice` command line as an operator
# uses it. Bundles go push -> diode -> receiver -> quarantine -> rules -> scanners ->
# approval -> releases/<channel>/<version>, current.
#
#   tests/system/import_daemons.sh path/to/sluice path/to/sluice-sender path/to/sluice-receiver
#
# Needs root (it creates and removes Unix users and groups), python3, runuser, useradd,
# clamd and clamdscan (tests/tools/start_clamd.sh). Without them it exits 77 (skipped),
# or fails when CI is set.
#
# One receiver, several channels (policy.toml below):
#   auto-ch    auto, clamd, two post-release hooks (one records its argv, one fails)
#   manual-ch  one officer;   tp-ch  two officers;   strict-ch  auto, text/* and JSON only
#   hang-ch    auto, an exec scanner that hangs until the test fixes it
#
# Scenarios (each check is labelled with its number):
#   1  a clean bundle on an auto channel is released: releases/<ch>/<ver>/, current, verify
#   2  a bundle clamd flags is rejected; show names the files and signatures; nothing released
#   3  a hanging exec scanner is timed out and the bundle held; fixed, `sluice rescan` releases it
#   4  an ELF binary on a text-only channel is rejected by the file_types rule, naming the file
#   5  two-person approval by two real officers; an outsider and a second approval by the
#      same officer are refused
#   6  a replayed bundle changes nothing (event=bundle_replayed); an older version is refused
#   7  a signed rollback bundle waits for an officer even on an auto channel, then is current
#   8  `sluice rollback` switches current at once; --to a version not kept fails; releases marks *
#   9  a receiver restart keeps a pending approval, which can then be approved
#  10  post-release hooks get {path} {version} …; a failing hook shows FAILED, bundle released
#  11  `sluice policy check` names FILE:LINE: KEY; `sluice policy explain` shows every rule
#  12  the outsider can reject nothing and roll nothing back
# Set SLUICE_KEEP_WORK=1 to keep the work directory.
# shellcheck disable=SC2154  # ID_<name> variables are set by make_bundle (printf -v)
set -euo pipefail

usage="usage: import_daemons.sh SLUICE SLUICE-SENDER SLUICE-RECEIVER"
SLUICE=$(realpath "${1:?$usage}")
SENDER=$(realpath "${2:?$usage}")
RECEIVER=$(realpath "${3:?$usage}")
# A missing prerequisite skips the test (exit 77) on a developer's machine, and fails it in CI.
skip() {
    if [ -n "${CI:-}" ]; then echo "import_daemons: FAIL: $* (CI is set: the CI host must provide this)" >&2; exit 1; fi
    echo "import_daemons: SKIPPED: $*"; exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (it creates Unix users and groups for the officer roles)"
for tool in python3 runuser useradd userdel groupadd groupdel; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done
if [ ! -x "${CLAMD:-/usr/sbin/clamd}" ] || [ ! -x "${CLAMDSCAN:-/usr/bin/clamdscan}" ]; then
    skip "clamd/clamdscan not installed (apt-get install clamav-daemon clamdscan)"
fi
TOOLS=$(cd "$(dirname "$0")/../tools" && pwd)
PY=$(python3 -I -c 'import sys; print(sys.executable)')

umask 022
# In /tmp rather than $TMPDIR: the officers (other Unix users) must be able to reach
# the control socket, and socket paths hold at most 107 bytes.
WORK=$(mktemp -d /tmp/sluice-import-XXXXXX)
chmod 0755 "$WORK"
cd "$WORK"
STARTED=$(date +%s)

# ---- bookkeeping ------------------------------------------------------------------
PIDS=()          # every background process this script started and has not reaped
USERS_MADE=()    # Unix users and groups this script created (removed on exit)
GROUPS_MADE=()
passed=0
failed=0
cleanup() {
    local rc=$?
    set +e
    local pid
    stop_all
    if [ -f "$WORK/clamd/clamd.pid" ]; then
        pid=$(cat "$WORK/clamd/clamd.pid")
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    fi
    remove_accounts import_daemons
    finish_work import_daemons "$rc" "$WORK"/*.log "$WORK"/clamd/clamd.log
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ok, bad, check, expect, log_has, alive, forget_pid, not, wait_until, stop_process, start_daemon,
# stop_all, remove_accounts, dump_logs
source "$(dirname "${BASH_SOURCE[0]}")/lib/daemons.sh"

free_port() {
    "$PY" -I -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json_true FILE EXPR: succeeds when the Python expression EXPR (which may span lines)
# is true of the JSON document `d`.
json_true() { "$PY" -I -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$1" "$2"; }

log_count() { { grep -E "event=$2( |\$)" "$1" | grep -cE -- "${3:-.}"; } || true; }

# ---- daemons ------------------------------------------------------------------------

# ---- the operator's tools ------------------------------------------------------------
RSOCK=$WORK/r/receiver.sock
SSOCK=$WORK/s/sender.sock

# cli WHO OUT ARGS...: runs `sluice ARGS` as WHO (root, or a test user through runuser)
# with stdout and stderr in OUT; sets rc to its exit status.
cli() {
    local who=$1 out=$2; shift 2
    rc=0
    if [ "$who" = root ]; then "$SLUICE" "$@" >"$out" 2>&1 || rc=$?
    else runuser -u "$who" -- "$USER_SLUICE" "$@" >"$out" 2>&1 || rc=$?; fi
}

# show_json ID FILE: `sluice show ID --json` (as root) into FILE.
show_json() { "$SLUICE" show "$1" --json --socket "$RSOCK" >"$2" 2>/dev/null; }

# push_ok WHAT ARCHIVE: a push to the sender that must be queued.
push_ok() {
    local what=$1 path=$2
    cli root push.out push "$path" --socket "$SSOCK"
    if [ "$rc" -eq 0 ] && grep -q '^queued ' push.out; then ok "$what"
    else bad "$what (exit $rc: $(cat push.out))"; fi
}

# ---- clamd, users, keys ----------------------------------------------------------------
CLAMD_SOCK=$(CLAMD_WATCH_PID=$$ "$TOOLS/start_clamd.sh" "$WORK/clamd")
echo "# clamd answers on $CLAMD_SOCK ($(( $(date +%s) - STARTED )) s)"

OFFICERS=sloff$$            # the officer group of this receiver
OTHERS=sloth$$              # everyone's primary group
OFFICER_A=sloa$$
OFFICER_B=slob$$
OUTSIDER=slox$$             # not an officer
for g in "$OFFICERS" "$OTHERS"; do groupadd "$g"; GROUPS_MADE+=("$g"); done
for u in "$OFFICER_A" "$OFFICER_B"; do
    useradd -M -N -g "$OTHERS" -G "$OFFICERS" -s /usr/sbin/nologin -d /nonexistent "$u"; USERS_MADE=("$u" "${USERS_MADE[@]}")
done
useradd -M -N -g "$OTHERS" -s /usr/sbin/nologin -d /nonexistent "$OUTSIDER"; USERS_MADE=("$OUTSIDER" "${USERS_MADE[@]}")
# The officers run the same binary, if they can reach it (a private checkout may not be).
USER_SLUICE=$SLUICE
if ! runuser -u "$OUTSIDER" -- test -x "$SLUICE"; then
    mkdir -p bin && cp "$SLUICE" bin/sluice && USER_SLUICE=$WORK/bin/sluice
    echo "# $SLUICE is not reachable by other users: they run a copy, $USER_SLUICE"
fi
check "the test users exist; only the officers are in $OFFICERS" eval \
    "id -nG $OFFICER_A | grep -qw $OFFICERS && id -nG $OFFICER_B | grep -qw $OFFICERS && ! id -nG $OUTSIDER | grep -qw $OFFICERS"

"$SLUICE" keygen release --dir keys >/dev/null
head -c 32 /dev/urandom > keys/link.key && chmod 600 keys/link.key

# ---- scanners and hooks ---------------------------------------------------------------
mkdir -p scanners hooks
# It sleeps in a child, as a real scanner's helpers would: the time-out must kill the group.
HANG_MARK="60.$$"   # a sleep(1) argument no other process has
printf '#!/bin/sh\n# a scanner stuck on something\n/bin/sleep %s\necho "never reached"\n' "$HANG_MARK" > scanners/hang.sh
chmod 755 scanners/hang.sh
cat > hooks/record.sh <<EOF
#!/bin/sh
# post-release hook: records its arguments
printf '%s\n' "\$*" >> "$WORK/hook-args.txt"
EOF
printf '#!/bin/sh\necho "notify: registry unreachable" >&2\nexit 3\n' > hooks/notify.sh
chmod 755 hooks/record.sh hooks/notify.sh

# ---- receiver, policy, sender -----------------------------------------------------------
PORT=$(free_port)
mkdir -p r s
cat > r/receiver.toml <<EOF
[receiver]
state_dir = "state"
incoming_dir = "incoming"
control_socket = "receiver.sock"
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1
transfer_timeout = "10s"
dead_link_after = "2s"

[import]
policy = "policy.toml"
quarantine_dir = "quarantine"
release_dir = "releases"

[link]
lanes = ["127.0.0.1:$PORT"]
receive_buffer = "8M"
heartbeat_interval = "250ms"
key_file = "$WORK/keys/link.key"

[roles]
officer_groups = ["$OFFICERS"]
EOF

channel() {  # channel NAME APPROVAL SCANNERS TYPES [extra lines]
    cat <<EOF

[channels.$1]
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1
max_file_bytes = "1M"
allowed_types = $4
forbidden_paths = ["*.exe", "*.dll"]
required_answers = ["changes", "reason", "approved_by", "rollback_to"]
scanners = $3
approval = "$2"
keep_releases = 5
EOF
}
ANY_TYPES='["application/octet-stream", "application/json", "text/*"]'
{
    cat <<EOF
[scanners.clamav]
type = "clamd"
socket = "$CLAMD_SOCK"
max_stream_bytes = "1M"
timeout = "20s"
attempts = 2
retry_delay = "1s"
on_error = "hold"

[scanners.hang]
type = "exec"
command = ["$WORK/scanners/hang.sh", "{path}"]
timeout = "1s"
attempts = 1
on_error = "hold"
EOF
    channel auto-ch auto '["clamav"]' "$ANY_TYPES"
    cat <<EOF

[[channels.auto-ch.post_release]]
name = "record"
command = ["$WORK/hooks/record.sh", "{path}", "{version}", "{channel}", "{bundle}"]
timeout = "10s"

[[channels.auto-ch.post_release]]
name = "notify"
command = ["$WORK/hooks/notify.sh", "{version}"]
timeout = "10s"
EOF
    channel manual-ch manual '["clamav"]' "$ANY_TYPES"
    channel tp-ch two-person '["clamav"]' "$ANY_TYPES"
    echo "approvers = 2"
    channel strict-ch auto '["clamav"]' '["text/*", "application/json"]'
    channel hang-ch auto '["hang"]' "$ANY_TYPES"
} > r/policy.toml

cat > s/sender.toml <<EOF
[sender]
state_dir = "state"
spool_dir = "spool"
control_socket = "sender.sock"
passes = 1
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1

[link]
lanes = ["127.0.0.1:$PORT"]
rate = "50M"
heartbeat_interval = "250ms"
key_file = "$WORK/keys/link.key"
EOF

# ---- bundles ------------------------------------------------------------------------------
# payload DIR: a small model release (random weights, JSON config, a text card).
payload() {
    mkdir -p "$1/weights"
    # A fixed first byte: libmagic types random data whose first byte is 0xEB
    # as a DOS COM executable (1 file in 256), which the type rule would refuse.
    { printf 'WEIGHTS\n'; head -c 4088 /dev/urandom; } > "$1/weights/model.bin"
    echo '{"model_type": "tiny", "layers": 2}' > "$1/config.json"
    printf '# model card\nIntended use: the import system test.\n' > "$1/README.txt"
}
# make_bundle NAME CHANNEL VERSION [create options...]: src/NAME (made by payload unless
# it exists) -> bags/NAME -> bundles/NAME.tar; sets ID_<NAME>.
make_bundle() {
    local name=$1 channel=$2 version=$3; shift 3
    [ -d "src/$name" ] || payload "src/$name"
    mkdir -p bags bundles
    local id
    id=$("$SLUICE" bundle create "src/$name" --out "bags/$name" --channel "$channel" --version "$version" \
        --changes "import test $name" --reason "import daemons test" --approved-by "test board" \
        --rollback-to "${ROLLBACK_TO:-0.1.0}" --sign keys/release.key "$@" | tail -n 1)
    "$SLUICE" bundle pack "bags/$name" --out "bundles/$name.tar" >/dev/null
    printf -v "ID_$name" '%s' "$id"
}

make_bundle a100 auto-ch 1.0.0
make_bundle a200 auto-ch 2.0.0
payload src/evil
printf 'You are a helpful assistant. EVIL-PAYLOAD-XYZ\n' > src/evil/prompt.txt
printf 'SLUICE-TEST-MALWARE-MARKER' > src/evil/weights/marker.bin
make_bundle evil auto-ch 2.1.0
make_bundle old auto-ch 1.5.0
ROLLBACK_TO=1.0.0 make_bundle rb auto-ch 1.6.0 --rollback
make_bundle m1 manual-ch 1.0.0
make_bundle t1 tp-ch 1.0.0
mkdir -p src/elf
cp /bin/true src/elf/model.bin
printf 'notes\n' > src/elf/notes.txt
echo '{"kind": "not really a model"}' > src/elf/config.json
make_bundle elf strict-ch 1.0.0
make_bundle hang hang-ch 1.0.0
echo "# bundles made ($(( $(date +%s) - STARTED )) s)"

# ==== 11. policy check and explain (before anything runs) ==================================
cli root pc-good.out policy check r/policy.toml
expect "11 policy check: the test policy is ok (exit 0)" pc-good.out \
    eval "[ $rc -eq 0 ] && grep -q '^r/policy.toml: ok' pc-good.out && grep -q 'channel tp-ch: approval two-person (2 officers)' pc-good.out"
cp r/policy.toml r/broken.toml
printf '\n[channels.broken]\ntrusted_keys = ["%s"]\napproval = "sometimes"\n' "$WORK/keys/release.pub" >> r/broken.toml
BROKEN_LINE=$(grep -n 'approval = "sometimes"' r/broken.toml | cut -d: -f1)
cli root pc-bad.out policy check r/broken.toml
expect "11 policy check: a bad value exits 1" pc-bad.out test "$rc" -eq 1
expect "11 ... naming r/broken.toml:$BROKEN_LINE: channels.broken.approval: and the allowed values" pc-bad.out \
    grep -qE "r/broken.toml:$BROKEN_LINE(:[0-9]+)?: channels\.broken\.approval: .*\"manual\"" pc-bad.out
sed 's/^scanners = \["clamav"\]$/scanners = ["clamscan"]/' r/policy.toml > r/broken2.toml
BROKEN2_LINE=$(grep -n 'scanners = \["clamscan"\]' r/broken2.toml | head -n 1 | cut -d: -f1)
cli root pc-bad2.out policy check r/broken2.toml
expect "11 policy check: an undefined scanner names r/broken2.toml:$BROKEN2_LINE: channels.auto-ch.scanners (exit 1)" pc-bad2.out \
    eval "[ $rc -eq 1 ] && grep -qE 'r/broken2.toml:$BROKEN2_LINE(:[0-9]+)?: channels\.auto-ch\.scanners: .*clamscan' pc-bad2.out"

cli root ex-elf.out policy explain bundles/elf.tar --policy r/policy.toml
expect "11 policy explain: the ELF bundle would be rejected (exit 1)" ex-elf.out test "$rc" -eq 1
expect "11 ... showing each rule: signers, required_answers, file_types (FAIL, naming data/model.bin), version" ex-elf.out \
    eval "grep -q '^pass signers:' ex-elf.out && grep -q '^pass required_answers:' ex-elf.out &&
           grep -q '^FAIL file_types: .*data/model.bin is application/x-' ex-elf.out && grep -q '^pass version:' ex-elf.out &&
           grep -q '^would be: rejected' ex-elf.out"
cli root ex-a100.out policy explain bundles/a100.tar --policy r/policy.toml --json
expect "11 policy explain --json: a clean bundle passes every rule, would be released automatically" ex-a100.out \
    eval "[ $rc -eq 0 ] && json_true ex-a100.out \"d['decision'] == 'pass' and all(r['passed'] for r in d['rules']) and
           {'signers', 'required_answers', 'file_types', 'forbidden_paths', 'version'} <= {r['rule'] for r in d['rules']} and
           'automatically' in d['next']\""

# ==== start the daemons ======================================================================
start_daemon r "$RECEIVER" r/receiver.toml "$RSOCK"; R_PID=$LAST_PID
start_daemon s "$SENDER" s/sender.toml "$SSOCK"; S_PID=$LAST_PID
echo "# daemons up ($(( $(date +%s) - STARTED )) s)"

# Phase 1: one bundle for each channel. They are sent one after another, in this order.
push_ok "1 push the clean auto-ch 1.0.0 bundle" bundles/a100.tar
push_ok "5 push the tp-ch bundle" bundles/t1.tar
push_ok "9 push the manual-ch bundle" bundles/m1.tar
push_ok "4 push the strict-ch bundle holding an ELF binary" bundles/elf.tar
push_ok "3 push the hang-ch bundle" bundles/hang.tar

# ==== 1. a clean bundle on an auto channel ===================================================
wait_state "$ID_a100" 30 released rejected held || true
show_json "$ID_a100" a100.json || true
check "1 the clean bundle is released automatically (state released, approval auto)" json_true a100.json \
    "d['state'] == 'released' and d['approval_mode'] == 'auto'"
check "1 clamd scanned it clean" json_true a100.json \
    "[(s['scanner'], s['verdict']) for s in d['scans']] == [('clamav', 'clean')]"
check "1 releases/auto-ch/1.0.0/ exists" test -d r/releases/auto-ch/1.0.0
check "1 releases/auto-ch/current -> 1.0.0" test "$(current_of auto-ch)" = 1.0.0
check "1 the released payload is the one sent" cmp -s r/releases/auto-ch/current/data/weights/model.bin src/a100/weights/model.bin
cli root verify1.out bundle verify r/releases/auto-ch/current --trust keys
expect "1 sluice bundle verify releases/auto-ch/current --trust keys passes, same bundle id" verify1.out \
    eval "[ $rc -eq 0 ] && [ \"\$(tail -n 1 verify1.out)\" = $ID_a100 ]"
check "1 quarantine/<id> is gone" test ! -e "r/quarantine/$ID_a100"
check "1 the archive left incoming/" test ! -e "r/incoming/$ID_a100.tar"
check "1 the receiver logged event=bundle_released" log_has r.log bundle_released "bundle=$ID_a100"
cli root rel1.out releases auto-ch --socket "$RSOCK"
expect "1 sluice releases auto-ch: '* 1.0.0', released by auto" rel1.out grep -qE '^\* 1\.0\.0 .*\(auto\)' rel1.out

# ==== 10. post-release hooks ===================================================================
check "10 the recording hook ran with {path} {version} {channel} {bundle} filled in" \
    grep -qxF "$WORK/r/releases/auto-ch/1.0.0 1.0.0 auto-ch $ID_a100" hook-args.txt
check "10 show --json: hook record ok, hook notify failed (exit 3), state still released" json_true a100.json \
    "[(h['name'], h['ok']) for h in d['hooks']] == [('record', True), ('notify', False)] and '3' in d['hooks'][1]['result'] and d['state'] == 'released'"
cli root show-a100.out show "${ID_a100:0:12}" --socket "$RSOCK"
expect "10 sluice show: 'hook notify: FAILED', 'hook record: ok', state released" show-a100.out \
    eval "grep -q 'hook notify: FAILED' show-a100.out && grep -q 'hook record: ok' show-a100.out && grep -q '^state  *released' show-a100.out"
check "10 the failed hook is logged as event=post_release_hook_failed" log_has r.log post_release_hook_failed "hook=\"?notify"

# ==== 4. a disallowed file type ===================================================================
wait_state "$ID_elf" 30 rejected released held || true
show_json "$ID_elf" elf.json || true
check "4 the ELF bundle on strict-ch is rejected" json_true elf.json "d['state'] == 'rejected'"
check "4 ... by the file_types rule, which names data/model.bin (and passes nothing else wrong)" json_true elf.json \
    "[r['rule'] for r in d['rules'] if not r['passed']] == ['file_types'] and
     'data/model.bin' in [r for r in d['rules'] if r['rule'] == 'file_types'][0]['detail'] and
     'data/notes.txt' not in [r for r in d['rules'] if r['rule'] == 'file_types'][0]['detail']"
check "4 ... its reason says so" json_true elf.json "'file_types' in d['state_reason'] and 'data/model.bin' in d['state_reason']"
check "4 no scanner ran on it, nothing released on strict-ch" eval \
    "json_true elf.json \"d['scans'] == []\" && [ ! -e r/releases/strict-ch ]" 

# ==== 3. a hanging exec scanner =================================================================
wait_state "$ID_hang" 30 held released rejected || true
show_json "$ID_hang" hang.json || true
check "3 the bundle whose scanner hangs is held" json_true hang.json "d['state'] == 'held'"
check "3 ... the reason names the scanner (hang) and the time-out" json_true hang.json \
    "'scanner hang' in d['state_reason'] and 'timed out' in d['state_reason']"
check "3 ... the scan took about the 1 s time-out, not the scanner's 60 s" json_true hang.json \
    "d['scans'][-1]['verdict'] == 'error' and 900 <= d['scans'][-1]['took_ms'] < 10000"
hang_gone() { ! pgrep -f "sleep $HANG_MARK"; }
wait_until 5 hang_gone || true
check "3 the hung scanner's process group was killed (its sleep child too)" hang_gone
cli root pending1.out pending --socket "$RSOCK"
expect "3 sluice pending lists it as held" pending1.out grep -qE "^${ID_hang:0:16} +hang-ch 1\.0\.0 +held" pending1.out
check "3 nothing released on hang-ch yet" test ! -e r/releases/hang-ch/current
printf '#!/bin/sh\n# fixed: nothing found\nexit 0\n' > scanners/hang.sh.new
chmod 755 scanners/hang.sh.new && mv scanners/hang.sh.new scanners/hang.sh
cli root rescan.out rescan "${ID_hang:0:12}" --socket "$RSOCK"
expect "3 after the fix, sluice rescan succeeds and reports it released (auto channel)" rescan.out \
    eval "[ $rc -eq 0 ] && grep -qE '^${ID_hang:0:16} +hang-ch 1\.0\.0 +released' rescan.out"
show_json "$ID_hang" hang2.json || true
check "3 show: released, the rescan recorded in its history, the scan now clean" json_true hang2.json \
    "d['state'] == 'released' and any(t['note'] == 'rescan requested' and t['actor'] == 'root' for t in d['history']) and d['scans'][-1]['verdict'] == 'clean'"
check "3 releases/hang-ch/current -> 1.0.0" test "$(current_of hang-ch)" = 1.0.0
cli root rescan2.out rescan "${ID_hang:0:12}" --socket "$RSOCK"
expect "3 rescanning a bundle that is not held is refused (exit 1)" rescan2.out \
    eval "[ $rc -eq 1 ] && grep -q 'only a held bundle' rescan2.out"

# ==== 5. two-person approval by real officers ========================================================
wait_state "$ID_t1" 30 pending_approval released rejected held || true
show_json "$ID_t1" t1.json || true
check "5 the tp-ch bundle waits for 2 officers" json_true t1.json \
    "d['state'] == 'pending_approval' and d['approval_mode'] == 'two-person' and d['approvals_required'] == 2 and d['approvals'] == []"
cli "$OUTSIDER" t1-out.out approve "${ID_t1:0:12}" --reason "I am not an officer" --socket "$RSOCK"
expect "5 the outsider's approval is refused (exit 1)" t1-out.out test "$rc" -eq 1
expect "5 ... naming the officer role and the group $OFFICERS" t1-out.out \
    grep -qE "permission denied: $OUTSIDER needs the officer role .*$OFFICERS" t1-out.out
cli "$OFFICER_A" t1-a.out approve "${ID_t1:0:12}" --reason "eval report reviewed" --socket "$RSOCK"
expect "5 officer A approves (exit 0): 1 of 2, waiting for another officer" t1-a.out \
    eval "[ $rc -eq 0 ] && grep -q '1 of 2 approval(s) ($OFFICER_A)' t1-a.out && grep -q 'waiting for another officer' t1-a.out"
show_json "$ID_t1" t1-1.json || true
check "5 ... the bundle stays pending_approval with A's approval recorded" json_true t1-1.json \
    "d['state'] == 'pending_approval' and [a['user'] for a in d['approvals']] == ['$OFFICER_A']"
check "5 ... nothing released on tp-ch yet" test ! -e r/releases/tp-ch/current
cli "$OFFICER_A" t1-aa.out approve "${ID_t1:0:12}" --reason "approving twice" --socket "$RSOCK"
expect "5 officer A approving again is refused (exit 1): already approved" t1-aa.out \
    eval "[ $rc -eq 1 ] && grep -q '$OFFICER_A already approved' t1-aa.out"
cli "$OFFICER_B" t1-b.out approve "${ID_t1:0:12}" --reason "second look, fine" --socket "$RSOCK"
expect "5 officer B approves (exit 0): approved and released" t1-b.out \
    eval "[ $rc -eq 0 ] && grep -q '^approved and released tp-ch 1.0.0' t1-b.out"
show_json "$ID_t1" t1-2.json || true
check "5 show --json: released, approvers A and B by user name with their reasons" json_true t1-2.json \
    "d['state'] == 'released' and [(a['user'], a['reason']) for a in d['approvals']] == [('$OFFICER_A', 'eval report reviewed'), ('$OFFICER_B', 'second look, fine')]"
check "5 releases/tp-ch/current -> 1.0.0" test "$(current_of tp-ch)" = 1.0.0
cli root rel-tp.out releases tp-ch --socket "$RSOCK"
expect "5 sluice releases tp-ch names both officers as released_by" rel-tp.out \
    grep -qE "^\* 1\.0\.0 .*\($OFFICER_A, $OFFICER_B\)" rel-tp.out
check "5 the audit trail (log) has approval_recorded by A and bundle_approved by B" eval \
    "grep 'event=approval_recorded' r.log | grep -q 'actor=$OFFICER_A' && grep 'event=bundle_approved' r.log | grep 'bundle=$ID_t1' | grep -q 'actor=$OFFICER_B'"

# ==== 12. the outsider cannot reject or roll back ==========================================
wait_state "$ID_m1" 30 pending_approval released rejected held || true
cli "$OUTSIDER" m1-rej.out reject "${ID_m1:0:12}" --reason "I do not like it" --socket "$RSOCK"
expect "12 the outsider's reject is refused (exit 1), naming the officer role" m1-rej.out \
    eval "[ $rc -eq 1 ] && grep -qE 'permission denied: $OUTSIDER needs the officer role .*$OFFICERS' m1-rej.out"
cli "$OUTSIDER" rb-out.out rollback auto-ch --reason "sabotage" --socket "$RSOCK"
expect "12 the outsider's rollback is refused (exit 1), naming the officer role" rb-out.out \
    eval "[ $rc -eq 1 ] && grep -qE 'permission denied: $OUTSIDER needs the officer role .*$OFFICERS' rb-out.out"
cli "$OUTSIDER" m1-pend.out pending --socket "$RSOCK"
expect "12 the outsider cannot even list pending imports: any role would do, the officers' group among them" m1-pend.out \
    eval "[ $rc -eq 1 ] && grep -qE 'permission denied: $OUTSIDER needs the operator, officer or auditor role .*$OFFICERS' m1-pend.out"
check "12 ... the manual-ch bundle is still pending, current auto-ch still 1.0.0" eval \
    "[ \"\$(state_of $ID_m1)\" = pending_approval ] && [ \"\$(current_of auto-ch)\" = 1.0.0 ]"
check "12 no rollback was logged" not log_has r.log channel_rolled_back
echo "# phase 1 done ($(( $(date +%s) - STARTED )) s)"

# ==== 6. a replay through the diode ===========================================================
A100_BEFORE=$(sha256sum "r/state/import/imports/$ID_a100.json" | cut -d' ' -f1)
# Either layer may stop it: the transfer layer knows the transfer was delivered, the
# importer knows the bundle id. Count the events this second push adds.
replays() { echo $(( $(log_count r.log bundle_replayed "bundle=$ID_a100") + $(log_count r.log transfer_already_delivered "bundle=$ID_a100") )); }
REPLAYS_BEFORE=$(replays)
push_ok "6 push the released 1.0.0 archive again" bundles/a100.tar
more_replays() { [ "$(replays)" -gt "$REPLAYS_BEFORE" ]; }
sent_twice() { [ "$(log_count s.log bundle_sent "bundle=$ID_a100")" -eq 2 ]; }
wait_until 30 more_replays || true
wait_until 10 sent_twice || true
check "6 the sender sent it a second time" sent_twice
if [ "$(log_count r.log bundle_replayed "bundle=$ID_a100")" -gt 0 ]; then
    ok "6 the replayed bundle reached the importer, which logged event=bundle_replayed"
elif [ "$(replays)" -gt "$REPLAYS_BEFORE" ]; then
    ok "6 the receiver's transfer layer dropped the replay as already delivered (event=transfer_already_delivered)"
else
    bad "6 the replay was neither dropped by the transfer layer nor reported by the importer"
fi
check "6 the replay left no archive in incoming/ and no quarantine" eval \
    "[ ! -e r/incoming/$ID_a100.tar ] && [ ! -e r/quarantine/$ID_a100 ]"

# ==== 1. / 6. a higher version, a flagged one and an older one on auto-ch =========================
push_ok "6 push auto-ch 2.0.0" bundles/a200.tar
wait_state "$ID_a200" 30 released rejected held || true
check "6 auto-ch 2.0.0 is released, current -> 2.0.0" eval \
    "[ \"\$(state_of $ID_a200)\" = released ] && [ \"\$(current_of auto-ch)\" = 2.0.0 ]"
check "10 the recording hook ran for 2.0.0 too" grep -qxF "$WORK/r/releases/auto-ch/2.0.0 2.0.0 auto-ch $ID_a200" hook-args.txt

# ==== 2. clamd finds something =======================================================================
push_ok "2 push auto-ch 2.1.0 carrying two test signatures" bundles/evil.tar
push_ok "6 push auto-ch 1.5.0 (older than the released 2.0.0, not a rollback)" bundles/old.tar
wait_state "$ID_evil" 30 rejected released held || true
show_json "$ID_evil" evil.json || true
check "2 the flagged bundle is rejected" json_true evil.json "d['state'] == 'rejected'"
check "2 show --json names data/prompt.txt: Sluice.Test.Ndb.UNOFFICIAL" json_true evil.json \
    "any(f['path'] == 'data/prompt.txt' and f['signature'] == 'Sluice.Test.Ndb.UNOFFICIAL' for s in d['scans'] for f in s['findings'])"
check "2 ... and data/weights/marker.bin: Sluice.Test.Hash.UNOFFICIAL" json_true evil.json \
    "any(f['path'] == 'data/weights/marker.bin' and f['signature'] == 'Sluice.Test.Hash.UNOFFICIAL' for s in d['scans'] for f in s['findings'])"
check "2 ... and no clean file is named" json_true evil.json \
    "all(f['path'] in ('data/prompt.txt', 'data/weights/marker.bin') for s in d['scans'] for f in s['findings'])"
cli root show-evil.out show "${ID_evil:0:12}" --socket "$RSOCK"
expect "2 sluice show (text) names the file and the signature" show-evil.out \
    grep -qE 'data/prompt.txt: Sluice\.Test\.Ndb\.UNOFFICIAL' show-evil.out
check "2 the reason says scanner clamav found it" json_true evil.json "d['state_reason'].startswith('scanner clamav found')"
check "2 nothing released: no releases/auto-ch/2.1.0, current still 2.0.0" eval \
    "[ ! -e r/releases/auto-ch/2.1.0 ] && [ \"\$(current_of auto-ch)\" = 2.0.0 ]"
check "2 the recording hook did not run for it" not grep -q " 2.1.0 " hook-args.txt

wait_state "$ID_old" 30 rejected released held pending_approval || true
show_json "$ID_old" old.json || true
check "6 the older version 1.5.0 is rejected by the version rule alone" json_true old.json \
    "d['state'] == 'rejected' and [r['rule'] for r in d['rules'] if not r['passed']] == ['version']"
check "6 ... which says it is not newer than 2.0.0 and points at --rollback" json_true old.json \
    "'not newer than 2.0.0' in d['state_reason'] and '--rollback' in d['state_reason']"
check "6 ... nothing released: current still 2.0.0" eval "[ ! -e r/releases/auto-ch/1.5.0 ] && [ \"\$(current_of auto-ch)\" = 2.0.0 ]"

# ==== 7. a signed rollback bundle =====================================================================
push_ok "7 push a signed rollback bundle auto-ch 1.6.0 (--rollback)" bundles/rb.tar
wait_state "$ID_rb" 30 pending_approval released rejected held || true
show_json "$ID_rb" rb.json || true
check "7 the rollback bundle waits for one officer even on the auto channel" json_true rb.json \
    "d['state'] == 'pending_approval' and d['release'].get('rollback') is True and d['approvals_required'] == 1"
check "7 ... its history says a signed rollback needs an officer" json_true rb.json \
    "'signed rollback' in d['history'][-1]['note']"
check "7 ... current still 2.0.0" test "$(current_of auto-ch)" = 2.0.0
cli root pending-rb.out pending --socket "$RSOCK"
expect "7 sluice pending shows it as a rollback" pending-rb.out \
    grep -qE "^${ID_rb:0:16} +auto-ch 1\.6\.0 \(rollback\) +pending_approval" pending-rb.out
cli "$OFFICER_A" rb-a.out approve "${ID_rb:0:12}" --reason "2.0.0 regressed; back to 1.6.0" --socket "$RSOCK"
expect "7 officer A approves it: released" rb-a.out eval "[ $rc -eq 0 ] && grep -q '^approved and released auto-ch 1.6.0' rb-a.out"
check "7 releases/auto-ch/current -> 1.6.0" test "$(current_of auto-ch)" = 1.6.0
cli root verify7.out bundle verify r/releases/auto-ch/current --trust keys
expect "7 the current release verifies and is the rollback bundle" verify7.out \
    eval "[ $rc -eq 0 ] && [ \"\$(tail -n 1 verify7.out)\" = $ID_rb ]"

# ==== 8. sluice rollback ===========================================================================
cli root rb1.out rollback auto-ch --reason "1.6.0 misbehaves" --socket "$RSOCK"
expect "8 sluice rollback auto-ch: back to 1.6.0's rollback_to (1.0.0), at once" rb1.out \
    eval "[ $rc -eq 0 ] && grep -q 'current 1.6.0 -> 1.0.0' rb1.out && [ \"\$(readlink r/releases/auto-ch/current)\" = 1.0.0 ]"
cli root rb2.out rollback auto-ch --to 2.0.0 --reason "forward to 2.0.0 again" --socket "$RSOCK"
expect "8 sluice rollback --to 2.0.0 switches to it" rb2.out \
    eval "[ $rc -eq 0 ] && grep -q 'current 1.0.0 -> 2.0.0' rb2.out && [ \"\$(readlink r/releases/auto-ch/current)\" = 2.0.0 ]"
cli root rb3.out rollback auto-ch --to 0.5.0 --reason "no such version" --socket "$RSOCK"
expect "8 --to a version not kept fails (exit 1), saying it is not kept and listing what is" rb3.out \
    eval "[ $rc -eq 1 ] && grep -q 'version 0.5.0 of channel auto-ch is not kept here (kept: .*1.0.0' rb3.out && [ \"\$(readlink r/releases/auto-ch/current)\" = 2.0.0 ]"
cli root rb4.out rollback auto-ch --to 2.0.0 --reason "already there" --socket "$RSOCK"
expect "8 --to the current version fails (exit 1)" rb4.out \
    eval "[ $rc -eq 1 ] && grep -q 'already the current release' rb4.out"
cli root rel8.out releases auto-ch --socket "$RSOCK"
expect "8 sluice releases marks 2.0.0 (and only it) current with *" rel8.out \
    eval "[ \"\$(grep -c '^\* ' rel8.out)\" = 1 ] && grep -q '^\* 2\.0\.0 ' rel8.out && grep -q '^  1\.6\.0 .*($OFFICER_A)' rel8.out && grep -q '^  1\.0\.0 ' rel8.out"
cli root rel8j.out releases auto-ch --json --socket "$RSOCK"
expect "8 sluice releases --json: 1.0.0, 1.6.0, 2.0.0 kept, only 2.0.0 current" rel8j.out \
    json_true rel8j.out "sorted(e['version'] for e in d) == ['1.0.0', '1.6.0', '2.0.0'] and [e['version'] for e in d if e['current']] == ['2.0.0']"
check "8 the rollbacks are logged with the officer's name (root) and reason" eval \
    "[ \"\$(grep 'event=channel_rolled_back' r.log | grep -c 'actor=root')\" = 2 ]"

# ==== 9. a restart keeps a pending approval (6: and replays an archive left in incoming/) ==========
cli root pending9a.out pending --socket "$RSOCK"
check "9 before the restart, sluice pending lists the manual-ch bundle" grep -qE "^${ID_m1:0:16} +manual-ch 1\.0\.0 +pending_approval" pending9a.out
stop_process "$R_PID" TERM
check "9 receiver: SIGTERM exits 0" test "$rc" -eq 0
# A replay the importer itself must see: the same archive in incoming/ when it starts.
cp bundles/a100.tar "r/incoming/$ID_a100.tar"
IMPORTER_REPLAYS=$(log_count r.log bundle_replayed "bundle=$ID_a100")
start_daemon r "$RECEIVER" r/receiver.toml "$RSOCK"; R_PID=$LAST_PID
cli root pending9b.out pending --socket "$RSOCK"
expect "9 after the restart, sluice pending still lists it, 0 of 1 approvals" pending9b.out \
    grep -qE "^${ID_m1:0:16} +manual-ch 1\.0\.0 +pending_approval +0 of 1 approval" pending9b.out
wait_until 10 test ! -e "r/incoming/$ID_a100.tar" || true
check "6 the archive replayed into incoming/ is discarded (event=bundle_replayed, naming the earlier import)" eval \
    "[ \$(log_count r.log bundle_replayed bundle=$ID_a100) -gt $IMPORTER_REPLAYS ] && [ ! -e r/incoming/$ID_a100.tar ] &&
     grep 'event=bundle_replayed' r.log | grep 'bundle=$ID_a100' | tail -n 1 | grep -q 'imported before'"
check "6 ... and its import record is unchanged" test "$(sha256sum "r/state/import/imports/$ID_a100.json" | cut -d' ' -f1)" = "$A100_BEFORE"
check "6 ... and the hook did not run again for 1.0.0" test "$(grep -c " 1.0.0 auto-ch $ID_a100\$" hook-args.txt)" = 1
cli "$OFFICER_B" m1-b.out approve "${ID_m1:0:12}" --reason "checked after the restart" --socket "$RSOCK"
expect "9 officer B approves it after the restart: released" m1-b.out \
    eval "[ $rc -eq 0 ] && grep -q '^approved and released manual-ch 1.0.0' m1-b.out"
check "9 releases/manual-ch/current -> 1.0.0, quarantine gone" eval \
    "[ \"\$(current_of manual-ch)\" = 1.0.0 ] && [ ! -e r/quarantine/$ID_m1 ]"
cli root pending9c.out pending --socket "$RSOCK"
expect "9 now nothing waits" pending9c.out grep -qx 'nothing waits' pending9c.out
cli root pending-all.out pending --all --json --socket "$RSOCK"
expect "pending --all --json: every import with its final state" pending-all.out json_true pending-all.out \
    "{x['bundle'][:8]: x['state'] for x in d} == {'${ID_a100:0:8}': 'released', '${ID_a200:0:8}': 'released', '${ID_evil:0:8}': 'rejected', '${ID_old:0:8}': 'rejected', '${ID_rb:0:8}': 'released', '${ID_m1:0:8}': 'released', '${ID_t1:0:8}': 'released', '${ID_elf:0:8}': 'rejected', '${ID_hang:0:8}': 'released'}"
check "8 the rollback survived the restart: current auto-ch still 2.0.0" test "$(current_of auto-ch)" = 2.0.0

# ==== 11. policy explain against the receiver's history ======================================
cli root ex-old.out policy explain bundles/a100.tar --config r/receiver.toml
expect "11 policy explain --config: 1.0.0 again fails the version rule (already released), exit 1" ex-old.out \
    eval "[ $rc -eq 1 ] && grep -q '^FAIL version: version 1.0.0 was already released on channel auto-ch' ex-old.out && grep -q '^pass signers:' ex-old.out"

# ---- stop ---------------------------------------------------------------------------------------
stop_process "$S_PID" TERM
check "sender: SIGTERM exits 0" test "$rc" -eq 0
stop_process "$R_PID" TERM
check "receiver: SIGTERM exits 0" test "$rc" -eq 0
check "no process left running" test "${#PIDS[@]}" -eq 0
check "no internal error was logged" not grep -qE 'event=(import_internal_error|release_failed|import_deferred)' r.log

echo "system: import daemons: $passed passed, $failed failed in $(( $(date +%s) - STARTED )) s"
FINISHED=1
if [ "$failed" -ne 0 ]; then dump_logs "$WORK"/*.log "$WORK"/clamd/clamd.log; exit 1; fi
