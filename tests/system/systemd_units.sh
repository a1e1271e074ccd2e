#!/usr/bin/env bash
# System test of systemd/ (docs/systemd.md) and of the release train it schedules.
#
#   tests/system/systemd_units.sh path/to/sluice path/to/sluice-sender path/to/sluice-receiver
#
# Scenarios (each check is labelled with its number):
#   1  every unit in systemd/ and systemd/examples/ passes `systemd-analyze verify`
#      (the binaries' paths pointed at this build)
#   2  `systemd-analyze security --offline=yes`: the exposure of both daemons and of
#      the release-train service; the receiver's must be 2.0 or lower (so must the others')
#   3  sluice.sysusers and sluice.tmpfiles applied to a scratch root: the user, the
#      groups, every directory with its owner, group and mode; sluice.sysctl names
#      settings this kernel has
#   4  the release train (`sluice train`, what sluice-release@CHANNEL.service runs)
#      against a real sluice-sender: the newest version in release-train order is
#      pushed once; again while queued or after it was sent, nothing is pushed;
#      wrong-channel, unreadable and ambiguous entries are named and fail the run
#
# Needs systemd-analyze, systemd-sysusers, systemd-tmpfiles (the systemd package) and
# python3; without them it exits 77 (skipped), or fails when CI is set. No systemd
# needs to be running. Set SLUICE_KEEP_WORK=1 to keep the work directory.
set -euo pipefail

usage="usage: systemd_units.sh SLUICE SLUICE-SENDER SLUICE-RECEIVER"
SLUICE=$(realpath "${1:?$usage}")
SENDER=$(realpath "${2:?$usage}")
RECEIVER=$(realpath "${3:?$usage}")
skip() {
    if [ -n "${CI:-}" ]; then echo "systemd_units: FAIL: $* (CI is set: the CI host must provide this)" >&2; exit 1; fi
    echo "systemd_units: SKIPPED: $*"; exit 77
}
for tool in systemd-analyze systemd-sysusers systemd-tmpfiles python3; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done
PY=$(python3 -I -c 'import sys; print(sys.executable)')
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
UNITS=$(cd "$HERE/../../systemd" && pwd)
# shellcheck source=lib/daemons.sh
source "$HERE/lib/daemons.sh"

umask 022
WORK=$(mktemp -d /tmp/sluice-units-XXXXXX)
cd "$WORK"
STARTED=$(date +%s)
passed=0
failed=0
PIDS=()
cleanup() {
    local rc=$?
    set +e
    stop_all
    finish_work systemd_units "$rc" "$WORK"/s*.log
}
trap cleanup EXIT

# ==== 1. systemd-analyze verify ==================================================================
mkdir units
for f in "$UNITS"/*.service "$UNITS"/*.timer "$UNITS"/examples/*.service "$UNITS"/examples/*.path \
         "$UNITS"/examples/*.mount; do
    sed -e "s|/usr/sbin/sluice-sender |$SENDER |g; s|/usr/sbin/sluice-receiver |$RECEIVER |g" \
        -e "s|/usr/bin/sluice |$SLUICE |g" "$f" > "units/${f##*/}"
done
# A template is verified through an instance, as systemd would load it.
cp units/sluice-release@.service units/sluice-release@models.service
cp units/sluice-release@.timer units/sluice-release@models.timer
for u in units/*; do
    case $u in *@.service|*@.timer) continue ;; esac
    name=${u##*/}
    if (cd units && systemd-analyze verify --man=no "./$name") > "verify-$name.out" 2>&1 && [ ! -s "verify-$name.out" ]; then
        ok "1 systemd-analyze verify $name: no complaint"
    else
        bad "1 systemd-analyze verify $name"
        sed 's/^/#     /' "verify-$name.out"
    fi
done

