"""The reproducibility report: verdict, tolerance, the differing metric named, both renderings written atomically;
and `skyops experiments reproduce MODEL:VERSION --report` on a real retrain (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skyops.pipeline.lineage import RunRecord
from skyops.registry.reproducibility import compare, render_html, render_markdown, write_report

INPUTS = {"data_fingerprint": "f" * 64, "seed": "0", "code_version": "abc123"}


def results(run_id: str, map50: float, *, fingerprint: str = "f" * 64) -> dict[str, Any]:
    record = RunRecord(
        run_id=run_id, pipeline="drone-detection", parameters={"seed": 0, "epochs": 1}, user="bob", host="h", started=0.0, steps={}
    )
    metrics = {"map50": map50, "map50_95": 0.2, "precision": 0.5, "recall": 0.4}
    return {"record": record, "training.json": {"data_fingerprint": fingerprint}, "evaluation.json": {"metrics": metrics}}


def test_within_tolerance_is_reproduced() -> None:
    r = compare(results("a", 0.50), results("b", 0.51), tolerance=0.02, inputs=INPUTS, rerun_inputs=INPUTS, model="m", version=3)
    assert r.reproduced and r.differing_metrics == [] and r.largest_difference == pytest.approx(0.01)
    assert "REPRODUCED: every test metric within 0.02" in render_markdown(r)


def test_a_metric_beyond_tolerance_is_named_in_both_reports(tmp_path: Path) -> None:
    r = compare(results("a", 0.50), results("b", 0.47), tolerance=0.02, inputs=INPUTS, rerun_inputs=INPUTS, model="m", version=3)
    assert not r.reproduced and [m.name for m in r.differing_metrics] == ["map50"]
    md, html = write_report(r, tmp_path)
    assert "NOT REPRODUCED (tolerance 0.02): beyond the tolerance: map50 (-0.0300)" in md.read_text()
    assert "| map50 | 0.5000 | 0.4700 | -0.0300 | **no** |" in md.read_text()
    assert "map50 (-0.0300)" in html.read_text() and "<script" not in html.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reproducibility.html", "reproducibility.md"]  # no temp file left


def test_other_data_is_not_reproduced_whatever_the_metrics() -> None:
    other = {**INPUTS, "data_fingerprint": "0" * 64}
    r = compare(results("a", 0.5), results("b", 0.5), tolerance=0.02, inputs=INPUTS, rerun_inputs=other)
    assert not r.reproduced and r.differing_inputs == ["data_fingerprint"]
    assert "the data fingerprint differs" in render_html(r)


@pytest.mark.slow
def test_reproduce_a_registered_version_attaches_the_report_to_its_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real training (1 epoch, 64 px): tolerance 1 reproduces; a tampered recorded metric with tolerance 0 does not."""
    import json
    import shutil

    from skyops import api
    from tests.clirun import cli

    root = Path(__file__).resolve().parents[2]
    api.new_project(tmp_path / "project", template=root)
    monkeypatch.setenv("SKYOPS_USER", "bob")
    monkeypatch.chdir(tmp_path / "project")
    record = api.run_pipeline(params={"images": 16, "image_size": 64, "epochs": 1, "batch": 8, "min_map50": 0})
    code, out, err = cli(capsys, "experiments", "reproduce", "drone-detector:1", "--tolerance", "1", "--report")
    assert code == 0, out + err
    assert "reproduced: yes" in out and "attached to drone-detector v1" in out
    shown = cli(capsys, "models", "show", "1")[1]
    assert "reproducibility: reproduced within 1.0" in shown

    evaluation = Path(record.steps["evaluate"].outputs["evaluation"]["path"])  # tamper with the recorded metric
    shutil.copy(evaluation / "evaluation.json", tmp_path / "kept.json")
    doc = json.loads((evaluation / "evaluation.json").read_text())
    evaluation.chmod(0o755)
    (evaluation / "evaluation.json").chmod(0o644)
    doc["metrics"]["recall"] = min(1.0, doc["metrics"]["recall"] + 0.5)
    (evaluation / "evaluation.json").write_text(json.dumps(doc))
    code, out, err = cli(capsys, "experiments", "reproduce", record.run_id, "--tolerance", "0", "--report")
    assert code == 1, out + err
    report = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("report: ") and line.endswith(".md"))
    assert "beyond the tolerance: recall" in Path(report).read_text()
    assert "reproducibility: NOT reproduced within 0.0" in cli(capsys, "models", "show", "1")[1]


def test_attaching_a_report_is_governed_and_audited(project: Path, store_dir: Path, model: str, tmp_path: Path) -> None:
    """The tag and artifacts are registry writes: checked against the roles and audited like any other (no training)."""
    from skyops.errors import PermissionDenied
    from skyops.registry.audit import AuditLog
    from skyops.registry.models import ModelRegistry
    from skyops.registry.reproducibility import TAG, attach
    from skyops.registry.roles import Governance
    from skyops.training.tracking import TrackingStore

    from .conftest import register_version

    version = register_version(store_dir, model, 0.3)
    r = compare(results("a", 0.50), results("b", 0.51), tolerance=0.02, inputs=INPUTS, rerun_inputs=INPUTS, model=model, version=version)
    paths = write_report(r, tmp_path / "report")
    registry = ModelRegistry(TrackingStore.local(store_dir), model)
    governance = Governance(project, store_dir / "audit.log")

    with pytest.raises(PermissionDenied, match=r"mallory .*register"):
        attach(registry, version, r, paths, governance=governance, actor="mallory")  # role none: read only
    assert TAG not in registry.get(str(version)).tags
    uri = attach(registry, version, r, paths, governance=governance, actor="bob")
    assert json.loads(registry.get(str(version)).tags[TAG])["report"] == uri

    mine = [
        rec
        for rec in AuditLog(store_dir / "audit.log").records()
        if rec.target == f"{model} v{version}" and rec.reason == "reproducibility report"
    ]
    assert [(rec.actor, rec.outcome) for rec in mine] == [("mallory", "denied"), ("bob", "intent"), ("bob", "succeeded")]
    assert mine[1].details == {"tag": TAG, "rerun": "b", "reproduced": True, "tolerance": 0.02}
