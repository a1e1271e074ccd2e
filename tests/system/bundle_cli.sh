#!/usr/bin/env bash
# System test: drives the real `sluice` binary as a release engineer would and
# checks its output with independent tools (sha256sum, openssl, GNU tar).
#   tests/system/bundle_cli.sh path/to/sluice
set -euo pipefail

SLUICE=$(realpath "${1:?usage: bundle_cli.sh path/to/sluice}")
BAGIT_VALIDATE=$(cd "$(dirname "$0")" && pwd)/bagit_validate.py
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-system-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@" >/dev/null; then ok "$what"; else bad "$what"; fi; }

# expect_refusal WHAT NEEDLE CMD...: the command exits 1 and stderr contains NEEDLE.
expect_refusal() {
    local what=$1 needle=$2; shift 2
    local rc=0
    "$@" >out.txt 2>err.txt || rc=$?
    if [ "$rc" -eq 1 ] && grep -qF -- "$needle" err.txt; then ok "$what"
    else bad "$what (exit $rc, stderr: $(cat err.txt))"; fi
}

# ---- keys -------------------------------------------------------------------
"$SLUICE" keygen alice --dir keys >/dev/null
"$SLUICE" keygen bob --dir keys >/dev/null
"$SLUICE" keygen mallory --dir keys >/dev/null
check "private key is mode 0600" test "$(stat -c %a keys/alice.key)" = 600
check "private key is PEM PKCS#8" grep -q 'BEGIN PRIVATE KEY' keys/alice.key
check "openssl reads the key as EC P-256" sh -c 'openssl pkey -in keys/alice.key -noout -text | grep -q "NIST CURVE: P-256"'
mkdir trust && cp keys/alice.pub keys/bob.pub trust/

# ---- a release directory ------------------------------------------------------
mkdir -p release/weights release/tokenizer release/serving release/prompts
head -c 3000000 /dev/urandom > release/weights/model.safetensors
head -c 100000 /dev/urandom > release/weights/adapter.bin
echo '{"vocab_size": 32000}' > release/tokenizer/tokenizer.json
printf 'max_batch = 8\nport = 8080\n' > release/serving/config.toml
echo 'You are a helpful assistant.' > release/prompts/system.txt
printf '# Model card\nIntended use: internal QA.\n' > "release/model card.md"
echo '{"images": ["registry.local/llm-server@sha256:0123"]}' > artifacts.json

create() {
    "$SLUICE" bundle create release --out "$1" --channel models --version 1.4.0 --previous 1.3.2 \
        --changes "Retrained on March data" --reason "Accuracy +2.1 points" --approved-by "release board" \
        --rollback-to 1.3.2 --created-at 2026-11-29T14:00:00Z --created-by ci --artifacts artifacts.json \
        "${@:2}"
}