# ==== 2. exposure ================================================================================
exposure() {
    systemd-analyze security --offline=yes "units/$1" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
for unit in sluice-sender.service sluice-receiver.service sluice-release@models.service; do
    score=$(exposure "$unit")
    echo "# exposure of $unit: ${score:-unknown} (systemd-analyze security --offline=yes)"
    check "2 $unit: exposure ${score:-unknown} <= 2.0" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
done

# ==== 3. users, groups and directories ===========================================================
ROOT=$WORK/root
mkdir -p "$ROOT/etc" "$ROOT/usr/lib/sysusers.d" "$ROOT/usr/lib/tmpfiles.d"
cp "$UNITS/sluice.sysusers" "$ROOT/usr/lib/sysusers.d/sluice.conf"
cp "$UNITS/sluice.tmpfiles" "$ROOT/usr/lib/tmpfiles.d/sluice.conf"
check "3 systemd-sysusers accepts sluice.sysusers" systemd-sysusers --root="$ROOT"
check "3 systemd-tmpfiles --create accepts sluice.tmpfiles" systemd-tmpfiles --create --root="$ROOT"
# id_of passwd|group NAME: the id in the scratch root (root is 0 without an entry there).
id_of() { awk -F: -v n="$2" '$1 == n { print $3; f = 1 } END { if (!f && n == "root") print 0 }' "$ROOT/etc/$1"; }
check "3 user sluice: group sluice, no login shell" \
    awk -F: -v g="$(id_of group sluice)" '$1 == "sluice" && $4 == g && $7 == "/usr/sbin/nologin" { f = 1 } END { exit !f }' \
    "$ROOT/etc/passwd"
for g in sluice-operators sluice-officers sluice-auditors; do
    check "3 group $g exists" test -n "$(id_of group "$g")"
done
check "3 sluice is a member of sluice-operators (it reads what operators drop in the spools)" \
    awk -F: '$1 == "sluice-operators" && ("," $4 ",") ~ /,sluice,/ { f = 1 } END { exit !f }' "$ROOT/etc/group"
# path mode owner group, as docs/systemd.md documents them
while read -r path mode owner group; do
    want="$mode $(id_of passwd "$owner"):$(id_of group "$group")"
    got=$(stat -c '%a %u:%g' "$ROOT$path" 2>/dev/null || echo missing)
    check "3 $path is $mode $owner:$group (got $got)" test "$got" = "$want"
done <<'EOF'
/var/lib/sluice 755 root root
/var/lib/sluice/sender 750 sluice sluice
/var/lib/sluice/receiver 750 sluice sluice
/var/lib/sluice/quarantine 2750 sluice sluice-officers
/var/lib/sluice/incoming 750 sluice sluice
/var/lib/sluice/releases 755 sluice sluice
/var/lib/sluice/metrics 755 sluice sluice
/var/spool/sluice 755 root root
/var/spool/sluice/outgoing 2770 sluice sluice-operators
/var/spool/sluice/train 2775 sluice sluice-operators
/run/sluice 755 sluice sluice
EOF
while IFS='= ' read -r key _; do
    case $key in ''|'#'*) continue ;; esac
    check "3 sluice.sysctl: $key exists in this kernel" test -e "/proc/sys/${key//./\/}"
done < "$UNITS/sluice.sysctl"
# The receiver renames a completed archive from its staging area (state_dir) into
# incoming_dir: with the packaged configuration both must lie under one
# ReadWritePaths= entry (each entry is a mount of its own; rename fails across).
same_mount() {
    "$PY" -I - "$UNITS/sluice-receiver.service" "$UNITS/../packaging/etc/receiver.toml" <<'PYEOF'
import sys, tomllib
unit, conf = sys.argv[1], sys.argv[2]
entries = [p.lstrip("-") for line in open(unit) if line.startswith("ReadWritePaths=")
           for p in line.split("=", 1)[1].split()]
r = tomllib.load(open(conf, "rb"))["receiver"]
def entry(path):
    best = [e for e in entries if path == e or path.startswith(e.rstrip("/") + "/")]
    return max(best, key=len) if best else None
a, b = entry(r["state_dir"]), entry(r["incoming_dir"])
print(r["state_dir"], "->", a, ";", r["incoming_dir"], "->", b)
sys.exit(0 if a is not None and a == b else 1)
PYEOF
}
check "3 receiver: state_dir and incoming_dir share one ReadWritePaths= entry (a rename, not a copy)" same_mount
echo "# scenarios 1-3 done ($(( $(date +%s) - STARTED )) s)"

