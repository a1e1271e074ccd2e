#!/usr/bin/env bash
# System test of removable media (sluice media write|import|status|show): the real
# sluice-sender and sluice-receiver on 127.0.0.1 with a [media] key on both, a policy
# with auto-approved channels and no scanner, and media that are plain directories.
# Bundles go media write -> directories -> media import (or a watched mount point) ->
# the receiver's finalize -> quarantine -> rules -> released.
#
#   tests/system/media_daemons.sh path/to/sluice path/to/sluice-sender path/to/sluice-receiver
#
# Needs python3. Scenario f (roles) needs root, runuser and useradd; without them it is
# skipped (the rest runs).
#
# Scenarios (each check is labelled with its letter):
#   a  a 5.5 MiB bundle written to 3 volumes (--volume-size computed for 2 blocks a volume),
#      encrypted: x<hex> directories, no bundle id, channel, version or payload name in any
#      byte; `media show --key` describes each volume; without the key it fails naming the key
#   b  volume 3 imported first; `media status` lists volumes 1 and 2 as not yet imported with
#      their blocks; volume 1 with one segment deleted and one overwritten is repaired with
#      parity and names both; a receiver restart keeps the progress; volume 2 completes the
#      bundle, which is delivered and released; `audit trace` on both daemons
#   c  parity 1 % and two segments of a set deleted: unrecoverable, `media status` names
#      exactly the two segments to bring; restored, a second import completes it
#   d  the wrong key: exit 1, "encrypted with another key", nothing imported; a symlink, a
#      FIFO and unexpected files on a medium are reported as ignored, the import completes
#   e  [media] watch: a medium moved into the watched mount point is imported and released
#      within seconds (actor watch(...)); left there it is not read again; removed and put
#      back it is read once more and not delivered twice
#   f  roles: a user without the operator role can neither import nor write media
#   g  sender refusals: an untrusted bundle (nothing written, the refusal audited), a --to
#      that does not exist (media_write_failed audited)
# Set SLUICE_KEEP_WORK=1 to keep the work directory.
# shellcheck disable=SC2154,SC2034  # ID_<name> are set by make_bundle (printf -v); GROUPS_MADE is read by remove_accounts
set -euo pipefail

usage="usage: media_daemons.sh SLUICE SLUICE-SENDER SLUICE-RECEIVER"
SLUICE=$(realpath "${1:?$usage}")
SENDER=$(realpath "${2:?$usage}")
RECEIVER=$(realpath "${3:?$usage}")
# A missing prerequisite skips the test (exit 77) on a developer's machine, and fails it in CI.
skip() {
    if [ -n "${CI:-}" ]; then echo "media_daemons: FAIL: $* (CI is set: the CI host must provide this)" >&2; exit 1; fi
    echo "media_daemons: SKIPPED: $*"; exit 77
}
for tool in python3 mkfifo dd; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done
PY=$(python3 -I -c 'import sys; print(sys.executable)')
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

umask 022
# In /tmp rather than $TMPDIR: socket paths hold at most 107 bytes, and the outsider of
# scenario f (another Unix user) must reach the control sockets.
WORK=$(mktemp -d /tmp/sluice-media-XXXXXX)
chmod 0755 "$WORK"
cd "$WORK"
STARTED=$(date +%s)

# ---- bookkeeping ------------------------------------------------------------------
PIDS=()          # every background process this script started and has not reaped
USERS_MADE=()    # Unix users and groups this script created (removed on exit)
GROUPS_MADE=()   # (none here; remove_accounts reads it)
passed=0
failed=0
cleanup() {
    local rc=$?
    set +e
    stop_all
    remove_accounts media_daemons
    finish_work media_daemons "$rc" "$WORK"/*.log
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ok, bad, check, expect, log_has, alive, forget_pid, not, wait_until, stop_process, start_daemon,
# stop_all, remove_accounts, dump_logs, state_of, wait_state, current_of
source "$HERE/lib/daemons.sh"

free_port() {
    "$PY" -I -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# json_true FILE EXPR: succeeds when the Python expression EXPR is true of the JSON
# document `d`; `env` holds the environment.
json_true() {
    "$PY" -I -c 'import json, os, sys; env = os.environ; d = json.load(open(sys.argv[1])); sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$1" "$2"
}
# json_get FILE EXPR: prints the Python expression EXPR of the JSON document `d`.
json_get() { "$PY" -I -c 'import json, os, sys; env = os.environ; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# check_json WHAT FILE EXPR SHOW: like check with json_true; on failure shows SHOW of the document.
check_json() {
    local what=$1 file=$2 expr=$3 show=$4
    if json_true "$file" "$expr" >/dev/null 2>&1; then ok "$what"
    else bad "$what"; echo "#     got: $(json_get "$file" "$show" 2>&1 | head -c 800)"; fi
}
# has_line FILE LINE: FILE has exactly this line.
has_line() { grep -qxF -- "$2" "$1"; }

# ---- the operator's tools ------------------------------------------------------------
RSOCK=$WORK/r/receiver.sock
SSOCK=$WORK/s/sender.sock
# cli OUT ARGS...: `sluice ARGS` (as root) with stdout in OUT and stderr in OUT.err; sets rc.
cli() {
    local out=$1; shift
    rc=0
    "$SLUICE" "$@" >"$out" 2>"$out.err" || rc=$?
}
# mimport OUT MOUNT [ARGS...]: sluice media import against the receiver.
mimport() { local out=$1; shift; cli "$out" media import "$@" --socket "$RSOCK"; }
# mwrite OUT ARCHIVE ARGS...: sluice media write against the sender.
mwrite() { local out=$1; shift; cli "$out" media write "$@" --socket "$SSOCK"; }
# rtrace / strace_ ID OUT: audit trace --format json of the receiver / the sender.
rtrace() { "$SLUICE" audit trace "$1" --format json --socket "$RSOCK" >"$2" 2>"$2.err"; }
strace_() { "$SLUICE" audit trace "$1" --format json --socket "$SSOCK" >"$2" 2>"$2.err"; }
# raudit OUT ARGS...: audit query --format json on the receiver.
raudit() { local out=$1; shift; "$SLUICE" audit query "$@" --format json --socket "$RSOCK" >"$out" 2>"$out.err"; }
# the one set directory under MOUNT/SLUICE
set_dir() { local d; for d in "$1"/SLUICE/*/; do echo "${d%/}"; return; done; }

