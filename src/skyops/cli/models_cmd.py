"""`skyops models list|show|approve|reject|promote|rollback|history|delete`: the governed registry."""

from __future__ import annotations

import json
import time

import click

from skyops.cli.common import actor, governance, registry
from skyops.cli.output import stdout_console
from skyops.cli.params import IntegerRange, argument
from skyops.cli.usage import SkyopsGroup
from skyops.settings import DEFAULT_MODEL

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


def _set_status(version: str, approve: bool, reason: str, as_: str | None, model: str) -> None:
    from skyops.registry.models import APPROVAL, ApprovalStatus
    from skyops.registry.roles import Action

    reg = registry(model)
    v = reg.get(version)
    action, status = (Action.APPROVE, ApprovalStatus.APPROVED) if approve else (Action.REJECT, ApprovalStatus.REJECTED)
    before = v.tags.get(APPROVAL, ApprovalStatus.PENDING.value)  # as stored: setting a status also repairs a damaged tag
    with governance().action(actor(as_), action, f"{model}:{v.version}", reason=reason) as act:
        act.details["from"] = before
        reg.set_status(v.version, status, reason)
    print(f"{model} v{v.version}: {before} -> {status.value}")


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def approve(version: str, reason: str, as_: str | None, model: str) -> None:
    """Approve a version (ML Engineers only). Only Approved versions can be promoted or deployed."""
    _set_status(version, True, reason, as_, model)


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def reject(version: str, reason: str, as_: str | None, model: str) -> None:
    """Reject a version (ML Engineers only)."""
    _set_status(version, False, reason, as_, model)


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def promote(version: str, reason: str, as_: str | None, model: str) -> None:
    """Make an Approved version the @champion; the old champion becomes @previous (ML Engineers only)."""
    from skyops.errors import ConfigError
    from skyops.registry.models import ApprovalStatus
    from skyops.registry.roles import Action

    reg = registry(model)
    v = reg.get(version)
    with governance().action(actor(as_), Action.PROMOTE, f"{model}:{v.version}", reason=reason) as act:
        if v.status is not ApprovalStatus.APPROVED:
            raise ConfigError(
                f"{model} v{v.version} is {v.status.value}, not Approved", hint=f"approve it first: skyops models approve {v.version}"
            )
        old = reg.promote(v.version)
        act.details["previous"] = old.version if old else None
    print(f"@champion -> v{v.version}" + (f"; @previous -> v{old.version}" if old and old.version != v.version else ""))


@app.command()
@reason_option
@as_option
@model_option
def rollback(reason: str, as_: str | None, model: str) -> None:
    """Point @champion back at @previous, recording why (ML Engineers only)."""
    from skyops.registry.roles import Action

    reg = registry(model)
    with governance().action(actor(as_), Action.ROLLBACK, f"{model}@champion", reason=reason) as act:
        current, previous = reg.rollback()
        act.details.update({"from": current.version, "to": previous.version})
    print(f"@champion: v{current.version} -> v{previous.version} (rolled back: {reason or 'no reason given'})")


@app.command()
@version_argument
@reason_option
@as_option
@model_option
def delete(version: str, reason: str, as_: str | None, model: str) -> None:
    """Delete a version (ML Engineers only)."""
    from skyops.registry.roles import Action

    reg = registry(model)
    v = reg.get(version)
    with governance().action(actor(as_), Action.DELETE, f"{model}:{v.version}", reason=reason):
        reg.delete(v.version)
    print(f"deleted {model} v{v.version}")


@app.command()
@model_option
@click.option("--limit", type=IntegerRange(min=1), default=50)
def history(model: str, limit: int) -> None:
    """Every governed action on this model, from the audit log."""
    from skyops.registry.audit import format_record

    records = [r for r in governance().audit.records() if r.target.startswith(model)]
    for record in records[-limit:]:
        print(format_record(record))
