"""The reproducibility report: a run re-made from its recorded inputs, compared metric by metric with the original.

    original, fresh = run_results(state, "20250101-..."), run_results(state, rerun_id)   # training.json + evaluation.json
    reproduction = compare(original, fresh, tolerance=0.02, inputs=recorded_inputs(store, original))
    paths = write_report(reproduction, state / "runs" / rerun_id)     # reproducibility.md + .html, each atomic
    attach(registry, version, reproduction, paths)                     # the version's card points at it

What was re-run from which inputs (data fingerprint, code version, parameters, seed, libraries), the tolerance,
each test metric original vs reproduced with the difference, and the verdict: reproduced when the data is the
same and no metric moved by more than the tolerance. The report is evidence a reviewer reads beside the model
card; it changes no status or alias, so it is recorded on the version as its own tag (`skyops.reproducibility`)
and as artifacts of the version's training run (`reproducibility/`), never by rewriting the card.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyops.evaluation.report import write_text_atomic

if TYPE_CHECKING:
    from skyops.registry.models import ModelRegistry
    from skyops.registry.roles import Governance
    from skyops.training.tracking import TrackingStore

METRICS = ("map50", "map50_95", "precision", "recall")  # evaluation.json `metrics`, on the test split
REPORT_MD = "reproducibility.md"
REPORT_HTML = "reproducibility.html"
TAG = "skyops.reproducibility"  # the version tag pointing at the latest report
ARTIFACT_DIR = "reproducibility"  # under the version's training run


@dataclass(frozen=True)
class MetricDiff:
    """One test metric of the original run and of its re-run (both in 0-1)."""

    name: str
    original: float
    reproduced: float

    @property
    def difference(self) -> float:
        return self.reproduced - self.original

    def within(self, tolerance: float) -> bool:
        return abs(self.difference) <= tolerance


@dataclass(frozen=True, kw_only=True)
class Reproduction:
    """A run and its re-run from the same recorded inputs. `inputs` and `rerun_inputs`: what each was made from
    (data_fingerprint, code_version, seed, libraries); `parameters`: the pipeline parameters both ran with."""

    pipeline: str
    original_run: str
    rerun: str
    tolerance: float
    parameters: dict[str, Any]
    inputs: dict[str, str]
    rerun_inputs: dict[str, str]
    metrics: tuple[MetricDiff, ...]
    model: str = ""
    version: int | None = None
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def differing_inputs(self) -> list[str]:
        """Recorded inputs whose value differs between the two runs (the data fingerprint decides the verdict)."""
        return sorted(k for k in self.inputs.keys() | self.rerun_inputs.keys() if self.inputs.get(k) != self.rerun_inputs.get(k))

    @property
    def differing_metrics(self) -> list[MetricDiff]:
        return [m for m in self.metrics if not m.within(self.tolerance)]

    @property
    def largest_difference(self) -> float:
        return max((abs(m.difference) for m in self.metrics), default=0.0)

    @property
    def reproduced(self) -> bool:
        return "data_fingerprint" not in self.differing_inputs and not self.differing_metrics

    def summary(self) -> dict[str, Any]:
        """The short record kept on the version (tag `skyops.reproducibility`)."""
        return {
            "reproduced": self.reproduced,
            "tolerance": self.tolerance,
            "largest_difference": round(self.largest_difference, 6),
            "differing_metrics": [m.name for m in self.differing_metrics],
            "differing_inputs": self.differing_inputs,
            "original_run": self.original_run,
            "rerun": self.rerun,
            "created": self.created,
        }

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "metrics": [asdict(m) for m in self.metrics], "verdict": self.summary()}


def recorded_inputs(results: dict[str, Any], store: TrackingStore | None = None) -> dict[str, str]:
    """What a run was made from: its data fingerprint and seed (its records), its code version and library versions
    (the tags of its MLflow training run, when the store still has it)."""
    training, record = results["training.json"], results["record"]
    inputs = {"data_fingerprint": str(training.get("data_fingerprint", "")), "seed": str(record.parameters.get("seed", ""))}
    if store is not None:
        tags = store.client.get_run(training["mlflow_run_id"]).data.tags
        inputs["code_version"] = tags.get("skyops.code_version", "")
        inputs |= {k.removeprefix("skyops."): v for k, v in sorted(tags.items()) if k.startswith("skyops.version.")}
    return inputs


def compare(
    original: dict[str, Any],
    fresh: dict[str, Any],
    *,
    tolerance: float,
    inputs: dict[str, str],
    rerun_inputs: dict[str, str],
    model: str = "",
    version: int | None = None,
) -> Reproduction:
    """The comparison of two runs' results (`record`, `training.json`, `evaluation.json`, as experiments reads them)."""
    before, after = original["evaluation.json"]["metrics"], fresh["evaluation.json"]["metrics"]
    return Reproduction(
        pipeline=original["record"].pipeline,
        original_run=original["record"].run_id,
        rerun=fresh["record"].run_id,
        tolerance=tolerance,
        parameters=dict(original["record"].parameters),
        inputs=inputs,
        rerun_inputs=rerun_inputs,
        metrics=tuple(MetricDiff(m, float(before[m]), float(after[m])) for m in METRICS),
        model=model,
        version=version,
    )


def _verdict(r: Reproduction) -> str:
    if r.reproduced:
        return f"REPRODUCED: every test metric within {r.tolerance} (largest difference {r.largest_difference:.4f})"
    reasons = []
    if "data_fingerprint" in r.differing_inputs:
        reasons.append("the data fingerprint differs")
    if r.differing_metrics:
        reasons.append("beyond the tolerance: " + ", ".join(f"{m.name} ({m.difference:+.4f})" for m in r.differing_metrics))
    return f"NOT REPRODUCED (tolerance {r.tolerance}): " + "; ".join(reasons)


