"""`skyops models list|show|approve|reject|promote|rollback|history|delete`: the governed registry."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from skyops.cli.common import actor, governance, registry, stdout_console
from skyops.cli.usage import SkyopsGroup
from skyops.settings import DEFAULT_MODEL

app = typer.Typer(
    help="The model registry: versions, approval, @champion/@previous, rollback. Changes need an ML Engineer.",
    cls=SkyopsGroup,
    no_args_is_help=True,
)

Version = Annotated[str, typer.Argument(help="Version number, or an alias such as champion.", metavar="VERSION")]
As = Annotated[str | None, typer.Option("--as", help="Act as this user (default: $SKYOPS_USER, else the OS user).")]
Reason = Annotated[str, typer.Option(help="Why: kept in the audit log and on the version.")]
Model = Annotated[str, typer.Option(help="Registered model name.")]


@app.command("list")
def list_(model: Model = DEFAULT_MODEL) -> None:
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
def show(version: Version, model: Model = DEFAULT_MODEL) -> None:
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
def approve(version: Version, reason: Reason = "", as_: As = None, model: Model = DEFAULT_MODEL) -> None:
    """Approve a version (ML Engineers only). Only Approved versions can be promoted or deployed."""
    _set_status(version, True, reason, as_, model)


@app.command()
def reject(version: Version, reason: Reason = "", as_: As = None, model: Model = DEFAULT_MODEL) -> None:
    """Reject a version (ML Engineers only)."""
    _set_status(version, False, reason, as_, model)


@app.command()
def promote(version: Version, reason: Reason = "", as_: As = None, model: Model = DEFAULT_MODEL) -> None:
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
def rollback(reason: Reason = "", as_: As = None, model: Model = DEFAULT_MODEL) -> None:
    """Point @champion back at @previous, recording why (ML Engineers only)."""
    from skyops.registry.roles import Action

    reg = registry(model)
    with governance().action(actor(as_), Action.ROLLBACK, f"{model}@champion", reason=reason) as act:
        current, previous = reg.rollback()
        act.details.update({"from": current.version, "to": previous.version})
    print(f"@champion: v{current.version} -> v{previous.version} (rolled back: {reason or 'no reason given'})")


@app.command()
def delete(version: Version, reason: Reason = "", as_: As = None, model: Model = DEFAULT_MODEL) -> None:
    """Delete a version (ML Engineers only)."""
    from skyops.registry.roles import Action

    reg = registry(model)
    v = reg.get(version)
    with governance().action(actor(as_), Action.DELETE, f"{model}:{v.version}", reason=reason):
        reg.delete(v.version)
    print(f"deleted {model} v{v.version}")


@app.command()
def history(model: Model = DEFAULT_MODEL, limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """Every governed action on this model, from the audit log."""
    from skyops.registry.audit import format_record

    records = [r for r in governance().audit.records() if r.target.startswith(model)]
    for record in records[-limit:]:
        print(format_record(record))
