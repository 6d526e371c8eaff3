#!/usr/bin/env python3
"""Durability under CPU pressure, for any build of the runner (this one or an older commit's).

A busy loop is pinned to one core beside the runner (`taskset`), and the runner is made to
lose its CPU at the worst moments while 64 clients visit:

- crash rounds: the runner is SIGKILLed at a pseudo-random moment (50-500 ms into the load)
  and restarted on the same data dir; every visit a client saw acknowledged must be on disk.
- a filling volume: a 16 KiB tmpfs as the replica's volume, 64 clients x 20 visits.

It prints acknowledged vs kept, torn tails, lines that are not records and the statuses seen.
Needs root (tmpfs) and taskset. It only measures: the assertions live in the tests
(host/tests/crash_recovery.rs, tests/volume_faults.rs).

  bench/pressure.py --bin target/release/app-wasm --wasm target/wasm32-wasip2/release/app_wasm.wasm
"""

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLIENTS = 64
# An RFC 3339 Moscow timestamp, any sub-second precision: what either record format holds.
RECORD = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+03:00$")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runner:
    """`app-wasm up` on one core shared with the hog, on 127.0.0.1:port."""

    def __init__(self, args, data, port):
        cmd = ["taskset", "-c", args.core, args.bin, "up", "--quiet",
               "--listen", f"127.0.0.1:{port}", "--data", data, "--wasm", args.wasm]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        self.port = port
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"runner did not start: {cmd}")
            time.sleep(0.05)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


async def visitor(port, bound, statuses, acked):
    """Keep-alive `GET /` until the server is gone or `bound` visits are sent."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        for _ in range(bound):
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            body = await reader.readexactly(length)
            statuses[status] += 1
            if status == 200:
                acked.append(json.loads(body)["moscow_time"])
            if re.search(rb"(?i)connection: *close", head):
                return
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return  # killed mid-request: that visit was never acknowledged
    finally:
        writer.close()


async def load(port, bound, kill_after=None, runner=None):
    statuses, acked = collections.Counter(), []
    tasks = [asyncio.create_task(visitor(port, bound, statuses, acked)) for _ in range(CLIENTS)]
    if kill_after is not None:
        await asyncio.sleep(kill_after)
        runner.kill()
    await asyncio.gather(*tasks)
    return statuses, acked


def inspect(log):
    """Lines that are records, lines that are not, and the bytes after the last newline."""
    try:
        data = open(log, "rb").read()
    except FileNotFoundError:
        return [], 0, 0
    *lines, tail = data.split(b"\n")
    records = [l.decode() for l in lines if RECORD.match(l)]
    return records, len(lines) - len(records), len(tail)


def missing(acked, records):
    on_disk = collections.Counter(records)
    wanted = collections.Counter(acked)
    return sum(max(0, n - on_disk[ts]) for ts, n in wanted.items())


def kill_points(rounds):
    x = 0x9E3779B97F4A7C15
    for _ in range(rounds):  # the xorshift of host/tests/crash_recovery.rs: the same moments
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        yield (50 + x % 450) / 1000


def crash_rounds(args):
    data = tempfile.mkdtemp(prefix="pressure-crash-")
    log = os.path.join(data, "app-wasm-0", "visits.txt")
    acked, torn_seen, statuses = [], 0, collections.Counter()
    for after in kill_points(args.rounds):
        runner = Runner(args, data, free_port())
        st, round_acked = asyncio.run(load(runner.port, 2000, after, runner))
        statuses.update(st)
        acked += round_acked
        torn_seen += inspect(log)[2] > 0
    runner = Runner(args, data, free_port())  # the restart must repair the tail, if any
    asyncio.run(load(runner.port, 1))
    runner.stop()
    records, bad, torn = inspect(log)
    lost = missing(acked, records)  # records are only ever appended: the end says it all
    print(f"crash rounds: {args.rounds} SIGKILLs under {CLIENTS} clients: {len(acked)} acknowledged, "
          f"{len(acked) - lost} of them on disk ({lost} lost); {len(records)} records kept; "
          f"torn tails seen after a kill: {torn_seen}; after the last restart: {bad} lines that "
          f"are not records, torn tail {torn} B; statuses {dict(sorted(statuses.items()))}")


def filling_volume(args):
    data = tempfile.mkdtemp(prefix="pressure-full-")
    volume = os.path.join(data, "app-wasm-0")
    os.makedirs(volume)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", volume], check=True)
    try:
        runner = Runner(args, data, free_port())
        statuses, acked = asyncio.run(load(runner.port, 20))
        runner.stop()
        records, bad, torn = inspect(os.path.join(volume, "visits.txt"))
        print(f"16 KiB volume filling under {CLIENTS} clients x 20: statuses "
              f"{dict(sorted(statuses.items()))}; {len(acked)} acknowledged, "
              f"{len(acked) - missing(acked, records)} of them on disk; {len(records)} records kept, "
              f"{bad} lines that are not records, torn tail {torn} B")
    finally:
        subprocess.run(["umount", volume], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the runner binary (app-wasm)")
    ap.add_argument("--wasm", required=True, help="the component that runner serves")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--core", default="0", help="the core the runner and the hog share")
    ap.add_argument("--no-hog", action="store_true", help="the same runs without the busy loop")
    args = ap.parse_args()
    hog = None
    if not args.no_hog:
        hog = subprocess.Popen(["taskset", "-c", args.core, sys.executable, "-c", "while True: pass"])
    try:
        crash_rounds(args)
        filling_volume(args)
    finally:
        if hog:
            hog.kill()


if __name__ == "__main__":
    main()
