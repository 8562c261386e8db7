"""Validation: one small fixture per rule, policies, quarantine, the validated copy, real data."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.data.convert import convert
from skyops.data.imageinfo import ImageHeaderError, probe
from skyops.data.layout import Manifest
from skyops.data.validate import (
    DEFAULT_QUARANTINE,
    VALIDATION_JSON,
    Rule,
    Severity,
    ValidationFailed,
    ValidationPolicy,
    summary,
    validate,
    write_validated,
)
from skyops.errors import ConfigError, DataValidationError

NAMES = ["car", "person"]
GOOD = "0 0.5 0.5 0.25 0.25\n1 0.25 0.25 0.1 0.1\n"
LENIENT = ValidationPolicy(max_invalid_fraction=1.0)  # report everything, never fail

Case = tuple[dict[str, bytes], dict[str, str], str, int | None]  # images, labels, file with the finding, line


def huge_png(png: bytes, width: int, height: int) -> bytes:
    """A real PNG whose header claims another size: what a decompression bomb looks like before decoding."""
    return png[:16] + struct.pack(">II", width, height) + png[24:]


def corrupt_idat(png: bytes) -> bytes:
    """Flip bytes inside the compressed data; the header and the IEND end marker stay intact."""
    data = bytearray(png)
    start = data.find(b"IDAT") + 20
    for i in range(start, start + 40):
        data[i] ^= 0x55
    return bytes(data)


@pytest.fixture
def cases(make_jpeg: Callable[..., bytes], make_png: Callable[..., bytes]) -> dict[Rule, Case]:
    """For each rule, a dataset (next to one good image) that breaks exactly that rule."""
    ok = make_jpeg(64, 48, seed=1)
    return {
        Rule.IMAGE_UNREADABLE: ({"x.jpg": b"<html>404 not found</html>"}, {"x": GOOD}, "images/x.jpg", None),
        Rule.IMAGE_ZERO_BYTES: ({"x.jpg": b""}, {"x": GOOD}, "images/x.jpg", None),
        Rule.IMAGE_TRUNCATED: ({"x.jpg": ok[: len(ok) // 2]}, {"x": GOOD}, "images/x.jpg", None),
        Rule.IMAGE_EXT_MISMATCH: ({"x.jpg": make_png(64, 48)}, {"x": GOOD}, "images/x.jpg", None),
        Rule.IMAGE_TOO_LARGE: ({"x.png": huge_png(make_png(64, 48), 20_000, 20_000)}, {"x": GOOD}, "images/x.png", None),
        Rule.IMAGE_EXIF_ROTATED: ({"x.jpg": make_jpeg(64, 48, seed=2, orientation=6)}, {"x": GOOD}, "images/x.jpg", None),
        Rule.IMAGE_TOO_SMALL: ({"x.jpg": make_jpeg(16, 12, seed=3)}, {"x": GOOD}, "images/x.jpg", None),
        Rule.IMAGE_DUPLICATE: ({"dup_a.jpg": ok, "x.jpg": ok}, {"dup_a": GOOD, "x": GOOD}, "images/x.jpg", None),
        Rule.LABEL_UNPARSEABLE: ({"x.jpg": ok}, {"x": GOOD + "0 0.5 0.5 0.25\n"}, "labels/x.txt", 3),
        Rule.LABEL_NAN: ({"x.jpg": ok}, {"x": "0 nan 0.5 0.25 0.25\n"}, "labels/x.txt", 1),
        Rule.LABEL_OUT_OF_RANGE: ({"x.jpg": ok}, {"x": GOOD + "0 0.95 0.5 0.25 0.25\n"}, "labels/x.txt", 3),
        Rule.LABEL_NONPOSITIVE_SIZE: ({"x.jpg": ok}, {"x": "0 0.5 0.5 0 0.25\n"}, "labels/x.txt", 1),
        Rule.LABEL_BAD_CLASS: ({"x.jpg": ok}, {"x": "\n2 0.5 0.5 0.25 0.25\n"}, "labels/x.txt", 2),
        Rule.LABEL_MISSING: ({"x.jpg": ok}, {}, "images/x.jpg", None),
        Rule.LABEL_EMPTY: ({"x.jpg": ok}, {"x": ""}, "labels/x.txt", None),
        Rule.LABEL_ORPHAN: ({"x.jpg": ok}, {"x": GOOD, "y": GOOD}, "labels/y.txt", None),
    }


@pytest.mark.parametrize("rule", list(Rule))
def test_each_rule_has_a_fixture_that_triggers_only_it(
    rule: Rule, cases: dict[Rule, Case], make_jpeg: Callable[..., bytes], write_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    images, labels, file, line = cases[rule]
    root = write_dataset(tmp_path / "ds", images | {"good.jpg": make_jpeg(64, 48, seed=99)}, labels | {"good": GOOD})

    report = validate(root, LENIENT, names=NAMES, workers=1)

    assert [(f.rule, f.file, f.line) for f in report.findings] == [(rule, file, line)]
    finding = report.findings[0]
    quarantines = rule in DEFAULT_QUARANTINE
    assert finding.severity is (Severity.ERROR if quarantines else Severity.WARNING)
    assert finding.hint and finding.message
    image = "images/" + ("x.png" if rule is Rule.IMAGE_TOO_LARGE else "x.jpg")
    assert report.quarantined == ([image] if quarantines else [])


def test_fixtures_cover_every_rule(cases: dict[Rule, Case]) -> None:
    assert set(cases) == set(Rule)


def test_too_large_images_are_never_decoded(cases: dict[Rule, Case], write_dataset: Callable[..., Path], tmp_path: Path) -> None:
    images, labels, _, _ = cases[Rule.IMAGE_TOO_LARGE]
    root = write_dataset(tmp_path / "ds", images, labels)
    report = validate(root, ValidationPolicy(max_invalid_fraction=1.0, decode=True), names=NAMES, workers=1)
    assert [f.rule for f in report.findings] == [Rule.IMAGE_TOO_LARGE]  # a decode attempt would add image.unreadable
    assert "20000x20000 = 400,000,000 pixels, above max_pixels 89,478,485" in report.findings[0].message


def test_decode_finds_corruption_inside_the_data(
    make_png: Callable[..., bytes], write_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    root = write_dataset(tmp_path / "ds", {"x.png": corrupt_idat(make_png(64, 48))}, {"x": GOOD})
    assert validate(root, LENIENT, names=NAMES, workers=1).findings == []  # header and end marker are fine
    report = validate(root, ValidationPolicy(max_invalid_fraction=1.0, decode=True), names=NAMES, workers=1)
    assert [(f.rule, f.file) for f in report.findings] == [(Rule.IMAGE_UNREADABLE, "images/x.png")]


MAGICS = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\nxxxxIHDR", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8X", b"II*\x00", b"MM\x00*"]


@settings(max_examples=500, deadline=None)
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=80))
def test_header_parser_survives_arbitrary_bytes(magic: bytes, tail: bytes) -> None:
    """Any file that starts like an image either gives a size or the one error the validator turns into a finding."""
    try:
        info = probe(magic + tail)
    except ImageHeaderError:
        return
    assert info.width > 0 and info.height > 0


def test_header_parser_refuses_a_zero_length_segment() -> None:
    with pytest.raises(ImageHeaderError, match=r"jpeg segment at byte 4 has length 0"):
        probe(b"\xff\xd8\xff\xe0\x00\x00\x00\x00")  # would loop forever if trusted


@pytest.fixture
def mixed_corpus(make_jpeg: Callable[..., bytes], write_dataset: Callable[..., Path], tmp_path: Path) -> Path:
    """3 good images, 1 negative (empty label), 4 bad ones (truncated, NaN label, zero bytes, duplicate)."""
    good = {f"good{i}.jpg": make_jpeg(64, 48, seed=i) for i in range(3)}
    truncated = make_jpeg(64, 48, seed=10)[:300]
    images = good | {
        "negative.jpg": make_jpeg(64, 48, seed=20),
        "cut.jpg": truncated,
        "nan.jpg": make_jpeg(64, 48, seed=30),
        "empty.jpg": b"",
        "good9.jpg": good["good0.jpg"],
    }
    labels = {f"good{i}": GOOD for i in range(3)} | {
        "negative": "",
        "cut": GOOD,
        "nan": "0 0.5 nan 0.1 0.1\n",
        "empty": GOOD,
        "good9": GOOD,
    }
    return write_dataset(tmp_path / "corpus", images, labels)


def test_mixed_corpus_quarantines_bad_keeps_good_and_leaves_the_source_unchanged(
    mixed_corpus: Path, tmp_path: Path, tree_digest: Callable[[Path], dict[str, str]]
) -> None:
    before = tree_digest(mixed_corpus)
    report = validate(mixed_corpus, ValidationPolicy(max_invalid_fraction=0.5), names=NAMES)
    assert report.quarantined == ["images/cut.jpg", "images/empty.jpg", "images/good9.jpg", "images/nan.jpg"]
    assert report.counts() == {"image.duplicate": 1, "image.truncated": 1, "image.zero_bytes": 1, "label.empty": 1, "label.nan": 1}

    target = write_validated(mixed_corpus, tmp_path / "validated", report)

    kept = ["good0.jpg", "good1.jpg", "good2.jpg", "negative.jpg"]
    assert sorted(os.listdir(target / "images")) == kept
    assert sorted(os.listdir(target / "labels")) == [n.replace(".jpg", ".txt") for n in kept]
    assert os.path.samefile(target / "images" / "good0.jpg", mixed_corpus / "images" / "good0.jpg")  # hard link, not a copy
    manifest = Manifest.read(target)
    assert [r.image for r in manifest.images] == [f"images/{n}" for n in kept] and manifest.names == NAMES
    assert manifest.stats["validation"]["quarantined"] == 4
    saved = json.loads((target / VALIDATION_JSON).read_text())
    assert saved["quarantined"] == report.quarantined and saved["passed"] is True
    nan = next(f for f in saved["findings"] if f["rule"] == "label.nan")
    assert nan == {
        "rule": "label.nan",
        "file": "labels/nan.txt",
        "line": 1,
        "severity": "error",
        "message": nan["message"],
        "hint": nan["hint"],
    }
    assert tree_digest(mixed_corpus) == before  # byte for byte, and no file added or removed


def test_too_many_quarantined_fails_with_a_summary(mixed_corpus: Path) -> None:
    with pytest.raises(
        ValidationFailed, match=r"validation FAILED for .*corpus: 4 of 8 images quarantined \(50.0%; the policy allows 5.0%\)"
    ) as error:
        validate(mixed_corpus, names=NAMES)
    assert len(error.value.report.quarantined) == 4
    assert "image.truncated" in str(error.value) and "fix: the file is cut short" in str(error.value)


def test_policy_decides_quarantine_or_warning(mixed_corpus: Path) -> None:
    policy = ValidationPolicy(max_invalid_fraction=1.0, quarantine=DEFAULT_QUARANTINE - {Rule.IMAGE_DUPLICATE})
    report = validate(mixed_corpus, policy, names=NAMES)
    assert "images/good9.jpg" not in report.quarantined
    assert next(f for f in report.findings if f.rule is Rule.IMAGE_DUPLICATE).severity is Severity.WARNING


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown rule\(s\) \['image.blurry'\]"):
        ValidationPolicy(quarantine=frozenset({"image.blurry"}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"max_invalid_fraction=2 is not in \[0, 1\]"):
        ValidationPolicy(max_invalid_fraction=2)
    assert ValidationPolicy(quarantine=frozenset({"label.nan"})).quarantine == {Rule.LABEL_NAN}  # type: ignore[arg-type]


def test_summary_lists_errors_first_with_examples_and_fixes(mixed_corpus: Path) -> None:
    text = summary(validate(mixed_corpus, LENIENT, names=NAMES))
    lines = text.splitlines()
    assert lines[0].startswith("validation passed for ") and "4 of 8 images quarantined" in lines[0]
    assert [line.split()[:2] for line in lines[1::2]] == [
        ["error", "image.duplicate"],
        ["error", "image.truncated"],
        ["error", "image.zero_bytes"],
        ["error", "label.nan"],
        ["warning", "label.empty"],
    ]
    assert "e.g. labels/nan.txt:1" in text


def test_not_a_dataset(tmp_path: Path, write_dataset: Callable[..., Path], mixed_corpus: Path) -> None:
    with pytest.raises(DataValidationError, match=r"has no images/ folder"):
        validate(tmp_path, names=NAMES)
    with pytest.raises(DataValidationError, match=r"holds no images"):
        validate(write_dataset(tmp_path / "empty", {}, {}), names=NAMES)
    with pytest.raises(DataValidationError, match=r"has no manifest.json and no names were given"):
        validate(mixed_corpus)
    report = validate(mixed_corpus, LENIENT, names=NAMES)
    with pytest.raises(DataValidationError, match=r"the report is of .*corpus, not of"):
        write_validated(tmp_path / "empty", tmp_path / "out", report)


def test_aerial_cars_converted_passes_validation_and_keeps_lineage(aerial_cars: Path, tmp_path: Path) -> None:
    convert(aerial_cars, tmp_path / "converted", "yolo")
    report = validate(tmp_path / "converted")
    assert report.passed and report.quarantined == [] and report.images == 367
    write_validated(tmp_path / "converted", tmp_path / "validated", report)
    source, validated = Manifest.read(tmp_path / "converted"), Manifest.read(tmp_path / "validated")
    assert validated.images == source.images and validated.fingerprint == source.fingerprint
    assert validated.source_format == "yolo" and validated.stats["per_class"] == source.stats["per_class"]
