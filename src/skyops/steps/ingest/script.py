"""ingest: bring a drone dataset into the canonical YOLO layout, or generate synthetic scenes.

With the optional `source` input bound (a VisDrone, COCO, VOC, Ground Truth, YOLO, DOTA or DIOR dataset), it
converts; unbound (the embedded default), it generates `synth_images` synthetic aerial scenes.
Either way the output is images/, labels/ and manifest.json (see skyops.data.layout), plus
ingest.json saying what was kept, dropped and clipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class IngestConfig(StepConfig):
    format: Literal["auto", "visdrone", "coco", "voc", "groundtruth", "yolo", "dota", "dior"] = "auto"
    keep_ignored: bool = False  # keep boxes the source marks as ignored (VisDrone category 0/11, score 0; difficult)
    obb: bool = False  # also write YOLO-OBB labels (labels-obb/) of a DOTA source's oriented boxes
    classes: tuple[str, ...] = ()  # target class names; empty keeps the source's classes
    synth_images: Annotated[int, Range(ge=1)] = 800  # synthetic scenes when no source is bound
    synth_size: Annotated[int, Range(ge=64, le=4096)] = 256  # pixels, square
    # object scale, px per px of a 256 px scene (e.g. 0.5 at synth_size 1536: 8-15 px cars); 0 = synth_size / 256
    synth_scale: Annotated[float, Range(ge=0, le=16)] = 0.0
    seed: int = 0
    workers: Annotated[int, Range(ge=0)] = 0  # processes; 0 = one per CPU


SPEC = StepSpec(
    step_type="ingest",
    node_type=NodeType.SOURCE,
    inputs=(Port(name="source", kind="raw-dataset", optional=True, description="a dataset in any supported format"),),
    outputs=(Port(name="raw", kind="yolo-dataset", description="canonical layout, not yet validated"),),
    description="convert a dataset (or synthesise scenes) into the canonical YOLO layout",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.ingest",
    job_kind=JobKind.PROCESSING,
    inputs={"source": processing_input("source")},
    outputs={"raw": processing_output("raw")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=IngestConfig, libraries=("numpy", "opencv-python-headless", "pillow"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: IngestConfig) -> None:
    target = outputs["raw"]
    if "source" in inputs:
        from skyops.data.convert import convert

        fmt = None if args.format == "auto" else args.format
        report = convert(
            inputs["source"],
            target,
            fmt,
            names=list(args.classes) or None,
            keep_ignored=args.keep_ignored,
            obb=args.obb,
            workers=args.workers or None,
            overwrite=True,
        )
        summary = {"mode": "convert", **asdict(report)}
    else:
        from skyops.data.synth import DEFAULT_CLASSES, generate_scenes

        manifest = generate_scenes(
            target,
            args.synth_images,
            size=args.synth_size,
            seed=args.seed,
            classes=args.classes or DEFAULT_CLASSES,
            workers=args.workers or None,
            scale=args.synth_scale or None,
        )
        summary = {
            "mode": "synthetic",
            "images": len(manifest.images),
            "boxes": sum(r.boxes for r in manifest.images),
            "names": manifest.names,
            "fingerprint": manifest.fingerprint,
        }
    (target / "ingest.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"ingest: {summary['mode']}: {summary['images']} images, {summary['boxes']} boxes")
