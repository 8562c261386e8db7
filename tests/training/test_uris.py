"""Store URIs: the read-only sqlite URI `skyops ui` gives MLflow's server opens the same file, and only reads it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy

from skyops.training.uris import read_only_sqlite_uri


@pytest.mark.parametrize("folder", ["plain", "with space", "per%20cent", "ünï"])
def test_the_read_only_uri_reads_the_same_file_and_refuses_writes(tmp_path: Path, folder: str) -> None:
    database = tmp_path / folder / "mlflow.db"
    database.parent.mkdir()
    with sqlite3.connect(database) as db:
        db.execute("create table versions (version integer, status text)")
        db.execute("insert into versions values (1, 'Approved')")
    engine = sqlalchemy.create_engine(read_only_sqlite_uri(database))  # as MLflow opens a store: through SQLAlchemy
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("select version, status from versions")).all() == [(1, "Approved")]
            with pytest.raises(sqlalchemy.exc.OperationalError, match="attempt to write a readonly database"):
                connection.execute(sqlalchemy.text("update versions set status = 'Rejected'"))
    finally:
        engine.dispose()
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([folder, "mlflow.db"])  # no second file made anywhere
