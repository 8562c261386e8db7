"""`scheme:reference` inputs: declared in the pipeline, resolved once per run by the resolver the caller gives,
hashed into the cache key like any input; the core knows no scheme."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.errors import ConfigError, PipelineError
from skyops.pipeline.definition import parse_source
from skyops.pipeline.runtime import unbound
from skyops.pipeline.wiring import ExternalRef, OutputRef, ParamRef, SchemeRef

from .conftest import read_output_text, statuses, toy


class Shelf:
    """A toy resolver: `shelf:<name>` is the folder `<root>/<name>` when it exists; it counts its calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.asked: list[str] = []

    def __call__(self, reference: str) -> Path | None:
        self.asked.append(reference)
        folder = self.root / reference
        return folder if folder.is_dir() else None

    def put(self, name: str, value: str) -> None:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / name / "value.txt").write_text(value)


@pytest.fixture
def shelf(tmp_path: Path) -> Shelf:
    return Shelf(tmp_path / "shelf")


def reader(reference: str = "shelf:${which}@latest", which: str = "best") -> object:
    """One node step whose optional input `a` comes from a shelf source."""
    return toy(
        [{"name": "reader", "step": "node", "inputs": {"a": reference}, "config": {"tag": "r"}}],
        parameters={"which": {"type": "string", "default": which}},
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry:${model_name}@champion", SchemeRef("registry", "${model_name}@champion")),
        ("split.splits", OutputRef("split", "splits")),
        ("s3://bucket/data/", ExternalRef("s3://bucket/data/")),
        ("./data/a:b", ExternalRef("./data/a:b")),
        ("${dataset}", ExternalRef(ParamRef("dataset"))),
    ],
)
def test_a_scheme_reference_is_told_apart_from_outputs_paths_and_uris(text: str, expected: object) -> None:
    assert parse_source(text, "here") == expected


def test_a_reference_to_an_unknown_parameter_is_refused_when_defined() -> None:
    with pytest.raises(PipelineError, match=r"step 'reader' references unknown parameter \$\{whom\}"):
        reader("shelf:${whom}@latest")


def test_explain_says_how_a_source_is_bound() -> None:
    (edge,) = reader().edges  # type: ignore[attr-defined]
    assert str(edge) == (
        "shelf:${which}@latest -> reader.a  (bound explicitly in the pipeline to a 'shelf' source: resolved when a run starts "
        "(skyops run; skyops sagemaker start), nothing found leaves it unbound)"
    )


def test_the_resolved_folder_is_read_and_its_content_keys_the_cache(make_engine: Callable[..., object], shelf: Shelf) -> None:
    shelf.put("best@latest", "v1")
    engine = make_engine(resolvers={"shelf": shelf})
    first = engine.run(reader())  # type: ignore[attr-defined]
    assert shelf.asked == ["best@latest"]  # `${which}` replaced, asked once
    assert read_output_text(first, "reader", "out", "value.txt") == "r(v1)"
    assert first.steps["reader"].inputs["a"]["source"] == f"shelf:best@latest ({shelf.root / 'best@latest'})"
    assert statuses(engine.run(reader())) == {"reader": "cached"}  # type: ignore[attr-defined]
    shelf.put("best@latest", "v2")  # a new champion, say
    again = engine.run(reader())  # type: ignore[attr-defined]
    assert statuses(again) == {"reader": "done"} and read_output_text(again, "reader", "out", "value.txt") == "r(v2)"
    assert again.steps["reader"].miss_reasons[0].startswith("inputs changed (a: ")


def test_nothing_found_leaves_an_optional_input_unbound(make_engine: Callable[..., object], shelf: Shelf) -> None:
    record = make_engine(resolvers={"shelf": shelf}).run(reader(which="none"))  # type: ignore[attr-defined]
    assert shelf.asked == ["none@latest"] and "a" not in record.steps["reader"].inputs
    assert read_output_text(record, "reader", "out", "value.txt") == "r()"


def test_nothing_found_for_a_required_input_and_an_unknown_scheme_are_refused_before_anything_runs(
    make_engine: Callable[..., object], shelf: Shelf
) -> None:
    pipeline = toy([{"step": "double", "inputs": {"numbers": "shelf:missing"}}, {"step": "total", "inputs": {"values": "stock:any"}}])
    with pytest.raises(ConfigError) as info:
        make_engine(resolvers={"shelf": shelf}).run(pipeline)  # type: ignore[attr-defined]
    assert info.value.problems == [
        "step 'double' input 'numbers' (shelf:missing): shelf:missing names nothing, and the input is required",
        "step 'total' input 'values' (stock:any): no resolver for 'stock' sources (known: shelf)",
    ]


def test_an_input_holding_only_the_unbound_marker_is_unbound(tmp_path: Path) -> None:
    (tmp_path / "marked").mkdir()
    (tmp_path / "marked" / ".skyops-unbound").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".skyops-unbound").write_text("")
    (tmp_path / "data" / "x.txt").write_text("x")
    assert unbound(tmp_path / "marked") and not unbound(tmp_path / "data") and not unbound(tmp_path / "missing")
