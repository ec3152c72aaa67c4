#!/usr/bin/env python
"""The server under load: many clients, idle keep-alive connections and slow clients
against ``travian-repo serve`` (a real server process on loopback), on PostgreSQL.

    python bench/bench_load.py [--database-url URL] [--phase-seconds S] [--threads N]
                               [--server-arg=--connection-limit=100 ...]

Phases, one after the other against the same server process:

- ``N clients`` (8, 32, 128): N threads, each on its own keep-alive connection, send
  ``GET /v1/village/{id}`` (token lookup and village read: the database on every request)
  back to back for ``--phase-seconds``.
- ``128 idle keep-alive``: 128 connections each send one request, read the answer and then
  hold the connection open, idle.
- ``150 slow clients``: 150 connections send the start of a request one byte every 0.5 s,
  never finishing the headers; a connection the server closes is opened again.

During every phase a *normal client* opens a fresh connection once a second and asks
``GET /v1/me`` (timeout 5 s). Printed per phase: answers/s, p50/p99 of the answers, errors,
load clients that got no answer at all, and how many of the normal client's requests were
answered. The whole run is bounded: about ``5 x phase-seconds + 40 s``. Figures are printed,
never asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_http import ensure_database_and_schema, free_port  # noqa: E402
from common import DEFAULT_URL, out, percentile  # noqa: E402
from travian_repo.sandbox import create_world, player_tokens  # noqa: E402

SCHEMA = "bench_load"
PLAYERS = 16
SLOW_CLIENTS = 150
IDLE_CLIENTS = 128
REQUEST_TIMEOUT = 10.0
PROBE_TIMEOUT = 5.0
PROBE_INTERVAL = 1.0


# --------------------------------------------------------------------------------------------
# the server process


class Server:
    def __init__(self, url: str, threads: int | None, extra: Sequence[str]) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="bench_load_server_", suffix=".log",
                                               delete=False)
        command = [sys.executable, "-m", "travian_repo", "serve", "--database-url", url,
                   "--host", "127.0.0.1", "--port", str(self.port)]
        if threads is not None:
            command += ["--threads", str(threads)]
        command += list(extra)
        if "--rate-limit" in serve_help() and not any(a.startswith("--rate-limit") for a in extra):
            # the serving layer is measured, not the per-token limit (16 tokens, 128 clients)
            command += ["--rate-limit", "0"]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        # stderr to a file: waitress logs a line per queued task under load, a pipe would fill
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.command = " ".join(command[1:])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                status, _ = get("127.0.0.1", self.port, "/v1/openapi.yaml", {}, 1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.close()
        sys.exit("the server did not answer within 30 s")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve_help() -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "travian_repo", "serve", "--help"], env=env,
                          capture_output=True, text=True, timeout=60).stdout


def get(host: str, port: int, path: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """One request on a fresh connection."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# the normal client


@dataclass
class Probe:
    """Once a second a fresh connection asks GET /v1/me; answered or not, and how fast."""

    port: int
    headers: dict[str, str]
    asked: int = 0
    answered: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.asked += 1
            try:
                status, _ = get("127.0.0.1", self.port, "/v1/me", self.headers, PROBE_TIMEOUT)
                if status == 200:
                    self.answered += 1
                    self.latencies.append(time.monotonic() - started)
                else:
                    self.failures.append(f"HTTP {status}")
            except OSError as exc:
                self.failures.append(type(exc).__name__)
            stop.wait(max(0.0, PROBE_INTERVAL - (time.monotonic() - started)))

    def line(self) -> str:
        worst = f", slowest {max(self.latencies):.2f} s" if self.latencies else ""
        why = f" ({', '.join(sorted(set(self.failures)))})" if self.failures else ""
        return f"normal client answered {self.answered}/{self.asked}{worst}{why}"


def with_probe(port: int, headers: dict[str, str]) -> tuple[Probe, threading.Event, threading.Thread]:
    probe = Probe(port, headers)
    stop = threading.Event()
    thread = threading.Thread(target=probe.run, args=(stop,), daemon=True)
    thread.start()
    return probe, stop, thread


# --------------------------------------------------------------------------------------------
# phases


def load_phase(port: int, clients: int, seconds: float, targets: list[tuple[int, dict[str, str]]],
               probe_headers: dict[str, str]) -> None:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[dict[str, int]] = [{} for _ in range(clients)]
    stop = threading.Event()

    def client(i: int) -> None:
        village, headers = targets[i % len(targets)]
        conn: http.client.HTTPConnection | None = None
        while not stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
            started = time.perf_counter()
            try:
                conn.request("GET", f"/v1/village/{village}", headers=headers)
                response = conn.getresponse()
                response.read()
                if stop.is_set():
                    pass  # answered after the phase: not counted (a locked-out client's
                    # first answer often comes only once the others have let go)
                elif response.status == 200:
                    latencies[i].append(time.perf_counter() - started)
                else:
                    errors[i][f"HTTP {response.status}"] = errors[i].get(f"HTTP {response.status}", 0) + 1
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                if not stop.is_set():
                    name = type(exc).__name__
                    errors[i][name] = errors[i].get(name, 0) + 1
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    probe, probe_stop, probe_thread = with_probe(port, probe_headers)
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    probe_stop.set()
    for t in threads:
        t.join(REQUEST_TIMEOUT + 1)
    probe_thread.join(PROBE_TIMEOUT + 1)
    elapsed = time.monotonic() - started
    every = [x for per in latencies for x in per]
    error_total: dict[str, int] = {}
    for per in errors:
        for name, n in per.items():
            error_total[name] = error_total.get(name, 0) + n
    locked_out = sum(1 for per in latencies if not per)
    out(f"{clients:>3} clients  {len(every) / elapsed:7.1f} answers/s  "
        f"p50 {percentile(every, 50) * 1000:7.1f} ms  p99 {percentile(every, 99) * 1000:7.1f} ms  "
        f"errors {sum(error_total.values())}"
        + (f" {error_total}" if error_total else "")
        + f"  clients with no answer {locked_out}/{clients}")
    out(f"             {probe.line()}")


