"""Where the current @champion's weights are, readable without importing MLflow.

The registry writes `<state>/champions/<model>.json` whenever @champion moves (promote, rollback,
deploy apply), for local sqlite stores. `skyops run` reads it to bind the evaluate step's
`champion` input, so a challenger is compared with the champion on the same test split, and a
new champion changes the evaluate step's cache key as it should.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from skyops.pipeline.hashing import write_json_atomic

CHAMPIONS = "champions"


def pointer_path(state_dir: Path, model: str) -> Path:
    return state_dir / CHAMPIONS / f"{model}.json"


def write_pointer(state_dir: Path, model: str, version: int | None, source: str) -> None:
    """Record the champion's version and local weights folder (a file:// source); None removes it."""
    path = pointer_path(state_dir, model)
    parsed = urlparse(source)
    if version is None or parsed.scheme not in ("", "file"):
        path.unlink(missing_ok=True)  # no champion, or weights that are not on this machine
        return
    write_json_atomic(path, {"model": model, "version": version, "weights": unquote(parsed.path)})


def champion_weights(state_dir: Path, model: str) -> tuple[int, Path] | None:
    """(version, weights folder) of the current champion, when known and present on disk."""
    path = pointer_path(state_dir, model)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    weights = Path(data["weights"])
    return (int(data["version"]), weights) if weights.is_dir() else None
