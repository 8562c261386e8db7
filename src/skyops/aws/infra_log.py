"""The record of every infrastructure action: `.skyops/infra/actions.jsonl`, one JSON object per line, appended.

    log = ActionLog(state_dir, command="destroy", environment="dev", profile="ab", region="eu-west-1")
    log.write("delete-bucket", "bucket skyops-dev-1234-eu-west-1", "done", "tagged Project=skyops, ...")

Each record says when, which command, environment, profile and region, the action, the resource, the outcome
(`planned` in a dry run, `refused`, `kept`, `started`, `done`, `failed`) and why. A line is flushed to disk before
the action it announces runs, so an interrupted destroy still says what it was doing.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class ActionLog:
    def __init__(self, state_dir: Path, *, command: str, environment: str, profile: str, region: str) -> None:
        self.path = state_dir / "infra" / "actions.jsonl"
        self._context = {"command": command, "environment": environment, "profile": profile, "region": region}

    def write(self, action: str, resource: str, outcome: str, reason: str = "", **extra: Any) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **self._context}
        record.update(action=action, resource=resource, outcome=outcome, reason=reason, **extra)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