# ---- keys ----------------------------------------------------------------------------
"$SLUICE" keygen release --dir keys >/dev/null
"$SLUICE" keygen rogue --dir keys >/dev/null
head -c 32 /dev/urandom > keys/media.key && chmod 600 keys/media.key
head -c 32 /dev/urandom > keys/wrong.key && chmod 600 keys/wrong.key

# ---- receiver, policy, sender -----------------------------------------------------------
PORT=$(free_port)
mkdir -p r s watched
cat > r/receiver.toml <<EOF
[receiver]
state_dir = "state"
incoming_dir = "incoming"
control_socket = "receiver.sock"
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1

[import]
policy = "policy.toml"
quarantine_dir = "quarantine"
release_dir = "releases"

# No bundle crosses the diode here, but the receiver needs its link.
[link]
lanes = ["127.0.0.1:$PORT"]

[media]
key = "$WORK/keys/media.key"
watch = ["$WORK/watched"]
poll_interval = "1s"
EOF

# One auto channel per scenario (no scanner): each bundle is released once it arrives.
for ch in media-a media-c media-d media-e; do
    cat <<EOF

[channels.$ch]
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1
allowed_types = ["application/octet-stream", "application/json", "text/*"]
approval = "auto"
EOF
done > r/policy.toml

cat > s/sender.toml <<EOF
[sender]
state_dir = "state"
spool_dir = "spool"
control_socket = "sender.sock"
trusted_keys = ["$WORK/keys/release.pub"]
min_signers = 1

[link]
lanes = ["127.0.0.1:$PORT"]
rate = "10M"

[media]
key = "$WORK/keys/media.key"
EOF

# ---- bundles ------------------------------------------------------------------------------
# payload DIR BYTES: random weights (a fixed first line: libmagic must type them
# application/octet-stream), a JSON config and a text card.
payload() {
    mkdir -p "$1/weights"
    { printf 'WEIGHTS\n'; head -c "$2" /dev/urandom; } > "$1/weights/model.bin"
    echo '{"model_type": "tiny", "layers": 2}' > "$1/config.json"
    printf '# model card\nIntended use: the media system test.\n' > "$1/README.txt"
}
# make_bundle NAME CHANNEL VERSION BYTES [KEY]: src/NAME -> bags/NAME -> bundles/NAME.tar; sets ID_<NAME>.
make_bundle() {
    local name=$1 channel=$2 version=$3 bytes=$4 key=${5:-release}
    payload "src/$name" "$bytes"
    mkdir -p bags bundles
    local id
    id=$("$SLUICE" bundle create "src/$name" --out "bags/$name" --channel "$channel" --version "$version" \
        --changes "media test $name" --reason "media daemons test" --approved-by "test board" \
        --rollback-to 0.1.0 --sign "keys/$key.key" | tail -n 1)
    "$SLUICE" bundle pack "bags/$name" --out "bundles/$name.tar" >/dev/null
    printf -v "ID_$name" '%s' "$id"
}
make_bundle big media-a 3.7.1 $((5632 * 1024))   # 5.5 MiB: 6 blocks of 64 x 16328 bytes
make_bundle p1 media-c 1.0.0 $((200 * 1024))
make_bundle odd media-d 1.0.0 $((64 * 1024))
make_bundle w media-e 1.0.0 $((64 * 1024))
make_bundle rogue media-a 9.0.0 $((16 * 1024)) rogue   # signed by a key nobody trusts
export ID_big ID_p1 ID_odd ID_w ID_rogue WORK
echo "# bundles made ($(( $(date +%s) - STARTED )) s)"

