"""What the router of a local deployment costs per request (ADR 0013).

Anchor: the same request sent straight to the `skyops serve` behind it. Starts a real server on MODEL
(a model folder, e.g. the export step's package/model, or one from `python -m tests.deploy_local.make_packages`)
and a real router in front of it, then sends --requests invocations of one image at concurrency 1 and 4,
alternating direct and routed rounds, and prints the median per request (concurrency 1) and the
throughput (concurrency 4) of each, their difference and ratio.

Target: well under the issue's budget for the HTTP layer (the served throughput >= 0.8x the bare
in-process pipeline's): the router should cost a millisecond or two per request at concurrency 1 and
keep >= 0.9x of the server's throughput under load.

Measured (issue 12, the 128 px test model of tests/deploy_local, medians of 5 rounds of 200, this
2-core machine shared with four other jobs at a load average of 10-15, so every number is inflated
and only the comparison means something): concurrency 1: server 129-137 ms per request, routed
+18-19 ms (throughput ratio 0.88); concurrency 4: ratio 0.99-1.08 (no measurable cost). At that load
the extra hop's cost at concurrency 1 is mostly waiting to be scheduled (two more context switches per
request); measure again on a quiet machine before quoting it.

    python benchmarks/deploy_router.py MODEL_DIR IMAGE.jpg [--requests 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from skyops.deploy_local import control, procs
from skyops.deploy_local.rollout import wait_ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seconds_per_request(url: str, body: bytes, requests: int, concurrency: int) -> float:
    """Wall seconds per request, `requests` requests over `concurrency` keep-alive clients."""
    clients = [httpx.Client(timeout=60) for _ in range(concurrency)]

    def send(i: int) -> None:
        clients[i % concurrency].post(f"{url}/invocations", content=body, headers={"Content-Type": "image/jpeg"}).raise_for_status()

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(send, range(requests)))
        return (time.perf_counter() - start) / requests
    finally:
        for client in clients:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("image", type=Path)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    body = args.image.read_bytes()
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(prefix="skyops-router-bench-") as private:
        work = Path(tmp)
        server = procs.spawn(["-m", "skyops", "serve", str(args.model), "--port", "0"], log=work / "server.log", marks={}, cwd=work)
        socket_path = Path(private) / "control.sock"
        port = free_port()
        argv = ["-m", "skyops.serving.router", "--name", "bench", "--port", str(port), "--control", str(socket_path)]
        router = procs.spawn(argv, log=work / "router.log", marks={}, cwd=work)
        try:
            server = procs.wait_listening(server, 120)
            wait_ready(server, 120)
            procs.wait_listening(router, 30)
            control.switch(socket_path, server.port, "bench")
            direct, routed = f"http://127.0.0.1:{server.port}", f"http://127.0.0.1:{port}"
            seconds_per_request(routed, body, 20, 1)  # warm both paths' connections
            for concurrency in (1, 4):
                rounds: dict[str, list[float]] = {"direct": [], "routed": []}
                for _ in range(args.rounds):
                    for name, url in (("direct", direct), ("routed", routed)):
                        rounds[name].append(seconds_per_request(url, body, args.requests, concurrency))
                d, r = statistics.median(rounds["direct"]), statistics.median(rounds["routed"])
                print(
                    f"concurrency {concurrency}: direct {d * 1000:.2f} ms/request ({1 / d:.0f}/s), routed {r * 1000:.2f} ms/request "
                    f"({1 / r:.0f}/s): +{(r - d) * 1000:.2f} ms, throughput ratio {d / r:.2f}"
                )
        finally:
            procs.stop(router, 10)
            procs.stop(server, 30)


if __name__ == "__main__":
    main()
