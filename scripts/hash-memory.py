#!/usr/bin/env python3
"""Resident memory of a running GOIM after a burst of registrations (issue 14).

Registers N new users over HTTP, C at a time, against GOIM at URL, and prints the
server's RSS (from /proc/PID/status) before, at the peak, and after the burst.
Runs as its own process, so the figure is the server's alone.

    scripts/hash-memory.py --url http://127.0.0.1:8080 --pid 1234 [--users 500] [--concurrency 32]
"""
import argparse
import concurrent.futures
import threading
import time
import uuid

import requests


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    prefix = uuid.uuid4().hex[:8]
    peak = [rss_kib(args.pid)]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(args.pid))
            time.sleep(0.05)

    def register(n):
        response = requests.post(
            f"{args.url}/api/v1/auth/register",
            json={"username": f"m{prefix}{n}", "password": "correct horse battery"},
            timeout=120,
        )
        return response.status_code

    before = rss_kib(args.pid)
    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        statuses = list(pool.map(register, range(args.users)))
    elapsed = time.monotonic() - started
    done.set()
    watcher.join()
    time.sleep(2)
    after = rss_kib(args.pid)
    counts = {status: statuses.count(status) for status in set(statuses)}
    print(
        f"users {args.users} at {args.concurrency}: statuses {counts}; {elapsed:.1f} s; "
        f"RSS before {before / 1024:.1f} MiB, peak {peak[0] / 1024:.1f} MiB, after {after / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