# ==== 4. the release train against a real sender =================================================
"$SLUICE" keygen release --dir keys >/dev/null
payload() {
    mkdir -p "$1/weights"
    { printf 'WEIGHTS\n'; head -c "${PAYLOAD_BYTES:-2040}" /dev/urandom; } > "$1/weights/model.bin"
    echo '{"model_type": "tiny"}' > "$1/config.json"
}
# make_bundle NAME CHANNEL VERSION DIR: a packed bundle DIR/NAME.tar; sets ID_<NAME>.
make_bundle() {
    local name=$1 channel=$2 version=$3 dir=$4 id
    payload "src/$name"
    mkdir -p "$dir" bags
    id=$("$SLUICE" bundle create "src/$name" --out "bags/$name" --channel "$channel" --version "$version" \
        --changes "train test $version" --reason "scheduled" --approved-by "release board" \
        --rollback-to 0.1.0 --sign keys/release.key | tail -n 1)
    "$SLUICE" bundle pack "bags/$name" --out "$dir/$name.tar" >/dev/null
    printf -v "ID_$name" '%s' "$id"
}
make_bundle m190 models 1.9.0 train/models
make_bundle m1100 models 1.10.0 train/models   # newer than 1.9.0 in release-train order, older as text
make_bundle m120rc models 1.2.0-rc1 train/models
printf 'copy in progress' > train/models/.m1200.tar   # dot names are skipped
echo "release notes" > train/models/NOTES.txt             # not a bundle: ignored, not an error

