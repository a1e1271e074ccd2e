#!/usr/bin/env bash
# A guided tour of what Sluice does today: a release engineer packages a model
# release as a signed bundle; anyone verifies it offline; it is packed for
# transfer, unpacked on the other side, verified again; a tampered copy is
# refused; then both daemons run on loopback and the bundle crosses the
# one-way UDP link; the receiver quarantines it, scans it with ClamAV, holds it
# for an officer, releases it, takes the next version and rolls back, and
# rejects a bundle ClamAV flags; auditors trace every hop on both sides in the
# audit logs, and an edited log is caught. A later release crosses on two
# encrypted USB sticks instead, one of them damaged. Run scripts/setup.sh first (the
# README's first command does both).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sluice=${SLUICE:-$root/build/cli/sluice}
sender_bin=$root/build/daemon/sluice-sender
receiver_bin=$root/build/daemon/sluice-receiver
for bin in "$sluice" "$sender_bin" "$receiver_bin"; do
    [ -x "$bin" ] || { echo "demo: $bin not found; run scripts/setup.sh first" >&2; exit 1; }
done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

work=${DEMO_DIR:-$root/demo-work}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s' "${1##*/}"; [ $# -gt 1 ] && printf ' %q' "${@:2}"; printf '\n'; "$@"; }