# The volume size for 2 blocks a volume (plan_layout: a block is (K+M) records of 16 KiB,
# K=64 and M=7 at 10 % parity; a volume keeps 4 MiB + 2 % in reserve) and the blocks of
# the big archive (64 symbols of 16328 bytes each when encrypted).
BIG_BYTES=$(stat -c %s bundles/big.tar)
read -r VOLUME_SIZE BIG_BLOCKS <<<"$("$PY" -I -c '
import sys
per_block, reserve = 71 * 16384, lambda v: (4 << 20) + v // 50
v = ((4 << 20) + 2 * per_block) * 50 // 49 + per_block // 2   # halfway between 2 and 3 blocks
assert (v - reserve(v)) // per_block == 2
print(v, -(-int(sys.argv[1]) // (64 * 16328)))' "$BIG_BYTES")"
check "a the big archive ($BIG_BYTES bytes) is 6 blocks: 3 volumes of 2 at --volume-size $VOLUME_SIZE" test "$BIG_BLOCKS" -eq 6

start_daemon r "$RECEIVER" r/receiver.toml "$RSOCK"; R_PID=$LAST_PID
start_daemon s "$SENDER" s/sender.toml "$SSOCK"; S_PID=$LAST_PID
echo "# daemons up ($(( $(date +%s) - STARTED )) s)"

# ==== a. write 3 volumes ================================================================================
mkdir -p d1 d2 d3
mwrite wa.out bundles/big.tar --to d1 --to d2 --to d3 --volume-size "$VOLUME_SIZE"
expect "a media write to 3 directories: exit 0, the bundle, 'the last volume (3 of 3) is written'" wa.out \
    eval "[ $rc -eq 0 ] && has_line wa.out 'bundle $ID_big' && has_line wa.out 'the last volume (3 of 3) is written'"
expect "a ... media-a 3.7.1, encrypted (AES-256-GCM) with the sender's [media] key" wa.out \
    grep -qE '^  media-a 3\.7\.1, .*, encrypted \(AES-256-GCM\)$' wa.out
expect "a ... layout K=64 M=7 symbol=16328 (10 % parity), 24 segments per set, 3 symbols per segment" wa.out \
    has_line wa.out "  layout: K=64 M=7 symbol=16328 (10 % parity), 24 segments per set, 3 symbols of each block per segment"
expect "a ... 'wrote volume N of 3 to dN/SLUICE/x<32 hex>' for N = 1, 2, 3, in order" wa.out \
    eval "[ \"\$(grep -oE '^wrote volume [0-9]+ of [0-9]+ to [^ ]+' wa.out | sed -E 's#/SLUICE/x[0-9a-f]{32}\$#/SLUICE/X#')\" = \"\$(printf 'wrote volume %s of 3 to $WORK/d%s/SLUICE/X\n' 1 1 2 2 3 3)\" ]"
SETDIR=$(basename "$(set_dir d1)")
check "a the three media hold the same set directory, SLUICE/x + 32 hex digits, and nothing else" eval \
    "[[ '$SETDIR' =~ ^x[0-9a-f]{32}\$ ]] && for n in 1 2 3; do [ \"\$(ls d\$n/SLUICE)\" = '$SETDIR' ] || exit 1; done"
seg_names() {  # seg_names VOLUME: the file names volume VOLUME should have
    local v i
    v=$(printf '%04d' "$1")
    printf 'v%s.index\nv%s.index2\n' "$v" "$v"
    for i in $(seq 0 23); do printf 'v%s-c0000-s%03d.seg\n' "$v" "$i"; done
}
check "a each volume: v000N.index, v000N.index2 and 24 segments v000N-c0000-s000..s023.seg" eval \
    "for n in 1 2 3; do [ \"\$(ls d\$n/SLUICE/$SETDIR | sort)\" = \"\$(seg_names \$n | sort)\" ] || exit 1; done"
check "a segments are 6 records of 16 KiB (2 blocks x 3 symbols), the last stripe 4 (2 x 2)" eval \
    "for n in 1 2 3; do for f in d\$n/SLUICE/$SETDIR/*.seg; do
       case \$f in *-s023.seg) want=65536;; *) want=98304;; esac; [ \$(stat -c %s \$f) -eq \$want ] || exit 1; done; done"
# Not one byte on the media names the bundle, its channel, its version or a payload file.
cat > no_plaintext.py <<'EOF_PY'
import os, sys
needles = [s.encode() for s in sys.argv[2:]] + [bytes.fromhex(sys.argv[2])]
found = []
for mount in sys.argv[1].split(","):
    for root, dirs, files in os.walk(mount):
        for f in files:
            data = open(os.path.join(root, f), "rb").read()
            found += ["%s: %r" % (os.path.join(root, f), n) for n in needles if n in data]
print("\n".join(found))
sys.exit(1 if found else 0)
EOF_PY
if "$PY" -I no_plaintext.py d1,d2,d3 "$ID_big" media-a 3.7.1 model.bin config.json "$ID_big" >plain.out 2>&1 &&
   ! grep -raqF -e "$ID_big" -e media-a -e 3.7.1 d1 d2 d3; then
    ok "a encrypted: no file holds the bundle id (hex or raw), the channel, the version or a payload file name (grep -a too)"
else
    bad "a encrypted: no file holds the bundle id (hex or raw), the channel, the version or a payload file name"; head plain.out
fi
for n in 1 2 3; do
    cli show$n.out media show "d$n" --key keys/media.key
    first=$(( (n - 1) * 2 ))
    expect "a media show d$n --key: volume $n of 3 of the bundle, media-a 3.7.1, blocks $first-$((first + 1)), encrypted, 24 segments intact" show$n.out \
        eval "[ $rc -eq 0 ] && has_line show$n.out 'd$n/SLUICE/$SETDIR' && has_line show$n.out '  volume $n of 3: bundle $ID_big' &&
              grep -qE '^  media-a 3\\.7\\.1, .*, blocks $first-$((first + 1)), encrypted\$' show$n.out &&
              grep -qE '^  written [0-9T:.-]+Z by root on .*, with the sender.s audit events\$' show$n.out &&
              has_line show$n.out '  24 segments, 0 missing or of the wrong size'"
done
cli show-nokey.out media show d1
expect "a media show without --key: exit 1, NOT READABLE ... encrypted: give its key file" show-nokey.out \
    eval "[ $rc -eq 1 ] && has_line show-nokey.out 'NOT READABLE: SLUICE/$SETDIR volume 1: the medium is encrypted: give its key file' &&
          ! grep -q '$ID_big' show-nokey.out"
echo "# a done ($(( $(date +%s) - STARTED )) s)"

