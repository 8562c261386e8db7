"""What the read-only proxy of `skyops ui` costs per request (ADR 0012).

Anchor: the same request sent straight to MLflow's server on its private Unix socket. Starts a real
`skyops ui` on a fresh state folder, then sends --requests searches the way the UI does
(POST experiments/search) and --requests model-version searches (GET), alternating direct and
proxied rounds, and prints the median per request of each and their difference and ratio.

Target: a few milliseconds per request over the anchor, small next to MLflow's own ~20 ms.
Measured (issue 11, this 2-core machine shared with other jobs, load average 3-4, medians of 5-7
rounds of 50): MLflow alone 16-23 ms per request; through the proxy +4-10 ms. Before the proxy's
listening socket had TCP_NODELAY: +50 ms (each response's body waited for the client's delayed ACK).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil


def start_ui(state: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """`skyops ui` and the path of MLflow's socket, once it serves."""
    log = state.parent / "ui.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "skyops", "ui", "--port", str(port)]
        ui = subprocess.Popen(command, env={**os.environ, "SKYOPS_STATE_DIR": str(state)}, stdout=out, stderr=subprocess.STDOUT)
    while f"127.0.0.1:{port}" not in log.read_text():
        if ui.poll() is not None:
            sys.exit(f"skyops ui ended: {log.read_text()}")
        time.sleep(0.2)
    sockets = [c.laddr for p in psutil.Process(ui.pid).children(recursive=True) for c in p.net_connections(kind="unix") if c.laddr]
    return ui, sockets[0]


def per_request(send: Callable[[httpx.Client], httpx.Response], client: httpx.Client, requests: int) -> float:
    """Seconds per request, over `requests` requests."""
    start = time.perf_counter()
    for _ in range(requests):
        send(client).raise_for_status()
    return (time.perf_counter() - start) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        ui, mlflow_socket = start_ui(Path(tmp) / "state", port)
        try:
            clients = {
                "direct": httpx.Client(transport=httpx.HTTPTransport(uds=mlflow_socket), base_url="http://127.0.0.1"),
                "proxied": httpx.Client(base_url=f"http://127.0.0.1:{port}"),
            }
            requests: dict[str, Callable[[httpx.Client], httpx.Response]] = {
                "POST experiments/search": lambda c: c.post("/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10}),
                "GET model-versions/search": lambda c: c.get("/ajax-api/2.0/mlflow/model-versions/search", params={"max_results": 10}),
            }
            for name, request in requests.items():
                times: dict[str, list[float]] = {way: [] for way in clients}
                for _ in range(args.rounds):
                    for way, client in clients.items():
                        times[way].append(per_request(request, client, args.requests))
                direct, proxied = (statistics.median(times[way]) * 1000 for way in clients)
                print(
                    f"{name:28} direct {direct:6.2f} ms  proxied {proxied:6.2f} ms  (+{proxied - direct:.2f} ms, x{proxied / direct:.2f})"
                )
        finally:
            ui.send_signal(signal.SIGTERM)
            ui.wait(60)


if __name__ == "__main__":
    main()
