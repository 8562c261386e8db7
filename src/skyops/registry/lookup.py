"""Cheap, read-only questions to the model registry: does version N exist, where does @alias point.

`skyops run` asks them on every run (is the champion pointer still true? is a cached registration
still in the registry?), so they must not cost what opening MLflow costs: importing mlflow and
opening a store takes 0.7 s on an idle machine and 5 s on a busy one, the query itself milliseconds.
A local sqlite store is therefore read directly, read-only, with the standard library (~10 ms),
from MLflow's registry tables (`model_versions`, `registered_model_aliases`; MLflow 3.x schema).
Anything else falls back to `MlflowClient`: another kind of store, MLflow workspaces switched on,
or any sqlite error (a schema this code does not know, a lock held too long). The tests check that
both paths give the same answers on a real store, so an MLflow upgrade that changes the schema
shows up there, not in a user's run. See docs/adr/0005-registry-lookups-read-sqlite.md.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.training.uris import sqlite_path

DELETED_STAGE = "Deleted_Internal"  # MLflow keeps a deleted version's row, marked with this stage
DEFAULT_WORKSPACE = "default"
BUSY_SECONDS = 5.0  # wait this long for a writer's lock before falling back


@dataclass(frozen=True)
class VersionRecord:
    """A live (not deleted) model version: its number, MLflow run and registered source URI."""

    version: int
    run_id: str
    source: str


class RegistryLookup:
    """Read-only answers from the registry at `uri` (the same URI `TrackingStore` takes)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.database = sqlite_path(uri)

    @property
    def store_exists(self) -> bool:
        """False when the embedded store's file is gone (moved or deleted); a remote store is assumed present."""
        return self.database is None or self.database.is_file()

    def version(self, model: str, version: int) -> VersionRecord | None:
        """Version `version` of `model`, or None when the store, the model or the version does not exist."""
        if not self.store_exists:
            return None
        rows = self._query(
            "SELECT version, run_id, source FROM model_versions WHERE workspace = ? AND name = ? AND version = ? AND current_stage != ?",
            (DEFAULT_WORKSPACE, model, version, DELETED_STAGE),
        )
        if rows is not None:
            return VersionRecord(int(rows[0][0]), rows[0][1] or "", rows[0][2] or "") if rows else None
        return self._client_version(model, version)

    def alias(self, model: str, alias: str) -> int | None:
        """The version `model@alias` points to, or None."""
        if not self.store_exists:
            return None
        rows = self._query(
            "SELECT version FROM registered_model_aliases WHERE workspace = ? AND name = ? AND alias = ?", (DEFAULT_WORKSPACE, model, alias)
        )
        if rows is not None:
            return int(rows[0][0]) if rows else None
        return self._client_alias(model, alias)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """Rows from the sqlite file, or None when only MLflow itself can answer."""
        if self.database is None or _workspaces_on():
            return None
        try:
            connection = sqlite3.connect(f"{self.database.as_uri()}?mode=ro", uri=True, timeout=BUSY_SECONDS)
        except sqlite3.Error:
            return None
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.Error:  # another schema, or a writer's lock held past the timeout
            return None
        finally:
            connection.close()

    def _client_version(self, model: str, version: int) -> VersionRecord | None:
        from mlflow.exceptions import MlflowException  # heavy: the slow path only

        from skyops.training.tracking import TrackingStore

        try:
            raw = TrackingStore(self.uri).client.get_model_version(model, str(version))
        except MlflowException:
            return None
        return VersionRecord(int(raw.version), raw.run_id or "", raw.source or "")

    def _client_alias(self, model: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException  # heavy: the slow path only

        from skyops.training.tracking import TrackingStore

        try:
            registered = TrackingStore(self.uri).client.get_registered_model(model)
        except MlflowException:
            return None
        found = (registered.aliases or {}).get(alias)
        return None if found is None else int(found)


def _workspaces_on() -> bool:
    """MLflow workspaces put rows outside the default workspace: only MLflow knows which one is meant."""
    enabled = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in ("1", "true", "yes")
    return enabled or bool(os.environ.get("MLFLOW_WORKSPACE", "").strip())


def file_path(source: str) -> Path | None:
    """The local folder of a `file://` (or plain path) source URI; None for remote sources (s3://, ...)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(source)
    return Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else None
