"""A `scheme:reference` input on SageMaker: a String parameter per source, the unbound marker by default,
filled by `skyops sagemaker start` from the stored definition's Metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skyops.errors import ConfigError, PipelineError
from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.runtime import PATHS_ENV, prepare
from skyops.pipeline.sagemaker import compile_pipeline
from skyops.pipeline.sagemaker.sources import fill_sources

from .checks import all_steps
from .conftest import SETTINGS
from .test_compile import drone_dict

UNBOUND = f"s3://{SETTINGS.bucket}/skyops/unbound/"


def test_a_source_becomes_a_parameter_defaulting_to_the_unbound_marker(definition: dict[str, Any]) -> None:
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert parameters["EvaluateChampion"] == {"Name": "EvaluateChampion", "Type": "String", "DefaultValue": UNBOUND}
    assert definition["Metadata"] == {
        "skyops-source-EvaluateChampion": json.dumps({"optional": True, "source": "registry:${model_name}@champion"})
    }
    assert SETTINGS.unbound_key == "skyops/unbound/.skyops-unbound" and SETTINGS.unbound_uri == UNBOUND


def test_the_marker_leaves_the_job_s_input_unbound(definition: dict[str, Any], drone: Pipeline, tmp_path: Path) -> None:
    """What an execution started without `skyops sagemaker start` does: the champion input holds only the marker."""
    evaluate = next(s for s in all_steps(definition["Steps"]) if s["Name"] == "evaluate")["Arguments"]
    folders = {"model": tmp_path / "model", "splits": tmp_path / "splits", "champion": tmp_path / "champion"}
    for folder in folders.values():
        folder.mkdir()
    (folders["champion"] / ".skyops-unbound").write_text("")  # all that s3://.../unbound/ holds
    paths = {i["S3Input"]["LocalPath"]: str(folders[i["InputName"]]) for i in evaluate["ProcessingInputs"] if i["InputName"] in folders}
    paths.update({o["S3Output"]["LocalPath"]: str(tmp_path / o["OutputName"]) for o in evaluate["ProcessingOutputConfig"]["Outputs"]})
    inputs, _, _, _ = prepare(drone.step("evaluate").definition, [], {PATHS_ENV: json.dumps(paths)})
    assert sorted(inputs) == ["model", "splits"]


def test_start_fills_each_source_with_what_its_resolver_finds(definition: dict[str, Any]) -> None:
    asked: list[str] = []

    def champions(reference: str) -> str | None:
        asked.append(reference)
        return "s3://models/run2/model.tar.gz" if reference.startswith("drone-detector@") else None

    assert fill_sources(definition, {}, {"registry": champions}) == (
        {"EvaluateChampion": "s3://models/run2/model.tar.gz"},
        ["EvaluateChampion: registry:drone-detector@champion is s3://models/run2/model.tar.gz"],
    )
    assert fill_sources(definition, {"model_name": "other"}, {"registry": champions}) == (
        {},
        ["EvaluateChampion: registry:other@champion names nothing; the input stays unbound"],
    )
    assert asked == ["drone-detector@champion", "other@champion"]  # ${model_name}: the default, then the value given
    given = {"EvaluateChampion": "s3://mine/model.tar.gz"}
    assert fill_sources(definition, given, {"registry": champions}) == ({}, ["EvaluateChampion: s3://mine/model.tar.gz (given)"])
    assert len(asked) == 2  # a value given is not looked up


def test_a_required_source_that_names_nothing_and_an_unknown_scheme_stop_the_start(scratch) -> None:
    package = scratch("use", inputs={"baseline": "model-weights", "notes": "notes"}, outputs={"report": "report"})
    steps = [{"step": "use", "inputs": {"baseline": "registry:nothing@champion", "notes": "wiki:page"}}]
    definition = compile_pipeline(pipeline_from_dict({"name": "req", "catalog": package, "steps": steps}), SETTINGS)
    with pytest.raises(ConfigError) as info:
        fill_sources(definition, {}, {"registry": lambda reference: None})
    assert info.value.problems == [
        "UseBaseline: registry:nothing@champion names nothing, and its input is required",
        "UseNotes: no resolver for 'wiki' sources (known: registry)",
    ]


def test_a_source_parameter_clashing_with_a_pipeline_parameter_is_refused() -> None:
    data = drone_dict()
    data["parameters"]["EvaluateChampion"] = {"type": "string", "default": ""}
    with pytest.raises(PipelineError, match=r"defines parameter 'EvaluateChampion', which the SageMaker engine adds itself"):
        compile_pipeline(pipeline_from_dict(data), SETTINGS)
