#!/usr/bin/env python3
"""Sanity test of udp_impair; run through udp_impair_test.sh (see there)."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

N = 10_000
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
failures = []


def check(cond, msg):
    print(("ok    " if cond else "FAIL  ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def payload(i):
    # 4-byte sequence number + 60 bytes derived from it
    return struct.pack(">I", i) + bytes((i * 7 + k) & 0xFF for k in range(60))


SENT = [payload(i) for i in range(N)]


def run(proxy, *args):
    """Sends N datagrams through a fresh proxy; returns (datagrams received in order, stats)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    except OSError:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    with tempfile.TemporaryDirectory() as tmp:
        stats_file = os.path.join(tmp, "stats.json")
        cmd = [proxy, "--listen", "127.0.0.1:0", "--forward", "127.0.0.1:%d" % rx.getsockname()[1],
               "--stats-file", stats_file, *args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            port = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                if line.startswith("udp_impair: lane 0 listening on 127.0.0.1:"):
                    port = int(line.split("127.0.0.1:")[1].split(",")[0])
                if line.strip() == "udp_impair: ready":
                    break
            else:
                raise RuntimeError("udp_impair did not print its ready line")
            if port is None:
                raise RuntimeError("udp_impair did not report its port (exit %s)" % p.poll())

            got = []

            def receive():
                idle_since = None
                while True:
                    try:
                        got.append(rx.recv(65536))
                        idle_since = None
                    except socket.timeout:
                        if sending_done.is_set():
                            if idle_since is not None:
                                return  # two quiet timeouts after the last datagram was sent
                            idle_since = time.monotonic()

            sending_done = threading.Event()
            t = threading.Thread(target=receive)
            t.start()
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i, d in enumerate(SENT):
                tx.sendto(d, ("127.0.0.1", port))
                if i % 200 == 199:
                    time.sleep(0.001)  # stay well below what a python receiver can take
            tx.close()
            sending_done.set()
            t.join()
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                raise RuntimeError("udp_impair ignored SIGTERM")
        if rc != 0:
            raise RuntimeError("udp_impair exited with %d" % rc)
        with open(stats_file) as f:
            stats = json.load(f)
    rx.close()
    return got, stats


def seqs(datagrams):
    return [struct.unpack(">I", d[:4])[0] for d in datagrams]


def main():
    proxy = sys.argv[1]

    got1, st1 = run(proxy, "--drop", "0.1", "--seed", "1")
    got2, st2 = run(proxy, "--drop", "0.1", "--seed", "1")
    got3, _ = run(proxy, "--drop", "0.1", "--seed", "2")
    for name, got, st in (("run 1", got1, st1), ("run 2", got2, st2)):
        check(st["received"] == N, "%s: proxy received %d of %d datagrams" % (name, st["received"], N))
        check(len(got) == st["forwarded"],
              "%s: receiver got %d datagrams, proxy forwarded %d (no loss outside the proxy)"
              % (name, len(got), st["forwarded"]))
        check(got == [SENT[s] for s in seqs(got)], "%s: forwarded datagrams are unchanged" % name)
    dropped1 = set(range(N)) - set(seqs(got1))
    dropped2 = set(range(N)) - set(seqs(got2))
    dropped3 = set(range(N)) - set(seqs(got3))
    check(dropped1 == dropped2, "--drop 0.1 --seed 1: the same %d datagrams dropped in both runs "
          "(%d differ)" % (len(dropped1), len(dropped1 ^ dropped2)))
    check(dropped1 != dropped3, "--seed 2 drops other datagrams (%d differ from seed 1)" % len(dropped1 ^ dropped3))
    ratio = len(dropped1) / N
    check(0.08 <= ratio <= 0.12, "drop ratio %.4f within 0.08-0.12" % ratio)
    check(st1["dropped"] == len(dropped1), "stats file counts %d dropped" % st1["dropped"])

    got, st = run(proxy, "--corrupt", "1.0", "--seed", "3")
    check(len(got) == N and st["corrupted"] == N, "--corrupt 1.0: %d datagrams through, %d counted corrupted"
          % (len(got), st["corrupted"]))
    check(all(g != s and len(g) == len(s) for g, s in zip(got, SENT)),
          "--corrupt 1.0: every datagram changed, same length")
    flips = [sum(a != b for a, b in zip(g, s)) for g, s in zip(got, SENT)]
    check(min(flips) >= 1 and max(flips) <= 3, "--corrupt: 1 to 3 bytes changed (%d..%d)" % (min(flips), max(flips)))

    got, st = run(proxy, "--truncate", "1.0", "--seed", "4")
    check(len(got) == N and all(len(g) < len(s) and s.startswith(g) for g, s in zip(got, SENT)),
          "--truncate 1.0: every datagram is a strict prefix of the original")

    got, st = run(proxy, "--duplicate", "1.0", "--seed", "5")
    check(len(got) == 2 * N and got[0::2] == SENT and got[1::2] == SENT, "--duplicate 1.0: every datagram twice")

    got, st = run(proxy, "--reorder", "0.2", "--reorder-depth", "3", "--seed", "6")
    s = seqs(got)
    check(sorted(s) == list(range(N)) and s != list(range(N)),
          "--reorder 0.2 --reorder-depth 3: all %d datagrams, %d held back, order changed" % (len(s), st["reordered"]))
    late = [s.index(i) - i for i in range(N)]
    check(max(late) <= 3 * 2 + 3, "--reorder: no datagram more than a few places late (max %d)" % max(late))

    got, st = run(proxy, "--burst-every", "100", "--burst-len", "10")
    check(set(seqs(got)) == {i for i in range(N) if i % 100 < 90},
          "--burst-every 100 --burst-len 10: the last 10 of every 100 dropped (%d)" % st["dropped_burst"])

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
