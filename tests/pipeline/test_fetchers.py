"""External inputs given as URLs (`s3://...`): fetched once per run, before any step, by the fetcher the caller
gives for the URL's scheme; the copy's digest keys the cache like a local folder of the same files would."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.errors import ConfigError
from skyops.pipeline.hashing import hash_tree

from .conftest import read_output_text, statuses, toy


class Depot:
    """A toy fetcher: `depot://<name>` is copied from `<root>/<name>` into a fresh folder; it counts its calls."""

    def __init__(self, root: Path, copies: Path) -> None:
        self.root, self.copies = root, copies
        self.asked: list[str] = []

    def __call__(self, url: str) -> tuple[Path, str]:
        self.asked.append(url)
        copy = self.copies / str(len(self.asked))
        shutil.copytree(self.root / url.removeprefix("depot://"), copy)
        return copy, hash_tree(copy).digest

    def put(self, name: str, value: str) -> Path:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / name / "value.txt").write_text(value)
        return self.root / name


@pytest.fixture
def depot(tmp_path: Path) -> Depot:
    return Depot(tmp_path / "depot", tmp_path / "copies")


def readers(location: str = "${where}") -> object:
    """Two node steps reading the same external location (a parameter by default)."""
    return toy(
        [
            {"name": "left", "step": "node", "inputs": {"a": location}, "config": {"tag": "l"}},
            {"name": "right", "step": "node", "inputs": {"a": location}, "config": {"tag": "r"}},
        ],
        parameters={"where": {"type": "string", "default": "depot://v"}},
    )


def test_a_url_is_fetched_once_per_run_and_its_copy_keys_the_cache_like_a_local_folder(
    make_engine: Callable[..., object], depot: Depot
) -> None:
    local = depot.put("v", "one")
    engine = make_engine(fetchers={"depot": depot})
    first = engine.run(readers())  # type: ignore[attr-defined]
    assert depot.asked == ["depot://v"]  # two inputs name it: fetched once
    assert read_output_text(first, "left", "out", "value.txt") == "l(one)"
    source = first.steps["left"].inputs["a"]
    assert source["source"] == f"external depot://v (local copy {depot.copies / '1'})"
    assert source["digest"] == hash_tree(local).digest  # the same files in a local folder: the same digest

    assert statuses(engine.run(readers())) == {"left": "cached", "right": "cached"}  # type: ignore[attr-defined]
    by_path = engine.run(readers(), {"where": str(local)})  # type: ignore[attr-defined]
    assert statuses(by_path) == {"left": "cached", "right": "cached"}  # the local folder of the same files hits too

    depot.put("v", "two")
    again = engine.run(readers())  # type: ignore[attr-defined]
    assert statuses(again) == {"left": "done", "right": "done"} and read_output_text(again, "right", "out", "value.txt") == "r(two)"


def test_a_url_without_a_fetcher_is_refused_before_anything_runs(make_engine: Callable[..., object], depot: Depot) -> None:
    depot.put("v", "one")
    pipeline = toy(
        [
            {"name": "left", "step": "node", "inputs": {"a": "s3://bucket/data"}},
            {"name": "right", "step": "node", "inputs": {"a": "depot://v"}},
        ]
    )
    with pytest.raises(ConfigError, match=r"^1 problem in the external inputs of pipeline 'toy'") as info:
        make_engine(fetchers={"depot": depot}).run(pipeline)  # type: ignore[attr-defined]
    assert info.value.hint == "give a local path, or run on SageMaker with `skyops sagemaker start`"
    assert info.value.problems == [
        "step 'left' input 'a' is s3://bucket/data; this engine has no fetcher for s3:// locations (it fetches: depot://)"
    ]
    assert depot.asked == []  # nothing fetched when any URL cannot be


def test_an_engine_without_fetchers_refuses_a_url_naming_none(make_engine: Callable[..., object]) -> None:
    with pytest.raises(ConfigError) as info:
        make_engine().run(readers())  # type: ignore[attr-defined]
    assert info.value.problems == [
        "step 'left' input 'a' is depot://v; this engine has no fetcher for depot:// locations (it fetches: none)",
        "step 'right' input 'a' is depot://v; this engine has no fetcher for depot:// locations (it fetches: none)",
    ]
