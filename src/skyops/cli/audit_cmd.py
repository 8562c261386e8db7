"""`skyops audit verify|show`: the append-only, hash-chained log of governed actions."""

from __future__ import annotations

import click

from skyops.cli.common import settings
from skyops.cli.params import IntegerRange
from skyops.cli.usage import SkyopsGroup

app = SkyopsGroup("audit", help="The audit log of approvals, promotions, deployments, rollbacks and denials.", no_args_is_help=True)


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
@click.option("--limit", type=IntegerRange(min=1), default=20, help="Most recent records to show.")
def show(limit: int) -> None:
    """The most recent records."""
    from skyops.registry.audit import AuditLog, format_record

    for record in AuditLog(settings().state_dir / "audit.log").tail(limit):
        print(format_record(record))
