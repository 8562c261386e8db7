"""Per-request detection parameters: confidence, IoU, max detections and slicing, from the query string or SageMaker's custom attributes.

    POST /invocations?conf=0.3&iou=0.5&max_det=100&slice=256            (local clients)
    X-Amzn-SageMaker-Custom-Attributes: conf=0.3,iou=0.5,max_det=100     (SageMaker's InvokeEndpoint has no query string)

`slice=SIZE` runs sliced inference with windows of SIZE px (skyops.serving.sliced; the server's
--slice-overlap); `slice=0` turns off the slicing a server was started with (`--slice`).

Both may be given; the query string wins for a name both set. Anything else is refused with 422 and
what was expected: an unknown name (a typo must not fall back to the default silently), a name given
twice, a value that is not a finite number, out of range, or (max_det) not an integer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from skyops.serving.model import Thresholds
from skyops.serving.problems import RequestError

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
MAX_DET_LIMIT = 1000  # more boxes than this per image is a mistake, not a request
MIN_SLICE, MAX_SLICE = 32, 4096  # px: a window smaller than the network's stride sees nothing; larger is no slicing
KNOWN = ("conf", "iou", "max_det", "slice")


@dataclass(frozen=True, slots=True)
class DetectParams:
    conf: float  # keep boxes whose best class score is above this, in [0, 1]
    iou: float  # suppress a box overlapping a better one of its class by more than this, in [0, 1]
    max_det: int  # at most this many boxes per image, 1..MAX_DET_LIMIT
    slice: int | None = None  # window side in px (0: no slicing); None: the server's setting


def parse_params(query: Iterable[tuple[str, str]], custom_attributes: str | None, defaults: Thresholds) -> DetectParams:
    """The parameters of one request, the model's defaults where none is given.

    Args:
        query: the query string's (name, value) pairs, repeats included.
        custom_attributes: the X-Amzn-SageMaker-Custom-Attributes header, or None.
        defaults: the package's default thresholds (metadata.json).

    Raises:
        RequestError: 422, naming the parameter, the value received and what was expected.
    """
    given: dict[str, str] = {}
    if custom_attributes:
        given.update(_pairs(_split_attributes(custom_attributes), CUSTOM_ATTRIBUTES))
    given.update(_pairs(query, "the query string"))
    conf = _fraction("conf", given.get("conf"), defaults.conf)
    iou = _fraction("iou", given.get("iou"), defaults.iou)
    max_det = _count("max_det", given.get("max_det"), defaults.max_det)
    return DetectParams(conf=conf, iou=iou, max_det=max_det, slice=_slice(given.get("slice")))


def _split_attributes(header: str) -> list[tuple[str, str]]:
    pairs = []
    for item in header.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise _invalid(f"{CUSTOM_ATTRIBUTES} item {item.strip()[:40]!r} is not name=value", "e.g. conf=0.3,iou=0.5,max_det=100")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _pairs(pairs: Iterable[tuple[str, str]], where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in pairs:
        if name not in KNOWN:
            raise _invalid(f"unknown parameter {name[:40]!r} in {where}", f"one of {', '.join(KNOWN)}")
        if name in found:
            raise _invalid(f"parameter {name} is given twice in {where}", "each parameter once")
        found[name] = value
    return found


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f"{name}={text[:40]!r} is not a number", _expected(name)) from None
    if not math.isfinite(value):
        raise _invalid(f"{name}={text[:40]} is not a finite number", _expected(name))
    return value


def _fraction(name: str, text: str | None, default: float) -> float:
    if text is None:
        return default
    value = _number(name, text)
    if not 0 <= value <= 1:
        raise _invalid(f"{name}={text[:40]} is out of range", _expected(name))
    return value


def _count(name: str, text: str | None, default: int) -> int:
    if text is None:
        return min(default, MAX_DET_LIMIT)
    value = _number(name, text)
    if not value.is_integer():
        raise _invalid(f"{name}={text[:40]} is not an integer", _expected(name))
    if not 1 <= value <= MAX_DET_LIMIT:
        raise _invalid(f"{name}={text[:40]} is out of range", _expected(name))
    return int(value)


def _slice(text: str | None) -> int | None:
    if text is None:
        return None
    value = _number("slice", text)
    if not value.is_integer():
        raise _invalid(f"slice={text[:40]} is not an integer", _expected("slice"))
    if value != 0 and not MIN_SLICE <= value <= MAX_SLICE:
        raise _invalid(f"slice={text[:40]} is out of range", _expected("slice"))
    return int(value)


def _expected(name: str) -> str:
    if name == "slice":
        return f"0 (no slicing) or a window size in px, {MIN_SLICE}..{MAX_SLICE}"
    return f"an integer in 1..{MAX_DET_LIMIT}" if name == "max_det" else "a number in [0, 1]"


def _invalid(what: str, expected: str) -> RequestError:
    return RequestError(422, "invalid_parameter", f"{what}: expected {expected}", limit=expected)
