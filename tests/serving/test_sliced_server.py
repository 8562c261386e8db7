"""Sliced inference in the server: `skyops serve --slice`, the request's slice=SIZE, and what a bad one gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from skyops.serving.model import Thresholds
from skyops.serving.params import CUSTOM_ATTRIBUTES, parse_params
from skyops.serving.problems import RequestError
from tests.serving.conftest import Server, encode, launch, shut

DEFAULTS = Thresholds(0.25, 0.45, 300)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("16", "slice=16 is out of range: expected 0 (no slicing) or a window size in px, 32..4096"),
        ("5000", "slice=5000 is out of range: expected 0 (no slicing) or a window size in px, 32..4096"),
        ("256.5", "slice=256.5 is not an integer: expected 0 (no slicing) or a window size in px, 32..4096"),
        ("big", "slice='big' is not a number: expected 0 (no slicing) or a window size in px, 32..4096"),
        ("-256", "slice=-256 is out of range: expected 0 (no slicing) or a window size in px, 32..4096"),
    ],
)
def test_a_bad_slice_is_one_422_line(query: str, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_params([("slice", query)], None, DEFAULTS)
    assert (refused.value.status, refused.value.code, refused.value.message) == (422, "invalid_parameter", message)


def test_slice_from_the_query_or_the_custom_attributes() -> None:
    assert parse_params([], None, DEFAULTS).slice is None  # the server's own setting
    assert parse_params([("slice", "256")], None, DEFAULTS).slice == 256
    assert parse_params([("slice", "0")], None, DEFAULTS).slice == 0
    assert parse_params([], "conf=0.3,slice=512", DEFAULTS).slice == 512
    assert parse_params([("slice", "128")], "slice=512", DEFAULTS).slice == 128  # the query wins
    with pytest.raises(RequestError, match=f"slice=1 is out of range .* {CUSTOM_ATTRIBUTES}|slice=1 is out of range"):
        parse_params([], "slice=1", DEFAULTS)


@pytest.fixture(scope="module")
def sliced_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = launch(model_dir, "--slice", "256", "--slice-overlap", "0.25", "--workers", "1", cwd=tmp_path_factory.mktemp("sliced"))
    yield running
    assert shut(running) == 0


@pytest.fixture(scope="module")
def wide_jpeg(scene_files: list[Path]) -> bytes:
    """A 640 x 448 frame: six 256 px scenes in two rows of three, cut."""
    images = [cv2.imread(str(p)) for p in scene_files[:6]]
    grid = np.concatenate([np.concatenate(images[:3], axis=1), np.concatenate(images[3:6], axis=1)], axis=0)
    return encode(grid[:448, :640])


def post(server: Server, body: bytes, params: str) -> httpx.Response:
    return httpx.post(f"{server.url}/invocations?conf=0.001{params}", content=body, headers={"Content-Type": "image/jpeg"}, timeout=120)


def test_the_server_slices_and_says_how(sliced_server: Server, wide_jpeg: bytes) -> None:
    answer = post(sliced_server, wide_jpeg, "").json()
    # 640 wide at 256 px, 64 shared: x 0, 192, 384; 448 high: y 0, 192. Six windows and the full frame.
    assert answer["slices"] == {"size": 256, "overlap": 0.25, "count": 6, "runs": 7}
    assert answer["image"] == {"width": 640, "height": 448}
    assert answer["detections"]
    for d in answer["detections"]:
        x0, y0, x1, y1 = d["box"]
        assert 0 <= x0 <= x1 <= 640 and 0 <= y0 <= y1 <= 448
    smaller = post(sliced_server, wide_jpeg, "&slice=128").json()
    assert smaller["slices"]["size"] == 128 and smaller["slices"]["count"] > 6


def test_slice_0_is_the_unsliced_answer(sliced_server: Server, model_dir: Path, wide_jpeg: bytes, tmp_path: Path) -> None:
    off = post(sliced_server, wide_jpeg, "&slice=0").json()
    assert "slices" not in off
    plain = launch(model_dir, "--workers", "1", cwd=tmp_path)
    try:
        unsliced = post(plain, wide_jpeg, "").json()
    finally:
        assert shut(plain) == 0
    assert off["detections"] == unsliced["detections"]


def test_too_many_slices_is_refused_in_one_line(sliced_server: Server) -> None:
    huge = encode(np.full((2000, 2000, 3), 90, np.uint8))
    response = post(sliced_server, huge, "&slice=32")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "too_many_slices"
    assert error["message"] == (
        "the body: a 2000x2000 image makes 6889 slices of 32 px at overlap 0.25, over the limit of 400: send a larger slice=SIZE, or slice=0"
    )
    assert error["limit"] == 400


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--slice", "16"), "error: --slice 16 is too small: expected 0 (off) or a window of at least 32 px"),
        (("--slice", "5000"), "error: --slice"),
        (("--slice", "256", "--slice-overlap", "0.9"), "error: --slice-overlap"),
    ],
)
def test_bad_slice_options_are_one_line(capsys: pytest.CaptureFixture[str], model_dir: Path, args: tuple[str, ...], line: str) -> None:
    from tests.clirun import cli

    code, _, err = cli(capsys, "serve", str(model_dir), "--port", "0", *args)
    assert code == 2
    assert err.splitlines()[0].startswith(line)
    assert "Traceback" not in err