# ---- create: a BagIt bag, checked with independent tools -----------------------
id=$(create bag --sign keys/alice.key --sign keys/bob.key | tail -n 1)
check "bundle id is the SHA-256 of tagmanifest-sha256.txt" test "$id" = "$(sha256sum bag/tagmanifest-sha256.txt | cut -d' ' -f1)"
check "an independent RFC 8493 validator accepts the bag" python3 "$BAGIT_VALIDATE" bag
check "sha256sum -c manifest-sha256.txt" sh -c 'cd bag && sha256sum --quiet -c manifest-sha256.txt'
check "sha256sum -c tagmanifest-sha256.txt" sh -c 'cd bag && sha256sum --quiet -c tagmanifest-sha256.txt'
check "bagit.txt declares BagIt 1.0 in UTF-8" test "$(cat bag/bagit.txt)" = "$(printf 'BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8')"
listed=$(cut -d' ' -f3- bag/manifest-sha256.txt | sort)
present=$(cd bag && find data -type f | sort)
check "manifest lists exactly the files under data/" test "$listed" = "$present"
octets=$(find bag/data -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
streams=$(find bag/data -type f | wc -l)
check "Payload-Oxum matches the payload" grep -qx "Payload-Oxum: $octets.$streams" bag/bag-info.txt
check "Bag-Group-Identifier is the channel" grep -qx "Bag-Group-Identifier: models" bag/bag-info.txt
for tag in bagit.txt bag-info.txt manifest-sha256.txt release.json; do
    check "tagmanifest covers $tag" grep -q "  $tag\$" bag/tagmanifest-sha256.txt
done
check "release.json answers the four questions" python3 - bag/release.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["changes"] and r["reason"] and r["approved_by"] and r["rollback_to"] == "1.3.2", r
assert r["channel"] == "models" and r["version"] == "1.4.0" and r["previous_version"] == "1.3.2"
assert r["created_at"] == "2026-11-29T14:00:00Z" and r["created_by"] == "ci"
assert r["artifacts"]["images"] == ["registry.local/llm-server@sha256:0123"]
PY
for signer in alice bob; do
    check "openssl dgst verifies $signer's signature" sh -c \
        "cd bag && base64 -d signatures/$signer.sig > ../$signer.der && openssl dgst -sha256 -verify ../keys/$signer.pub -signature ../$signer.der tagmanifest-sha256.txt | grep -qx 'Verified OK'"
done

# ---- verify ---------------------------------------------------------------------
out=$("$SLUICE" bundle verify bag --trust trust --min-signers 2)
check "verify prints the id as its last line" test "$(tail -n 1 <<<"$out")" = "$id"
expect_refusal "three signers required, two present" "only 2 distinct trusted signer(s)" \
    "$SLUICE" bundle verify bag --trust trust --min-signers 3

# ---- reproducibility ------------------------------------------------------------
id2=$(create bag2 --sign keys/bob.key | tail -n 1)
check "same input and --created-at give the same id" test "$id" = "$id2"
id3=$(SOURCE_DATE_EPOCH=1795960800 "$SLUICE" bundle create release --out bag3 --channel models --version 1.4.0 \
    --previous 1.3.2 --changes "Retrained on March data" --reason "Accuracy +2.1 points" \
    --approved-by "release board" --rollback-to 1.3.2 --created-by ci --artifacts artifacts.json \
    --sign keys/alice.key | tail -n 1)
check "SOURCE_DATE_EPOCH stands in for --created-at" test "$id" = "$id3"

# ---- pack, GNU tar, unpack --------------------------------------------------------
"$SLUICE" bundle pack bag --out a.tar >/dev/null
"$SLUICE" bundle pack bag --out b.tar >/dev/null
check "packing twice gives identical bytes" cmp -s a.tar b.tar
tar -tf a.tar > a.list   # (not piped into head: tar's SIGPIPE would fail the script under pipefail)
first_entries=$(head -n 7 a.list | tr '\n' ' ')
check "tag files come first" test "$first_entries" = "bagit.txt bag-info.txt manifest-sha256.txt release.json tagmanifest-sha256.txt signatures/alice.sig signatures/bob.sig "
payload_order=$(grep '^data/' a.list)
check "payload in sorted order" test "$payload_order" = "$(LC_ALL=C sort <<<"$payload_order")"
check "owner, group and mode are normalised" sh -c '! tar --numeric-owner -tvf a.tar | grep -v "^-rw-r--r-- 0/0 "'
check "verify accepts the archive" "$SLUICE" bundle verify a.tar --trust trust --min-signers 2
mkdir gnutar && tar -xf a.tar -C gnutar
check "GNU tar extracts a bag that verifies" "$SLUICE" bundle verify gnutar --trust trust
"$SLUICE" bundle unpack a.tar --out unpacked >/dev/null
check "unpack gives a bag that verifies" "$SLUICE" bundle verify unpacked --trust trust --min-signers 2
check "inspect --json is JSON with the release" sh -c "'$SLUICE' bundle inspect a.tar --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"bundle_id\"]==\"$id\" and d[\"release\"][\"rollback_to\"]==\"1.3.2\"'"

# ---- sign -------------------------------------------------------------------------
cp keys/mallory.pub trust/
"$SLUICE" bundle sign bag2 --key keys/mallory.key >/dev/null
check "a later signature counts" "$SLUICE" bundle verify bag2 --trust trust --min-signers 2
expect_refusal "the same key cannot sign twice" "already" "$SLUICE" bundle sign bag2 --key keys/mallory.key
rm trust/mallory.pub

# ---- refusals -------------------------------------------------------------------------
cp -r bag tampered
printf 'X' | dd of=tampered/data/weights/model.safetensors bs=1 seek=4242 conv=notrunc 2>/dev/null
check "the independent validator rejects the tampered bag too" sh -c "! python3 '$BAGIT_VALIDATE' tampered"
expect_refusal "a flipped payload byte is named" "data/weights/model.safetensors: SHA-256 mismatch" \
    "$SLUICE" bundle verify tampered --trust trust
expect_refusal "an untrusted signer is named" "signatures/mallory.sig" "$SLUICE" bundle verify bag2 --trust trust
cp -r bag extra && echo 'import os' > extra/data/serving/hook.py
expect_refusal "an extra payload file is named" "data/serving/hook.py: not listed" "$SLUICE" bundle verify extra --trust trust
expect_refusal "pack refuses a tampered bag" "SHA-256 mismatch" "$SLUICE" bundle pack tampered --out t.tar
check "no partial archive is left" test ! -e t.tar -a -z "$(ls -a | grep partial || true)"

mkdir evil && ln -s /etc/passwd evil/passwd && echo hi > evil/a.txt
tar -cf evil.tar -C evil .
expect_refusal "unpack refuses a symbolic link, naming it" "entry 'passwd': symbolic link" \
    "$SLUICE" bundle unpack evil.tar --out evil-out
check "a refused unpack leaves nothing" test ! -e evil-out
python3 - <<'PY'
import io, tarfile
with tarfile.open("dotdot.tar", "w", format=tarfile.PAX_FORMAT) as t:
    data = b"owned\n"
    info = tarfile.TarInfo("data/../../escape.txt"); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
PY
expect_refusal "unpack refuses '..'" "'..'" "$SLUICE" bundle unpack dotdot.tar --out dotdot-out
check "nothing escaped" test ! -e ../escape.txt -a ! -e dotdot-out
gzip -k a.tar
expect_refusal "compressed archives are refused" "not a tar archive" "$SLUICE" bundle unpack a.tar.gz --out gz-out
expect_refusal "unpack limits are enforced" "over the per-file limit" \
    "$SLUICE" bundle unpack a.tar --out limited --max-file-bytes 1M

truncate -s 64G sparse-src && mkdir -p sparse-dir && mv sparse-src sparse-dir/data.bin
tar --sparse --format=pax -cf sparse.tar -C sparse-dir data.bin
expect_refusal "a sparse entry is refused before anything is written" "sparse file" \
    "$SLUICE" bundle unpack sparse.tar --out sparse-out
check "nothing of the sparse archive is left" test ! -e sparse-out

rc=0; "$SLUICE" bundle create release --out x >/dev/null 2>&1 || rc=$?
check "a missing required flag is a usage error (exit 2)" test "$rc" -eq 2
check "--version prints the version" sh -c "'$SLUICE' --version | grep -q '^sluice [0-9]'"

echo "system: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
