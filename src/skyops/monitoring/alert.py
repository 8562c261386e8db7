"""From a drift result to an alert: read drift.json (the monitor pipeline's result), and say it as a drift.detected event.

drift.json is written by the `monitor` pipeline (skyops.monitoring.drift); this module reads the JSON
file itself, by the shared contract, so alerting does not depend on the drift code:

    {"format": 1, "drifted": bool, "window": {"start", "end", "requests", "source"},
     "baseline": {"dataset_fingerprint", "images"}, "features": [{"name", "drifted", ...}],
     "embedding": {"test", "statistic", "p_value", "drifted"}, "thresholds": {...}, "top": [names],
     "requests": [{"inference_id", "drift_contribution"}]}

`find_drift_file` finds the drift.json of a past run of the monitor pipeline from its run record (any
step output folder holding one), so a schedule can run `monitor run` and then `monitor alert --from-run latest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError
from skyops.monitoring.events import Event, EventType, new_event
from skyops.statefile import is_object, read_json_state, shape_problems

DRIFT_FILE = "drift.json"
MONITOR_PIPELINE = "monitor"
TOP = 10  # features named in an event


@dataclass(frozen=True)
class DriftResult:
    path: Path
    data: dict[str, Any]

    @property
    def drifted(self) -> bool:
        return bool(self.data["drifted"])

    @property
    def drifted_features(self) -> list[str]:
        return [str(f.get("name")) for f in self.data["features"] if isinstance(f, dict) and f.get("drifted")]

    def summary(self) -> str:
        w = self.data["window"]
        what = f"window {w.get('start')} .. {w.get('end')} ({w.get('requests')} requests from {w.get('source')})"
        if not self.drifted:
            return f"no drift in the {what}"
        embedding = self.data.get("embedding") or {}
        parts = [f"{len(self.drifted_features)} feature(s) drifted"] + (["the embedding drifted"] if embedding.get("drifted") else [])
        top = ", ".join(map(str, self.data["top"][:5]))
        return f"drift in the {what}: {' and '.join(parts)}; top: {top or '-'}"


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def read_drift(path: Path) -> DriftResult:
    """The drift result at `path`.

    Raises:
        StateFileError: unreadable, not JSON, or not of the contract's shape (each problem named).
    """

    def problems(value: Any) -> list[str]:
        fields = [
            ("format", lambda v: v == 1, "1"),
            ("drifted", lambda v: isinstance(v, bool), "true or false"),
            ("window", is_object, "an object"),
            ("baseline", is_object, "an object"),
            ("features", _is_list, "a list"),
            ("top", _is_list, "a list"),
        ]
        return shape_problems(value, fields)

    data = read_json_state(
        Path(path),
        what="drift result",
        expected='a drift.json of the monitor pipeline ({"format": 1, "drifted", "window", "baseline", "features", "top", ...})',
        hint="give the drift.json `skyops monitor run` wrote (or --from-run latest)",
        problems=problems,
    )
    return DriftResult(Path(path).resolve(), data)


def drift_event(result: DriftResult) -> Event:
    """The drift.detected event of a drifted result (what rules and receivers match on, not the whole file)."""
    data = result.data
    embedding = data.get("embedding") if isinstance(data.get("embedding"), dict) else None
    detail = {
        "drift_file": str(result.path),
        "window": data["window"],
        "baseline": data["baseline"],
        "top": data["top"][:TOP],
        "drifted_features": result.drifted_features[:TOP],
        "drifted_feature_count": len(result.drifted_features),
        "embedding": {k: embedding.get(k) for k in ("test", "statistic", "p_value", "drifted")} if embedding else None,
        "requests": len(data.get("requests") or []),
    }
    return new_event(EventType.DRIFT_DETECTED, detail)


def find_drift_file(state_dir: Path, run: str = "latest", pipeline: str = MONITOR_PIPELINE) -> Path:
    """The drift.json of run `run` ('latest': the newest succeeded run of `pipeline`).

    Raises:
        ConfigError: no such run, or none of its step outputs holds a drift.json.
    """
    from skyops.pipeline.lineage import RunStatus, list_records, load_record

    runs = state_dir / "runs"
    if run == "latest":
        records = [r for r in list_records(runs) if r.pipeline == pipeline and r.status is RunStatus.SUCCEEDED]
        if not records:
            raise ConfigError(
                f"no succeeded run of the {pipeline!r} pipeline under {runs}",
                hint="run the drift check first: skyops monitor run (or give DRIFT_JSON)",
            )
        record = records[0]  # newest first
    else:
        record = load_record(runs, run)
    for step in record.steps.values():
        for output in step.outputs.values():
            folder = Path(str(output.get("path", "")))
            found = sorted(folder.rglob(DRIFT_FILE)) if folder.is_dir() else []
            if found:
                return found[0]
    raise ConfigError(f"run {record.run_id} of {record.pipeline!r} has no {DRIFT_FILE} in its outputs", hint="give DRIFT_JSON")