# ==== b. volume 3, then a damaged volume 1, a restart, then volume 2 ===================================
mimport ib3.out d3
expect "b import d3 first: exit 0, volume 3 of 3 of the bundle, 2 blocks intact, archive 2 of 6 held" ib3.out \
    eval "[ $rc -eq 0 ] && has_line ib3.out '$WORK/d3' && has_line ib3.out '  volume 3 of 3: bundle $ID_big' &&
          has_line ib3.out '    media-a 3.7.1, encrypted' &&
          has_line ib3.out '    blocks 2: 2 intact, 0 repaired with parity, 0 held already' &&
          has_line ib3.out '    archive: 2 of 6 blocks held' && ! grep -q 'damaged:' ib3.out"
expect "b ... still needed: volumes 1 (blocks 0-1) and 2 (blocks 2-3), not yet imported" ib3.out \
    eval "has_line ib3.out '      volume 1 of 3: 2 blocks (0-1) not yet imported' &&
          has_line ib3.out '      volume 2 of 3: 2 blocks (2-3) not yet imported' && [ \$(grep -c 'not yet imported' ib3.out) -eq 2 ]"
cli st1.out media status --socket "$RSOCK"
expect "b media status: the bundle, 3 volumes, encrypted, volume 3 read from d3 by root, volumes 1 and 2 not yet imported" st1.out \
    eval "[ $rc -eq 0 ] && has_line st1.out '$ID_big' && has_line st1.out '  media-a 3.7.1, 3 volume(s), encrypted' &&
          grep -qE '^  volume 3 read [0-9T:.-]+Z from $WORK/d3 by root\$' st1.out &&
          has_line st1.out '  still needed:' && [ \"\$(grep -E '^    volume [0-9]+ of ' st1.out)\" = \"\$(printf '    volume 1 of 3: 2 blocks (0-1) not yet imported\n    volume 2 of 3: 2 blocks (2-3) not yet imported')\" ] &&
          has_line st1.out 'watching: [\"$WORK/watched\"]'"

# Damage: one segment deleted (3 symbols of each block), 16 bytes of another overwritten
# inside its second record (block 0, symbol 16): 4 of 7 parity symbols per block at most.
D1=d1/SLUICE/$SETDIR
rm "$D1/v0001-c0000-s000.seg"
printf 'sixteen bytes!!!' | dd of="$D1/v0001-c0000-s005.seg" bs=1 seek=20000 conv=notrunc status=none
cli show-d1.out media show d1 --key keys/media.key
expect "b media show d1 names the missing segment (the overwritten one has its size)" show-d1.out \
    eval "has_line show-d1.out '  segment v0001-c0000-s000.seg: missing' && has_line show-d1.out '  24 segments, 1 missing or of the wrong size'"
mimport ib1.out d1
expect "b import the damaged d1: exit 0, both blocks repaired with parity, archive 4 of 6 held" ib1.out \
    eval "[ $rc -eq 0 ] && has_line ib1.out '    blocks 2: 0 intact, 2 repaired with parity, 0 held already' &&
          has_line ib1.out '    archive: 4 of 6 blocks held'"
expect "b ... naming exactly the damaged segments: s000 missing, s005 1 bad record of 6" ib1.out \
    eval "[ \"\$(grep 'damaged:' ib1.out)\" = \"\$(printf '    damaged: v0001-c0000-s000.seg (missing)\n    damaged: v0001-c0000-s005.seg (1 bad, 0 missing of 6 records)')\" ]"
expect "b ... still needed: volume 2 only" ib1.out \
    eval "[ \"\$(grep -A5 'still needed:' ib1.out | tail -n +2)\" = '      volume 2 of 3: 2 blocks (2-3) not yet imported' ]"

# What media status says before the restart, and must say after it.
STATUS_3_1='[(s["bundle"], [v["volume"] for v in s["volumes_read"]], [(n["volume"], n["ranges"], n["imported"]) for n in s["needed"]]) for s in d["sets"]] ==
     [(env["ID_big"], [1, 3], [(2, [[2, 3]], False)])]'
STATUS_SHOW='[(s["bundle"][:12], s["volumes_read"], s.get("needed")) for s in d["sets"]]'
cli st2a.out media status --json --socket "$RSOCK"
check_json "b before the restart, media status --json: volumes 3 and 1 read, only volume 2 (blocks 2-3) needed" st2a.out "$STATUS_3_1" "$STATUS_SHOW"
stop_process "$R_PID" TERM
check "b receiver stopped between volumes 1 and 2: SIGTERM exits 0" test "$rc" -eq 0
start_daemon r "$RECEIVER" r/receiver.toml "$RSOCK"; R_PID=$LAST_PID
cli st2.out media status --json --socket "$RSOCK"
check_json "b after the restart, media status --json still says so (the catalog persists)" st2.out "$STATUS_3_1" "$STATUS_SHOW"
mimport ib2.out d2
expect "b import d2: 2 blocks intact, archive 6 of 6 (the blocks of volumes 3 and 1 kept across the restart), complete: verified and delivered to r/incoming/ID.tar" ib2.out \
    eval "[ $rc -eq 0 ] && has_line ib2.out '    blocks 2: 2 intact, 0 repaired with parity, 0 held already' &&
          has_line ib2.out '    archive: 6 of 6 blocks held' &&
          has_line ib2.out '    complete: verified and delivered to $WORK/r/incoming/$ID_big.tar' && ! grep -q 'still needed' ib2.out"
wait_state "$ID_big" 30 released rejected held pending_approval || true
check "b the auto policy released it: state released, releases/media-a/current -> 3.7.1" eval \
    "[ \"\$(state_of $ID_big)\" = released ] && [ \"\$(current_of media-a)\" = 3.7.1 ]"
check "b the released weights are the bytes that were written (cmp)" \
    cmp src/big/weights/model.bin r/releases/media-a/3.7.1/data/weights/model.bin
cli st3.out media status --socket "$RSOCK"
expect "b media status: no bundle is waiting" st3.out \
    eval "[ $rc -eq 0 ] && has_line st3.out 'no bundle is waiting for media (--all shows completed ones)'"
cli st4.out media status --all --socket "$RSOCK"
expect "b media status --all: the bundle, its 3 volumes read, complete and delivered" st4.out \
    eval "[ $rc -eq 0 ] && has_line st4.out '$ID_big' && [ \$(grep -c '^  volume [123] read ' st4.out) -eq 3 ] &&
          grep -q '^  complete: .*\"delivered\":\"$WORK/r/incoming/$ID_big.tar\"' st4.out"

rtrace "$ID_big" rtrace-big.json || true
export SETDIR
check_json "b receiver trace: media_volume_imported x3 by root, volumes 3, 1, 2; volume 1 repaired 2 blocks naming s000 and s005" rtrace-big.json \
    "[(r['actor'], r['outcome'], r['details']['volume'], r['details']['blocks_repaired'], [s['segment'] for s in r['details']['damaged_segments']])
      for r in d if r['event'] == 'media_volume_imported'] ==
     [('root', 'ok', 3, 0, []), ('root', 'ok', 1, 2, ['v0001-c0000-s000.seg', 'v0001-c0000-s005.seg']), ('root', 'ok', 2, 0, [])]" \
    "[(r['actor'], r['outcome'], r['details']) for r in d if r['event'] == 'media_volume_imported']"