def _subject(r: Reproduction) -> str:
    version = f"{r.model} v{r.version}, " if r.version is not None else ""
    return f"{version}pipeline run {r.original_run} ({r.pipeline})"


def render_markdown(r: Reproduction) -> str:
    """The report as Markdown: subject, verdict, the recorded inputs of both runs, the metrics table."""
    lines = [
        f"# Reproducibility report: {_subject(r)}",
        "",
        f"**{_verdict(r)}**",
        "",
        f"Re-run `{r.rerun}` from the recorded inputs of `{r.original_run}`, every step executed again (no cache), "
        f"on {r.created}. Tolerance: largest allowed absolute difference of each test metric, {r.tolerance}.",
        "",
        "## Recorded inputs",
        "",
        "| input | original | re-run | same |",
        "| --- | --- | --- | --- |",
    ]
    for key in sorted(r.inputs.keys() | r.rerun_inputs.keys()):
        a, b = r.inputs.get(key, "-"), r.rerun_inputs.get(key, "-")
        lines.append(f"| {key} | `{a}` | `{b}` | {'yes' if a == b else '**no**'} |")
    lines += ["", "Parameters (both runs): " + ", ".join(f"`{k}={v}`" for k, v in sorted(r.parameters.items())), ""]
    lines += [
        "## Test metrics",
        "",
        "| metric | original | reproduced | difference | within tolerance |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in r.metrics:
        lines.append(
            f"| {m.name} | {m.original:.4f} | {m.reproduced:.4f} | {m.difference:+.4f} | {'yes' if m.within(r.tolerance) else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.no{color:#b00;font-weight:bold}"
    ".ok{color:#070;font-weight:bold}code{font-size:90%}"
)


def render_html(r: Reproduction) -> str:
    """The same report as one self-contained HTML page (inline style, no script, no external file)."""
    e = html.escape

    def row(cells: list[str], same: bool) -> str:
        return "<tr>" + "".join(cells) + f"<td class={'ok' if same else 'no'}>{'yes' if same else 'no'}</td></tr>"

    inputs = "".join(
        row(
            [
                f"<td>{e(k)}</td>",
                f"<td><code>{e(r.inputs.get(k, '-'))}</code></td>",
                f"<td><code>{e(r.rerun_inputs.get(k, '-'))}</code></td>",
            ],
            r.inputs.get(k) == r.rerun_inputs.get(k),
        )
        for k in sorted(r.inputs.keys() | r.rerun_inputs.keys())
    )
    metrics = "".join(
        row(
            [f"<td>{e(m.name)}</td>", f"<td>{m.original:.4f}</td>", f"<td>{m.reproduced:.4f}</td>", f"<td>{m.difference:+.4f}</td>"],
            m.within(r.tolerance),
        )
        for m in r.metrics
    )
    params = ", ".join(f"<code>{e(f'{k}={v}')}</code>" for k, v in sorted(r.parameters.items()))
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{e('Reproducibility: ' + _subject(r))}</title>"
        f"<style>{_STYLE}</style></head><body><h1>Reproducibility report</h1><p>{e(_subject(r))}</p>"
        f"<p class={'ok' if r.reproduced else 'no'}>{e(_verdict(r))}</p>"
        f"<p>Re-run <code>{e(r.rerun)}</code> from the recorded inputs of <code>{e(r.original_run)}</code>, every step executed "
        f"again (no cache), on {e(r.created)}. Tolerance: largest allowed absolute difference of each test metric, {r.tolerance}.</p>"
        f"<h2>Recorded inputs</h2><table><tr><th>input</th><th>original</th><th>re-run</th><th>same</th></tr>{inputs}</table>"
        f"<p>Parameters (both runs): {params}</p>"
        "<h2>Test metrics</h2><table><tr><th>metric</th><th>original</th><th>reproduced</th><th>difference</th>"
        f"<th>within tolerance</th></tr>{metrics}</table></body></html>\n"
    )


def write_report(r: Reproduction, folder: Path) -> tuple[Path, Path]:
    """reproducibility.md and reproducibility.html in `folder` (the re-run's record folder), each written atomically."""
    return write_text_atomic(folder / REPORT_MD, render_markdown(r)), write_text_atomic(folder / REPORT_HTML, render_html(r))


def attach(registry: ModelRegistry, version: int, r: Reproduction, paths: tuple[Path, ...], *, governance: Governance, actor: str) -> str:
    """Attach the report to a registered version: its files as artifacts of the version's training run
    (`reproducibility/<rerun>/`), and the verdict with their URI as the version tag `skyops.reproducibility`,
    which `skyops models show` prints as the card's reproducibility section. Returns the artifact URI.

    Governed like any write to the registry: `actor` must hold the `register` permission (evidence added to a
    version, as a Data Scientist or an ML Engineer may), checked and audited before the first write, the
    outcome audited after. Raises PermissionDenied (audited as denied; nothing attached)."""
    from skyops.registry.roles import Action

    found = registry.get(str(version))
    intended = {"tag": TAG, "rerun": r.rerun, "reproduced": r.reproduced, "tolerance": r.tolerance}
    with governance.action(actor, Action.REGISTER, f"{registry.name} v{found.version}", reason="reproducibility report", intended=intended):
        client = registry.client
        artifact_path = f"{ARTIFACT_DIR}/{r.rerun}"
        for path in paths:
            client.log_artifact(found.run_id, str(path), artifact_path)
        uri = f"{client.get_run(found.run_id).info.artifact_uri}/{artifact_path}"
        client.set_model_version_tag(registry.name, str(found.version), TAG, json.dumps({**r.summary(), "report": uri}, sort_keys=True))
    return uri
