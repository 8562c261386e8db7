"""Throughput of the monitor on 1,000 captured requests, and its drift tests against Evidently's data drift report.

Setup (not timed): synthetic aerial scenes at 256 px, the default pipeline's size (tests/monitoring/scenes.py:
simulated detector answers, so predictions vary as a model's do); 500 of them measured as the baseline, and
1,000 written as requests captured in SageMaker's format (the last 300 darkened, so the check has something to
find). The served model is a seeded, untrained YOLO11n at 256 px (tests/monitoring/detector_model.py): the
same network, so the same cost, as a trained one.

Timed, in this process, the model loaded first (timed apart):
  window   read the 1,000 records with the capture reader, decode, image and prediction features, the
           detector's embedding (its backbone exported to ONNX at 128 px, the baseline step's default
           embed_size, on ONNX Runtime, batches of 32, every core), as the window step does
  drift    detect_drift: 13 feature tests (KS, chi-square, PSI), MMD with 2000 permutations, Holm
           (scipy.stats imported first and timed apart, as Evidently's imports are)
  report   report.html (matplotlib, jinja2)
Target (issue 13): window + drift < 10 s on 2 cores.

Anchor, same run: Evidently's data drift report (`Report([DataDriftPreset(...)])`) on the very feature
table (written to Parquet): KS for the numeric columns, chi-square for the categorical ones, and its MMD
(bootstrap) on the same 16 whitened embedding components, timed inside its process (imports apart). The
ratio compares the drift tests only: Evidently starts from a table, it does not read images.
Evidently lives in its own venv, created once under .skyops/bench/evidently-venv (python3.11 -m venv, then
pip install evidently 'pandas<3': evidently 0.7 imports a pandas 2 internal). Without it (install failed, no
registry) it says so and prints the skyops figures alone.

    python benchmarks/monitor_throughput.py [--requests 1000] [--baseline 500] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

VENV = ROOT / ".skyops" / "bench" / "evidently-venv"
EVIDENTLY_PACKAGES = ["evidently", "pandas<3"]
SIZE = 256

EVIDENTLY_SCRIPT = r"""
import json, sys, time
started = time.perf_counter()
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.metrics.data_drift.embedding_drift_methods import mmd
from evidently.presets import DataDriftPreset
imported = time.perf_counter() - started

reference, current, spec = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2]), json.loads(sys.argv[3])
start = time.perf_counter()
definition = DataDefinition(numerical_columns=spec["numeric"], categorical_columns=spec["categorical"], embeddings={"embedding": spec["embedding"]})
preset = DataDriftPreset(
    num_method="ks", cat_method="chisquare", threshold=spec["alpha"], embeddings=["embedding"],
    embeddings_drift_method={"embedding": mmd(bootstrap=True)},
)
snapshot = Report([preset]).run(Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition))
seconds = time.perf_counter() - start
text = json.dumps(snapshot.dict())
import evidently
print(json.dumps({"seconds": seconds, "import_seconds": imported, "version": evidently.__version__, "bytes": len(text)}))
"""


def ensure_evidently_venv() -> Path | None:
    """The Evidently venv's python, creating the venv once; None (and why, on stderr) when it cannot be made."""
    python = VENV / "bin" / "python"
    ok = python.is_file() and subprocess.run([str(python), "-c", "import evidently"], capture_output=True).returncode == 0
    if ok:
        return python
    print(f"creating {VENV} with {' '.join(EVIDENTLY_PACKAGES)} (once) ...", file=sys.stderr)
    try:
        if not python.is_file():
            subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True, capture_output=True, text=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *EVIDENTLY_PACKAGES], check=True, capture_output=True, text=True, timeout=1800
        )
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        print(f"Evidently cannot be installed: {detail.strip()[-500:]}", file=sys.stderr)
        return None
    return python