step "1. Keys: a release engineer and a security reviewer each get a signing key"
run "$sluice" keygen release-eng --dir keys
run "$sluice" keygen reviewer --dir keys
mkdir -p trust && cp keys/*.pub trust/   # the destination side trusts these public keys

step "2. A model release, as a training pipeline leaves it"
mkdir -p release/weights release/tokenizer release/serving release/eval release/prompts
# (a fixed first byte: random data starting 0xEB is typed as a DOS executable by libmagic)
{ printf 'WEIGHTS\n'; head -c 64M /dev/urandom; } > release/weights/model-00001.safetensors
{ printf 'WEIGHTS\n'; head -c 16M /dev/urandom; } > release/weights/model-00002.safetensors
echo '{"model_type": "llama", "vocab_size": 32000}' > release/tokenizer/tokenizer.json
printf 'model = "assistant-7b"\nmax_batch = 16\nport = 8080\n' > release/serving/config.toml
echo '{"suite": "internal-qa-v3", "accuracy": 0.912, "previous": 0.891}' > release/eval/report.json
echo 'You are a careful assistant for maintenance engineers.' > release/prompts/system.txt
printf '# assistant-7b 1.4.0\nIntended use: internal maintenance Q&A.\n' > release/MODEL_CARD.md
echo '{"container_images": ["registry.local/llm-server@sha256:4f1c0d1e9b"]}' > artifacts.json
find release -type f -printf '  %p (%s bytes)\n'

step "3. Create the bundle: BagIt bag + release.json answering what/why/who/rollback, signed"
run "$sluice" bundle create release --out bundle --channel models --version 1.4.0 --previous 1.3.2 \
    --changes "Retrained on the March maintenance corpus" --reason "QA accuracy 0.891 -> 0.912" \
    --approved-by "Model release board, ticket REL-142" --rollback-to 1.3.2 \
    --artifacts artifacts.json --sign keys/release-eng.key
run "$sluice" bundle sign bundle --key keys/reviewer.key
run "$sluice" bundle inspect bundle

step "4. Anyone can check it with plain tools, no Sluice needed"
(cd bundle && run sha256sum --quiet -c manifest-sha256.txt && echo "  payload fixity OK")
(cd bundle && base64 -d signatures/reviewer.sig > ../reviewer.der && run openssl dgst -sha256 -verify ../keys/reviewer.pub -signature ../reviewer.der tagmanifest-sha256.txt)

step "5. Verify: fixity, completeness, and two distinct trusted signers"
run "$sluice" bundle verify bundle --trust trust --min-signers 2

step "6. Pack for transfer: one canonical tar (the same bag always gives the same bytes)"
run "$sluice" bundle pack bundle --out models-1.4.0.tar
"$sluice" bundle pack bundle --out again.tar >/dev/null
cmp models-1.4.0.tar again.tar && echo "  packed twice: identical bytes ($(sha256sum models-1.4.0.tar | cut -c1-16)...)"

step "7. Destination side: verify the archive as it arrived, then unpack it safely"
run "$sluice" bundle verify models-1.4.0.tar --trust trust --min-signers 2
run "$sluice" bundle unpack models-1.4.0.tar --out received
run "$sluice" bundle verify received --trust trust --min-signers 2

step "8. A tampered copy is refused, naming the file at fault"
cp -r bundle tampered
printf 'X' | dd of=tampered/data/weights/model-00002.safetensors bs=1 seek=1000000 conv=notrunc 2>/dev/null
if "$sluice" bundle verify tampered --trust trust; then echo "demo: tampering was NOT detected" >&2; exit 1; fi
echo "  (refused, as it must be)"

step "9. Across the diode: both daemons on loopback, nothing ever flows back"
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 32 /dev/urandom > link.key && chmod 600 link.key   # pre-shared: every frame carries an HMAC
for side in sender receiver; do
    {
        echo "[$side]"
        echo "state_dir = \"state/$side\""
        if [ "$side" = sender ]; then echo 'spool_dir = "spool"'; echo 'passes = 2'; else echo 'incoming_dir = "incoming"'; fi
        echo "control_socket = \"run/$side.sock\""
        echo 'trusted_keys = ["trust/release-eng.pub", "trust/reviewer.pub"]'
        echo 'min_signers = 2'
        echo
        echo '[link]'
        echo "lanes = [\"127.0.0.1:$port\"]"
        if [ "$side" = sender ]; then echo 'rate = "500M"'; fi
        echo 'key_file = "link.key"'
    } > "$side.toml"
done
echo "--- sender.toml"; cat sender.toml; echo "--- receiver.toml"; cat receiver.toml
"$receiver_bin" --config receiver.toml 2> receiver.log & pids+=($!)
"$sender_bin" --config sender.toml 2> sender.log & pids+=($!)
for _ in $(seq 100); do [ -S run/sender.sock ] && [ -S run/receiver.sock ] && break; sleep 0.1; done
run "$sluice" push models-1.4.0.tar --socket run/sender.sock
id=$("$sluice" bundle inspect models-1.4.0.tar --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["bundle_id"])')
for _ in $(seq 600); do [ -f "incoming/$id.tar" ] && break; sleep 0.1; done
[ -f "incoming/$id.tar" ] || { echo "demo: the bundle did not arrive; see $work/receiver.log" >&2; exit 1; }
run "$sluice" status --sender-socket run/sender.sock --receiver-socket run/receiver.sock
cmp models-1.4.0.tar "incoming/$id.tar" && echo "  received byte-identical: incoming/$id.tar"
run "$sluice" bundle verify "incoming/$id.tar" --trust trust --min-signers 2
echo "  receiver log (structured lines for journald):"
sed 's/^/    /' receiver.log
kill -TERM "${pids[@]}"
wait "${pids[@]}" 2>/dev/null || true
pids=()

step "10. Import: quarantine, a real ClamAV scan, the policy, an officer's approval, release"
# A private clamd with test signatures (no internet here for freshclam).
mkdir -p clamd
clamd_sock=$(CLAMD_STREAM_MAX=100M "$root/tests/tools/start_clamd.sh" "$work/clamd")
pids+=("$(cat clamd/clamd.pid)")
me=$(id -un); my_group=$(id -gn)
cat > policy.toml <<EOF_POLICY
[scanners.clamav]
type = "clamd"
socket = "$clamd_sock"
max_stream_bytes = "100M"
timeout = "1m"
attempts = 2
retry_delay = "2s"

[channels.models]
trusted_keys = ["trust/release-eng.pub", "trust/reviewer.pub"]
min_signers = 2
max_file_bytes = "1G"
allowed_types = ["application/octet-stream", "application/json", "text/*"]
forbidden_paths = ["*.exe", "*.dll"]
scanners = ["clamav"]
approval = "manual"
keep_releases = 3
EOF_POLICY
cat >> receiver.toml <<EOF_IMPORT

[import]
policy = "policy.toml"
quarantine_dir = "quarantine"
release_dir = "releases"

[roles]
officer_groups = ["$my_group"]   # so that you ($me) may approve in this demo; root always may
EOF_IMPORT
echo "--- policy.toml"; cat policy.toml
run "$sluice" policy check policy.toml
run "$sluice" policy explain models-1.4.0.tar --policy policy.toml
# The receiver picks up what step 9 left in incoming/ and imports it.
"$receiver_bin" --config receiver.toml 2> receiver.log & pids+=($!)
"$sender_bin" --config sender.toml 2> sender.log & pids+=($!)
wait_state() {  # ID STATE: until `sluice show ID` says STATE (60 s)
    for _ in $(seq 600); do
        "$sluice" show "$1" --json --socket run/receiver.sock 2>/dev/null | grep -q "\"state\": \"$2\"" && return 0
        sleep 0.1
    done
    echo "demo: bundle $1 never reached $2; see $work/receiver.log" >&2; exit 1
}
wait_state "$id" pending_approval
run "$sluice" pending --socket run/receiver.sock
run "$sluice" show "${id:0:12}" --socket run/receiver.sock
run "$sluice" approve "${id:0:12}" --reason "Reviewed eval report REL-142; scans clean" --socket run/receiver.sock
run "$sluice" releases models --socket run/receiver.sock
echo "  production pulls from $(readlink -f releases/models/current)"
run "$sluice" bundle verify releases/models/current --trust trust --min-signers 2

step "11. The next release: what changed is shown against the current one; then an immediate rollback"
cp -r release release-1.5.0
echo '{"suite": "internal-qa-v3", "accuracy": 0.925, "previous": 0.912}' > release-1.5.0/eval/report.json
{ printf 'WEIGHTS\n'; head -c 8M /dev/urandom; } > release-1.5.0/weights/adapter.safetensors
"$sluice" bundle create release-1.5.0 --out bundle-1.5.0 --channel models --version 1.5.0 --previous 1.4.0 \
    --changes "LoRA adapter for hydraulics manuals" --reason "QA accuracy 0.912 -> 0.925" \
    --approved-by "Model release board, ticket REL-151" --rollback-to 1.4.0 \
    --sign keys/release-eng.key --sign keys/reviewer.key >/dev/null
"$sluice" bundle pack bundle-1.5.0 --out models-1.5.0.tar >/dev/null
id2=$("$sluice" bundle inspect models-1.5.0.tar --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["bundle_id"])')
run "$sluice" push models-1.5.0.tar --socket run/sender.sock
wait_state "$id2" pending_approval
run "$sluice" show "${id2:0:12}" --socket run/receiver.sock
run "$sluice" approve "${id2:0:12}" --reason "Adapter reviewed" --socket run/receiver.sock
run "$sluice" rollback models --reason "1.5.0 answers hydraulics questions wrongly" --socket run/receiver.sock
run "$sluice" releases models --socket run/receiver.sock
[ "$(readlink releases/models/current)" = 1.4.0 ] || { echo "demo: rollback did not switch current" >&2; exit 1; }

step "12. A bundle carrying something ClamAV knows is rejected, never released"
cp -r release release-1.5.1
printf 'EVIL-PAYLOAD-XYZ' > release-1.5.1/prompts/extra.txt   # matches the demo's test signature
"$sluice" bundle create release-1.5.1 --out bundle-1.5.1 --channel models --version 1.5.1 --previous 1.5.0 \
    --changes "Prompt tweak" --reason "Shorter answers" --approved-by "Model release board, ticket REL-152" \
    --rollback-to 1.4.0 --sign keys/release-eng.key --sign keys/reviewer.key >/dev/null
"$sluice" bundle pack bundle-1.5.1 --out models-1.5.1.tar >/dev/null
id3=$("$sluice" bundle inspect models-1.5.1.tar --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["bundle_id"])')
run "$sluice" push models-1.5.1.tar --socket run/sender.sock
wait_state "$id3" rejected
run "$sluice" pending --all --socket run/receiver.sock
[ ! -e releases/models/1.5.1 ] || { echo "demo: a rejected bundle was released" >&2; exit 1; }
echo "  receiver log, import events:"
grep -E 'bundle_quarantined|scan_result|rule_result|approval_pending|bundle_approved|bundle_released|bundle_rejected|channel_rolled_back' receiver.log | sed 's/^/    /'

step "13. No diode? The same pipeline on removable media: two encrypted volumes, a damaged stick, any order"
head -c 32 /dev/urandom > media.key && chmod 600 media.key   # pre-shared, carried separately from the sticks
cp -r release-1.5.0 release-1.6.0
echo '{"suite": "internal-qa-v3", "accuracy": 0.931, "previous": 0.925}' > release-1.6.0/eval/report.json
"$sluice" bundle create release-1.6.0 --out bundle-1.6.0 --channel models --version 1.6.0 --previous 1.5.0 \
    --changes "Adapter retrained on corrected manuals" --reason "QA accuracy 0.925 -> 0.931" \
    --approved-by "Model release board, ticket REL-160" --rollback-to 1.4.0 \
    --sign keys/release-eng.key --sign keys/reviewer.key >/dev/null
"$sluice" bundle pack bundle-1.6.0 --out models-1.6.0.tar >/dev/null
id4=$("$sluice" bundle inspect models-1.6.0.tar --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["bundle_id"])')
mkdir -p usb1 usb2   # two small USB sticks, mounted
run "$sluice" media write models-1.6.0.tar --to usb1 --to usb2 --volume-size 56M --encrypt-key media.key \
    --socket run/sender.sock
echo "  On a stick: numbered files, no bundle id, channel, version or file name in clear:"
find usb1 -type f | sort | head -n 4 | sed 's/^/    /'; echo "    …"
if grep -rqaF -e models -e 1.6.0 -e "$id4" usb1 usb2; then echo "demo: the encrypted media show the bundle" >&2; exit 1; fi
echo "  Stick 1 had a rough trip: one segment file lost, a few sectors of another overwritten."
stick1=$(echo usb1/SLUICE/*)
rm "$stick1/v0001-c0000-s004.seg"
dd if=/dev/urandom of="$stick1/v0001-c0000-s010.seg" bs=4096 seek=3 count=2 conv=notrunc status=none
run "$sluice" media import usb2 --key media.key --socket run/receiver.sock      # volume 2 arrives first
run "$sluice" media status --socket run/receiver.sock
run "$sluice" media import usb1 --key media.key --socket run/receiver.sock      # parity repairs stick 1
wait_state "$id4" pending_approval
run "$sluice" approve "${id4:0:12}" --reason "Reviewed REL-160; arrived on media, scans clean" --socket run/receiver.sock
run "$sluice" releases models --socket run/receiver.sock
[ "$(readlink releases/models/current)" = 1.6.0 ] || { echo "demo: 1.6.0 from media was not released" >&2; exit 1; }
run "$sluice" bundle verify releases/models/current --trust trust --min-signers 2

step "14. The audit log: every hop on both sides, who approved, how to roll back, and proof it was not edited"
# The sender's events (who pushed it, each pass) crossed the diode with the bundle.
run "$sluice" audit trace "${id2:0:12}" --socket run/receiver.sock
run "$sluice" audit report "${id2:0:12}" --socket run/receiver.sock
run "$sluice" audit query --actor "$me" --socket run/receiver.sock
run "$sluice" audit query --event bundle_submitted --socket run/sender.sock
# On media the sender's events travel in every volume's index.
run "$sluice" audit trace "${id4:0:12}" --socket run/receiver.sock
run "$sluice" audit export --format syslog --output audit-receiver.log --socket run/receiver.sock
echo "  $(wc -l < audit-receiver.log) RFC 5424 lines for a SIEM in audit-receiver.log, e.g.:"
head -n 1 audit-receiver.log | cut -c1-200 | sed 's/^/    /'
kill -TERM "${pids[@]}"
wait "${pids[@]}" 2>/dev/null || true
pids=()
# A clean shutdown signs a last checkpoint; the auditor checks a copy offline with the receiver's public key.
sqlite3 state/receiver/audit.db ".backup audit-copy.db"
run "$sluice" audit verify --db audit-copy.db --key state/receiver/audit.pub
echo "  Someone edits an approval with the sqlite3 shell (after dropping the trigger that refuses it):"
cp audit-copy.db audit-tampered.db
seq_edit=$(sqlite3 audit-tampered.db "SELECT seq FROM events WHERE event = 'approval_recorded' OR event = 'bundle_approved' ORDER BY seq LIMIT 1")
run sqlite3 audit-tampered.db "DROP TRIGGER events_no_update; UPDATE events SET actor = 'mallory' WHERE seq = $seq_edit"
if "$sluice" audit verify --db audit-tampered.db --key state/receiver/audit.pub; then
    echo "demo: an edited audit log verified" >&2; exit 1
fi
echo "  (exit 1: event $seq_edit named as the first bad one)"

step "Done"
echo "Everything the demo made is in $work"
