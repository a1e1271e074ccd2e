#!/usr/bin/env bash
# System test of the audit log (docs/audit.md): the real sluice-sender and sluice-receiver
# on 127.0.0.1 (one lane, a link key), an exec scanner that passes, real Unix users in a
# real auditor group and a real officer group, `sluice audit` as an auditor uses it, and
# the Debian sqlite3 shell to tamper with copies of the receiver's audit.db.
#
#   tests/system/audit_daemons.sh path/to/sluice path/to/sluice-sender path/to/sluice-receiver
#
# Needs root (it creates and removes Unix users and groups), python3, runuser, useradd
# and sqlite3. Without them it exits 77 (skipped), or fails when CI is set.
#
# Scenarios (each check is labelled with its number):
#   1  models 1.0.0 and 1.1.0 cross the diode, wait for the officer (manual channel), who
#      approves each (released) and then rolls the channel back to 1.0.0
#   2  `audit trace --format json` (auditor): the sender's events (upstream) then the
#      receiver's, in order, with the pusher (root) and the officer as actors
#   3  `audit report` (--json and table): the four answers as given to `bundle create`,
#      the officer's approval with its reason, the release, the rollback
#   4  `audit query`: --actor OFFICER is exactly the officer's events; --event as CSV;
#      --since in the future matches nothing
#   5  `audit export` jsonl, csv, cef, syslog: one line per event (csv: + header)
#   6  roles: the outsider and the officer are refused (the auditor role is named); root
#      and the auditor may; `audit query --sender` asks the sender's log
#   7  gaps: a bundle sent while the receiver hears nothing of it (receiver stopped with
#      SIGSTOP behind a full receive buffer) -> transfer_missed -> `audit gaps`: never_seen
#   8  verify: over the socket and offline (a shutdown checkpoint), then tampered copies:
#      an edited, a deleted, the last rows removed, a forged checkpoint, an edited upstream
#      row, the wrong key
#   9  a restarted receiver continues the chain: new events link to the old head, verify ok
# Set SLUICE_KEEP_WORK=1 to keep the work directory.
# shellcheck disable=SC2154  # ID_<name> variables are set by make_bundle (printf -v)
set -euo pipefail

