"""detect_drift on feature tables made from known distributions; drift.json's contract, written and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skyops.errors import ConfigError, DataValidationError
from skyops.monitoring.baseline import baseline_from
from skyops.monitoring.drift import DriftResult, DriftThresholds, detect_drift
from skyops.monitoring.features import CATEGORICAL, NUMERIC, FeatureTable

META: dict[str, Any] = {"dataset": {"fingerprint": "a" * 64}, "model": {"weights_sha256": "b" * 64}}
WINDOW_META = {"start": "2026-01-31T13:00:00+00:00", "end": "2026-01-31T14:00:00+00:00", "requests": 0, "source": "captures"}
CONTRACT_FEATURE_KEYS = {"name", "kind", "test", "statistic", "p_value", "p_adjusted", "psi", "drifted"}


def table(
    n: int, seed: int, *, brightness: float = 0.0, dark_rows: int = 0, classes: tuple[str, ...] = ("car", "truck"), embed_shift: float = 0.0
) -> FeatureTable:
    """A table of n rows from fixed distributions; `brightness` shifts every row, `dark_rows` only the last ones."""
    rng = np.random.default_rng(seed)
    numeric = {name: rng.normal(10, 2, n) for name in NUMERIC}
    numeric["brightness"] = rng.normal(120 + brightness, 15, n)
    numeric["brightness"][n - dark_rows :] -= 60 if dark_rows else 0
    numeric["boxes"] = rng.poisson(4, n).astype(float)
    empty = numeric["boxes"] == 0
    numeric["mean_score"][empty] = np.nan
    categorical = {"empty": np.where(empty, "yes", "no").tolist(), "class_mix": rng.choice(classes, n).tolist()}
    embedding = rng.normal(size=(n, 24)).astype(np.float32) + embed_shift
    result = FeatureTable(
        request_ids=[f"r{seed}-{i}" for i in range(n)],
        numeric={k: v.tolist() for k, v in numeric.items()},
        categorical={k: categorical[k] for k in CATEGORICAL},
    )
    result.embedding_rows = list(embedding)
    return result


@pytest.fixture(scope="module")
def baseline():  # type: ignore[no-untyped-def]
    return baseline_from(table(600, 0), META, dims=8, seed=0)


FAST = DriftThresholds(permutations=1499)  # the fewest alpha=0.01 allows over 14 tests, rounded up


def test_a_window_like_the_baseline_is_not_drifted(baseline) -> None:  # type: ignore[no-untyped-def]
    result = detect_drift(baseline, table(200, 1), WINDOW_META, FAST)
    assert not result.drifted
    assert not any(f.drifted for f in result.features) and not result.embedding.drifted
    assert all(r["drift_contribution"] == 0 for r in result.requests)


def test_a_darker_window_is_drifted_on_brightness_first(baseline) -> None:  # type: ignore[no-untyped-def]
    result = detect_drift(baseline, table(200, 2, brightness=-25), WINDOW_META, FAST)
    assert result.drifted and result.top[0] == "brightness"
    brightness = next(f for f in result.features if f.name == "brightness")
    assert brightness.test == "ks" and brightness.p_adjusted is not None and brightness.p_adjusted <= 0.01 and brightness.psi > 0.25
    assert [f.name for f in result.features if f.drifted] == ["brightness"]


def test_requests_that_carry_the_drift_contribute_most(baseline) -> None:  # type: ignore[no-untyped-def]
    result = detect_drift(baseline, table(200, 3, dark_rows=60), WINDOW_META, FAST)
    assert result.drifted
    top = sorted(result.requests, key=lambda r: -r["drift_contribution"])[:50]
    assert sum(int(r["inference_id"].split("-")[1]) >= 140 for r in top) >= 45  # the last 60 rows are the dark ones


def test_a_new_class_and_a_moved_embedding_are_found(baseline) -> None:  # type: ignore[no-untyped-def]
    result = detect_drift(baseline, table(200, 4, classes=("car", "truck", "bus"), embed_shift=0.5), WINDOW_META, FAST)
    class_mix = next(f for f in result.features if f.name == "class_mix")
    assert class_mix.test == "chi2" and class_mix.drifted
    assert result.embedding.drifted and result.embedding.p_value == pytest.approx(1 / 1500)


def test_features_named_for_psi_are_judged_by_psi_alone(baseline) -> None:  # type: ignore[no-untyped-def]
    thresholds = DriftThresholds(permutations=1499, psi_features=("brightness",), psi_threshold=5.0)
    result = detect_drift(baseline, table(200, 2, brightness=-25), WINDOW_META, thresholds)
    brightness = next(f for f in result.features if f.name == "brightness")
    assert brightness.test == "psi" and brightness.p_value is None and brightness.statistic == brightness.psi
    assert not brightness.drifted  # its PSI (~1.5) is under the threshold of 5


def test_unknown_psi_feature_and_too_small_window_are_refused(baseline) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataValidationError, match=r"psi_features names unknown features brightnes$"):
        detect_drift(baseline, table(200, 1), WINDOW_META, DriftThresholds(psi_features=("brightnes",)))
    with pytest.raises(DataValidationError, match=r"the window has 12 captured images with pixels, fewer than min_images=30"):
        detect_drift(baseline, table(12, 1), WINDOW_META, FAST)


def test_bh_flags_at_least_what_holm_flags(baseline) -> None:  # type: ignore[no-untyped-def]
    window = table(200, 2, brightness=-4)
    holm = detect_drift(baseline, window, WINDOW_META, FAST)
    bh = detect_drift(baseline, window, WINDOW_META, DriftThresholds(permutations=1499, correction="bh"))
    assert {f.name for f in holm.features if f.drifted} <= {f.name for f in bh.features if f.drifted}
    assert bh.thresholds["correction"] == "bh"


def test_drift_json_holds_the_contract_and_reads_back(baseline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = detect_drift(baseline, table(200, 2, brightness=-25), {**WINDOW_META, "requests": 200}, FAST)
    path = result.to_json(tmp_path / "drift.json")
    doc = json.loads(path.read_text())
    assert list(doc) == ["format", "drifted", "window", "baseline", "features", "embedding", "thresholds", "top", "requests"]
    assert doc["format"] == 1 and doc["drifted"] is True
    assert doc["window"] == {**WINDOW_META, "requests": 200}
    assert doc["baseline"] == {"dataset_fingerprint": "a" * 64, "images": 600}
    assert all(set(f) == CONTRACT_FEATURE_KEYS and f["kind"] in ("image", "prediction") for f in doc["features"])
    assert {"test", "statistic", "p_value", "drifted"} <= set(doc["embedding"]) and doc["embedding"]["test"] == "mmd"
    assert doc["thresholds"]["alpha"] == 0.01 and doc["thresholds"]["correction"] == "holm"
    assert sorted(doc["top"]) == sorted([*NUMERIC, *CATEGORICAL, "embedding"])
    assert len(doc["requests"]) == 200 and set(doc["requests"][0]) == {"inference_id", "drift_contribution"}
    assert DriftResult.from_json(path) == result
    assert not list(tmp_path.glob(".drift.json.*"))  # the temp file was renamed


def test_too_few_permutations_to_ever_flag_the_embedding_are_refused(baseline) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        ConfigError, match=r"permutations=999 cannot show embedding drift at alpha=0.01: its smallest p-value, 1/1000, times 14 tests"
    ):
        detect_drift(baseline, table(200, 1), WINDOW_META, DriftThresholds(permutations=999))


def test_damaged_drift_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "drift.json"
    path.write_text('{"format": 1, "drifted": true}')
    with pytest.raises(DataValidationError, match=r"drift.json lacks window, baseline, features, embedding, thresholds, top$"):
        DriftResult.from_json(path)
    path.write_text("{not json")
    with pytest.raises(DataValidationError, match=r"cannot be read as drift.json"):
        DriftResult.from_json(path)