check_json "b receiver trace: the sender's events arrived on the medium: bundle_submitted (carrier media), bundle_verified, media_write_started" rtrace-big.json \
    "[(r['side'], r['event'], r['details'].get('carrier')) for r in d if r.get('upstream') is True] ==
     [('sender', 'bundle_submitted', 'media'), ('sender', 'bundle_verified', None), ('sender', 'media_write_started', None)]" \
    "[(r['side'], r['event'], r['details'].get('carrier')) for r in d if r.get('upstream')]"
check_json "b receiver trace: upstream_events_recorded once, carrier media, 3 events" rtrace-big.json \
    "[(r['details']['carrier'], r['details']['count']) for r in d if r['event'] == 'upstream_events_recorded'] == [('media', 3)]" \
    "[r['details'] for r in d if r['event'] == 'upstream_events_recorded']"
check_json "b receiver trace: bundle_received once, carrier media; then quarantined and bundle_released" rtrace-big.json \
    "[r['details'].get('carrier') for r in d if r['event'] == 'bundle_received'] == ['media'] and
     [r['event'] for r in d if r['event'] in ('bundle_received', 'bundle_quarantined', 'bundle_released')] == ['bundle_received', 'bundle_quarantined', 'bundle_released']" \
    "[(r['event'], r['details'].get('carrier')) for r in d if not r.get('upstream')]"
strace_ "$ID_big" strace-big.json || true
check_json "b sender trace: bundle_submitted (carrier media, by root), bundle_verified, media_write_started (3 targets, 10 %, encrypted), media_written x3" strace-big.json \
    "[(r['event'], r['actor']) for r in d] == [('bundle_submitted', 'root'), ('bundle_verified', 'system'), ('media_write_started', 'root')] + [('media_written', 'root')] * 3 and
     d[0]['details']['carrier'] == 'media' and
     (lambda s: s['targets'] == [env['WORK'] + '/d%d' % i for i in (1, 2, 3)] and s['parity_percent'] == 10 and s['encrypted'] is True and
      s['volume_bytes'] == $VOLUME_SIZE)(d[2]['details'])" \
    "[(r['event'], r['actor'], r['details']) for r in d]"
check_json "b ... media_written: volumes 1, 2, 3 of 3, verified, into SLUICE/$SETDIR of d1, d2, d3" strace-big.json \
    "[(r['details']['volume'], r['details']['volumes'], r['details']['verified'], r['details']['directory']) for r in d if r['event'] == 'media_written'] ==
     [(i, 3, True, env['WORK'] + '/d%d/SLUICE/' % i + env['SETDIR']) for i in (1, 2, 3)]" \
    "[r['details'] for r in d if r['event'] == 'media_written']"
echo "# b done ($(( $(date +%s) - STARTED )) s)"

# ==== c. parity 1 %: two segments of a set lost ===========================================================
mkdir -p c1 saved
mwrite wc.out bundles/p1.tar --to c1 --parity 1 --volume-size 64M
expect "c media write --parity 1: exit 0, K=64 M=1 (1 % parity), 65 segments per set, 1 volume" wc.out \
    eval "[ $rc -eq 0 ] && has_line wc.out '  layout: K=64 M=1 symbol=16328 (1 % parity), 65 segments per set, 1 symbols of each block per segment' &&
          has_line wc.out 'the last volume (1 of 1) is written'"
C1=$(set_dir c1)
mv "$C1/v0001-c0000-s003.seg" "$C1/v0001-c0000-s007.seg" saved/
mimport ic1.out c1
# print_import: 0 when the medium was read, even if blocks are unrecoverable (it says so and
# what to bring); 1 only when nothing could be read, a volume failed or the bundle was refused.
expect "c import with s003 and s007 gone: exit 0 (the medium was read), block 0 UNRECOVERABLE, nothing held" ic1.out \
    eval "[ $rc -eq 0 ] && has_line ic1.out '    blocks 1: 0 intact, 0 repaired with parity, 0 held already, UNRECOVERABLE: 0' &&
          has_line ic1.out '    archive: 0 of 1 blocks held' && ! grep -q 'complete' ic1.out"
