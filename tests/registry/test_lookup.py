"""The cheap registry look-ups agree with MLflow's own client on a real sqlite store.

They read MLflow's tables directly; if an MLflow upgrade changes the schema, these tests fail here
rather than a user's run taking a wrong turn.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.registry.lookup import RegistryLookup, VersionRecord, file_path
from skyops.registry.models import ModelRegistry
from skyops.training.tracking import TrackingStore, local_tracking_uri

from .conftest import governed, register_version


def both_paths(lookup: RegistryLookup, model: str, version: int) -> tuple[VersionRecord | None, VersionRecord | None]:
    """(sqlite answer, MLflow client answer) for one version."""
    return lookup.version(model, version), lookup._client_version(model, version)


def test_versions_aliases_and_deletions_match_the_mlflow_client(store_dir: Path, model: str) -> None:
    first, second = register_version(store_dir, model, 0.3), register_version(store_dir, model, 0.4, approve=True)
    registry = ModelRegistry(TrackingStore.local(store_dir), model)
    governed(store_dir, model).promote("alice", second)
    lookup = RegistryLookup(local_tracking_uri(store_dir))

    fast, slow = both_paths(lookup, model, second)
    assert fast == slow == VersionRecord(second, registry.get(second).run_id, registry.get(second).source)
    assert lookup.alias(model, "champion") == lookup._client_alias(model, "champion") == second
    assert lookup.alias(model, "previous") is lookup._client_alias(model, "previous") is None

    governed(store_dir, model).delete("alice", second)  # MLflow keeps the row, marked deleted, and drops its aliases
    assert both_paths(lookup, model, second) == (None, None)
    assert lookup.alias(model, "champion") is lookup._client_alias(model, "champion") is None
    assert both_paths(lookup, model, first)[0] is not None
    assert both_paths(lookup, model, 99) == (None, None)
    assert both_paths(lookup, "no-such-model", 1) == (None, None)


def test_a_missing_store_answers_none_without_creating_it(tmp_path: Path) -> None:
    lookup = RegistryLookup(local_tracking_uri(tmp_path / "moved"))
    assert not lookup.store_exists
    assert lookup.version("m", 1) is None and lookup.alias("m", "champion") is None
    assert not (tmp_path / "moved").exists()


def test_an_unknown_schema_falls_back_to_mlflow(tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).execute("CREATE TABLE model_versions (name TEXT)").connection.commit()  # not MLflow's columns
    lookup = RegistryLookup(local_tracking_uri(tmp_path))
    assert lookup._query("SELECT version, run_id, source FROM model_versions WHERE name = ?", ("m",)) is None


@pytest.mark.parametrize(
    ("source", "path"),
    [("file:///a/b%20c/weights", Path("/a/b c/weights")), ("/plain/weights", Path("/plain/weights")), ("s3://bucket/w", None)],
)
def test_file_path_of_a_source(source: str, path: Path | None) -> None:
    assert file_path(source) == path
