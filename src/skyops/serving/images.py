"""A request body to decoded images, refusing every bad payload before it costs memory or time.

Content types (the Content-Type header; parameters such as `; charset=` are ignored):

    image/jpeg, image/png      one image of that format
    application/x-image        one JPEG or PNG, told apart by its first bytes
    application/json           {"image": "<base64>"} or {"images": ["<base64>", ...]} (at most `max_batch`)

Order of the checks, cheapest first, each a `RequestError`: the content type (415); the body's size
(413, done by the app while it reads); the JSON's shape and base64 (400); then for each image its
header, read without decoding pixels (skyops.data.imageinfo: the JPEG SOF or PNG IHDR): not an
image or of the wrong format (400), more pixels than `max_pixels` (413: a decompression bomb is
refused here, before a byte is inflated), cut short (400: a JPEG without its end-of-image marker
after the scan, a PNG without IEND; libjpeg would otherwise fill the missing rows with grey and
answer for half an image); only then is it decoded (400 when the decoder still fails).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skyops.data.imageinfo import ImageFormat, ImageHeaderError, probe
from skyops.serving.problems import RequestError

if TYPE_CHECKING:
    import numpy as np

JSON = "application/json"
X_IMAGE = "application/x-image"
IMAGE_TYPES = {"image/jpeg": ImageFormat.JPEG, "image/png": ImageFormat.PNG, X_IMAGE: None}
CONTENT_TYPES = (*IMAGE_TYPES, JSON)
DECODABLE = (ImageFormat.JPEG, ImageFormat.PNG)
THUMBNAIL_SIDE = 128  # px, the longer side of a capture thumbnail
THUMBNAIL_QUALITY = 75


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int  # request body
    max_pixels: int  # per image, width x height from its header
    max_batch: int  # images in one JSON request


def media_type(content_type: str | None) -> str:
    """The request's media type, lower-cased, without parameters.

    Raises:
        RequestError: 415 when it is missing or not one the server reads.
    """
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in CONTENT_TYPES:
        what = f"Content-Type {kind[:60]!r} is not supported" if kind else "the Content-Type header is missing"
        raise RequestError(415, "unsupported_media_type", f"{what}: send one of {', '.join(CONTENT_TYPES)}", limit=", ".join(CONTENT_TYPES))
    return kind


def split_payload(kind: str, body: bytes, limits: Limits) -> tuple[list[bytes], bool]:
    """The encoded images of a body of media type `kind`, and whether it is a batch ({"images": [...]}).

    Raises:
        RequestError: 400 for an empty body, JSON that is not {"image": ...} or {"images": [...]}, or bad
            base64; 413 for more images than `limits.max_batch`.
    """
    if not body:
        raise RequestError(400, "empty_body", "the request body is empty: send an image")
    if kind != JSON:
        return [body], False
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(400, "invalid_json", f"the body is not JSON ({e})") from None
    shape = 'expected {"image": "<base64>"} or {"images": ["<base64>", ...]}'
    if not isinstance(document, dict) or len(document) != 1 or next(iter(document)) not in ("image", "images"):
        found = f"keys {[k[:40] for k in sorted(document)[:5]]}" if isinstance(document, dict) else f"a {type(document).__name__}"
        raise RequestError(400, "invalid_json", f"the JSON body holds {found}: {shape}")
    if "image" in document:
        encoded = [document["image"]]
    else:
        encoded = document["images"]
        if not isinstance(encoded, list) or not encoded:
            raise RequestError(400, "invalid_json", f'"images" is not a non-empty list: {shape}')
        if len(encoded) > limits.max_batch:
            raise RequestError(
                413,
                "too_many_images",
                f"{len(encoded)} images in one request is over the limit of {limits.max_batch}",
                limit=limits.max_batch,
            )
    images = []
    for i, text in enumerate(encoded):
        where = "image" if "image" in document else f"images[{i}]"
        if not isinstance(text, str):
            raise RequestError(400, "invalid_json", f"{where} is not a base64 string: {shape}")
        try:
            images.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise RequestError(400, "invalid_base64", f"{where} is not valid base64") from None
    return images, "images" in document


def decode(data: bytes, kind: str, limits: Limits, where: str = "the body") -> np.ndarray:
    """Decode one image to (H, W, 3) uint8 BGR after its header passed every check (module docstring).

    Raises:
        RequestError: 400 not a JPEG/PNG, of another format than its content type, cut short or undecodable;
            413 over `limits.max_pixels`.
    """
    import cv2  # heavy: the server has it loaded long before the first request
    import numpy as np

    try:
        info = probe(data)
    except ImageHeaderError as e:
        raise RequestError(400, "invalid_image", f"{where} is not a readable JPEG or PNG: {e}", limit="JPEG or PNG") from None
    expected = IMAGE_TYPES.get(kind)
    if info.format not in DECODABLE:
        raise RequestError(400, "invalid_image", f"{where} is a {info.format.value.upper()} image: send a JPEG or PNG", limit="JPEG or PNG")
    if expected is not None and info.format != expected:
        raise RequestError(
            400, "invalid_image", f"{where} is a {info.format.value.upper()} image, but the Content-Type says {kind}", limit=kind
        )
    if info.pixels > limits.max_pixels:
        raise RequestError(
            413,
            "too_many_pixels",
            f"{where} is {info.width}x{info.height} = {info.pixels} pixels, over the limit of {limits.max_pixels}",
            limit=limits.max_pixels,
        )
    if not info.complete:
        marker = "end-of-image marker" if info.format is ImageFormat.JPEG else "IEND chunk"
        raise RequestError(
            400, "truncated_image", f"{where} is cut short: the {info.format.value.upper()} has no {marker} ({len(data)} bytes received)"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise RequestError(400, "invalid_image", f"{where} cannot be decoded: its {info.format.value.upper()} data is damaged")
    return image


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of a decoded BGR image, its longer side `side` px (never enlarged)."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, side / max(height, width))
    small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a thumbnail")
    return bytes(encoded.tobytes())
