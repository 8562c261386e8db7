"""`skyops serve` under load, against in-process anchors measured in the same run.

Anchors (issue 12), run in this process on the same images:
    torch predict      Ultralytics `YOLO(best.pt).predict(image)` one image at a time (decode included): with
                       the one torch thread Ultralytics sets on a 2-core machine, and with one thread per core
    bare pipeline      decode, letterbox, ONNX Runtime (one intra-op thread), NMS: the server's work without
                       HTTP; one worker (ms per image) and one worker per core (the throughput a server can approach)
Contenders: a real `skyops serve` subprocess per backend the package has (onnx, torch, openvino, int8), with
its defaults, and the ONNX server with one worker of one thread per core instead (`onnx 1xN`: the other way
to use the cores), under closed-loop load at concurrency 1, 2, 4, 8 (each client, on its own keep-alive
connection, sends its next request when the answer to the last one arrives). Per level: p50/p95/p99
latency, throughput, error rate, the server's CPU per request (user + sys of every thread: steadier than
wall-clock figures when other work shares the cores) and its peak RSS (sampled every 20 ms). Medians over
--repeat rounds, interleaved so a busy moment of a shared machine spreads over every contender. The
load generator runs in this process (benchmarks/serve_client.py: stdlib http.client, about 0.1 ms of CPU a request).

Ratios printed, with their targets: the ONNX server against the torch-backend server (best concurrency of
each, >= 2x) and against the bare pipeline with one worker per core (>= 0.8x).

--malformed: 10,000 requests at --clients, one in ten malformed (ten kinds: wrong content type, empty,
garbage, truncated JPEG, PNG without IEND, a decompression bomb's header, a body over the byte limit,
bad JSON, bad base64, bad parameters), to the ONNX server; counts answers by status (target: no 5xx) and
the server's RSS growth from after the first 1,000 requests to the end (target: < 10%).

The package: --package (the export step's package or model folder; or `python -m tests.serving.make_package
OUT`), else one is built here (a YOLO11n trained one epoch on synthetic scenes: about a minute).
Measured figures are in docs/serving.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from serve_client import Level, Payload, Served, load  # benchmarks/serve_client.py, beside this script

from skyops.data.synth import generate_scenes
from skyops.serving.backends import cpu_count
from skyops.serving.detect import letterbox, postprocess
from skyops.serving.model import BackendName, locate_model_folder, read_model_info

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 2, 4, 8)
MALFORMED_MAX_BYTES = 256 * 1024  # the --malformed server's body limit, so an over-limit body is cheap to send


# ---- anchors, in this process ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    per_second: float  # images per second, wall clock
    cpu_ms: float  # CPU (this process, every thread) per image, ms


def timed(work: Callable[[int], object], seconds: float, most: int, workers: int = 1) -> Rate:
    """Run work(0), work(1), ... on `workers` threads for about `seconds` (at most `most` calls)."""
    counter, lock, done = iter(range(most)), threading.Lock(), [0]
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            work(n)
            with lock:
                done[0] += 1

    cpu, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Rate(done[0] / wall, 1000 * cpu / max(1, done[0]))


def decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


class TorchPredict:
    """Ultralytics' own predict on the package's best.pt, one image at a time, decode included."""

    def __init__(self, weights: Path, imgsz: int, conf: float, state: Path) -> None:
        from skyops.training.ultra import import_ultralytics

        import_ultralytics(state)
        from ultralytics import YOLO

        self.model, self.imgsz, self.conf = YOLO(str(weights)), imgsz, conf

    def rate(self, images: list[bytes], seconds: float, most: int, threads: int | None) -> Rate:
        """`threads` None: the torch threads Ultralytics sets (one on a 2-core machine)."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        try:
            predict = lambda i: self.model.predict(decoded(images[i % len(images)]), imgsz=self.imgsz, conf=self.conf, verbose=False)  # noqa: E731
            predict(0)  # warm-up (the first call builds the predictor)
            return timed(predict, seconds, most)
        finally:
            torch.set_num_threads(before)


class BarePipeline:
    """Decode, letterbox, ONNX Runtime (one intra-op thread per run), NMS: the server's work without HTTP."""

    def __init__(self, onnx: Path, imgsz: int, thresholds: tuple[float, float, int]) -> None:
        import onnxruntime as ort

        cv2.setNumThreads(1)  # as the server: the workers are the parallelism
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.imgsz, self.thresholds = imgsz, thresholds

    def detections(self, data: bytes) -> int:
        blob, box = letterbox(decoded(data), self.imgsz)
        raw = self.session.run(None, {self.input: blob})[0][0]
        conf, iou, max_det = self.thresholds
        return len(postprocess(raw, box, conf=conf, iou=iou, max_det=max_det).scores)

    def rate(self, images: list[bytes], seconds: float, most: int, workers: int) -> Rate:
        self.detections(images[0])
        return timed(lambda i: self.detections(images[i % len(images)]), seconds, most, workers)


