"""Tracking-store URIs, kept apart from `tracking` so cheap readers (`skyops run`, cache rechecks) need no
more than the standard library to find the embedded sqlite store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

SQLITE = "sqlite:///"


def local_tracking_uri(state_dir: Path) -> str:
    """The embedded default: a sqlite file in the state dir."""
    return f"{SQLITE}{Path(state_dir).resolve() / 'mlflow.db'}"


def store_uri(state_dir: Path, configured: str = "") -> str:
    """The store a command or step uses: `configured` (SKYOPS_TRACKING_URI) when set, else the embedded one."""
    return configured or local_tracking_uri(state_dir)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI ('sqlite:////abs.db' or 'sqlite:///rel.db'), else None."""
    path = unquote(uri.removeprefix(SQLITE))
    return Path(path).resolve() if uri.startswith(SQLITE) and path not in ("", ":memory:") else None


def read_only_sqlite_uri(database: Path) -> str:
    """A URI that opens the sqlite file `database` read-only (SQLite's `mode=ro`): a write through it fails in SQLite.

    The path is percent-encoded twice: SQLAlchemy decodes the URL once, and SQLite decodes the
    `file:` URI it is handed a second time; a path with a space or a '%' must survive both.
    """
    return f"{SQLITE}file:{quote(quote(str(Path(database).resolve())))}?mode=ro&uri=true"