# Where the frames go: a bound UDP socket that never reads (so no ICMP refusals).
read -r PORT < <("$PY" -I -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -I - "$PORT" <<'PYEOF' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
time.sleep(300)
PYEOF
PIDS+=($!)
mkdir -p s
cat > s/sender.toml <<EOF
[sender]
state_dir = "state"
spool_dir = "spool"
control_socket = "sender.sock"
passes = 1
trusted_keys = ["../keys/release.pub"]
[link]
lanes = ["127.0.0.1:$PORT"]
rate = "200M"
EOF
SSOCK=$WORK/s/sender.sock
start_daemon s "$SENDER" s/sender.toml "$SSOCK"

"$SLUICE" train models --from train/models --dry-run > dry.out 2> dry.err || true
expect "4 --dry-run names the newest version (1.10.0 > 1.9.0 > 1.2.0-rc1)" dry.out \
    grep -q "would push models 1.10.0 (m1100.tar)" dry.out
expect "4 --dry-run: NOTES.txt is ignored and said so" dry.err grep -q "ignored NOTES.txt: neither a bundle" dry.err
check "4 --dry-run: the sender queued nothing" not log_has s.log bundle_queued

rc=0; "$SLUICE" train models --from train/models --socket "$SSOCK" > run1.out 2>&1 || rc=$?
expect "4 first run: exit 0, 1.10.0 queued at normal priority" run1.out \
    grep -q "queued models 1.10.0 (m1100.tar, .*priority normal)" run1.out
check "4 first run: exit status 0 (got $rc)" test "$rc" -eq 0
check "4 the sender logged bundle_queued for 1.10.0" log_has s.log bundle_queued "bundle=$ID_m1100"

rc=0; "$SLUICE" train models --from train/models --socket "$SSOCK" > run2.out 2>&1 || rc=$?
expect "4 second run at once: already queued or already sent, exit 0" run2.out \
    grep -qE "already queued|was sent at" run2.out
wait_until 30 log_has s.log bundle_sent "bundle=$ID_m1100" || true
check "4 the sender sent 1.10.0" log_has s.log bundle_sent "bundle=$ID_m1100"
rc=0; "$SLUICE" train models --from train/models --socket "$SSOCK" --json > run3.json 2>run3.err || rc=$?
expect "4 after it was sent: already_sent, with the time" run3.json "$PY" -I -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["job"]["already_sent"] is True and j["job"]["sent_at"].startswith("20"), j
assert j["chosen"]["version"] == "1.10.0", j' run3.json
check "4 after it was sent: exit 0" test "$rc" -eq 0
check "4 1.10.0 was queued exactly once in all (bundle_queued lines: $(grep -c "event=bundle_queued" s.log))" \
    test "$(grep -c "event=bundle_queued" s.log)" -eq 1
check "4 nothing older was pushed" not log_has s.log bundle_queued "bundle=$ID_m190"

# A new version arrives: the next run pushes it.
make_bundle m1110 models 1.11.0 train/models
rc=0; "$SLUICE" train models --from train/models --socket "$SSOCK" > run4.out 2>&1 || rc=$?
expect "4 a newer bundle in the directory is pushed on the next run" run4.out grep -q "queued models 1.11.0" run4.out

# Entries that should be bundles but are not: named, and the run fails (the unit shows failed).
make_bundle t900 tools 9.0.0 train/models
printf 'not a tar archive' > train/models/broken.tar
rc=0; "$SLUICE" train models --from train/models --socket "$SSOCK" > run5.out 2>&1 || rc=$?
expect "4 a bundle of another channel is named" run5.out grep -q "skipped t900.tar: belongs to channel tools, not models" run5.out
expect "4 an unreadable archive is named" run5.out grep -q "skipped broken.tar: " run5.out
check "4 ... and the run exits 1 (got $rc)" test "$rc" -eq 1
rm train/models/t900.tar train/models/broken.tar

# Two different bundles claiming the same newest version: nothing is guessed.
make_bundle m1110b models 1.11.0 train/models
rc=0; "$SLUICE" train models --from train/models --socket "$SSOCK" > run6.out 2>&1 || rc=$?
expect "4 two bundles claiming 1.11.0: refused, both named" run6.out \
    grep -q "2 different bundles claim version 1.11.0 (m1110.tar, m1110b.tar)" run6.out
check "4 ... exit 1 (got $rc)" test "$rc" -eq 1
check "4 ... and nothing more was queued" test "$(grep -c "event=bundle_queued" s.log)" -eq 2

rc=0; "$SLUICE" train models --from train/nonexistent --socket "$SSOCK" > run7.out 2>&1 || rc=$?
expect "4 a missing train directory is named" run7.out grep -q "train/nonexistent: not a directory" run7.out
check "4 ... exit 1" test "$rc" -eq 1

# An emergency run of a train (--priority high) raises its bundle if it is still queued.
# A second sender at 20 kbit/s keeps a first bundle (1 MB, minutes on the wire) busy,
# so the next one waits in the queue.
mkdir -p s2
sed -e 's|rate = "200M"|rate = "20k"|' -e 's|"sender.sock"|"sender2.sock"|' s/sender.toml > s2/sender.toml
S2SOCK=$WORK/s2/sender2.sock
start_daemon s2 "$SENDER" s2/sender.toml "$S2SOCK"
PAYLOAD_BYTES=1000000 make_bundle e100 emergency 1.0.0 train/busy
make_bundle e200 emergency 2.0.0 train/emergency
"$SLUICE" push train/busy/e100.tar --socket "$S2SOCK" >/dev/null
rc=0; "$SLUICE" train emergency --from train/emergency --socket "$S2SOCK" > run8.out 2>&1 || rc=$?
expect "4 slow sender: 2.0.0 queued at normal priority behind the bundle on the wire" run8.out \
    grep -q "queued emergency 2.0.0 (e200.tar, .*priority normal)" run8.out
rc=0; "$SLUICE" train emergency --from train/emergency --socket "$S2SOCK" --priority high > run9.out 2>&1 || rc=$?
expect "4 the same train with --priority high: already queued, now at high priority" run9.out \
    grep -q "emergency 2.0.0 is already queued (priority high)" run9.out
"$SLUICE" queue --socket "$S2SOCK" --json > queue9.json
expect "4 ... and the sender's queue says so" queue9.json "$PY" -I -c '
import json, sys
q = json.load(open(sys.argv[1]))
j = [j for j in q if j["bundle"] == sys.argv[2]]
assert j and j[0]["priority"] == "high", q' queue9.json "$ID_e200"

echo "# scenario 4 done ($(( $(date +%s) - STARTED )) s)"
echo "# $passed passed, $failed failed"
FINISHED=1
[ "$failed" -eq 0 ] || dump_logs "$WORK/s.log"
[ "$failed" -eq 0 ]