expect "c ... damaged: exactly s003 and s007, missing" ic1.out \
    eval "[ \"\$(grep 'damaged:' ic1.out)\" = \"\$(printf '    damaged: v0001-c0000-s003.seg (missing)\n    damaged: v0001-c0000-s007.seg (missing)')\" ]"
expect "c ... still needed: bring these segments intact: v0001-c0000-s003, v0001-c0000-s007" ic1.out \
    has_line ic1.out '      volume 1 of 1: 1 block (0) unrecoverable from what was read; bring these segments intact: v0001-c0000-s003, v0001-c0000-s007'
cli stc.out media status --socket "$RSOCK"
expect "c media status names exactly the segments to bring" stc.out \
    eval "[ $rc -eq 0 ] && has_line stc.out '$ID_p1' &&
          has_line stc.out '    volume 1 of 1: 1 block (0) unrecoverable from what was read; bring these segments intact: v0001-c0000-s003, v0001-c0000-s007' &&
          ! grep -q '$ID_big' stc.out"
raudit c-imp.json --event media_volume_imported --bundle "$ID_p1" || true
check_json "c the audit log: media_volume_imported outcome incomplete, unrecoverable [[0, 0]]" c-imp.json \
    "[(r['outcome'], r['details']['unrecoverable']) for r in d] == [('incomplete', [[0, 0]])]" "[(r['outcome'], r['details']) for r in d]"
mv saved/v0001-c0000-s003.seg saved/v0001-c0000-s007.seg "$C1/"
mimport ic2.out c1
expect "c restored, imported again: block 0 intact, complete: verified and delivered" ic2.out \
    eval "[ $rc -eq 0 ] && has_line ic2.out '    blocks 1: 1 intact, 0 repaired with parity, 0 held already' &&
          has_line ic2.out '    complete: verified and delivered to $WORK/r/incoming/$ID_p1.tar' && ! grep -q 'damaged:' ic2.out"
wait_state "$ID_p1" 30 released rejected held pending_approval || true
check "c ... and released (releases/media-c/current -> 1.0.0)" eval \
    "[ \"\$(state_of $ID_p1)\" = released ] && [ \"\$(current_of media-c)\" = 1.0.0 ]"
# The same bundle on another write (default parity: another layout, so another set, but
# the same archive blocks): recognised as delivered, and not left waiting in media status.
mkdir -p c2
mwrite wc2.out bundles/p1.tar --to c2 --volume-size 64M
mimport ic3.out c2
expect "c the same bundle written again at 10 % parity: import says already received earlier (exit 0)" ic3.out \
    eval "[ $rc -eq 0 ] && has_line ic3.out '    already received earlier; nothing to do' && ! grep -q 'complete' ic3.out"
cli stc2.out media status --socket "$RSOCK"
expect "c ... and media status has no bundle waiting" stc2.out \
    eval "[ $rc -eq 0 ] && has_line stc2.out 'no bundle is waiting for media (--all shows completed ones)'"
check "c ... delivered once: one bundle_received for it" test "$(grep -c "event=bundle_received bundle=$ID_p1" r.log)" -eq 1
echo "# c done ($(( $(date +%s) - STARTED )) s)"

# ==== d. the wrong key; links, FIFOs and stray files on a medium =========================================
mkdir -p o1
mwrite wd.out bundles/odd.tar --to o1 --volume-size 64M
check "d media write of a small bundle to o1: exit 0" test "$rc" -eq 0
O1=$(set_dir o1)
O1N=$(basename "$O1")
RECEIVED_BEFORE=$(grep -c 'event=bundle_received' r.log || true)
mimport id-wrong.out o1 --key keys/wrong.key
expect "d import --key wrong.key: exit 1, NOT READ: ... encrypted with another key" id-wrong.out \
    eval "[ $rc -eq 1 ] && has_line id-wrong.out '  NOT READ: SLUICE/$O1N volume 1: the medium was encrypted with another key' &&
          ! grep -q 'volume 1 of' id-wrong.out"
raudit d-refused.json --event media_volume_refused || true
check_json "d ... audited: media_volume_refused by root, naming the path and the key problem" d-refused.json \
    "[(r['actor'], r['outcome'], r['details']['path'], 'encrypted with another key' in r['details']['problem']) for r in d] ==
     [('root', 'refused', env['WORK'] + '/o1', True)]" "[(r['actor'], r['outcome'], r['details']) for r in d]"
cli show-wrong.out media show o1 --key keys/wrong.key
expect "d media show --key wrong.key: exit 1, encrypted with another key" show-wrong.out \
    eval "[ $rc -eq 1 ] && grep -q 'encrypted with another key' show-wrong.out"
mkfifo "$O1/fifo"
ln -s /etc/passwd "$O1/link"
echo "notes" > "$O1/notes.txt"
echo "stray" > o1/SLUICE/stray.txt
ln -s "$WORK/d1/SLUICE/$SETDIR" o1/SLUICE/xlink
mimport id.out o1
expect "d import with a FIFO, symlinks and stray files: exit 0, each reported as ignored, never followed" id.out \
    eval "[ $rc -eq 0 ] && [ \"\$(grep '^  ignored: ' id.out)\" = \"\$(printf '  ignored: %s\n' \
            'SLUICE/stray.txt: an unexpected file' 'SLUICE/$O1N/fifo: a special file, not opened' \
            'SLUICE/$O1N/link: a symbolic link, not followed' 'SLUICE/$O1N/notes.txt: an unexpected file' \
            'SLUICE/xlink: a symbolic link, not followed')\" ]"
