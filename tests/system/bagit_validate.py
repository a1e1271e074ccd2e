#!/usr/bin/env python3
"""An independent BagIt 1.0 (RFC 8493) validator for the system tests.

Written from the RFC, not from Sluice's code, so that the bags Sluice writes
are checked by a second implementation: bagit.txt, every manifest-<alg>.txt
and tagmanifest-<alg>.txt (complete and correct), Payload-Oxum, and that every
payload file is listed in every payload manifest.

    bagit_validate.py BAGDIR      exit 0 and "valid", or exit 1 naming the fault
"""
import hashlib
import os
import re
import sys


def fail(msg):
    print(f"invalid: {msg}")
    sys.exit(1)


def decode(path):
    # RFC 8493 2.1.3: %0D, %0A, %25 (case-insensitive)
    return re.sub(r"%(0[aAdD]|25)", lambda m: {"0a": "\n", "0d": "\r", "25": "%"}[m.group(1).lower()], path)


def read_manifest(bag, name):
    entries = {}
    with open(os.path.join(bag, name), "rb") as f:
        for number, raw in enumerate(f.read().decode("utf-8").splitlines(), 1):
            if not raw.strip():
                continue
            m = re.match(r"^([0-9a-fA-F]+)[ \t]+(.+)$", raw)
            if not m:
                fail(f"{name} line {number}: malformed")
            path = decode(m.group(2))
            if path.startswith("/") or ".." in path.split("/"):
                fail(f"{name} line {number}: unsafe path {path!r}")
            if path in entries:
                fail(f"{name} line {number}: {path!r} listed twice")
            entries[path] = m.group(1).lower()
    return entries


def digest(path, alg):
    h = hashlib.new(alg)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    bag = sys.argv[1]
    with open(os.path.join(bag, "bagit.txt"), "rb") as f:
        lines = f.read().decode("utf-8").splitlines()
    if len(lines) != 2 or not re.fullmatch(r"BagIt-Version: \d+\.\d+", lines[0]) or \
            lines[1] != "Tag-File-Character-Encoding: UTF-8":
        fail("bagit.txt does not declare a BagIt version and UTF-8 on exactly two lines")
    if not os.path.isdir(os.path.join(bag, "data")):
        fail("no data/ directory")
    names = os.listdir(bag)
    payload_manifests = [n for n in names if re.fullmatch(r"manifest-[a-z0-9]+\.txt", n)]
    tag_manifests = [n for n in names if re.fullmatch(r"tagmanifest-[a-z0-9]+\.txt", n)]
    if not payload_manifests:
        fail("no payload manifest")
    payload = set()
    for root, dirs, files in os.walk(os.path.join(bag, "data")):
        for name in files:
            payload.add(os.path.relpath(os.path.join(root, name), bag).replace(os.sep, "/"))
    for manifest in payload_manifests:
        alg = manifest[len("manifest-"):-len(".txt")]
        entries = read_manifest(bag, manifest)
        if set(entries) != payload:
            missing = sorted(payload - set(entries))
            extra = sorted(set(entries) - payload)
            fail(f"{manifest}: not listed {missing[:3]}, listed but absent {extra[:3]}")
        for path, want in entries.items():
            if digest(os.path.join(bag, path), alg) != want:
                fail(f"{manifest}: {path} does not match")
    for manifest in tag_manifests:
        alg = manifest[len("tagmanifest-"):-len(".txt")]
        for path, want in read_manifest(bag, manifest).items():
            if path.startswith("data/"):
                fail(f"{manifest}: lists payload file {path}")
            if not os.path.isfile(os.path.join(bag, path)):
                fail(f"{manifest}: {path} is missing")
            if digest(os.path.join(bag, path), alg) != want:
                fail(f"{manifest}: {path} does not match")
    info = {}
    if os.path.exists(os.path.join(bag, "bag-info.txt")):
        with open(os.path.join(bag, "bag-info.txt"), "rb") as f:
            for line in f.read().decode("utf-8").splitlines():
                if line and not line[0].isspace():
                    label, _, value = line.partition(":")
                    info.setdefault(label.strip(), value.strip())
    if "Payload-Oxum" in info:
        octets, streams = (int(x) for x in info["Payload-Oxum"].split("."))
        actual = sum(os.path.getsize(os.path.join(bag, p)) for p in payload)
        if (octets, streams) != (actual, len(payload)):
            fail(f"Payload-Oxum {octets}.{streams} but the payload is {actual}.{len(payload)}")
    print("valid")


if __name__ == "__main__":
    main()
