"""`skyops models list|show|approve|reject|promote|rollback|history|delete`: the governed registry.

Every change goes through `skyops.registry.governed.GovernedRegistry`, as the rest of skyops does:
the role and the status rules are checked there, and the action is audited there.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from skyops.cli.common import actor, governance, registry, settings
from skyops.cli.output import stdout_console
from skyops.cli.params import IntegerRange, argument
from skyops.cli.usage import SkyopsGroup
from skyops.settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from skyops.registry.governed import GovernedRegistry
    from skyops.registry.models import Candidate

app = SkyopsGroup(
    "models",
    help="The model registry: versions, approval, @champion/@previous, rollback. Changes need an ML Engineer.",
    no_args_is_help=True,
)

version_argument = argument("version", metavar="VERSION", help="Version number, or an alias such as champion.")
as_option = click.option("--as", "as_", help="Act as this user (default: $SKYOPS_USER, else the OS user).")
reason_option = click.option("--reason", default="", show_default=False, help="Why: kept in the audit log and on the version.")
model_option = click.option("--model", default=DEFAULT_MODEL, help="Registered model name.")


@app.command("list")
@model_option
def list_(model: str) -> None:
    """Every version with its status, aliases, metrics and gate decision."""
    from rich.table import Table

    table = Table("version", "status", "aliases", "mAP50", "mAP50-95", "gate", "created")
    for v in registry(model).versions():
        m, gate = v.metrics, v.gate
        verdict = "-" if not gate else ("passed" if gate["passed"] else "failed")
        table.add_row(
            str(v.version),
            v.status.value,
            " ".join(f"@{a}" for a in v.aliases),
            f"{m.get('map50', 0):.3f}",
            f"{m.get('map50_95', 0):.3f}",
            verdict,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created / 1000)),
        )
    stdout_console().print(table)


@app.command()
@version_argument
@model_option
def show(version: str, model: str) -> None:
    """The model card, gate decision and lineage of one version."""
    v = registry(model).get(version)
    print(f"{v.name} v{v.version}  {v.status.value}  {' '.join('@' + a for a in v.aliases)}")
    if reason := v.tags.get("skyops.status_reason"):
        print(f"status reason: {reason}")
    print(f"gate: {'passed' if v.gate.get('passed') else 'failed'}")
    for line in v.gate.get("reasons", []):
        print(f"  - {line}")
    print("model card:")
    print(json.dumps(v.card, indent=2))
    print(f"weights: {v.source}  (MLflow run {v.run_id})")
    if v.artifacts:
        print(f"artifacts: {', '.join(v.artifacts)}  (package model.tar.gz sha256 {v.package_sha256})")
        print(f"package: {v.package_uri}")
    else:
        print("artifacts: none recorded (registered without an export package)")
    if text := v.tags.get("skyops.reproducibility"):  # skyops experiments reproduce MODEL:VERSION --report
        done = json.loads(text)
        verdict = "reproduced" if done.get("reproduced") else "NOT reproduced"
        differing = ", ".join(done.get("differing_metrics", []) + done.get("differing_inputs", [])) or "none"
        print(f"reproducibility: {verdict} within {done.get('tolerance')} by run {done.get('rerun')} (differing: {differing})")
        print(f"  report: {done.get('report')}")


def governed(model: str) -> GovernedRegistry[Candidate]:
    """The model's registry behind the governed API: every change checks the role and the rules, is audited, and
    publishes its event (approval decided, deployment changed: skyops.monitoring.notify)."""
    from skyops.monitoring.notify import registry_observer
    from skyops.registry.governed import GovernedRegistry

    return GovernedRegistry(registry(model), governance(), observer=registry_observer(settings()))


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def approve(version: str, reason: str, as_: str | None, model: str) -> None:
    """Approve a version (ML Engineers only). Only Approved versions can be promoted or deployed."""
    change = governed(model).approve(actor(as_), version, reason=reason)
    print(f"{model} v{change.version}: {change.before} -> {change.after}")


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def reject(version: str, reason: str, as_: str | None, model: str) -> None:
    """Reject a version (ML Engineers only); the @champion cannot be rejected."""
    change = governed(model).reject(actor(as_), version, reason=reason)
    print(f"{model} v{change.version}: {change.before} -> {change.after}")


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def promote(version: str, reason: str, as_: str | None, model: str) -> None:
    """Make an Approved version the @champion; the old champion becomes @previous (ML Engineers only)."""
    move = governed(model).promote(actor(as_), version, reason=reason)
    replaced = f"; @previous -> v{move.replaced}" if move.replaced is not None and move.replaced != move.champion else ""
    print(f"@champion -> v{move.champion}{replaced}")


@app.command()
@reason_option
@as_option
@model_option
def rollback(reason: str, as_: str | None, model: str) -> None:
    """Point @champion back at @previous, recording why (ML Engineers only)."""
    move = governed(model).rollback(actor(as_), reason=reason)
    print(f"@champion: v{move.replaced} -> v{move.champion} (rolled back: {reason or 'no reason given'})")


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def delete(version: str, reason: str, as_: str | None, model: str) -> None:
    """Delete a version (ML Engineers only)."""
    deleted = governed(model).delete(actor(as_), version, reason=reason)
    print(f"deleted {model} v{deleted}")


@app.command()
@model_option
@click.option("--limit", type=IntegerRange(min=1), default=50)
def history(model: str, limit: int) -> None:
    """Every governed action on this model, from the audit log."""
    from skyops.registry.audit import format_record
    from skyops.registry.ledger import model_of

    records = [r for r in governance().audit.records() if model_of(r.target) == model]
    for record in records[-limit:]:
        print(format_record(record))