expect "d ... and the bundle is complete: verified and delivered (the linked volume of d1 was not read)" id.out \
    eval "has_line id.out '    complete: verified and delivered to $WORK/r/incoming/$ID_odd.tar' && [ \$(grep -c '^  volume ' id.out) -eq 1 ]"
wait_state "$ID_odd" 30 released rejected held pending_approval || true
check "d ... released (releases/media-d/current -> 1.0.0)" eval \
    "[ \"\$(state_of $ID_odd)\" = released ] && [ \"\$(current_of media-d)\" = 1.0.0 ]"
raudit d-ignored.json --event media_files_ignored || true
check_json "d the audit log: media_files_ignored by root lists the 5 entries" d-ignored.json \
    "[(r['actor'], len(r['details']['files'])) for r in d] == [('root', 5)]" "[(r['actor'], r['details']) for r in d]"
check "d only this bundle was received meanwhile (one more bundle_received)" \
    test "$(grep -c 'event=bundle_received' r.log)" -eq $((RECEIVED_BEFORE + 1))
echo "# d done ($(( $(date +%s) - STARTED )) s)"

# ==== e. a watched mount point ==============================================================================
mkdir -p e1
mwrite we.out bundles/w.tar --to e1 --volume-size 64M
check "e media write of a small bundle to e1: exit 0" test "$rc" -eq 0
WATCH_ACTOR="watch($WORK/watched)"
export WATCH_ACTOR
watch_imports() {
    raudit watch.json --event media_volume_imported --bundle "$ID_w" >/dev/null 2>&1 || { echo 0; return; }
    json_get watch.json "len([r for r in d if r['actor'] == env['WATCH_ACTOR']])"
}
watch_imports_are() { [ "$(watch_imports)" -eq "$1" ]; }
# The medium appears at once, as a mount does: copied beside the mount point (cp -a of
# the written tree), then renamed into it.
mount_copy() { rm -rf stage && mkdir stage && cp -a e1/SLUICE stage/ && mv stage/SLUICE watched/SLUICE; }
mount_copy
APPEARED=$(date +%s%N)
wait_until 10 watch_imports_are 1 || true
check "e the medium moved into the watched mount point is imported by '$WATCH_ACTOR' within $(( ($(date +%s%N) - APPEARED) / 1000000 )) ms (10 s allowed)" \
    watch_imports_are 1
wait_state "$ID_w" 30 released rejected held pending_approval || true
check "e ... delivered and released by the auto policy (releases/media-e/current -> 1.0.0)" eval \
    "[ \"\$(state_of $ID_w)\" = released ] && [ \"\$(current_of media-e)\" = 1.0.0 ]"
rtrace "$ID_w" rtrace-w.json || true
check_json "e ... the trace: media_volume_imported by the watcher, path watched, then bundle_received (carrier media)" rtrace-w.json \
    "[(r['actor'], r['details']['path']) for r in d if r['event'] == 'media_volume_imported'] == [(env['WATCH_ACTOR'], env['WORK'] + '/watched')] and
     [r['details']['carrier'] for r in d if r['event'] == 'bundle_received'] == ['media']" \
    "[(r['event'], r['actor']) for r in d]"
sleep 2.5   # two more polls (poll_interval 1s) with the medium still there
check "e left mounted, it is not read again (still 1 import after 2 more polls)" watch_imports_are 1
rm -rf watched/SLUICE
sleep 2.2   # at least one poll sees the mount point empty
mount_copy
wait_until 10 watch_imports_are 2 || true
check "e removed and put back, the medium is read once more" watch_imports_are 2
rtrace "$ID_w" rtrace-w2.json || true
check_json "e ... and not delivered twice: still one bundle_received, one bundle_released" rtrace-w2.json \
    "[r['event'] for r in d if r['event'] in ('bundle_received', 'bundle_released')] == ['bundle_received', 'bundle_released']" \
    "[(r['event'], r['actor']) for r in d]"
check_json "e ... the second read is audited as already delivered (media_volume_imported: already_delivered true, no damaged segment)" rtrace-w2.json \
    "[(bool(r['details'].get('already_delivered')), r['details'].get('damaged_segments', [])) for r in d if r['event'] == 'media_volume_imported'] ==
     [(False, []), (True, [])]" \
    "[r['details'] for r in d if r['event'] == 'media_volume_imported']"
check "e ... no second archive in incoming/, no bundle_replayed" eval \
    "[ ! -e r/incoming/$ID_w.tar ] && ! grep -q 'event=bundle_replayed' r.log"
mimport ie.out watched
expect "e a manual import of the watched medium says: already received earlier; nothing to do (exit 0)" ie.out \
    eval "[ $rc -eq 0 ] && has_line ie.out '    already received earlier; nothing to do'"
cli ste.out media status --json --socket "$RSOCK"
check_json "e media status --json: watching the mount point; the bundle's set complete; imports by the watcher, the watcher, root, all complete" ste.out \
    "d['watch'] == [env['WORK'] + '/watched'] and [s['outcome'] is not None for s in d['sets'] if s['bundle'] == env['ID_w']] == [True] and
     [(x['by'], x['complete']) for x in d['recent'] if x['bundle'] == env['ID_w']] == [(env['WATCH_ACTOR'], True)] * 2 + [('root', True)]" \
    "(d['watch'], d['recent'])"
echo "# e done ($(( $(date +%s) - STARTED )) s)"

