"""The client side of benchmarks/serve_load.py: a `skyops serve` subprocess, and closed-loop load against it.

Each client, on its own keep-alive connection (stdlib http.client: about 0.1 ms of CPU a request),
sends its next request when the answer to the last one arrives. Per load: every latency, the
answers by status, the wall time, the server's peak RSS (sampled every 20 ms) and the CPU (user +
sys of every thread) it spent.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil


class Connection(http.client.HTTPConnection):
    """A keep-alive connection with TCP_NODELAY, as real clients have it (urllib3, so botocore and the AWS SDKs).

    http.client sends a request's headers and its body in two writes; with Nagle's algorithm on, the body
    waits for the server's delayed ACK of the headers (40 ms on Linux), which a latency figure would then
    include although no server caused it. Set on every (re)connect.
    """

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Served:
    """A `skyops serve` subprocess on 127.0.0.1, its log in a file."""

    def __init__(self, model: Path, backend: str, work: Path, *extra: str) -> None:
        self.log = work / f"serve-{backend}-{'-'.join(extra)}.log"
        env = {**os.environ, "SKYOPS_STATE_DIR": str(work / "state")}
        command = [sys.executable, "-m", "skyops", "serve", str(model), "--port", "0", "--backend", backend, *extra]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)
        self.port = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"skyops serve --backend {backend} ended:\n{self.log.read_text()[-3000:]}")
            listening = [json.loads(line) for line in self.log.read_text().splitlines() if '"event": "listening"' in line]
            if listening:
                self.port = int(listening[0]["port"])
                if request(self.connect(), "GET", "/ping")[0] == 200:
                    return
            time.sleep(0.2)
        self.proc.kill()
        sys.exit(f"skyops serve --backend {backend} not ready after 300 s:\n{self.log.read_text()[-3000:]}")

    def connect(self) -> http.client.HTTPConnection:
        connection = Connection("127.0.0.1", self.port, timeout=120)
        connection.connect()
        return connection

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def cpu(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def request(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request on a keep-alive connection (reopened by http.client when the server closed it)."""
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.read()


@dataclass(frozen=True)
class Payload:
    body: bytes
    content_type: str
    path: str = "/invocations"


@dataclass
class Level:
    latencies: list[float]  # seconds, per answered request
    statuses: Counter[int]
    seconds: float  # wall time of the whole level
    peak_rss: int  # bytes, the server's, sampled
    cpu: float  # seconds of CPU (user + sys, every thread) the server spent on the level

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Server CPU per answered request, ms: steadier than wall figures when other work shares the cores."""
        return 1000 * self.cpu / max(1, len(self.latencies))

    @property
    def error_rate(self) -> float:
        return 1 - self.statuses[200] / max(1, sum(self.statuses.values()))


def load(
    server: Served, payloads: list[Payload], clients: int, total: int, seconds: float = 1e9, on_done: Callable[[int], None] | None = None
) -> Level:
    """`total` requests (or as many as `seconds` allow) from `clients` closed-loop clients, payloads taken in turn;
    the server's RSS sampled meanwhile."""
    connections = [server.connect() for _ in range(clients)]
    counter, lock = iter(range(total)), threading.Lock()
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    stop, peak = threading.Event(), [server.rss()]

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], server.rss())

    def client(connection: http.client.HTTPConnection) -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None or time.perf_counter() > deadline:
                return
            payload = payloads[n % len(payloads)]
            start = time.perf_counter()
            status, _ = request(connection, "POST", payload.path, payload.body, {"Content-Type": payload.content_type})
            took = time.perf_counter() - start
            with lock:
                latencies.append(took)
                statuses[status] += 1
            if on_done is not None:
                on_done(n)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu = server.cpu()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, connections))
    took = time.perf_counter() - start
    cpu = server.cpu() - cpu
    stop.set()
    sampler.join()
    for connection in connections:
        connection.close()
    return Level(latencies, statuses, took, peak[0], cpu)