usage="usage: audit_daemons.sh SLUICE SLUICE-SENDER SLUICE-RECEIVER"
SLUICE=$(realpath "${1:?$usage}")
SENDER=$(realpath "${2:?$usage}")
RECEIVER=$(realpath "${3:?$usage}")
# A missing prerequisite skips the test (exit 77) on a developer's machine, and fails it in CI.
skip() {
    if [ -n "${CI:-}" ]; then echo "audit_daemons: FAIL: $* (CI is set: the CI host must provide this)" >&2; exit 1; fi
    echo "audit_daemons: SKIPPED: $*"; exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (it creates Unix users and groups for the auditor and officer roles)"
for tool in python3 runuser useradd userdel groupadd groupdel sqlite3; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done
PY=$(python3 -I -c 'import sys; print(sys.executable)')
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

umask 022
# In /tmp rather than $TMPDIR: the auditor and the officer (other Unix users) must be
# able to reach the control sockets, and socket paths hold at most 107 bytes.
WORK=$(mktemp -d /tmp/sluice-audit-XXXXXX)
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
    stop_all
    remove_accounts audit_daemons
    finish_work audit_daemons "$rc" "$WORK"/*.log
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ok, bad, check, expect, log_has, alive, forget_pid, not, wait_until, stop_process, start_daemon,
# stop_all, remove_accounts, dump_logs
source "$HERE/lib/daemons.sh"

free_port() {
    "$PY" -I -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json_true FILE EXPR: succeeds when the Python expression EXPR (which may span lines)
# is true of the JSON document `d`; `env` holds the environment (for values with quotes).
json_true() {
    "$PY" -I -c 'import json, os, sys; env = os.environ; d = json.load(open(sys.argv[1])); sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$1" "$2"
}
# check_json WHAT FILE EXPR SHOW: like check with json_true, and on failure shows what the
# Python expression SHOW gives for the document.
check_json() {
    local what=$1 file=$2 expr=$3 show=$4
    if json_true "$file" "$expr" >/dev/null 2>&1; then ok "$what"
    else bad "$what"; echo "#     got: $(json_get "$file" "$show" 2>&1 | head -c 600)"; fi
}
# json_get FILE EXPR: prints the Python expression EXPR of the JSON document `d`.
json_get() { "$PY" -I -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

log_count() { { grep -E "event=$2( |\$)" "$1" | grep -cE -- "${3:-.}"; } || true; }
# log_value FILE EVENT KEY: KEY=value of the last log line with event=EVENT.
log_value() { grep -E "event=$2( |\$)" "$1" | tail -n 1 | grep -oE "(^| )$3=[^ ]*" | cut -d= -f2; }

# ---- the users' tools ------------------------------------------------------------------
RSOCK=$WORK/r/receiver.sock
SSOCK=$WORK/s/sender.sock

# cli WHO OUT ARGS...: runs `sluice ARGS` as WHO (root, or a test user through runuser)
# with stdout in OUT and stderr in OUT.err; sets rc to its exit status.
cli() {
    local who=$1 out=$2; shift 2
    rc=0
    if [ "$who" = root ]; then "$SLUICE" "$@" >"$out" 2>"$out.err" || rc=$?
    else runuser -u "$who" -- "$USER_SLUICE" "$@" >"$out" 2>"$out.err" || rc=$?; fi
}
# audit_as WHO OUT ARGS...: `sluice audit ARGS` against the receiver's socket.
audit_as() { local who=$1 out=$2; shift 2; cli "$who" "$out" audit "$@" --socket "$RSOCK"; }


# push_ok WHAT ARCHIVE: a push to the sender (as root) that must be queued.
push_ok() {
    local what=$1 path=$2
    cli root push.out push "$path" --socket "$SSOCK"
    if [ "$rc" -eq 0 ] && grep -q '^queued ' push.out; then ok "$what"
    else bad "$what (exit $rc: $(cat push.out push.out.err))"; fi
}

# ---- users, keys --------------------------------------------------------------------------
AUDITORS=saud$$             # the auditor group of both daemons
OFFICERS=saof$$             # the officer group of both daemons
OTHERS=saot$$               # everyone's primary group
AUDITOR=saa$$
OFFICER=sao$$               # an officer, not an auditor
OUTSIDER=sax$$              # neither
for g in "$AUDITORS" "$OFFICERS" "$OTHERS"; do groupadd "$g"; GROUPS_MADE+=("$g"); done
useradd -M -N -g "$OTHERS" -G "$AUDITORS" -s /usr/sbin/nologin -d /nonexistent "$AUDITOR"; USERS_MADE=("$AUDITOR" "${USERS_MADE[@]}")
useradd -M -N -g "$OTHERS" -G "$OFFICERS" -s /usr/sbin/nologin -d /nonexistent "$OFFICER"; USERS_MADE=("$OFFICER" "${USERS_MADE[@]}")
useradd -M -N -g "$OTHERS" -s /usr/sbin/nologin -d /nonexistent "$OUTSIDER"; USERS_MADE=("$OUTSIDER" "${USERS_MADE[@]}")
OFFICER_UID=$(id -u "$OFFICER")
# The users run the same binary, if they can reach it (a private checkout may not be).
USER_SLUICE=$SLUICE
if ! runuser -u "$OUTSIDER" -- test -x "$SLUICE"; then
    mkdir -p bin && cp "$SLUICE" bin/sluice && USER_SLUICE=$WORK/bin/sluice
    echo "# $SLUICE is not reachable by other users: they run a copy, $USER_SLUICE"
fi
check "the test users exist: only $AUDITOR in $AUDITORS, only $OFFICER in $OFFICERS" eval \
    "id -nG $AUDITOR | grep -qw $AUDITORS && ! id -nG $AUDITOR | grep -qw $OFFICERS &&
     id -nG $OFFICER | grep -qw $OFFICERS && ! id -nG $OFFICER | grep -qw $AUDITORS &&
     ! id -nG $OUTSIDER | grep -qwE '$AUDITORS|$OFFICERS'"
# Exports are written by the auditor (and tried by the officer): a directory of each.
mkdir exports exports-officer && chown "$AUDITOR" exports && chown "$OFFICER" exports-officer

"$SLUICE" keygen release --dir keys >/dev/null
head -c 32 /dev/urandom > keys/link.key && chmod 600 keys/link.key

# ---- receiver, policy, sender ---------------------------------------------------------------
PORT=$(free_port)
mkdir -p r s
# receive_buffer: large enough for a whole bundle (scenario 7 fills it on purpose).
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
receive_buffer = "1M"
heartbeat_interval = "250ms"
key_file = "$WORK/keys/link.key"

[roles]
officer_groups = ["$OFFICERS"]
auditor_groups = ["$AUDITORS"]
EOF

cat > r/policy.toml <<EOF
# An exec scanner that finds nothing: the test is about the audit trail, not scanning.
[scanners.pass]
type = "exec"
command = ["/bin/sh", "-c", "exit 0", "sh", "{path}"]
timeout = "20s"
attempts = 1
on_error = "hold"

[channels.models]
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1
allowed_types = ["application/octet-stream", "application/json", "text/*"]
required_answers = ["changes", "reason", "approved_by", "rollback_to"]
scanners = ["pass"]
approval = "manual"
keep_releases = 5
EOF

# passes = 1: a bundle that misses the receiver is gone (scenario 7).
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

[roles]
officer_groups = ["$OFFICERS"]
auditor_groups = ["$AUDITORS"]
EOF

# ---- bundles ----------------------------------------------------------------------------------
# payload DIR: a small model release (3 files: random weights, JSON config, a text card).
payload() {
    mkdir -p "$1/weights"
    # A fixed first byte: libmagic types random data whose first byte is 0xEB
    # as a DOS COM executable (1 file in 256), which the type rule would refuse.
    { printf 'WEIGHTS\n'; head -c 2040 /dev/urandom; } > "$1/weights/model.bin"
    echo '{"model_type": "tiny", "layers": 2}' > "$1/config.json"
    printf '# model card\nIntended use: the audit system test.\n' > "$1/README.txt"
}
# make_bundle NAME VERSION CHANGES REASON APPROVED_BY ROLLBACK_TO [create options...]:
# src/NAME -> bags/NAME -> bundles/NAME.tar on channel models; sets ID_<NAME>.
make_bundle() {
    local name=$1 version=$2 changes=$3 reason=$4 approved_by=$5 rollback_to=$6; shift 6
    payload "src/$name"
    mkdir -p bags bundles
    local id
    id=$("$SLUICE" bundle create "src/$name" --out "bags/$name" --channel models --version "$version" \
        --changes "$changes" --reason "$reason" --approved-by "$approved_by" \
        --rollback-to "$rollback_to" --sign keys/release.key "$@" | tail -n 1)
    "$SLUICE" bundle pack "bags/$name" --out "bundles/$name.tar" >/dev/null
    printf -v "ID_$name" '%s' "$id"
}
# The four answers, kept to compare with what the audit log reports (exported: json_true reads them).
export C100="first audited model: 2 layers, 2k weights" R100="baseline for the audit trail" \
       A100="model review board (MRB-100)"
export C110="retrained on the March data" R110="accuracy +2 points, fewer refusals" \
       A110="model review board (MRB-110)"
make_bundle m100 1.0.0 "$C100" "$R100" "$A100" 0.9.0
make_bundle m110 1.1.0 "$C110" "$R110" "$A110" 1.0.0 --previous 1.0.0
make_bundle m120 1.2.0 "never arrives" "the gap scenario" "model review board (MRB-120)" 1.1.0 --previous 1.1.0
export ID_m100 ID_m110 ID_m120 OFFICER AUDITOR
export APPROVE100="eval report MRB-100 reviewed" APPROVE110="eval report MRB-110 reviewed, \"go\"" \
       ROLLBACK_REASON="1.1.0 regressed on the holdout set"
echo "# bundles made ($(( $(date +%s) - STARTED )) s)"

# ==== 1. two releases and a rollback ========================================================
start_daemon r "$RECEIVER" r/receiver.toml "$RSOCK"; R_PID=$LAST_PID
start_daemon s "$SENDER" s/sender.toml "$SSOCK"; S_PID=$LAST_PID
echo "# daemons up ($(( $(date +%s) - STARTED )) s)"
R_FPR=$(log_value r.log audit_key_created fingerprint)
S_FPR=$(log_value s.log audit_key_created fingerprint)
export R_FPR S_FPR
check "1 each daemon created its audit key (r/state/audit.pub, s/state/audit.pub), two different keys" eval \
    "[ -s r/state/audit.pub ] && [ -s s/state/audit.pub ] && [ \${#R_FPR} -eq 64 ] && [ \${#S_FPR} -eq 64 ] && [ '$R_FPR' != '$S_FPR' ]"

push_ok "1 push models 1.0.0 (as root)" bundles/m100.tar
wait_state "$ID_m100" 30 pending_approval released rejected held || true
check "1 models 1.0.0 crossed the diode and waits for an officer (pending_approval)" test "$(state_of "$ID_m100")" = pending_approval
cli "$OFFICER" ap100.out approve "${ID_m100:0:12}" --reason "$APPROVE100" --socket "$RSOCK"
expect "1 the officer approves 1.0.0: approved and released" ap100.out \
    eval "[ $rc -eq 0 ] && grep -q '^approved and released models 1.0.0' ap100.out"
check "1 releases/models/current -> 1.0.0" test "$(current_of models)" = 1.0.0

push_ok "1 push models 1.1.0 (rollback_to 1.0.0)" bundles/m110.tar
wait_state "$ID_m110" 30 pending_approval released rejected held || true
check "1 models 1.1.0 waits for an officer" test "$(state_of "$ID_m110")" = pending_approval
cli "$OFFICER" ap110.out approve "${ID_m110:0:12}" --reason "$APPROVE110" --socket "$RSOCK"
expect "1 the officer approves 1.1.0: approved and released" ap110.out \
    eval "[ $rc -eq 0 ] && grep -q '^approved and released models 1.1.0' ap110.out"
check "1 releases/models/current -> 1.1.0" test "$(current_of models)" = 1.1.0

cli "$OFFICER" rb.out rollback models --reason "$ROLLBACK_REASON" --socket "$RSOCK"
expect "1 the officer rolls models back: current 1.1.0 -> 1.0.0" rb.out \
    eval "[ $rc -eq 0 ] && grep -q 'current 1.1.0 -> 1.0.0' rb.out && [ \"\$(current_of models)\" = 1.0.0 ]"
echo "# phase 1 done ($(( $(date +%s) - STARTED )) s)"

# ==== 2. the trace of 1.0.0, across both sides ====================================================
audit_as "$AUDITOR" trace100.json trace "${ID_m100:0:12}" --format json
expect "2 the auditor's audit trace --format json succeeds (exit 0) and is a JSON array" trace100.json \
    eval "[ $rc -eq 0 ] && json_true trace100.json 'isinstance(d, list) and len(d) > 0'"
check "2 every record names bundle 1.0.0 in full, on channel models" json_true trace100.json \
    "all(r['bundle'] == env['ID_m100'] and r['channel'] == 'models' for r in d)"
check "2 the sender's events arrived with the bundle, marked upstream: exactly bundle_submitted (root), bundle_verified, bundle_queued, pass_started" \
    json_true trace100.json \
    "[(r['side'], r['event'], r['actor']) for r in d if r.get('upstream') is True] ==
     [('sender', 'bundle_submitted', 'root'), ('sender', 'bundle_verified', 'system'),
      ('sender', 'bundle_queued', 'system'), ('sender', 'pass_started', 'system')]"
check "2 ... numbered 1, 2, 3, 4 in the sender's chain, each linked to the one before" json_true trace100.json \
    "[r['seq'] for r in d if r.get('upstream')] == [1, 2, 3, 4] and
     all(b['prev_hash'] == a['hash'] for a, b in zip([r for r in d if r.get('upstream')], [r for r in d if r.get('upstream')][1:]))"
check "2 the receiver's own records are not marked upstream and are all side receiver" json_true trace100.json \
    "all(r['side'] == 'receiver' for r in d if not r.get('upstream')) and any(not r.get('upstream') for r in d)"
# (approval_recorded and bundle_approved both stand for the officer's approval here.)
check "2 the receiver's events, in order: transfer_started, bundle_received, bundle_quarantined, approval_pending, the approval, release_started, bundle_released (each once)" \
    json_true trace100.json \
    "[e for i, e in enumerate(k) if i == 0 or e != k[i - 1] or e != 'approval'] ==
     ['transfer_started', 'bundle_received', 'bundle_quarantined', 'approval_pending', 'approval', 'release_started', 'bundle_released']
     for k in [[{'bundle_approved': 'approval', 'approval_recorded': 'approval'}.get(r['event'], r['event']) for r in d
                if not r.get('upstream') and r['event'] in ('transfer_started', 'bundle_received', 'bundle_quarantined',
                  'approval_pending', 'bundle_approved', 'approval_recorded', 'release_started', 'bundle_released')]]"
check "2 the sender's events come first: pass_started before transfer_started" json_true trace100.json \
    "[r['event'] for r in d].index('pass_started') < [r['event'] for r in d].index('transfer_started') and
     max(i for i, r in enumerate(d) if r.get('upstream')) < min(i for i, r in enumerate(d) if not r.get('upstream'))"
check "2 bundle_approved: actor $OFFICER, outcome approved, its reason and uid $OFFICER_UID" json_true trace100.json \
    "[(r['actor'], r['outcome'], r['details'].get('reason'), r['details'].get('uid')) for r in d if r['event'] == 'bundle_approved'] ==
     [(env['OFFICER'], 'approved', env['APPROVE100'], $OFFICER_UID)] and
     all(r['actor'] == env['OFFICER'] for r in d if r['event'] == 'approval_recorded')"
check "2 every other receiver event of the import is by system" json_true trace100.json \
    "all(r['actor'] == 'system' for r in d if not r.get('upstream') and r['event'] not in ('bundle_approved', 'approval_recorded', 'channel_rolled_back'))"
check "2 the rollback back to 1.0.0 is in its trace: channel_rolled_back by $OFFICER, 1.1.0 -> 1.0.0, with the reason" json_true trace100.json \
    "[(r['actor'], r['details'].get('from'), r['details'].get('to'), r['details'].get('reason')) for r in d if r['event'] == 'channel_rolled_back'] ==
     [(env['OFFICER'], '1.1.0', '1.0.0', env['ROLLBACK_REASON'])]"
check "2 bundle_submitted carries the release answers as given to bundle create" json_true trace100.json \
    "[(r['details']['version'], r['details']['release']['changes'], r['details']['release']['reason'],
       r['details']['release']['approved_by'], r['details']['release']['rollback_to']) for r in d if r['event'] == 'bundle_submitted'] ==
     [('1.0.0', env['C100'], env['R100'], env['A100'], '0.9.0')]"
check "2 upstream_events_recorded lists (seq, hash) of exactly the 4 sender events, signed by the sender's audit key" json_true trace100.json \
    "[(x['details']['count'], x['details']['signed_by'], [tuple(e) for e in x['details']['events']]) for x in d if x['event'] == 'upstream_events_recorded'] ==
     [(4, env['S_FPR'], [(r['seq'], r['hash']) for r in d if r.get('upstream')])]"
PAYLOAD100=$(find src/m100 -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')
check_json "2 approval_pending counts the payload: 3 files (weights/model.bin, config.json, README.txt), $PAYLOAD100 bytes" trace100.json \
    "[(r['details'].get('payload_files'), r['details'].get('payload_bytes')) for r in d if r['event'] == 'approval_pending'] == [(3, $PAYLOAD100)]" \
    "[(r['details'].get('payload_files'), r['details'].get('payload_bytes')) for r in d if r['event'] == 'approval_pending']"
audit_as "$AUDITOR" trace100.txt trace "${ID_m100:0:12}"
expect "2 the table form has a header and one line per record" trace100.txt \
    eval "[ $rc -eq 0 ] && head -n 1 trace100.txt | grep -qE '^ *SEQ +TIME +SIDE +EVENT +ACTOR +OUTCOME' &&
          [ \$(( \$(wc -l < trace100.txt) - 1 )) -eq \$(json_get trace100.json 'len(d)') ] &&
          grep -qE '^ *[0-9]+ +[0-9T:.-]+Z +receiver +bundle_approved +$OFFICER +approved ' trace100.txt"

# ==== 3. the report of 1.0.0 ===========================================================================
audit_as "$AUDITOR" report100.json report "${ID_m100:0:12}" --json
expect "3 audit report --json succeeds for the auditor" report100.json \
    eval "[ $rc -eq 0 ] && json_true report100.json 'd[\"bundle\"] == env[\"ID_m100\"] and d[\"channel\"] == \"models\" and d[\"version\"] == \"1.0.0\"'"
check "3 what changed = the --changes given" json_true report100.json "d['what_changed']['changes'] == env['C100']"
check "3 why = the --reason given" json_true report100.json "d['why'] == env['R100']"
check "3 approved upstream = the --approved-by given, signed by 'release'" json_true report100.json \
    "d['who_approved']['upstream']['approved_by'] == env['A100'] and d['who_approved']['upstream']['signers'] == ['release']"
check "3 rollback version = the --rollback-to given (0.9.0), with the exact command" json_true report100.json \
    "d['how_to_roll_back']['to'] == '0.9.0' and d['how_to_roll_back']['command'] == 'sluice rollback models --to 0.9.0 --reason \"\u2026\"'"
check "3 created by root, state released (bundle_released), seen on both sides" json_true report100.json \
    "d['created']['by'] == 'root' and d['state']['name'] == 'released' and d['state']['event'] == 'bundle_released' and d['sides'] == ['sender', 'receiver']"
check "3 at import: manual, 1 approval required, decided by $OFFICER with the approval's reason (not automatic)" json_true report100.json \
    "d['who_approved']['import']['mode'] == 'manual' and d['who_approved']['import']['approvals_required'] == 1 and
     (d['who_approved']['import']['decision']['by'], d['who_approved']['import']['decision']['reason'], d['who_approved']['import']['decision']['automatic'])
       == (env['OFFICER'], env['APPROVE100'], False)"
check_json "3 at import: the officer's approval is listed (officer, uid, reason)" report100.json \
    "[(a['officer'], a['uid'], a['reason']) for a in d['who_approved']['import']['approvals']] == [(env['OFFICER'], $OFFICER_UID, env['APPROVE100'])]" \
    "d['who_approved']['import']"
check_json "3 the receiver's trusted signers are reported (release), not 'not recorded'" report100.json \
    "d['who_approved']['upstream']['receiver_signers'] == ['release']" "d['who_approved']['upstream']"
check "3 the release: version 1.0.0 to releases/models/1.0.0, nothing before it" json_true report100.json \
    "(d['release']['version'], d['release']['path'], d['release']['previous']) == ('1.0.0', '$WORK/r/releases/models/1.0.0', None)"
check "3 the scan (pass: clean) and no rejection, refusal or hold" json_true report100.json \
    "[(s['scanner'], s['outcome']) for s in d['scans']] == [('pass', 'clean')] and d['rejection'] is None and d['refusals'] == [] and d['holds'] == []"
check "3 the channel's rollback to 1.0.0: by $OFFICER, 1.1.0 -> 1.0.0, with the reason" json_true report100.json \
    "[(x['actor'], x['from'], x['to'], x['reason']) for x in d['channel_rollbacks']] == [(env['OFFICER'], '1.1.0', '1.0.0', env['ROLLBACK_REASON'])]"
check "3 the hops are the trace's records" json_true report100.json \
    "[(h['seq'], h['event'], h['upstream']) for h in d['hops']] == [(r['seq'], r['event'], bool(r.get('upstream'))) for r in json.load(open('trace100.json'))]"
check_json "3 no warning: the sender and the receiver recorded the same release.json" report100.json \
    "d['warnings'] == [] and d['missing'] == []" "d['warnings'] + d['missing']"
audit_as "$AUDITOR" report110.json report "${ID_m110:0:12}" --json
check "3 report of 1.1.0: follows 1.0.0, diff against 1.0.0, rollback to 1.0.0 which the log shows released" json_true report110.json \
    "d['what_changed']['previous_version'] == '1.0.0' and d['what_changed']['diff']['against'] == '1.0.0' and
     d['how_to_roll_back']['to'] == '1.0.0' and d['how_to_roll_back']['target']['status'] == 'released' and
     d['how_to_roll_back']['command'] == 'sluice rollback models --to 1.0.0 --reason \"\u2026\"'"
check "3 ... and it was rolled back from, by $OFFICER to 1.0.0" json_true report110.json \
    "[(x['actor'], x['to'], x['reason']) for x in d['how_to_roll_back']['rolled_back_from']] == [(env['OFFICER'], '1.0.0', env['ROLLBACK_REASON'])]"
check "3 ... its answers and its approval reason (with quotes) as given" json_true report110.json \
    "(d['what_changed']['changes'], d['why'], d['who_approved']['upstream']['approved_by'], d['who_approved']['import']['decision']['reason'])
     == (env['C110'], env['R110'], env['A110'], env['APPROVE110'])"
audit_as "$AUDITOR" report100.txt report "${ID_m100:0:12}"
expect "3 the table form: the answers, approved by $OFFICER, the rollback command" report100.txt \
    eval "[ $rc -eq 0 ] && grep -qxF '  $C100' report100.txt && grep -qxF '  $R100' report100.txt &&
          grep -qF '  upstream        $A100 (release.json approved_by)' report100.txt &&
          grep -qE '^    approved [0-9T:.-]+Z by $OFFICER\$' report100.txt &&
          grep -qxF '  command         sluice rollback models --to 0.9.0 --reason \"…\"' report100.txt"
if grep -qE "^  at import       1 of 1 officer approval\(s\) \(manual\)\$" report100.txt &&
   grep -qE "^    [0-9T:.-]+Z  $OFFICER \(uid $OFFICER_UID\): \"$APPROVE100\"\$" report100.txt; then
    ok "3 ... '1 of 1 officer approval(s) (manual)' and the line: TIME  $OFFICER (uid $OFFICER_UID): \"reason\""
else
    bad "3 ... '1 of 1 officer approval(s) (manual)' and the line: TIME  $OFFICER (uid $OFFICER_UID): \"reason\""
    grep -A3 '^  at import' report100.txt | sed 's/^/#     /'
fi

# ==== 4. queries ================================================================================
audit_as "$AUDITOR" officer.json query --actor "$OFFICER" --format json
# rollback_started names the release rolled back from (1.1.0), channel_rolled_back the one made current.
expect "4 query --actor $OFFICER: exactly the 2 approvals, rollback_started (1.1.0) and channel_rolled_back (1.0.0), in order" officer.json \
    eval "[ $rc -eq 0 ] && json_true officer.json \"[(r['event'], r['bundle']) for r in d] ==
          [('bundle_approved', env['ID_m100']), ('bundle_approved', env['ID_m110']),
           ('rollback_started', env['ID_m110']), ('channel_rolled_back', env['ID_m100'])] and all(r['actor'] == env['OFFICER'] for r in d)\""
check "4 ... as many as the receiver logged with actor=$OFFICER (4)" test "$(grep -c "actor=$OFFICER " r.log)" -eq 4
check "4 ... in increasing sequence, the rollback's two events adjacent" json_true officer.json \
    "[r['seq'] for r in d] == sorted(r['seq'] for r in d) and d[3]['seq'] == d[2]['seq'] + 1"
audit_as "$AUDITOR" released.csv query --event bundle_released --format csv
expect "4 query --event bundle_released --format csv: the header and exactly 2 rows (1.0.0, 1.1.0)" released.csv \
    eval "[ $rc -eq 0 ] && [ \"\$(head -n 1 released.csv | tr -d '\r')\" = 'seq,time,host,side,bundle,channel,event,actor,outcome,details,prev_hash,hash,upstream' ] &&
          [ \$(wc -l < released.csv) -eq 3 ]"
check "4 ... the rows name the two bundles, outcome released, versions 1.0.0 and 1.1.0, CRLF line ends" "$PY" -I -c '
import csv, json, os, sys
rows = list(csv.DictReader(open("released.csv", newline="")))
raw = open("released.csv", "rb").read()
sys.exit(0 if [(r["bundle"], r["event"], r["outcome"], json.loads(r["details"])["version"], r["upstream"]) for r in rows] ==
    [(os.environ["ID_m100"], "bundle_released", "released", "1.0.0", "false"),
     (os.environ["ID_m110"], "bundle_released", "released", "1.1.0", "false")]
    and raw.count(b"\r\n") == 3 else 1)'
FUTURE=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
audit_as "$AUDITOR" future.json query --since "$FUTURE" --format json
expect "4 query --since $FUTURE (tomorrow) --format json: an empty list" future.json \
    eval "[ $rc -eq 0 ] && json_true future.json 'd == []'"
audit_as "$AUDITOR" future.txt query --since "$FUTURE"
expect "4 ... and the table form says no matching events" future.txt eval "[ $rc -eq 0 ] && grep -qx 'no matching events' future.txt"
audit_as "$AUDITOR" badsince.txt query --since "yesterday"
expect "4 a malformed --since is a usage error (exit 2)" badsince.txt test "$rc" -eq 2

# ==== 5. exports ==================================================================================
audit_as "$AUDITOR" all.json query --format json --limit 100000
N_EVENTS=$(json_get all.json 'len(d)')
check "5 the receiver's events are numbered 1..$N_EVENTS (query of all events)" json_true all.json \
    "[r['seq'] for r in d] == list(range(1, len(d) + 1)) and len(d) > 20"
for f in jsonl csv cef syslog; do
    audit_as "$AUDITOR" "export-$f.out" export --format "$f" --output "$WORK/exports/audit.$f"
    expect "5 export --format $f --output exports/audit.$f (exit 0), the count on stderr" "export-$f.out.err" \
        eval "[ $rc -eq 0 ] && grep -qx 'exported $N_EVENTS event(s) to $WORK/exports/audit.$f' export-$f.out.err"
done
audit_as "$AUDITOR" all2.json query --format json --limit 100000
check "5 (no event was added meanwhile: still $N_EVENTS)" test "$(json_get all2.json 'len(d)')" -eq "$N_EVENTS"
check "5 jsonl: $N_EVENTS lines, each a JSON object, seq 1..$N_EVENTS, the same records as the query" "$PY" -I -c '
import json, sys
lines = open("exports/audit.jsonl").read().splitlines()
recs = [json.loads(l) for l in lines]
sys.exit(0 if len(lines) == '"$N_EVENTS"' and recs == json.load(open("all.json")) else 1)'
check "5 csv: $N_EVENTS rows + 1 header line" eval \
    "[ \$(wc -l < exports/audit.csv) -eq $(( N_EVENTS + 1 )) ] && head -n 1 exports/audit.csv | grep -q '^seq,time,host,side,bundle,'"
check "5 cef: $N_EVENTS lines, each starting CEF:0|Sluice|sluice|" eval \
    "[ \$(wc -l < exports/audit.cef) -eq $N_EVENTS ] && [ \$(grep -c '^CEF:0|Sluice|sluice|' exports/audit.cef) -eq $N_EVENTS ]"
check "5 syslog: $N_EVENTS lines, each RFC 5424 (<PRI>1 ), facility log audit (PRI 104..111)" eval \
    "[ \$(wc -l < exports/audit.syslog) -eq $N_EVENTS ] && [ \$(grep -cE '^<10[4-9]>1 |^<11[01]>1 ' exports/audit.syslog) -eq $N_EVENTS ]"
check "5 syslog: the officer's approval of 1.0.0 as a notice from sluice-receiver with its SD-ELEMENT" \
    grep -qE "^<109>1 [0-9T:.-]+Z [^ ]+ sluice-receiver - bundle_approved \[sluice@32473 seq=\"[0-9]+\" bundle=\"$ID_m100\" channel=\"models\" actor=\"$OFFICER\" outcome=\"approved\" hash=\"[0-9a-f]{64}\"\]" exports/audit.syslog
check "5 cef: bundle_released as severity 3 with suser=system and cs1 = the bundle" \
    grep -qE "^CEF:0\|Sluice\|sluice\|[^|]+\|bundle_released\|[^|]+\|3\|.* suser=system .*cs1=$ID_m100 cs1Label=bundle" exports/audit.cef
check "5 the export files are mode 0600 and owned by the auditor" eval \
    "[ \"\$(stat -c '%a %U' exports/audit.jsonl exports/audit.csv exports/audit.cef exports/audit.syslog | sort -u)\" = '600 $AUDITOR' ]"
check "5 no staging file is left beside them" test "$(find exports -name '.*' | wc -l)" -eq 0

# ==== 6. roles ======================================================================================
audit_as "$OUTSIDER" role-out.txt query --event bundle_released
expect "6 the outsider's audit query is refused (exit 1), naming the auditor role and $AUDITORS" role-out.txt.err \
    eval "[ $rc -eq 1 ] && grep -qF 'permission denied: $OUTSIDER needs the auditor role (a member of $AUDITORS)' role-out.txt.err && [ ! -s role-out.txt ]"
audit_as "$OFFICER" role-off.txt trace "${ID_m100:0:12}"
expect "6 the officer (not an auditor) is refused too (exit 1), naming the auditor role" role-off.txt.err \
    eval "[ $rc -eq 1 ] && grep -qF 'permission denied: $OFFICER needs the auditor role (a member of $AUDITORS)' role-off.txt.err && [ ! -s role-off.txt ]"
audit_as "$OUTSIDER" role-out-v.txt verify
expect "6 the outsider cannot run verify over the socket either (exit 1)" role-out-v.txt.err \
    eval "[ $rc -eq 1 ] && grep -qF 'needs the auditor role' role-out-v.txt.err"
audit_as "$OFFICER" role-off-x.txt export --format jsonl --output "$WORK/exports-officer/audit.jsonl"
expect "6 the officer's export is refused (exit 1) and leaves no file, not even a staging one" role-off-x.txt.err \
    eval "[ $rc -eq 1 ] && grep -qF 'needs the auditor role' role-off-x.txt.err && [ -z \"\$(ls -A exports-officer)\" ]"
audit_as root role-root.json query --event bundle_released --format json
expect "6 root may (exit 0): the 2 releases" role-root.json eval "[ $rc -eq 0 ] && json_true role-root.json 'len(d) == 2'"
audit_as "$AUDITOR" role-aud.json query --event bundle_released --format json
expect "6 the auditor may (exit 0): the same 2 releases" role-aud.json \
    eval "[ $rc -eq 0 ] && cmp -s role-aud.json role-root.json"
rc=0; SLUICE_SENDER_SOCKET=$SSOCK "$SLUICE" audit query --sender --event bundle_submitted --format json >sender-sub.json 2>sender-sub.json.err || rc=$?
expect "6 audit query --sender --event bundle_submitted (root): the 2 pushes, actor root, on the sender's chain" sender-sub.json \
    eval "[ $rc -eq 0 ] && json_true sender-sub.json \"[(r['bundle'], r['actor'], r['side'], r['details']['version']) for r in d] ==
          [(env['ID_m100'], 'root', 'sender', '1.0.0'), (env['ID_m110'], 'root', 'sender', '1.1.0')] and not any(r.get('upstream') for r in d)\""
check "6 ... the sender's rows are the ones the receiver holds as upstream (same seq and hash)" json_true sender-sub.json \
    "[(r['seq'], r['hash']) for r in d][:1] == [(r['seq'], r['hash']) for r in json.load(open('trace100.json')) if r['event'] == 'bundle_submitted']"
cli "$AUDITOR" sender-aud.txt audit query --event bundle_submitted --socket "$SSOCK"
expect "6 the auditor may query the sender too (table: 2 lines after the header)" sender-aud.txt \
    eval "[ $rc -eq 0 ] && [ \$(grep -cE ' sender +bundle_submitted +root ' sender-aud.txt) -eq 2 ]"
cli "$OUTSIDER" sender-out.txt audit query --event bundle_submitted --socket "$SSOCK"
expect "6 the outsider is refused by the sender as well (exit 1), naming the auditor role" sender-out.txt.err \
    eval "[ $rc -eq 1 ] && grep -qF 'permission denied: $OUTSIDER needs the auditor role (a member of $AUDITORS)' sender-out.txt.err"
echo "# phase 2 done ($(( $(date +%s) - STARTED )) s)"

# ==== 7. a transfer the receiver never saw: gaps ==========================================================
# A receiver restarted after the sender sent a bundle cannot report it: the first heartbeat of
# a session is the link monitor's baseline (transfer/src/link_monitor.cpp). So the receiver
# keeps running but hears nothing of the transfer: stopped (SIGSTOP) behind a receive buffer
# that junk datagrams filled, every datagram of the transfer is dropped by the kernel; let go
# (SIGCONT) after the sender's pass is over, it hears the next heartbeats, which list the
# transfer as sent.
#
# udp_socket.py drops PORT: the kernel's count of datagrams dropped on the receiver's socket
# (127.0.0.1:PORT). udp_socket.py fill PORT: junk datagrams until none fits any more. A
# datagram is dropped when it would take the socket's memory over its receive buffer, so the
# buffer is filled with large junk, then topped up with one-byte junk (the smallest kernel
# buffer a datagram can take) until that is dropped too: then no frame of any size fits.
cat > udp_socket.py <<'EOF_PY'
import socket, sys

def drops(port):
    for line in open("/proc/net/udp"):
        f = line.split()
        if f[1] == "0100007F:%04X" % port and f[2] == "00000000:0000":
            return int(f[-1])
    sys.exit("no UDP socket bound to 127.0.0.1:%d" % port)

command, port = sys.argv[1], int(sys.argv[2])
if command == "drops":
    print(drops(port))
    sys.exit(0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

def send_until_dropped(payload, limit):
    before = drops(port)
    for n in range(1, limit + 1):
        s.sendto(payload, ("127.0.0.1", port))
        if drops(port) > before:
            return n
    sys.exit("%d datagrams of %d bytes and none was dropped: is the receiver stopped?" % (limit, len(payload)))

large = send_until_dropped(b"not a sluice frame " * 64, 100000)
small = send_until_dropped(b"x", 100000)
for n in range(20):  # the proof: each further one-byte datagram is dropped
    before = drops(port)
    s.sendto(b"x", ("127.0.0.1", port))
    if drops(port) != before + 1:
        sys.exit("a one-byte datagram still fitted in the receive buffer")
print("# receive buffer full: %d large and %d one-byte junk datagrams; 20 more were all dropped" % (large, small))
EOF_PY
udp_drops() { "$PY" -I udp_socket.py drops "$PORT"; }
kill -STOP "$R_PID"
stopped() { grep -qE '^State:[[:space:]]+T' "/proc/$R_PID/status"; }
wait_until 5 stopped || true
check "7 the receiver is stopped (SIGSTOP)" stopped
if "$PY" -I udp_socket.py fill "$PORT" >fill.out 2>&1; then
    ok "7 its receive buffer is full: even one-byte datagrams are dropped"; cat fill.out
else
    bad "7 its receive buffer is full: even one-byte datagrams are dropped ($(cat fill.out))"
fi
DROPS1=$(udp_drops)
push_ok "7 push models 1.2.0 while the receiver hears nothing" bundles/m120.tar
sent_m120() { [ "$(log_count s.log bundle_sent "bundle=$ID_m120")" -eq 1 ]; }
wait_until 20 sent_m120 || true
check "7 the sender sent 1.2.0 (its one pass is over: event=bundle_sent)" sent_m120
M120_TRANSFER=$(grep -E "event=pass_started .*bundle=$ID_m120" s.log | grep -oE 'transfer=[0-9]+' | cut -d= -f2 || true)
sleep 0.6   # two more heartbeats, both dropped too
DROPS2=$(udp_drops)
check "7 ... the kernel kept dropping what reached the stopped receiver ($DROPS1 -> $DROPS2)" test "$DROPS2" -gt "$DROPS1"
kill -CONT "$R_PID"
missed() { log_has r.log transfer_missed "bundle.{0,6}$ID_m120"; }
wait_until 15 missed || true
check "7 the receiver, heartbeats later, logs event=transfer_missed for 1.2.0" missed
check "7 ... and never saw a frame of it (no transfer_started for 1.2.0)" not log_has r.log transfer_started "bundle=$ID_m120"
audit_as "$AUDITOR" missed.json query --event transfer_missed --format json
expect "7 the audit log holds transfer_missed: bundle 1.2.0, its transfer id, actor system, outcome alarm" missed.json \
    eval "[ $rc -eq 0 ] && json_true missed.json \"[(r['bundle'], r['actor'], r['outcome'], str(r['details'].get('transfer'))) for r in d] ==
          [(env['ID_m120'], 'system', 'alarm', '$M120_TRANSFER')]\""
audit_as "$AUDITOR" gaps.json gaps --json
expect "7 audit gaps --json: exactly 1.2.0, status never_seen, announced by heartbeat, last event transfer_missed" gaps.json \
    eval "[ $rc -eq 0 ] && json_true gaps.json \"[(g['bundle'], g['status'], g['announced_by'], g['last_event']) for g in d] ==
          [(env['ID_m120'], 'never_seen', 'heartbeat', 'transfer_missed')]\""
audit_as "$AUDITOR" gaps.txt gaps
expect "7 audit gaps (table): 1 transfer, never_seen" gaps.txt \
    eval "[ $rc -eq 0 ] && grep -qx '1 transfer(s) announced but not received' gaps.txt && grep -qE '^  ${ID_m120:0:16} .* never_seen ' gaps.txt"
check "7 nothing of 1.2.0 was imported or released" eval "[ \"\$(current_of models)\" = 1.0.0 ] && [ ! -e r/releases/models/1.2.0 ]"
echo "# phase 3 done ($(( $(date +%s) - STARTED )) s)"

# ==== 8. verify, and tampering ==============================================================================
audit_as "$AUDITOR" verify-live.json verify --key "$WORK/r/state/audit.pub" --json
# Only the checkpoint the receiver signed when it opened its empty log (seq 0): every event since is unsealed, and verify says so.
expect "8 verify over the socket with --key r/state/audit.pub: ok (exit 0), key pinned, the start checkpoint only, all events unsealed" verify-live.json \
    eval "[ $rc -eq 0 ] && json_true verify-live.json \"d['ok'] is True and d['key_pinned'] is True and d['first_bad_seq'] is None and
          d['events'] == d['head_seq'] and d['head_seq'] >= $N_EVENTS and d['checkpoints'] == 1 and d['last_checkpoint_seq'] == 0 and
          d['unsealed'] == d['events'] and len(d['warnings']) == 1 and 'not yet signed' in d['warnings'][0]\""
check "8 ... with the 8 sender events of 1.0.0 and 1.1.0 recorded upstream" json_true verify-live.json "d['upstream_events'] == 8"
audit_as "$AUDITOR" verify-live.txt verify --key "$WORK/r/state/audit.pub"
expect "8 ... the text form says OK and pinned" verify-live.txt \
    eval "[ $rc -eq 0 ] && grep -qx 'OK: the audit log verifies' verify-live.txt && grep -q 'key            pinned' verify-live.txt"

stop_process "$S_PID" TERM
check "8 sender: SIGTERM exits 0" test "$rc" -eq 0
stop_process "$R_PID" TERM
check "8 receiver: SIGTERM exits 0" test "$rc" -eq 0
check "8 both wrote a checkpoint at shutdown (event=audit_checkpoint why=shutdown)" eval \
    "log_has r.log audit_checkpoint 'why=shutdown' && log_has s.log audit_checkpoint 'why=shutdown'"
HEAD=$(log_value r.log audit_checkpoint seq)
export HEAD
check "8 ... the receiver's at its head (seq $HEAD, after the $N_EVENTS events exported)" test "$HEAD" -ge "$N_EVENTS"

sqlite3 r/state/audit.db ".backup pristine.db"
cli root pristine.json audit verify --db pristine.db --key r/state/audit.pub --json
expect "8 verify --db (a .backup copy) --key: ok (exit 0), head $HEAD sealed by the shutdown checkpoint, no warning" pristine.json \
    eval "[ $rc -eq 0 ] && json_true pristine.json \"d['ok'] is True and d['head_seq'] == $HEAD and d['events'] == $HEAD and
          d['last_checkpoint_seq'] == $HEAD and d['unsealed'] == 0 and d['warnings'] == [] and d['key_pinned'] is True and d['upstream_events'] == 8\""
CHECKPOINTS=$(json_get pristine.json "d['checkpoints']")
cp pristine.db trig.db
rc=0; sqlite3 trig.db "UPDATE events SET actor='mallory' WHERE seq=5;" >trig.out 2>&1 || rc=$?
expect "8 the database itself refuses an UPDATE (trigger: append-only)" trig.out \
    eval "[ $rc -ne 0 ] && grep -q 'append-only' trig.out && [ \"\$(sqlite3 trig.db 'SELECT actor FROM events WHERE seq=5')\" != mallory ]"

# tamper NAME SQL: a fresh copy NAME.db of pristine.db changed with the sqlite3 shell, then
# verified offline with the receiver's key into NAME.json (rc: verify's exit status).
tamper() {
    local name=$1 sql=$2
    cp pristine.db "$name.db"
    if ! sqlite3 "$name.db" "$sql" >"$name.sql.out" 2>&1; then
        echo "# sqlite3 could not tamper with $name.db: $(cat "$name.sql.out")"
    fi
    cli root "$name.json" audit verify --db "$name.db" --key r/state/audit.pub --json
}
tamper edited "DROP TRIGGER events_no_update; UPDATE events SET actor='mallory' WHERE seq=5;"
expect "8a an edited row (seq 5): not ok (exit 1), first bad 5, 'event 5 was altered'" edited.json \
    eval "[ $rc -eq 1 ] && json_true edited.json \"d['ok'] is False and d['first_bad_seq'] == 5 and d['problem'].startswith('event 5 was altered')\""
check "8a ... and it warns that a trigger is missing (8 of 9)" json_true edited.json \
    "any('triggers are missing' in w and '8 of 9' in w for w in d['warnings'])"
cli root edited.txt audit verify --db edited.db --key r/state/audit.pub
expect "8a ... the text form: FAILED naming event 5, first bad seq 5 (exit 1)" edited.txt \
    eval "[ $rc -eq 1 ] && grep -qx 'FAILED: event 5 was altered: its hash does not match its contents' edited.txt && grep -qE '^  first bad seq +5\$' edited.txt"

tamper deleted "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq=7;"
expect "8b a deleted row (seq 7): not ok (exit 1), first bad 7, 'event 7 is missing'" deleted.json \
    eval "[ $rc -eq 1 ] && json_true deleted.json \"d['ok'] is False and d['first_bad_seq'] == 7 and d['problem'].startswith('event 7 is missing (deleted)')\""

tamper truncated "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq > $HEAD - 3;"
expect "8c the last 3 rows deleted: not ok (exit 1), first bad $((HEAD - 2)), events $((HEAD - 2))..$HEAD removed" truncated.json \
    eval "[ $rc -eq 1 ] && json_true truncated.json \"d['ok'] is False and d['first_bad_seq'] == $HEAD - 2 and
          d['problem'] == 'the log ends at event %d but checkpoint $CHECKPOINTS signed event %d: events %d..%d were removed' % ($HEAD - 3, $HEAD, $HEAD - 2, $HEAD)\""

# A checkpoint for an earlier event, its signature copied from the first checkpoint.
FORGED_SEQ=$(( HEAD - 4 ))
tamper forged "INSERT INTO checkpoints (seq, hash, time, host, side, key_fingerprint, public_key, signature)
               SELECT $FORGED_SEQ, (SELECT hash FROM events WHERE seq = $FORGED_SEQ), time, host, side, key_fingerprint, public_key, signature
               FROM checkpoints ORDER BY id LIMIT 1;"
expect "8d a forged checkpoint (seq $FORGED_SEQ): not ok (exit 1), its signature does not verify, first bad $((HEAD + 1))" forged.json \
    eval "[ $rc -eq 1 ] && json_true forged.json \"d['ok'] is False and
          d['problem'] == 'checkpoint %d (seq $FORGED_SEQ): the signature does not verify (forged or altered)' % ($CHECKPOINTS + 1) and
          d['first_bad_seq'] == $HEAD + 1\""

UP_SEQ=$(json_get trace100.json "[r['seq'] for r in d if r['event'] == 'bundle_submitted'][0]")
UP_HOST=$(json_get trace100.json "[r['host'] for r in d if r['event'] == 'bundle_submitted'][0]")
tamper upstream "DROP TRIGGER upstream_events_no_update; UPDATE upstream_events SET actor='mallory' WHERE event='bundle_submitted' AND seq=$UP_SEQ;"
# The receiver's own chain is intact: the first bad sequence is either none or the receiver
# event that recorded the row (upstream_events_recorded); the problem names the row.
expect "8e an upstream row edited (the sender's bundle_submitted, $UP_HOST/$UP_SEQ): not ok (exit 1), named" upstream.json \
    eval "[ $rc -eq 1 ] && json_true upstream.json \"d['ok'] is False and
          d['problem'].startswith('upstream event $UP_HOST/$UP_SEQ ') and 'was altered' in d['problem'] and
          d['first_bad_seq'] in (None, $(json_get trace100.json "[r['seq'] for r in d if r['event'] == 'upstream_events_recorded'][0]"))\""
check "8e ... and the query shows the forged actor, which verify caught" eval \
    "[ \"\$(sqlite3 upstream.db \"SELECT actor FROM upstream_events WHERE event='bundle_submitted' AND seq=$UP_SEQ\")\" = mallory ]"

cli root wrongkey.json audit verify --db pristine.db --key s/state/audit.pub --json
expect "8f verify with the sender's audit.pub: not ok (exit 1), not signed with the given key" wrongkey.json \
    eval "[ $rc -eq 1 ] && json_true wrongkey.json \"d['ok'] is False and d['problem'].startswith('checkpoint 1 ') and
          'not signed with the given key' in d['problem'] and env['R_FPR'][:16] in d['problem']\""
cli root wrongkey.txt audit verify --db pristine.db --key s/state/audit.pub
expect "8f ... text: FAILED, and stderr repeats the problem" wrongkey.txt \
    eval "[ $rc -eq 1 ] && grep -q '^FAILED: .*not signed with the given key' wrongkey.txt && grep -q 'not signed with the given key' wrongkey.txt.err"
cli root unpinned.txt audit verify --db pristine.db
expect "8 without --key: ok (exit 0) but NOT PINNED, with a warning naming the fingerprint" unpinned.txt \
    eval "[ $rc -eq 0 ] && grep -q 'NOT PINNED' unpinned.txt && grep -q 'warning .*not pinned.*$R_FPR' unpinned.txt"
check "8 the tampering touched only the copies: the receiver's audit.db still verifies" eval \
    "'$SLUICE' audit verify --db r/state/audit.db --key r/state/audit.pub >/dev/null"

# ==== 9. a restart continues the chain =========================================================================
HEAD_HASH=$(sqlite3 pristine.db "SELECT hash FROM events WHERE seq = $HEAD")
start_daemon r "$RECEIVER" r/receiver.toml "$RSOCK"; R_PID=$LAST_PID
check "9 the restarted receiver opens the log at head $HEAD" test "$(log_value r.log audit_log_opened head_seq)" = "$HEAD"
cli "$OFFICER" rb2.out rollback models --to 1.1.0 --reason "holdout fixed: forward again" --socket "$RSOCK"
expect "9 the officer rolls forward to 1.1.0 (exit 0)" rb2.out eval "[ $rc -eq 0 ] && grep -q 'current 1.0.0 -> 1.1.0' rb2.out"
audit_as "$AUDITOR" after.json query --after "$HEAD" --format json
expect "9 the new events are $((HEAD + 1)) rollback_started (1.0.0) and $((HEAD + 2)) channel_rolled_back (1.1.0) by $OFFICER, linked to the old head" after.json \
    eval "[ $rc -eq 0 ] && json_true after.json \"[(r['seq'], r['event'], r['actor'], r['bundle']) for r in d] ==
          [($HEAD + 1, 'rollback_started', env['OFFICER'], env['ID_m100']), ($HEAD + 2, 'channel_rolled_back', env['OFFICER'], env['ID_m110'])] and
          d[0]['prev_hash'] == '$HEAD_HASH' and d[1]['prev_hash'] == d[0]['hash']\""
audit_as "$AUDITOR" verify9.json verify --key "$WORK/r/state/audit.pub" --json
expect "9 verify after the restart: ok, head $((HEAD + 2)), the 2 new events not yet sealed" verify9.json \
    eval "[ $rc -eq 0 ] && json_true verify9.json \"d['ok'] is True and d['head_seq'] == $HEAD + 2 and d['events'] == $HEAD + 2 and
          d['checkpoints'] == $CHECKPOINTS and d['last_checkpoint_seq'] == $HEAD and d['unsealed'] == 2\""
stop_process "$R_PID" TERM
check "9 receiver: SIGTERM exits 0, checkpoint at $((HEAD + 2))" eval \
    "[ $rc -eq 0 ] && [ \"\$(log_value r.log audit_checkpoint seq)\" = $((HEAD + 2)) ]"
cli root final.json audit verify --db r/state/audit.db --key r/state/audit.pub --json
expect "9 verify --db afterwards: ok, $((CHECKPOINTS + 1)) checkpoints, all sealed" final.json \
    eval "[ $rc -eq 0 ] && json_true final.json \"d['ok'] is True and d['head_seq'] == $HEAD + 2 and d['checkpoints'] == $CHECKPOINTS + 1 and d['unsealed'] == 0\""

# ---- end ----------------------------------------------------------------------------------------
check "no process left running" test "${#PIDS[@]}" -eq 0
check "no audit write failed and no internal error was logged" \
    not grep -qE 'event=(audit_write_failed|audit_checkpoint_failed|import_internal_error|release_failed)' r.log s.log

echo "system: audit daemons: $passed passed, $failed failed in $(( $(date +%s) - STARTED )) s"
FINISHED=1
if [ "$failed" -ne 0 ]; then dump_logs "$WORK"/*.log; exit 1; fi