def idle_phase(port: int, seconds: float, targets: list[tuple[int, dict[str, str]]],
               probe_headers: dict[str, str]) -> None:
    """IDLE_CLIENTS connections: one request each, then held open and idle."""
    conns: list[http.client.HTTPConnection] = []
    answered = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        village, headers = targets[i % len(targets)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
        with lock:
            conns.append(conn)
        try:
            conn.request("GET", f"/v1/village/{village}", headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                answered[0] += 1
        except (OSError, http.client.HTTPException):
            pass

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(IDLE_CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    probe, probe_stop, probe_thread = with_probe(port, probe_headers)
    time.sleep(seconds)
    probe_stop.set()
    probe_thread.join(PROBE_TIMEOUT + 1)
    for t in threads:
        t.join(0.1)
    out(f"{IDLE_CLIENTS} idle keep-alive: {answered[0]}/{IDLE_CLIENTS} connections answered "
        "their first request")
    out(f"             {probe.line()}")
    for conn in conns:
        conn.close()


def slow_phase(port: int, seconds: float, probe_headers: dict[str, str]) -> None:
    """SLOW_CLIENTS connections dribbling a request's headers a byte every 0.5 s."""
    head = (b"GET /v1/village/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-World-Id: w\r\nX-Pad: "
            + b"a" * 4000)
    stop = threading.Event()
    counts = {"connections": 0, "closed_by_server": 0, "answers": 0, "refused": 0}
    statuses: dict[str, int] = {}

    def slow_clients() -> None:
        socks: dict[socket.socket, int] = {}

        def open_one() -> None:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                counts["refused"] += 1
                s.close()
                return
            counts["connections"] += 1
            socks[s] = 0

        for _ in range(SLOW_CLIENTS):
            open_one()
        while not stop.is_set():
            for s in list(socks):
                sent = socks[s]
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data:
                    counts["answers"] += 1
                    status = data.split(b"\r\n", 1)[0].decode("latin-1")[9:12]
                    statuses[status] = statuses.get(status, 0) + 1
                if data is not None:  # an answer or a close: the server let go; come again
                    counts["closed_by_server"] += 1
                    s.close()
                    del socks[s]
                    open_one()
                    continue
                try:
                    s.send(head[sent % len(head):sent % len(head) + 1])
                    socks[s] = sent + 1
                except BlockingIOError:
                    pass
                except OSError:
                    counts["closed_by_server"] += 1
                    s.close()
                    del socks[s]
                    open_one()
            stop.wait(0.5)
        for s in socks:
            s.close()

    dribbler = threading.Thread(target=slow_clients, daemon=True)
    dribbler.start()
    time.sleep(2.0)
    probe, probe_stop, probe_thread = with_probe(port, probe_headers)
    time.sleep(seconds)
    probe_stop.set()
    probe_thread.join(PROBE_TIMEOUT + 1)
    stop.set()
    dribbler.join(5)
    out(f"{SLOW_CLIENTS} slow clients: {counts['connections']} connections opened, "
        f"{counts['closed_by_server']} let go by the server"
        + (f" (answers {statuses})" if statuses else ""))
    out(f"             {probe.line()}")


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--schema", default=SCHEMA)
    parser.add_argument("--phase-seconds", type=float, default=6.0,
                        help="seconds per load phase (default 6; the slow phase runs 3x as long)")
    parser.add_argument("--threads", type=int, default=None,
                        help="server worker threads (default: the server's default)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="an extra argument for `travian-repo serve` (repeatable)")
    args = parser.parse_args(argv)
    seconds = max(1.0, min(args.phase_seconds, 60.0))

    url = ensure_database_and_schema(args.database_url, args.schema)
    summary = create_world(url, players=PLAYERS, seed=7, start="developed", replace=True)
    tokens = player_tokens(url)
    world_id = summary.world_id
    players = [(pid, {"Authorization": f"Bearer {tok}", "X-World-Id": world_id})
               for pid, tok in sorted(tokens.items())]  # player i owns village i
    targets, probe_headers = players[:-1], players[-1][1]  # the normal client: a token of its own
    server = Server(url, args.threads, args.server_arg)
    out(f"server: {server.command}")
    out(f"log: {server.log.name}")
    run_started = time.monotonic()
    try:
        for clients in (8, 32, 128):
            load_phase(server.port, clients, seconds, targets, probe_headers)
        idle_phase(server.port, seconds, targets, probe_headers)
        slow_phase(server.port, 3 * seconds, probe_headers)
    finally:
        server.close()
    out(f"whole run {time.monotonic() - run_started:.0f} s")


if __name__ == "__main__":
    main()
