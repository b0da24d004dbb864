#!/usr/bin/env python3
"""The Windows build of GOIM, run as a user would, under Wine with the real Windows
PostgreSQL (scripts/windows-check prepares both). Fails loudly at the first surprise.

1. first start on an empty data dir: /readyz, register, sign in, a message sent over the
   WebSocket and read back over REST; Ctrl+C -> exit 0, PostgreSQL stopped, no
   postmaster.pid;
2. second start on the same data dir: the account and the message are still there;
   GOIM killed outright -> its pg-guard stops PostgreSQL;
3. third start recovers; a foreign postgres.exe whose PID a stale postmaster.pid names
   is left alone (it is not ours); Ctrl+C -> exit 0;
4. service mode: install, start, /readyz, stop, uninstall, as far as Wine's service
   manager goes.
"""
import argparse
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

ARGS = None


def log(message):
    print(f"windows-check: {message}", flush=True)


def fail(message):
    print(f"windows-check: FAILED: {message}", flush=True)
    sys.exit(1)


def wine(*arguments, **kwargs):
    return subprocess.run([ARGS.wine, *arguments], capture_output=True, text=True, timeout=180, **kwargs)


def http(method, path, body=None, token=None, expect=200, timeout=10):
    request = urllib.request.Request(f"http://127.0.0.1:{ARGS.port}{path}", method=method)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    if status != expect:
        fail(f"{method} {path}: {status} (expected {expect}): {payload[:300]!r}")
    return json.loads(payload) if payload else None


