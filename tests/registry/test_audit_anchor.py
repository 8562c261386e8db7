"""The anchored chain: a cut tail, an emptied or deleted log, a re-chained log verify as intact on their own,
and fail against an anchor (deploy/audit-anchor.json, `--against HEAD:COUNT`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyops.errors import PermissionDenied, StateFileError
from skyops.registry.anchor import Anchor, parse_anchor_spec, read_anchor
from skyops.registry.audit import GENESIS, Outcome, record_hash, verify
from skyops.registry.roles import Action, Governance

from .conftest import cli


def _history(governance: Governance) -> Path:
    """Seven records: alice approves v1 (intent, outcome), bob is denied twice, alice promotes v1, carol is denied."""
    with governance.action("alice", Action.APPROVE, "m:1"):
        pass
    for actor, action in (("bob", Action.APPROVE), ("bob", Action.DEPLOY)):
        with pytest.raises(PermissionDenied):
            governance.authorize(actor, action, "m:1")
    with governance.action("alice", Action.PROMOTE, "m:1"):
        pass
    with pytest.raises(PermissionDenied):
        governance.authorize("carol", Action.DELETE, "m:1")
    return governance.audit.path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _rechain(records: list[dict[str, object]]) -> bytes:
    """The records renumbered and re-chained, their intent links rewritten, as someone rebuilding the log would."""
    prev, out, moved = GENESIS, b"", {}  # moved: old seq -> the intent link it has now
    for seq, original in enumerate(records):
        fields = {key: value for key, value in original.items() if key != "hash"} | {"seq": seq, "prev": prev}
        if isinstance(link := original.get("intent"), dict):
            fields["intent"] = moved[link["seq"]]
        fields["hash"] = prev = record_hash(fields)
        moved[original["seq"]] = {"seq": seq, "hash": prev}
        out += json.dumps(fields, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return out


@pytest.fixture
def anchored(governance: Governance) -> tuple[Path, Anchor]:
    log = _history(governance)
    result = verify(log)
    assert result.ok and result.records == 7
    return log, Anchor(head=result.head, count=result.records, source="deploy/audit-anchor.json", time="2026-05-01T10:00:00", by="alice")


def test_a_cut_tail_verifies_alone_and_fails_against_the_anchor(anchored: tuple[Path, Anchor]) -> None:
    log, anchor = anchored
    log.write_bytes(b"".join(_lines(log)[:5]))
    assert verify(log).ok  # the chain alone cannot tell
    result = verify(log, anchors=[anchor])
    assert not result.ok and result.anchor_failures == (
        f"the log holds 5 intact record(s); the anchor deploy/audit-anchor.json, written by alice at 2026-05-01T10:00:00 pins 7 "
        f"ending in {anchor.head[:16]}: records were cut off the end, or the log was deleted, emptied or replaced",
    )
    assert result.summary() == f"audit log {log} does not match its anchor: {result.anchor_failures[0]}"


@pytest.mark.parametrize(("damage", "state"), [("empty", "the log (empty)"), ("delete", "the log (missing)")])
def test_an_emptied_or_deleted_log_fails_against_the_anchor(anchored: tuple[Path, Anchor], damage: str, state: str) -> None:
    log, anchor = anchored
    if damage == "empty":
        log.write_bytes(b"")
    else:
        log.unlink()
    assert verify(log).ok and verify(log).records == 0
    result = verify(log, anchors=[anchor])
    assert not result.ok and result.anchor_failures[0].startswith(f"{state} holds 0 intact record(s); the anchor ")


def test_a_log_rechained_without_its_denials_fails_against_the_anchor(anchored: tuple[Path, Anchor]) -> None:
    log, anchor = anchored
    records = [json.loads(line) for line in _lines(log)]
    honest = [r for r in records if r["outcome"] != "denied"]
    log.write_bytes(_rechain(honest))
    assert verify(log).ok and verify(log).records == 4  # a consistent chain: only the anchor tells
    assert not verify(log, anchors=[anchor]).ok
    # the same length, the denials replaced by forged records: the hash at the anchor's count differs
    forged = {key: value for key, value in honest[-1].items() if key != "intent"}  # an outcome closing no intent
    padding = [forged | {"time": f"2026-05-0{n}T00:00:00.000000+00:00"} for n in range(1, 4)]
    log.write_bytes(_rechain(honest + padding))
    result = verify(log, anchors=[anchor])
    assert result.problem is None and result.anchor_failures[0].startswith("record 7 (seq 6) of the log has hash ")
    assert result.anchor_failures[0].endswith(
        f"; the anchor deploy/audit-anchor.json, written by alice at 2026-05-01T10:00:00 says {anchor.head[:16]}: "
        "the log was rewritten (re-chained) or replaced"
    )


def test_a_log_that_grew_after_the_anchor_matches_it(anchored: tuple[Path, Anchor], governance: Governance) -> None:
    log, anchor = anchored
    with governance.action("alice", Action.ROLLBACK, "m@champion"):
        pass
    result = verify(log, anchors=[anchor, Anchor(head=anchor.head, count=None, source="--against")])
    assert (
        result.ok
        and result.records == 9
        and result.anchors_matched
        == (
            f"matches the anchor deploy/audit-anchor.json, written by alice at 2026-05-01T10:00:00: record 7 has the hash {anchor.head[:16]}",
            f"matches the head given with --against: a record has the hash {anchor.head[:16]}",
        )
    )


def test_anchor_specs() -> None:
    head = "ab" * 32
    assert parse_anchor_spec(f"{head}:42") == Anchor(head=head, count=42, source="--against")
    assert parse_anchor_spec(head.upper()) == Anchor(head=head, count=None, source="--against")
    for bad in (head[:-1], f"{head}:0", f"{head}:x", "head", f"{head}:-1"):
        assert parse_anchor_spec(bad) is None


# the CLI: head, anchor, verify against the anchor file and --against


def test_head_and_anchor_then_verify_catches_a_cut_tail(project: Path, store_dir: Path, capsys) -> None:
    log = _history(Governance(project, store_dir / "audit.log"))
    result = verify(log)
    assert cli(capsys, "audit", "head") == (0, f"head {result.head} count 7\n", "")
    code, out, _ = cli(capsys, "audit", "head", "--json")
    assert code == 0 and json.loads(out) == {"head": result.head, "count": 7, "log": str(log)}
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0 and "\nnot anchored: a cut tail, an emptied or deleted log, or a re-chained log would verify as intact;" in out

    code, out, _ = cli(capsys, "audit", "anchor", "--as", "alice")
    anchor_file = project / "deploy" / "audit-anchor.json"
    assert code == 0 and out.startswith(f"anchored {log}: 7 records, head {result.head} -> {anchor_file}\n")
    written = json.loads(anchor_file.read_text())
    assert (written["head"], written["count"], written["by"]) == (result.head, 7, "alice")
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0 and f"anchored: matches the anchor {anchor_file}, written by alice at " in out and "not anchored" not in out

    log.write_bytes(b"".join(_lines(log)[:6]))
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 1 and err.startswith(f"error: audit log {log} does not match its anchor: the log holds 6 intact record(s); the anchor ")
    assert "hint: the log no longer holds what was anchored" in err
    code, _, err = cli(capsys, "audit", "anchor")  # re-anchoring would hide the cut: refused
    assert code == 1 and err.startswith(f"error: audit log {log} does not match its anchor")
    assert json.loads(anchor_file.read_text())["count"] == 7


def test_verify_against_a_head_or_a_file(project: Path, store_dir: Path, capsys, tmp_path: Path) -> None:
    log = _history(Governance(project, store_dir / "audit.log"))
    head = verify(log).head
    assert cli(capsys, "audit", "verify", "--against", f"{head}:7")[0] == 0
    assert cli(capsys, "audit", "verify", "--against", head)[0] == 0
    code, _, err = cli(capsys, "audit", "verify", "--against", f"{head}:6")
    assert code == 1 and "record 6 (seq 5) of the log has hash " in err and "; the head given with --against says " in err
    elsewhere = tmp_path / "kept-elsewhere.json"
    elsewhere.write_text(json.dumps({"head": head, "count": 7, "time": "2026-05-01T10:00:00+00:00", "by": "alice"}))
    log.write_bytes(b"")
    code, _, err = cli(capsys, "audit", "verify", "--against", str(elsewhere))
    assert code == 1 and f"the log (empty) holds 0 intact record(s); the anchor {elsewhere}, written by alice at" in err


def test_bad_against_values_and_anchor_files(project: Path, store_dir: Path, capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "audit", "verify", "--against", "7f3a")
    assert code == 2 and err.startswith(
        "error: --against 7f3a: expected HEAD[:COUNT] (64 hex digits, then a record count, as `skyops audit head` prints) or an anchor file\n"
    )
    (project / "deploy" / "audit-anchor.json").write_text('{"head": "x", "count": 0}')
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 2 and err.startswith(f"error: audit anchor {project / 'deploy' / 'audit-anchor.json'} has the wrong shape: ")
    assert "'count' is a number, not a positive integer" in err and "hint: restore it from git" in err
    with pytest.raises(StateFileError, match="is empty"):
        (tmp_path / "empty.json").write_text("")
        read_anchor(tmp_path / "empty.json")


def test_anchor_refuses_an_empty_or_damaged_log(project: Path, store_dir: Path, capsys) -> None:
    code, _, err = cli(capsys, "audit", "anchor")
    assert code == 1 and err.startswith(f"error: nothing to anchor: the audit log {store_dir / 'audit.log'} has no records")
    log = _history(Governance(project, store_dir / "audit.log"))
    lines = _lines(log)
    lines[2] = lines[2].replace(b'"bob"', b'"eve"')
    log.write_bytes(b"".join(lines))
    code, _, err = cli(capsys, "audit", "anchor")
    assert code == 1 and "is damaged at line 3 (seq 2): hash mismatch" in err
    assert not (project / "deploy" / "audit-anchor.json").exists()
    code, _, err = cli(capsys, "audit", "head")
    assert code == 1 and "is damaged at line 3" in err


def test_outcomes_and_denials_are_in_the_anchored_count(governance: Governance) -> None:
    log = _history(governance)
    outcomes = [r.outcome for r in governance.audit.records()]
    assert outcomes == [
        Outcome.INTENT,
        Outcome.SUCCEEDED,
        Outcome.DENIED,
        Outcome.DENIED,
        Outcome.INTENT,
        Outcome.SUCCEEDED,
        Outcome.DENIED,
    ]
    assert verify(log).records == len(outcomes)
