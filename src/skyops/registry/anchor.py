"""The audit log's anchor: the head hash and record count kept outside the log, so a cut, deleted or rebuilt log shows.

A hash chain alone proves only that the records it holds fit together: someone who cuts records off
the end, empties or deletes the log, or rewrites it with every record re-chained (the denials
dropped, say) leaves a chain that verifies. An anchor pins the log: "record number COUNT has hash
HEAD". A log that is shorter, or whose record COUNT has another hash, does not match it.

`skyops audit anchor` writes `deploy/audit-anchor.json` (head, count, time, who), atomically, beside
the GitOps desired state, to be committed with each deploy change; `skyops audit verify` checks the
log against it whenever it exists, and against `--against HEAD[:COUNT]` or another anchor file.
An anchor is only as safe as the place it is kept: a user who can rewrite both the log and the
committed anchor (and the git history) is not stopped by it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skyops.pipeline.hashing import write_json_atomic
from skyops.statefile import is_text, read_json_state, shape_problems

ANCHOR_FILE = Path("deploy") / "audit-anchor.json"  # under the project root
ANCHOR_SHAPE = (
    'a JSON object {"head": 64 hex digits, "count": positive integer, "time": text, "by": text}, as `skyops audit anchor` writes it'
)
AGAINST = "--against"  # the source of an anchor given on the command line
_HASH = re.compile(r"[0-9a-f]{64}")
_SPEC = re.compile(r"(?P<head>[0-9a-fA-F]{64})(?::(?P<count>[0-9]+))?")


@dataclass(frozen=True)
class Anchor:
    """'Record number `count` of the log has hash `head`' (`count` None: some record has it).

    Args:
        source: where the anchor came from, for messages: the file, or '--against'.
    """

    head: str
    count: int | None
    source: str
    time: str = ""
    by: str = ""

    def describe(self) -> str:
        if self.source == AGAINST:
            return f"the head given with {AGAINST}"
        written = f", written by {self.by} at {self.time[:19]}" if self.by else ""
        return f"the anchor {self.source}{written}"

    def check(self, hashes: Sequence[str], log: str = "the log") -> str | None:
        """What is wrong with a log whose intact records have `hashes` (in order), or None when it matches.

        Args:
            log: the log as the message should name it ('the log', 'the log (missing)').
        """
        if self.count is None:
            if self.head in hashes:
                return None
            return f"no record of {log} has the hash {self.head[:16]} that {self.describe()} names: the log was cut, rewritten or replaced"
        if self.count > len(hashes):
            return (
                f"{log} holds {len(hashes)} intact record(s); {self.describe()} pins {self.count} ending in {self.head[:16]}: "
                "records were cut off the end, or the log was deleted, emptied or replaced"
            )
        found = hashes[self.count - 1]
        if found != self.head:
            return (
                f"record {self.count} (seq {self.count - 1}) of {log} has hash {found[:16]}; {self.describe()} says {self.head[:16]}: "
                "the log was rewritten (re-chained) or replaced"
            )
        return None

    def matched(self) -> str:
        where = f"record {self.count}" if self.count is not None else "a record"
        return f"matches {self.describe()}: {where} has the hash {self.head[:16]}"


def anchor_path(project_dir: Path) -> Path:
    return Path(project_dir) / ANCHOR_FILE


def parse_anchor_spec(text: str) -> Anchor | None:
    """`HEAD` or `HEAD:COUNT` (64 hex digits, a positive count) as an Anchor; None when `text` is not that form."""
    match = _SPEC.fullmatch(text.strip())
    if match is None:
        return None
    count = match.group("count")
    if count is not None and int(count) < 1:
        return None
    return Anchor(head=match.group("head").lower(), count=None if count is None else int(count), source=AGAINST)


def read_anchor(path: Path) -> Anchor:
    """The anchor file at `path`.

    Raises:
        StateFileError: the file is unreadable, not JSON, or not of the anchor's shape.
    """
    value = read_json_state(
        path,
        what="audit anchor",
        expected=ANCHOR_SHAPE,
        hint=f"restore it from git (`git checkout -- {ANCHOR_FILE}`); it pins the audit log, so never rewrite it by hand",
        problems=_anchor_problems,
    )
    return Anchor(head=value["head"], count=value["count"], source=str(path), time=value["time"], by=value["by"])


def write_anchor(path: Path, *, head: str, count: int, by: str) -> Anchor:
    """Write the anchor file atomically (temp file + rename): the log's `count` records end in `head`."""
    if count < 1 or not _HASH.fullmatch(head):
        raise ValueError(f"an anchor pins at least one record by its sha256; got count {count}, head {head!r}")
    time = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(path, {"head": head, "count": count, "time": time, "by": by}, sort_keys=False)
    return Anchor(head=head, count=count, source=str(path), time=time, by=by)


def _anchor_problems(value: Any) -> list[str]:
    return shape_problems(
        value,
        [
            ("head", lambda v: isinstance(v, str) and _HASH.fullmatch(v) is not None, "64 lowercase hex digits"),
            ("count", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer"),
            ("time", is_text, "a time"),
            ("by", is_text, "a user name"),
        ],
    )
