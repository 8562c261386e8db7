"""`skyops audit verify|show`: the append-only, hash-chained log of governed actions."""

from __future__ import annotations

from typing import Annotated

import typer

from skyops.cli.common import settings
from skyops.cli.usage import SkyopsGroup

app = typer.Typer(help="The audit log of approvals, promotions, deployments, rollbacks and denials.", cls=SkyopsGroup, no_args_is_help=True)


@app.command()
def verify() -> None:
    """Check the hash chain: an edited, deleted or reordered record fails and is named (exit 1)."""
    from skyops.errors import SkyopsError
    from skyops.registry.audit import verify as verify_log

    result = verify_log(settings().state_dir / "audit.log")
    if not result.ok:
        error = SkyopsError(result.summary(), hint="restore the log from a backup; the first bad record and all after it are suspect")
        error.exit_code = 1
        raise error
    print(result.summary())


@app.command()
def show(limit: Annotated[int, typer.Option(min=1, help="Most recent records to show.")] = 20) -> None:
    """The most recent records."""
    from skyops.registry.audit import AuditLog, format_record

    for record in AuditLog(settings().state_dir / "audit.log").tail(limit):
        print(format_record(record))
