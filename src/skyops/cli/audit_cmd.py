"""`skyops audit verify|show|head|anchor`: the write-ahead, hash-chained log of governed actions and its anchor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skyops.cli.common import settings
from skyops.cli.params import BadValue, IntegerRange
from skyops.cli.usage import SkyopsGroup

if TYPE_CHECKING:
    from skyops.registry.anchor import Anchor
    from skyops.registry.audit import VerifyResult
    from skyops.registry.drift import LocalDrift

app = SkyopsGroup(
    "audit",
    help="The audit log of approvals, promotions, deployments, rollbacks, roles changes and denials: each action's intent "
    "is written before it runs and its outcome after.\n\n"
    "Without an anchor, `audit verify` detects edited, garbled, reordered or inserted records, a record deleted from the "
    "middle, intents without an outcome, and roles-file changes. Cutting records off the end, emptying or deleting the "
    "log, or re-chaining it (e.g. without its denials) are detected only against an anchor: `skyops audit anchor` "
    "(deploy/audit-anchor.json, commit it) or `audit verify --against HEAD:COUNT`. Someone who can rewrite both the "
    "log and the anchor is not stopped.",
    no_args_is_help=True,
)


class AnchorSpec(click.ParamType):
    """`HEAD[:COUNT]` (the 64 hex digits and record count `skyops audit head` prints) or an anchor file."""

    name = "HEAD[:COUNT]|FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Anchor:
        from skyops.registry.anchor import Anchor, parse_anchor_spec, read_anchor

        if isinstance(value, Anchor):
            return value
        anchor = parse_anchor_spec(str(value))
        if anchor is not None:
            return anchor
        if Path(value).is_file():
            return read_anchor(Path(value))
        raise BadValue(
            value, "expected HEAD[:COUNT] (64 hex digits, then a record count, as `skyops audit head` prints) or an anchor file", ctx, param
        )


def _log() -> Path:
    return settings().state_dir / "audit.log"


def _verified(against: tuple[Anchor, ...] = ()) -> VerifyResult:
    """The log checked against deploy/audit-anchor.json (when it exists) and every `--against`."""
    from skyops.registry.anchor import anchor_path, read_anchor
    from skyops.registry.audit import verify as verify_log

    file = anchor_path(settings().project_dir)
    anchors = [read_anchor(file), *against] if file.exists() else list(against)
    return verify_log(_log(), anchors=anchors)


def _failure(result: VerifyResult) -> Exception:
    from skyops.errors import SkyopsError

    if result.problem is not None:
        hint = "restore the log from a backup; the first bad record and all after it are suspect"
    else:
        hint = "the log no longer holds what was anchored: restore it from a backup, and ask who replaced it (`git log` on the anchor)"
    error = SkyopsError(result.summary(), hint=hint)
    error.exit_code = 1
    return error


@app.command()
@click.option(
    "--against",
    type=AnchorSpec(),
    multiple=True,
    help="Also check against this head (HEAD:COUNT from `skyops audit head`, kept elsewhere) or anchor file; repeatable.",
)
def verify(against: tuple[Anchor, ...]) -> None:
    """Check the log: exit 1 naming the first bad record, or the anchor the log does not match.

    \b
    Fails (exit 1), always: an edited, garbled, inserted, duplicated or
      reordered record, a record deleted from the middle, an outcome that
      closes no intent of its own.
    Fails only against an anchor (deploy/audit-anchor.json, checked whenever
      it exists, or --against): records cut off the end, an emptied or
      deleted log, a log rebuilt and re-chained.
    Warns: an intent without an outcome (it may or may not have happened).
    Informs: where the roles file's hash changed, through `skyops roles set`
      or outside skyops.
    Fails (exit 1): registry state the log does not explain, e.g. an alias or
      approval status set with MLflow's own client or UI.
    Cannot catch: someone who rewrites both the log and the anchor (and the
      anchor's git history), or who acts under another name with --as.
    """
    from skyops.registry.audit import dangling_message

    result = _verified(against)
    if result.ok:
        print(result.summary())
    for matched in result.anchors_matched:
        print(f"anchored: {matched}")
    if not result.anchored:
        print(
            "not anchored: a cut tail, an emptied or deleted log, or a re-chained log would verify as intact; "
            "run `skyops audit anchor` and commit deploy/audit-anchor.json"
        )
    for intent in result.dangling:
        print(f"warning: {dangling_message(intent)}")
    for change in result.roles_changes:
        print(f"info: {change}")
    if not result.ok:
        raise _failure(result)
    found = _registry_drift()
    if found.ungoverned:
        shown = ", ".join(found.ungoverned[:5]) + (f", … ({len(found.ungoverned)})" if len(found.ungoverned) > 5 else "")
        print(f"info: not judged, the audit log never acted on them: {shown}")
    drift = found.problems
    for line in drift:
        print(f"drift: {line}")
    if drift:
        from skyops.errors import SkyopsError

        error = SkyopsError(
            f"the registry holds {len(drift)} thing(s) the audit log does not explain (listed above)",
            hint="put them back through skyops (`skyops models approve|reject|promote|rollback ...`), which records them",
        )
        error.exit_code = 1
        raise error


def _registry_drift() -> LocalDrift:
    """Registry state (statuses, aliases, versions) that the log's succeeded actions do not explain."""
    from skyops.registry.drift import local_drift

    s = settings()
    return local_drift(s.state_dir, s.tracking_uri)


@app.command()
@click.option("--limit", type=IntegerRange(min=1), default=20, help="Most recent records to show.")
def show(limit: int) -> None:
    """The most recent records: an outcome names its intent, an intent without one is marked, roles changes are shown."""
    from skyops.registry.audit import AuditLog, annotated_tail

    for line in annotated_tail(AuditLog(_log()).records(), limit):
        print(line)


@app.command()
@click.option("--json", "as_json", is_flag=True, help='Print {"head", "count", "log"} as one JSON object.')
def head(as_json: bool) -> None:
    """The hash of the last record and the record count: keep them elsewhere, check later with `verify --against HEAD:COUNT`."""
    import json

    from skyops.registry.audit import verify as verify_log

    result = verify_log(_log())
    if result.problem is not None:
        raise _failure(result)
    if as_json:
        print(json.dumps({"head": result.head, "count": result.records, "log": str(result.path)}))
    else:
        print(f"head {result.head} count {result.records}")


@app.command()
@click.option("--as", "as_", help="Who anchors (default: $SKYOPS_USER, else the OS user); kept in the anchor.")
def anchor(as_: str | None) -> None:
    """Pin the log's head and count in deploy/audit-anchor.json (atomically), to commit with each deploy change.

    Refused when the log is damaged or no longer matches the anchor already there (re-anchoring would
    hide that), or has no records.
    """
    from skyops.cli.common import actor
    from skyops.errors import SkyopsError
    from skyops.registry.anchor import ANCHOR_FILE, anchor_path, write_anchor
    from skyops.registry.audit import dangling_message

    result = _verified()
    if not result.ok:
        raise _failure(result)
    if result.records == 0:
        error = SkyopsError(f"nothing to anchor: the audit log {result.path} has no records", hint="anchor after the first governed action")
        error.exit_code = 1
        raise error
    written = write_anchor(anchor_path(settings().project_dir), head=result.head, count=result.records, by=actor(as_))
    print(f"anchored {result.path}: {written.count} records, head {written.head} -> {written.source}")
    for intent in result.dangling:
        print(f"warning: {dangling_message(intent)}")
    print(f"commit it with the deploy change: git add {ANCHOR_FILE}")
