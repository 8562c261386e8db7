"""A real YOLO11n detector for the monitoring tests, made offline in seconds: built from Ultralytics' yaml, seeded, untrained.

Its backbone is the real architecture with reproducible random weights (BatchNorm at its initial
statistics): its pooled features still describe images (random convolutional features do), which is
all the drift tests ask of an embedding. Trained weights would only make the embedding sharper.

    python -m tests.monitoring.detector_model OUT_FOLDER [--imgsz 128]

writes OUT_FOLDER/best.pt, as the train step's model folder holds it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAMES = ("car", "truck", "bus", "person")


def build(out: Path, *, imgsz: int = 128, seed: int = 0, state_dir: Path | None = None) -> Path:
    """Write `out`/best.pt: a seeded YOLO11n with NAMES as its classes, trained at `imgsz`."""
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(state_dir or out / "state")
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel("yolo11n.yaml", nc=len(NAMES), verbose=False)
    model.names = dict(enumerate(NAMES))
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {"imgsz": imgsz}}, out / "best.pt")
    return out / "best.pt"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--imgsz", type=int, default=128)
    args = parser.parse_args(argv)
    print(build(args.out, imgsz=args.imgsz))


if __name__ == "__main__":
    sys.exit(main())