# ==== f. roles ==================================================================================================
if [ "$(id -u)" -eq 0 ] && command -v useradd >/dev/null && command -v runuser >/dev/null; then
    OUTSIDER=smdx$$
    useradd -M -N -s /usr/sbin/nologin -d /nonexistent "$OUTSIDER"; USERS_MADE=("$OUTSIDER" "${USERS_MADE[@]}")
    USER_SLUICE=$SLUICE
    if ! runuser -u "$OUTSIDER" -- test -x "$SLUICE"; then
        mkdir -p bin && cp "$SLUICE" bin/sluice && USER_SLUICE=$WORK/bin/sluice
    fi
    as_outsider() { local out=$1; shift; rc=0; runuser -u "$OUTSIDER" -- "$USER_SLUICE" "$@" >"$out" 2>&1 || rc=$?; }
    as_outsider f-imp.out media import "$WORK/d1" --socket "$RSOCK"
    expect "f an outsider's media import is refused (exit 1), naming the operator role" f-imp.out \
        eval "[ $rc -eq 1 ] && grep -qF 'permission denied: $OUTSIDER needs the operator role (a member of sluice-operators)' f-imp.out"
    as_outsider f-st.out media status --socket "$RSOCK"
    expect "f ... and media status, naming the three roles" f-st.out \
        eval "[ $rc -eq 1 ] && grep -qF 'permission denied: $OUTSIDER needs the operator, officer or auditor role' f-st.out"
    mkdir -p f1 && chmod 0777 f1
    as_outsider f-w.out media write "$WORK/bundles/odd.tar" --to "$WORK/f1" --volume-size 64M --socket "$SSOCK"
    expect "f ... and media write on the sender, nothing written" f-w.out \
        eval "[ $rc -eq 1 ] && grep -qF 'permission denied: $OUTSIDER needs the operator role' f-w.out && [ -z \"\$(ls -A f1)\" ]"
else
    echo "# f skipped: creating a user without the operator role needs root, useradd and runuser"
fi

# ==== g. sender refusals ===========================================================================================
mkdir -p g1
mwrite wg.out bundles/rogue.tar --to g1 --volume-size 64M
expect "g media write of a bundle signed by an untrusted key: exit 1, refused naming the archive and the signature" wg.out \
    eval "[ $rc -eq 1 ] && grep -q '^sluice: error: refused $WORK/bundles/rogue.tar: .*' wg.out.err && grep -qiE 'trust|sign' wg.out.err"
check "g ... nothing was written to g1" test -z "$(ls -A g1)"
"$SLUICE" audit query --format json --socket "$SSOCK" >s-audit.json 2>s-audit.err || true
check_json "g ... the sender's audit log has the refusal (outcome refused, naming the archive)" s-audit.json \
    "any(r['outcome'] == 'refused' and r['details'].get('path') == env['WORK'] + '/bundles/rogue.tar' for r in d)" \
    "[(r['event'], r['outcome'], r['details'].get('path')) for r in d if r['outcome'] != 'ok']"
check_json "g ... and no bundle_submitted or media_write_started for it" s-audit.json \
    "not any(r['bundle'] == env['ID_rogue'] for r in d)" "[(r['event'], r['bundle'][:12]) for r in d if r['bundle'] == env['ID_rogue']]"
mwrite wn.out bundles/odd.tar --to no-such-dir --volume-size 64M
expect "g media write --to a directory that does not exist: exit 1, names it: not a directory (mount the medium ...)" wn.out \
    eval "[ $rc -eq 1 ] && has_line wn.out.err 'sluice: error: $WORK/no-such-dir is not a directory (mount the medium and name its mount point)'"
check "g ... and does not create it" test ! -e no-such-dir
"$SLUICE" audit query --event media_write_refused --format json --socket "$SSOCK" >s-failed.json 2>&1 || true
check_json "g ... the sender's audit log: media_write_refused by root, naming the target, before anything was started" s-failed.json \
    "[(r['actor'], r['outcome'], r['details']['targets'], 'is not a directory' in r['details']['error']) for r in d if 'no-such-dir' in str(r['details'])] ==
     [('root', 'refused', [env['WORK'] + '/no-such-dir'], True)]" "[(r['bundle'][:12], r['actor'], r['details']) for r in d]"
"$SLUICE" audit query --event media_write_started --format json --socket "$SSOCK" >s-started.json 2>&1 || true
check_json "g ... and no media_write_started names it" s-started.json \
    "not any('no-such-dir' in str(r['details']) for r in d)" "[r['details'] for r in d]"
echo "# g done ($(( $(date +%s) - STARTED )) s)"

# ---- stop -----------------------------------------------------------------------------------------------------
stop_process "$S_PID" TERM
check "sender: SIGTERM exits 0" test "$rc" -eq 0
stop_process "$R_PID" TERM
check "receiver: SIGTERM exits 0" test "$rc" -eq 0
check "no process left running" test "${#PIDS[@]}" -eq 0
INTERNAL='event=(audit_write_failed|import_internal_error|release_failed|import_deferred|media_import_failed|media_catalog_not_saved|media_catalog_unreadable|finalize_failed|delivery_failed)'
if grep -qE "$INTERNAL" r.log s.log; then
    bad "no internal error was logged"; grep -hE "$INTERNAL" r.log s.log | head -n 5 | sed 's/^/#     /'
else ok "no internal error was logged"; fi

echo "system: media daemons: $passed passed, $failed failed in $(( $(date +%s) - STARTED )) s"
FINISHED=1
if [ "$failed" -ne 0 ]; then dump_logs "$WORK"/*.log; exit 1; fi
