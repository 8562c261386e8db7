"""The drift report: one self-contained HTML page (report.html) beside drift.json.

The verdict, the window and the baseline, the thresholds, every test (sorted by evidence), one plot
per feature (baseline against window, in the same order; drifted ones titled in red), the embedding's
first two whitened components, and the requests that contribute most to the drift.

Self-contained: the plots are one PNG embedded as a base64 data URI, the CSS is inline, and a
Content-Security-Policy forbids everything else (no script, no font, no external URL), so the page
opens offline, anywhere, and a browser would refuse anything a later change tried to load.
matplotlib (Agg, no pyplot) and jinja2 are imported here only.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from skyops.monitoring.baseline import Baseline
from skyops.monitoring.drift import DriftResult
from skyops.monitoring.features import SPECS, FeatureTable

TEMPLATE = "drift_report.html.j2"
COLUMNS = 4
BASE_COLOUR, WINDOW_COLOUR = "#1f77b4", "#ff7f0e"
TOP_REQUESTS = 20


def _numeric(ax: Any, base: np.ndarray, win: np.ndarray) -> None:
    both = np.concatenate([base, win])
    low, high = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, 31)
    for values, colour, label in ((base, BASE_COLOUR, "baseline"), (win, WINDOW_COLOUR, "window")):
        if values.size:
            counts, _ = np.histogram(np.clip(values, low, high), edges)
            ax.stairs(counts / values.size, edges, color=colour, label=label, linewidth=1.5)


def _categorical(ax: Any, base: np.ndarray, win: np.ndarray) -> None:
    categories = sorted(set(base.tolist()) | set(win.tolist()))
    x = np.arange(len(categories))
    for offset, values, colour, label in ((-0.2, base, BASE_COLOUR, "baseline"), (0.2, win, WINDOW_COLOUR, "window")):
        shares = [float(np.mean(values == c)) if values.size else 0.0 for c in categories]
        ax.bar(x + offset, shares, width=0.4, color=colour, label=label)
    ax.set_xticks(x, categories, rotation=30, fontsize=7)


def plots_png(result: DriftResult, baseline: Baseline, window: FeatureTable) -> bytes:
    """One PNG: a panel per feature in `result.top` order, then the embedding's first two components."""
    from matplotlib.figure import Figure

    names = [n for n in result.top if n in SPECS]
    panels = len(names) + 1
    rows = math.ceil(panels / COLUMNS)
    fig = Figure(figsize=(COLUMNS * 3.2, rows * 2.4))  # no pyplot: no global state, no GUI backend
    fig.subplots_adjust(
        left=0.05, right=0.98, top=0.95, bottom=0.06, wspace=0.3, hspace=0.55
    )  # fixed: a layout engine costs more than the plots
    axes = fig.subplots(rows, COLUMNS, squeeze=False).ravel()
    verdicts = {f.name: f for f in result.features}
    for ax, name in zip(axes, names, strict=False):
        base, win = baseline.table.column(name), window.column(name)
        if SPECS[name].categorical:
            _categorical(ax, base, win)
        else:
            _numeric(ax, base[~np.isnan(base)], win[~np.isnan(win)])
        drifted = verdicts[name].drifted
        ax.set_title(f"{name}{' (drifted)' if drifted else ''}", color="#c0392b" if drifted else "#222", fontsize=9)
        ax.tick_params(labelsize=7)
    ax = axes[len(names)]
    reference = baseline.projection.apply(baseline.table.embedding[baseline.projection.reference])
    with_pixels = ~np.isnan(window.embedding).any(axis=1) if window.embedding.shape[1] else np.zeros(len(window), bool)
    projected = baseline.projection.apply(window.embedding[with_pixels])
    if reference.shape[1] >= 2:
        ax.scatter(reference[:, 0], reference[:, 1], s=4, color=BASE_COLOUR, alpha=0.5, label="baseline")
        ax.scatter(projected[:, 0], projected[:, 1], s=4, color=WINDOW_COLOUR, alpha=0.5, label="window")
    drifted = result.embedding.drifted
    ax.set_title(f"embedding, components 1-2{' (drifted)' if drifted else ''}", color="#c0392b" if drifted else "#222", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    for unused in axes[panels:]:
        unused.set_visible(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, metadata={"Software": None})  # the default names matplotlib's URL
    return buffer.getvalue()


def render_report(result: DriftResult, baseline: Baseline, window: FeatureTable, window_info: dict[str, Any]) -> str:
    """The report's HTML text."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("skyops.monitoring", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    order = {name: i for i, name in enumerate(result.top)}
    features = sorted(result.features, key=lambda f: order.get(f.name, len(order)))
    requests = sorted(result.requests, key=lambda r: -r["drift_contribution"])[:TOP_REQUESTS]
    plots = "data:image/png;base64," + base64.b64encode(plots_png(result, baseline, window)).decode("ascii")
    return env.get_template(TEMPLATE).render(
        result=result,
        features=features,
        units={name: spec.unit for name, spec in SPECS.items()},
        requests=[r for r in requests if r["drift_contribution"] > 0],
        info=window_info,
        baseline=baseline.meta,
        plots=plots,
    )


def write_report(result: DriftResult, baseline: Baseline, window: FeatureTable, window_info: dict[str, Any], path: Path) -> Path:
    """Write report.html (into a folder the caller publishes atomically)."""
    Path(path).write_text(render_report(result, baseline, window, window_info), encoding="utf-8")
    return Path(path)