def export_tables(baseline, window, folder: Path) -> dict:  # type: ignore[no-untyped-def]
    """The baseline's and the window's feature tables as Parquet (the columns Evidently tests), and their spec."""
    import numpy as np
    import pandas as pd

    from skyops.monitoring.features import CATEGORICAL, NUMERIC

    def frame(table, rows) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        data = {name: table.column(name)[rows] for name in (*NUMERIC, *CATEGORICAL)}
        projected = baseline.projection.apply(table.embedding[rows])
        data |= {f"pc{i}": projected[:, i] for i in range(projected.shape[1])}
        return pd.DataFrame(data)

    reference = baseline.projection.reference  # the rows our MMD compares with, so both sides test the same samples
    with_pixels = np.flatnonzero(~np.isnan(window.embedding).any(axis=1))
    frame(baseline.table, reference).to_parquet(folder / "reference.parquet")
    frame(window, with_pixels).to_parquet(folder / "current.parquet")
    return {
        "numeric": list(NUMERIC),
        "categorical": list(CATEGORICAL),
        "embedding": [f"pc{i}" for i in range(baseline.projection.components.shape[0])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: every core)")
    parser.add_argument("--embed-size", type=int, default=128, help="the embedding's input size, px (the baseline step's default)")
    args = parser.parse_args()

    import tests.monitoring.scenes as scenes
    from tests.monitoring.conftest import table_of
    from tests.monitoring.detector_model import build
    from tests.monitoring.scenes import shots, write_captures

    scenes.SIZE = SIZE
    with tempfile.TemporaryDirectory(prefix="skyops-bench-monitor-") as tmp:
        folder = Path(tmp)
        state = folder / "state"
        print(f"setup: {args.baseline} baseline scenes and {args.requests} captured requests at {SIZE} px ...", file=sys.stderr)
        build(folder / "model", imgsz=SIZE, state_dir=state)
        stable, dark = args.requests - args.requests * 3 // 10, args.requests * 3 // 10
        write_captures(folder / "captures", [*shots(1, stable), *shots(1, dark, "dark", start=stable)])

        from skyops.monitoring.baseline import baseline_from
        from skyops.monitoring.drift import DriftThresholds, detect_drift
        from skyops.monitoring.embedding import Detector, Embedder
        from skyops.monitoring.report import render_report
        from skyops.monitoring.window import select_records, window_features

        detector = Detector(folder / "model" / "best.pt", state, threads=1)  # the baseline's side: torch, not timed
        start = time.perf_counter()
        embedder = Embedder(detector.export_embedder(folder / "embedder.onnx", args.embed_size), args.embed_size, threads=args.threads)
        load = time.perf_counter() - start
        meta = {
            "dataset": {"fingerprint": "0" * 64, "names": list(scenes.KNOWN), "split": "train", "images": args.baseline},
            "model": {"weights_sha256": detector.weights_sha256, "imgsz": SIZE, "embed_size": args.embed_size, "embed_layers": [4, 6, 10]},
            "thresholds": {"conf": 0.25, "iou": 0.45, "max_det": 300},
            "profile": False,
        }
        baseline = baseline_from(table_of(list(shots(0, args.baseline)), embedder, "train-"), meta, dims=16, seed=0)

        start = time.perf_counter()
        window, info = window_features(select_records(folder / "captures"), embedder, source="captures")
        window_seconds = time.perf_counter() - start
        thresholds = DriftThresholds()
        start = time.perf_counter()
        import scipy.stats  # noqa: F401  # imports apart, as on Evidently's side

        imports = time.perf_counter() - start
        start = time.perf_counter()
        result = detect_drift(baseline, window, info.to_json(), thresholds)
        drift_seconds = time.perf_counter() - start
        start = time.perf_counter()
        html = render_report(result, baseline, window, info.to_json())
        report_seconds = time.perf_counter() - start

        threads = args.threads or os.cpu_count()
        print(
            f"embedder            {load:.2f} s  (YOLO11n's backbone exported to ONNX at {args.embed_size} px and loaded, {threads} ORT threads)"
        )
        print(
            f"window              {window_seconds:.2f} s  ({info.requests} requests: read, decode, features, embedding; {1000 * window_seconds / info.requests:.1f} ms each)"
        )
        print(
            f"drift               {drift_seconds:.2f} s  (13 feature tests + MMD, {thresholds.permutations} permutations,"
            f" {len(baseline.projection.reference)} reference rows; importing scipy.stats {imports:.1f} s apart)"
        )
        print(f"window + drift      {window_seconds + drift_seconds:.2f} s  (target < 10 s on 2 cores)")
        print(f"report              {report_seconds:.2f} s  ({len(html) // 1024} KiB of HTML)")
        drifted = [f.name for f in result.features if f.drifted] + (["embedding"] if result.embedding.drifted else [])
        print(f"verdict             {'DRIFTED' if result.drifted else 'no drift'}: {', '.join(drifted) or '-'}")

        python = ensure_evidently_venv()
        if python is None:
            print("Evidently           not available: only the skyops figures above")
            return
        spec = export_tables(baseline, window, folder) | {"alpha": thresholds.alpha}
        script = folder / "evidently_drift.py"
        script.write_text(EVIDENTLY_SCRIPT)
        done = subprocess.run(
            [str(python), str(script), str(folder / "reference.parquet"), str(folder / "current.parquet"), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode:
            sys.exit(f"the Evidently report failed ({done.returncode}):\n{done.stderr[-3000:]}")
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"Evidently {theirs['version']:9} {theirs['seconds']:.2f} s  (the same tests on the same table; its imports {theirs['import_seconds']:.1f} s apart)"
        )
        print(f"ratio               {theirs['seconds'] / drift_seconds:.1f}x (Evidently's time / skyops' drift time)")


if __name__ == "__main__":
    main()
