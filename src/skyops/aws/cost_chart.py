"""The cost report as a chart: one stacked bar per period, one colour per group (environment / component), a PNG.

matplotlib draws it off screen (a bare Figure: no pyplot state, no display needed) into a temp file
beside the target, renamed over it once complete, so a chart is never half-written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from skyops.aws.cost_explorer import CostReport

_MOST_GROUPS = 12  # beyond this many groups the smallest are summed as "other": a legend past a dozen is unreadable


def bar_series(report: CostReport) -> tuple[list[str], dict[str, list[float]]]:
    """(the periods, label -> amount per period): one series per group, the largest first; past a dozen, the rest as "other"."""
    periods = report.periods
    ranked = list(report.totals())
    shown, rest = ranked[:_MOST_GROUPS], set(ranked[_MOST_GROUPS:])
    series: dict[str, list[float]] = {" / ".join(g): [0.0] * len(periods) for g in shown}
    if rest:
        series["other"] = [0.0] * len(periods)
    for row in report.rows:
        label = "other" if row.groups in rest else " / ".join(row.groups)
        series[label][periods.index(row.start)] += row.amount
    return periods, series


def write_chart(report: CostReport, path: Path) -> Path:
    """Draw `report` into a PNG at `path` (atomically); the path."""
    from matplotlib.figure import Figure  # heavy: only a chart needs it; a Figure needs no pyplot state nor display

    periods, series = bar_series(report)
    figure = Figure(figsize=(max(6.0, 1.1 * len(periods) + 4), 4.5), layout="constrained")
    axes = figure.subplots()
    bottom = [0.0] * len(periods)
    for label, amounts in series.items():
        axes.bar(range(len(periods)), amounts, bottom=bottom, label=label)
        bottom = [b + a for b, a in zip(bottom, amounts, strict=True)]
    query = report.query
    axes.set_title(f"{query.metric} of {query.project_tag}={query.project}, by {' / '.join(query.group_by)}")
    axes.set_ylabel(report.unit)
    axes.set_xlabel(f"{query.granularity.lower()} periods from {query.start} (an estimated period is not closed yet)")
    estimated = {row.start for row in report.rows if row.estimated}
    axes.set_xticks(range(len(periods)), [p + ("\n(estimated)" if p in estimated else "") for p in periods])
    axes.tick_params(axis="x", labelrotation=45 if len(periods) > 6 else 0)
    axes.set_ylim(0, max(bottom, default=0.0) * 1.08 or 1.0)  # room above the tallest bar
    if series:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        figure.savefig(temp, format="png", dpi=110)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
    return path
