"""Reading skyops' own JSON state files: every way of being damaged is one StateFileError naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skyops.errors import StateFileError
from skyops.statefile import is_text, is_version, read_json_state, shape_problems

FIELDS = [("model", is_text, "a model name"), ("version", is_version, "a positive integer")]


def read(path: Path) -> object:
    return read_json_state(
        path, what="test pointer", expected="an object {model, version}", hint="rewrite it", problems=lambda v: shape_problems(v, FIELDS)
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
        (b'{"model": "m", "version": ', "is not JSON (Expecting value at line 1 column 27)"),
        (b"[1, 2]", "has the wrong shape: it holds an array, not an object"),
        (b'{"model": "m"}', "has the wrong shape: 'version' is missing"),
        (b'{"model": "", "version": "3"}', "has the wrong shape: 'model' is an empty string, not a model name; 'version' is a string, not"),
        (b'{"model": "m", "version": true}', "has the wrong shape: 'version' is a boolean, not a positive integer"),
        (b'{"model": "m", "version": 0}', "has the wrong shape: 'version' is a number, not a positive integer"),
    ],
)
def test_damaged_file_is_one_error_naming_file_problem_and_expectation(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match="^test pointer .*p.json " + re.escape(problem)) as caught:
        read(path)
    assert caught.value.message.endswith("; expected an object {model, version}")
    assert caught.value.hint == "rewrite it"


def test_values_from_the_file_are_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"model": "m", "version": "SECRET-TOKEN"}')
    with pytest.raises(StateFileError) as caught:
        read(path)
    assert "SECRET" not in caught.value.message


def test_unreadable_path_is_named(tmp_path: Path) -> None:
    (tmp_path / "p.json").mkdir()
    with pytest.raises(StateFileError, match=r"p\.json cannot be read \(Is a directory\)"):
        read(tmp_path / "p.json")


def test_sound_file_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"model": "m", "version": 3, "extra": [1]}')
    assert read(path) == {"model": "m", "version": 3, "extra": [1]}


def test_nested_objects_name_their_path() -> None:
    assert shape_problems({"map50": "x"}, [("map50", lambda v: isinstance(v, float), "a number")], at="metrics.") == [
        "'metrics.map50' is a string, not a number"
    ]
    assert shape_problems(None, FIELDS, at="metrics.") == ["'metrics' holds null, not an object"]
