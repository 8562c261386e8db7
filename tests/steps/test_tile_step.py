"""The tile step: the data half of pipelines/drone-detection-tiled.yaml through the local engine on tiny synthetic
frames, and the whole pipeline compiled for SageMaker (schema and request checks as for drone-detection)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from skyops.data.layout import Manifest, read_split
from skyops.data.tiling import read_tiles
from skyops.errors import ConfigError
from skyops.pipeline.definition import Pipeline, load_pipeline, pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir
from skyops.pipeline.sagemaker import compile_pipeline
from tests.sagemaker.checks import OPERATIONS, all_steps, definition_schema, parameter_defaults, request_errors, schema_errors
from tests.sagemaker.conftest import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DATA_STEPS = ("ingest", "validate", "tile", "split")  # profile reads the whole frames: not needed here


def tiled_data_half() -> Pipeline:
    data = yaml.safe_load((ROOT / "pipelines" / "drone-detection-tiled.yaml").read_text())
    data["steps"] = [s for s in data["steps"] if s["step"] in DATA_STEPS]
    data.pop("gates")
    return pipeline_from_dict(data)


def test_tiled_data_half_keeps_each_frame_on_one_side(tmp_path: Path) -> None:
    engine = LocalEngine(StateDir(tmp_path / "state"), code_roots={"skyops": ROOT / "src" / "skyops"})
    params = {"images": "6", "image_size": "256", "tile_size": "128", "tile_overlap": "32", "empty_tile_fraction": "1"}
    record = engine.run(tiled_data_half(), params, run_id="tiled")
    assert {name: str(record.steps[name].status) for name in DATA_STEPS} == dict.fromkeys(DATA_STEPS, "done")

    tiles_dir = Path(record.steps["tile"].outputs["tiles"]["path"])
    tiles = read_tiles(tiles_dir)
    assert len(tiles) == 6 * 9  # 256 px, tiles of 128 every 96 px: starts 0, 96, 128 on each axis; every tile kept
    assert {(t.x, t.y) for t in tiles} == {(x, y) for x in (0, 96, 128) for y in (0, 96, 128)}
    assert len(Manifest.read(tiles_dir).images) == len(tiles)

    splits = Path(record.steps["split"].outputs["splits"]["path"])
    source_of = {t.image: t.source for t in read_tiles(splits)}
    sides: dict[str, set[str]] = {}
    for side in ("train", "val", "test"):
        for image in read_split(splits, side):
            sides.setdefault(source_of[image], set()).add(side)
    assert len(sides) == 6 and all(len(s) == 1 for s in sides.values())
    assert json.loads((splits / "split.json").read_text())["leakage"]["sources_on_several_sides"] == []


def test_overlap_as_large_as_the_tile_is_refused_before_running(tmp_path: Path) -> None:
    engine = LocalEngine(StateDir(tmp_path / "state"), code_roots={"skyops": ROOT / "src" / "skyops"})
    with pytest.raises(ConfigError, match=r"overlap of 128 px leaves no stride in tiles of 128 px"):
        engine.run(tiled_data_half(), {"tile_size": "128", "tile_overlap": "128"}, run_id="bad")


@pytest.fixture(scope="module")
def tiled_definition() -> dict[str, Any]:
    return compile_pipeline(load_pipeline("drone-detection-tiled", search=[ROOT / "pipelines"]), SETTINGS)


def test_tiled_pipeline_compiles_to_valid_sagemaker_requests(tiled_definition: dict[str, Any]) -> None:
    assert schema_errors(tiled_definition, definition_schema()) == []
    steps = [s for s in all_steps(tiled_definition["Steps"]) if s["Type"] in OPERATIONS]
    assert [s["Name"] for s in steps][:6] == ["ingest", "validate", "profile", "tile", "split", "train"]
    defaults = parameter_defaults(tiled_definition)
    assert {s["Name"]: request_errors(s, defaults) for s in steps} == {s["Name"]: "" for s in steps}
    tile = next(s for s in steps if s["Name"] == "tile")["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in tile["ProcessingInputs"]}
    assert inputs["data"] == {"Get": "Steps.validate.ProcessingOutputConfig.Outputs['data'].S3Output.S3Uri"}
    split = next(s for s in steps if s["Name"] == "split")["Arguments"]
    assert {i["InputName"]: i["S3Input"]["S3Uri"] for i in split["ProcessingInputs"]}["data"] == {
        "Get": "Steps.tile.ProcessingOutputConfig.Outputs['tiles'].S3Output.S3Uri"
    }
    assert "--size" in tile["AppSpecification"]["ContainerArguments"]