# ---- malformed requests ----------------------------------------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A complete, tiny PNG whose header declares width x height (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def malformed_payloads(jpeg: bytes) -> list[Payload]:
    png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()
    return [
        Payload(jpeg, "text/plain"),
        Payload(b"", "image/jpeg"),
        Payload(os.urandom(2000), "application/x-image"),
        Payload(jpeg[: len(jpeg) // 2], "image/jpeg"),
        Payload(png[:-12], "image/png"),
        Payload(png_declaring(60_000, 60_000), "image/png"),
        Payload(b"\xff" * (MALFORMED_MAX_BYTES + 1), "image/jpeg"),
        Payload(b'{"image": ', "application/json"),
        Payload(b'{"image": "%%%not base64"}', "application/json"),
        Payload(jpeg, "image/jpeg", "/invocations?conf=2&max_det=0"),
    ]


def malformed_run(model: Path, work: Path, jpegs: list[bytes], clients: int, total: int) -> None:
    server = Served(model, "onnx", work, "--max-bytes", str(MALFORMED_MAX_BYTES))
    try:
        bad = malformed_payloads(jpegs[0])
        good = [Payload(data, "image/jpeg") for data in jpegs]
        payloads = [bad[(i // 10) % len(bad)] if i % 10 == 9 else good[i % len(good)] for i in range(100 * len(bad))]
        at_ready, marks = server.rss(), {}

        def mark(n: int) -> None:
            if n == total // 10:
                marks["warm"] = server.rss()

        level = load(server, payloads, clients, total, on_done=mark)
        at_end = server.rss()
    finally:
        server.stop()
    warm = marks.get("warm", at_ready)
    five = sum(n for status, n in level.statuses.items() if status >= 500)
    print(f"malformed: {total} requests, {clients} clients, one in ten malformed ({len(bad)} kinds, in turn)")
    print(f"  answers by status: {dict(sorted(level.statuses.items()))}")
    print(f"  5xx: {five} (target 0)")
    print(
        f"  server RSS: {at_ready / 2**20:.1f} MB ready, {warm / 2**20:.1f} MB after {total // 10} requests, {at_end / 2**20:.1f} MB at the end,"
        f" peak {level.peak_rss / 2**20:.1f} MB; growth after warm-up {100 * (at_end / warm - 1):+.1f}% (target < 10%)"
    )
    print(f"  throughput {level.throughput:.1f} req/s; p50 {level.percentile(50):.1f} ms, p99 {level.percentile(99):.1f} ms")


# ---- main ------------------------------------------------------------------------------------------


def package_folder(given: Path | None, work: Path) -> Path:
    if given is not None:
        return locate_model_folder(given)
    print("building a package: YOLO11n, one epoch on synthetic scenes (about a minute) ...", flush=True)
    out = work / "package"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "tests.serving.make_package", str(out)], env=env, cwd=ROOT, check=True, capture_output=True)
    return out / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", type=Path, help="a package or model folder (default: build one)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are printed")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measurement (a level, an anchor)")
    parser.add_argument("--requests", type=int, default=2000, help="most requests (images) per measurement")
    parser.add_argument("--images", type=int, default=16, help="distinct synthetic scenes sent in turn")
    parser.add_argument("--image-size", type=int, default=256, help="side of the scenes, px")
    parser.add_argument("--backends", default="", help="comma-separated (default: every backend the package has)")
    parser.add_argument("--malformed", action="store_true", help="the malformed-traffic run instead (module docstring)")
    parser.add_argument("--total", type=int, default=10_000, help="--malformed: requests")
    parser.add_argument("--clients", type=int, default=4, help="--malformed: concurrent clients")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skyops-bench-serve-") as tmp:
        work = Path(tmp)
        model = package_folder(args.package, work)
        info = read_model_info(model)
        generate_scenes(work / "scenes", args.images, size=args.image_size, seed=7, workers=1)
        jpegs = [p.read_bytes() for p in sorted((work / "scenes" / "images").glob("*.jpg"))]
        cores = cpu_count()
        print(
            f"model {info.label}, imgsz {info.imgsz}, {len(info.names)} classes; {len(jpegs)} JPEG scenes of {args.image_size} px; {cores} cores"
        )
        print(f"load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        if args.malformed:
            malformed_run(model, work, jpegs, args.clients, args.total)
            return
        backends = [b for b in (args.backends.split(",") if args.backends else [b.value for b in info.artifacts]) if b]
        # Each backend with the server's defaults; for onnx also the other way to use 2 cores, which the default was chosen over.
        contenders = {b: (b, ()) for b in backends}
        if "onnx" in backends:
            contenders[f"onnx 1x{cores}"] = ("onnx", ("--workers", "1", "--threads", str(cores)))
        servers: dict[str, Served] = {}
        payloads = [Payload(data, "image/jpeg") for data in jpegs]
        thresholds = (info.thresholds.conf, info.thresholds.iou, info.thresholds.max_det)
        torch_anchor = TorchPredict(info.artifacts[BackendName.TORCH].path, info.imgsz, thresholds[0], work / "state")
        bare = BarePipeline(info.artifacts[BackendName.ONNX].path, info.imgsz, thresholds)
        measures: dict[str, Callable[[], Rate]] = {
            "torch predict, 1 thread (Ultralytics' own)": lambda: torch_anchor.rate(jpegs, args.seconds, args.requests, None),
            f"torch predict, {cores} threads": lambda: torch_anchor.rate(jpegs, args.seconds, args.requests, cores),
            "bare pipeline, 1 worker": lambda: bare.rate(jpegs, args.seconds, args.requests, 1),
            f"bare pipeline, {cores} workers": lambda: bare.rate(jpegs, args.seconds, args.requests, cores),
        }
        anchors: dict[str, list[Rate]] = {name: [] for name in measures}
        levels: dict[tuple[str, int], list[Level]] = {(b, c): [] for b in contenders for c in LEVELS}
        try:
            for label, (backend, extra) in contenders.items():
                servers[label] = Served(model, backend, work, *extra)
                load(servers[label], payloads, 2, 20)  # warm-up
            for round_ in range(args.repeat):
                print(f"round {round_ + 1}/{args.repeat} ...", flush=True)
                for name, measure in measures.items():
                    anchors[name].append(measure())
                for (backend, clients), runs in levels.items():
                    runs.append(load(servers[backend], payloads, clients, args.requests, args.seconds))
        finally:
            for server in servers.values():
                server.stop()
        found = sum(bare.detections(data) for data in jpegs) / len(jpegs)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    report(anchors, levels, args.repeat, found)


def report(anchors: dict[str, list[Rate]], levels: dict[tuple[str, int], list[Level]], repeat: int, found: float) -> None:
    med = statistics.median
    print(f"\nmedians of {repeat} rounds; {found:.1f} detections per image at the package's thresholds")
    print(f"  {'anchor (in process)':46s} {'img/s':>7s} {'ms/img':>7s} {'cpu ms/img':>10s}")
    rate = {name: med(r.per_second for r in runs) for name, runs in anchors.items()}
    for name, runs in anchors.items():
        print(f"  {name:46s} {rate[name]:7.1f} {1000 / rate[name]:7.2f} {med(r.cpu_ms for r in runs):10.2f}")
    print(
        f"\n  {'skyops serve':14s} {'clients':>7s} {'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'req/s':>7s} {'errors':>7s} {'cpu ms/req':>10s} {'peak RSS MB':>11s}"
    )
    best: dict[str, float] = {}
    cpu_ms: dict[str, float] = {}  # the server's CPU per request at its best concurrency
    for (backend, clients), runs in levels.items():
        throughput = med(r.throughput for r in runs)
        p50, p95, p99 = (med(r.percentile(q) for r in runs) for q in (50, 95, 99))
        cpu, errors, rss = med(r.cpu_ms for r in runs), med(r.error_rate for r in runs), max(r.peak_rss for r in runs) / 2**20
        if throughput > best.get(backend, 0.0):
            best[backend], cpu_ms[backend] = throughput, cpu
        print(f"  {backend:14s} {clients:7d} {p50:7.1f} {p95:7.1f} {p99:7.1f} {throughput:7.1f} {errors:7.2%} {cpu:10.2f} {rss:11.1f}")
    torch_own, _, _, bare_all = anchors
    print()
    bare_cpu = med(r.cpu_ms for r in anchors[bare_all])
    print("  ratios: throughput (wall clock), and CPU per image inverted (steadier when other work shares the cores)")
    if "onnx" in best and "torch" in best:
        print(
            f"  onnx server / torch server, best concurrency of each: x{best['onnx'] / best['torch']:.2f}, "
            f"by CPU x{cpu_ms['torch'] / cpu_ms['onnx']:.2f} (target >= 2)"
        )
    if "onnx" in best:
        print(
            f"  onnx server at its best concurrency / {bare_all}: x{best['onnx'] / rate[bare_all]:.2f}, "
            f"by CPU x{bare_cpu / cpu_ms['onnx']:.2f} (target >= 0.8)"
        )
        print(f"  onnx server at its best concurrency / {torch_own}: x{best['onnx'] / rate[torch_own]:.2f}")
    for other in [b for b in best if b not in ("onnx", "torch")]:
        print(f"  {other} server / onnx server, best concurrency of each: x{best[other] / best.get('onnx', 1):.2f}")


if __name__ == "__main__":
    main()
