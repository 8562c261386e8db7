"""tile: cut the validated frames into overlapping tiles for training on small objects.

Optional: pipelines/drone-detection-tiled.yaml puts it between validate and split (the default
pipeline trains on whole frames). See skyops.data.tiling for the windows, the min_visible rule, the
share of empty tiles and tiles.json, which the split keeps its tiles grouped by and carries along.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class TileConfig(StepConfig):
    size: Annotated[int, Range(ge=32, le=8192)] = 640  # tile side, pixels
    overlap: Annotated[float, Range(ge=0)] = 0.2  # pixels when >= 1, else a fraction of size
    min_visible: Annotated[float, Range(gt=0, le=1)] = 0.5  # a box stays in a tile when this share of its area is inside
    empty_tile_fraction: Annotated[float, Range(ge=0, le=1)] = 0.1  # share of the tiles without boxes kept (seeded choice)
    seed: int = 0
    workers: Annotated[int, Range(ge=0)] = 0  # processes; 0 = one per CPU (from 16 images up)

    def problems(self) -> list[str]:
        pixels = int(self.overlap) if self.overlap >= 1 else round(self.overlap * self.size)
        return [f"overlap of {pixels} px leaves no stride in tiles of {self.size} px"] if pixels >= self.size else []


SPEC = StepSpec(
    step_type="tile",
    node_type=NodeType.INTERNAL,
    inputs=(Port(name="data", kind="yolo-dataset", aliases=("validated",)),),
    outputs=(
        Port(
            name="tiles",
            kind="yolo-dataset",
            description="the tiles in the canonical layout, with tiles.json (each tile's source image and offset)",
            files=("manifest.json", "tiles.json"),
        ),
    ),
    description="cut large frames into overlapping tiles (boxes kept by visible fraction)",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.tile",
    job_kind=JobKind.PROCESSING,
    inputs={"data": processing_input("data")},
    outputs={"tiles": processing_output("tiles")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=TileConfig, libraries=("numpy", "pillow"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: TileConfig) -> None:
    from skyops.data.tiling import TileSettings, tile_dataset

    settings = TileSettings(
        size=args.size, overlap=args.overlap, min_visible=args.min_visible, empty_tile_fraction=args.empty_tile_fraction, seed=args.seed
    )
    report = tile_dataset(inputs["data"], outputs["tiles"], settings, workers=args.workers or None)
    print(
        f"tile: {report.images} images -> {report.tiles} tiles ({report.tiles_with_boxes} with boxes, "
        f"{report.empty_tiles_kept} of {report.empty_tiles} empty kept); {report.box_tiles} boxes in tiles, "
        f"{report.boxes_clipped} clipped, {report.boxes_lost} of {report.boxes} in no tile"
    )