def wait_ready(process, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            fail(f"goim.exe exited with {process.returncode} before it was ready; output:\n{output_of(process)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ARGS.port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    fail(f"/readyz did not answer 200 within {seconds} s")


def output_of(process):
    try:
        with open(process.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()[-4000:]
    except OSError:
        return "(no output)"


def start_goim(name):
    log_path = os.path.join(ARGS.work, f"{name}.log")
    out = open(log_path, "w")
    process = subprocess.Popen(
        [ARGS.wine, ARGS.goim, "--data-dir", ARGS.data_dir_win, "--pg-bin", ARGS.pg_bin_win,
         "--bind", f"127.0.0.1:{ARGS.port}"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    process.log_path = log_path
    return process


def postgres_processes():
    """Linux PIDs of postgres.exe processes of our data directory (Wine shows Windows
    processes as ordinary ones; its tasklist prints nothing)."""
    found = subprocess.run(["pgrep", "-f", "postgres.exe"], capture_output=True, text=True).stdout.split()
    ours = []
    for pid in found:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                cmdline = file.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ARGS.data_dir_unix.rstrip("/").split("/")[-1] in cmdline.replace("\\", "/") and " -D " in cmdline:
            ours.append(pid)
    return ours


def assert_stopped_cleanly(why):
    deadline = time.monotonic() + 60
    while postgres_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    if postgres_processes():
        fail(f"{why}: PostgreSQL still runs: {postgres_processes()}")
    pid_file = os.path.join(ARGS.data_dir_unix, "postgres", "postmaster.pid")
    while os.path.exists(pid_file) and time.monotonic() < deadline:
        time.sleep(0.5)
    if os.path.exists(pid_file):
        fail(f"{why}: postmaster.pid is left behind")


def stop_with_ctrl_c(process, name):
    # Wine turns SIGINT into a console Ctrl+C event for the Windows process.
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        fail(f"{name}: goim.exe did not stop within 90 s of Ctrl+C")
    if code != 0:
        fail(f"{name}: exit status {code} after Ctrl+C; output:\n{output_of(process)}")
    assert_stopped_cleanly(name)
    log(f"{name}: Ctrl+C -> exit 0, PostgreSQL stopped, no postmaster.pid")


class WebSocket:
    """Just enough of RFC 6455 for text frames: GOIM's protocol is JSON text."""

    def __init__(self, path):
        self.sock = socket.create_connection(("127.0.0.1", ARGS.port), timeout=15)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{ARGS.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: goim.v1\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                fail("the WebSocket handshake was cut off")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            fail(f"WebSocket handshake refused: {head[:200]!r}")

    def send(self, value):
        payload = json.dumps(value).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                fail("the server closed the WebSocket")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def receive(self):
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            if first & 0x0F == 0x1:
                return json.loads(payload)

    def close(self):
        self.sock.close()


def first_start():
    process = start_goim("start-1")
    began = time.monotonic()
    wait_ready(process)
    log(f"start 1 (initdb on an empty data dir): /readyz 200 after {time.monotonic() - began:.0f} s")
    http("POST", "/api/v1/auth/register", {"username": "alice", "password": "correct horse battery"}, expect=201)
    token = http("POST", "/api/v1/auth/login", {"username": "alice", "password": "correct horse battery"})["access_token"]
    http("POST", "/api/v1/groups", {"name": "wine", "join_policy": "open"}, token=token, expect=201)
    conversation = http("GET", "/api/v1/conversations", token=token)["items"][0]["id"]
    ticket = http("POST", "/api/v1/ws/ticket", token=token)["ticket"]
    ws = WebSocket(f"/api/v1/ws?ticket={ticket}")
    ws.send({"id": "1", "type": "send", "conversation_id": conversation,
             "message": {"client_msg_id": "00000000-0000-4000-8000-00000000a11c", "body": "hello from Wine"}})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        frame = ws.receive()
        if frame.get("type") == "reply" and frame.get("id") == "1":
            if not frame.get("ok"):
                fail(f"send over the WebSocket was refused: {frame}")
            break
    else:
        fail("no reply to the WebSocket send")
    ws.close()
    read_back(token, conversation)
    log("start 1: registered, signed in, sent a message over the WebSocket and read it back")
    stop_with_ctrl_c(process, "start 1")
    return conversation


def read_back(token, conversation):
    history = http("GET", f"/api/v1/conversations/{conversation}/messages?limit=10", token=token)
    bodies = [message.get("body") for message in history["items"]]
    if "hello from Wine" not in bodies:
        fail(f"the message is not in the history: {bodies}")


def second_start(conversation):
    process = start_goim("start-2")
    wait_ready(process)
    token = http("POST", "/api/v1/auth/login", {"username": "alice", "password": "correct horse battery"})["access_token"]
    read_back(token, conversation)
    log("start 2 (same data dir): /readyz 200, the account and the message are still there")
    process.kill()
    process.wait(timeout=30)
    assert_stopped_cleanly("after killing goim.exe")
    log("start 2: goim.exe killed -> its pg-guard stopped PostgreSQL, no postmaster.pid")


def third_start(conversation):
    foreign = start_foreign_cluster()
    # What a crash leaves when the PID it recorded now belongs to someone else's
    # PostgreSQL: a stale postmaster.pid naming that (live) postgres.exe.
    pid_file = os.path.join(ARGS.data_dir_unix, "postgres", "postmaster.pid")
    with open(pid_file, "w") as file:
        file.write(f"{foreign}\n{ARGS.data_dir_win}\\postgres\n0\n{ARGS.port + 7}\n\n127.0.0.1\n")
    process = start_goim("start-3")
    wait_ready(process)
    token = http("POST", "/api/v1/auth/login", {"username": "alice", "password": "correct horse battery"})["access_token"]
    read_back(token, conversation)
    status = wine(os.path.join(ARGS.pg_bin_unix, "pg_ctl.exe"), "status", "-D", ARGS.foreign_win)
    if status.returncode != 0:
        fail(f"the foreign PostgreSQL was stopped by GOIM's stale-server check: {status.stdout}{status.stderr}")
    log("start 3: recovered; a stale postmaster.pid naming another cluster's live postgres.exe was not taken for ours")
    stop_with_ctrl_c(process, "start 3")
    wine(os.path.join(ARGS.pg_bin_unix, "pg_ctl.exe"), "stop", "-D", ARGS.foreign_win, "-m", "immediate", "-w")


def start_foreign_cluster():
    """Another PostgreSQL on the machine, not GOIM's, started the way pg_ctl does."""
    pg_ctl = os.path.join(ARGS.pg_bin_unix, "pg_ctl.exe")
    init = wine(os.path.join(ARGS.pg_bin_unix, "initdb.exe"), "-D", ARGS.foreign_win, "-U", "other",
                "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
    if init.returncode != 0:
        fail(f"initdb of the foreign cluster: {init.stdout}{init.stderr}")
    # Not through pipes: the server inherits pg_ctl's output handles, so reading them to
    # the end would wait for the server to exit.
    with open(os.path.join(ARGS.work, "foreign-pg_ctl.log"), "w") as out:
        started = subprocess.run(
            [ARGS.wine, pg_ctl, "start", "-D", ARGS.foreign_win, "-w", "-t", "60", "-l", ARGS.foreign_win + ".log",
             "-o", f"-c port={ARGS.port + 11} -c listen_addresses=127.0.0.1"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120)
    if started.returncode != 0:
        fail(f"starting the foreign cluster failed with {started.returncode}")
    with open(os.path.join(ARGS.foreign_unix, "postmaster.pid")) as file:
        return int(file.readline())


def service_mode():
    """As far as Wine's service control manager goes; each step says what happened."""
    install = wine(ARGS.goim, "service", "install", "--data-dir", ARGS.service_dir_win, "--pg-bin", ARGS.pg_bin_win)
    if install.returncode != 0:
        fail(f"goim service install: {install.stdout}{install.stderr}")
    log(f"service: {install.stdout.strip()}")
    env_file = os.path.join(ARGS.service_dir_unix, ".env")
    with open(env_file, "w") as file:
        file.write(f"GOIM_BIND=127.0.0.1:{ARGS.port}\n")
    try:
        started = wine(ARGS.goim, "service", "start")
        if started.returncode != 0:
            log_file = os.path.join(ARGS.service_dir_unix, "goim.log")
            tail = open(log_file, errors="replace").read()[-3000:] if os.path.exists(log_file) else "(no goim.log)"
            fail(f"goim service start: {started.stdout}{started.stderr}\ngoim.log:\n{tail}")
        wait_ready(None, 120)
        log("service: started by the service control manager, /readyz 200")
        stopped = wine(ARGS.goim, "service", "stop")
        if stopped.returncode != 0:
            fail(f"goim service stop: {stopped.stdout}{stopped.stderr}")
        log_text = open(os.path.join(ARGS.service_dir_unix, "goim.log"), errors="replace").read()
        if "managed PostgreSQL stopped" not in log_text:
            fail(f"the service's log does not show a clean PostgreSQL stop:\n{log_text[-3000:]}")
        if os.path.exists(os.path.join(ARGS.service_dir_unix, "postgres", "postmaster.pid")):
            fail("the stopped service left postmaster.pid behind")
        log("service: stopped (drained, PostgreSQL stopped, logged to goim.log in its data dir)")
    finally:
        removed = wine(ARGS.goim, "service", "uninstall")
    if removed.returncode != 0:
        fail(f"goim service uninstall: {removed.stdout}{removed.stderr}")
    log("service: uninstalled")


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    for name in ["wine", "goim", "work", "pg-bin-unix", "pg-bin-win", "data-dir-unix", "data-dir-win",
                 "foreign-unix", "foreign-win", "service-dir-unix", "service-dir-win"]:
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, default=18080)
    ARGS = parser.parse_args()
    conversation = first_start()
    second_start(conversation)
    third_start(conversation)
    service_mode()
    log("all checks passed")


if __name__ == "__main__":
    main()
