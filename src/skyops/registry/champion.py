"""Where the current @champion's weights are, readable without importing MLflow.

The registry writes `<state>/champions/<model>.json` (atomically) whenever @champion moves
(promote, rollback, deploy apply, deleting the champion), for local sqlite stores. The local
resolver of `registry:<model>@champion` sources (sources.py) reads it, so the evaluate step compares
a challenger with the champion on the same test split, and a new champion changes the evaluate
step's cache key as it should. The pointer is a cache of the registry, so before it is used it is checked against the
registry (cheaply, `skyops.registry.lookup`) and the audit log: a pointer that is damaged, names a
version the registry does not have, disagrees with @champion, disagrees with the last succeeded
promote, rollback or apply of the model in the audit log (an alias moved outside skyops), or names
weights that are gone is a `StateFileError` naming both sides and how to put it right, never a
silent comparison with the wrong model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skyops.errors import StateFileError
from skyops.pipeline.hashing import write_json_atomic
from skyops.registry.acting import AUDIT_FILE
from skyops.registry.audit import AuditLog
from skyops.registry.ledger import CHAMPION, replay
from skyops.registry.lookup import RegistryLookup, file_path
from skyops.statefile import is_text, is_version, read_json_state, shape_problems
from skyops.training.uris import store_uri

CHAMPIONS = "champions"
POINTER = (
    'a JSON object {"model": name, "version": positive integer, "weights": absolute folder path}, as `skyops models promote` writes it'
)


def pointer_path(state_dir: Path, model: str) -> Path:
    return state_dir / CHAMPIONS / f"{model}.json"


def write_pointer(state_dir: Path, model: str, version: int | None, source: str) -> None:
    """Record the champion's version and local weights folder (a file:// source); None removes it."""
    path = pointer_path(state_dir, model)
    weights = file_path(source)
    if version is None or weights is None:
        path.unlink(missing_ok=True)  # no champion, or weights that are not on this machine
        return
    write_json_atomic(path, {"model": model, "version": version, "weights": str(weights)})


def champion_weights(state_dir: Path, model: str, tracking_uri: str = "") -> tuple[int, Path] | None:
    """(version, weights folder) of the current champion; None when no pointer exists.

    Args:
        state_dir: the project's state dir (the pointer lives in `champions/` beside the sqlite store, by
            default here; the audit log is here).
        model: the registered model name.
        tracking_uri: the configured store (SKYOPS_TRACKING_URI); default: the state dir's sqlite store.

    Raises:
        StateFileError: the pointer is unreadable or of the wrong shape, names a version the registry
            does not have or that is not its @champion, or that the audit log did not make the champion,
            or names weights that no longer exist.
        AuditLogError: the audit log has a line that is not a record.
    """
    lookup = RegistryLookup(store_uri(state_dir, tracking_uri))
    path = pointer_path(lookup.database.parent if lookup.database else state_dir, model)  # where set_alias writes it
    if not path.exists():
        return None
    alias = lookup.alias(model, "champion")  # None also when the store is gone
    hint = _rewrite_hint(path, model, alias)
    data = read_json_state(path, what="champion pointer", expected=POINTER, hint=hint, problems=_problems)
    version, weights = data["version"], Path(data["weights"])
    if data["model"] != model:
        raise StateFileError(f"champion pointer {path} is for model {data['model']!r}, not {model!r}; expected {POINTER}", hint=hint)
    if not lookup.store_exists:
        raise StateFileError(
            f"champion pointer {path} names {model} v{version} of the registry {lookup.database}, which does not exist",
            hint=f"point SKYOPS_STATE_DIR or SKYOPS_TRACKING_URI at the store it came from, or delete {path} to run without a champion",
        )
    record = lookup.version(model, version)
    if record is None or alias != version:
        now = "has no such version" if record is None else f"has @champion on {'no version' if alias is None else f'v{alias}'}"
        raise StateFileError(f"champion pointer {path} names {model} v{version}, but the registry {now}", hint=hint)
    audited = replay(AuditLog(state_dir / AUDIT_FILE).records(), model)
    if audited.alias(CHAMPION) != version:
        raise StateFileError(
            f"champion pointer {path} says v{version}; {audited.describe_alias(CHAMPION)}",
            hint=f"@champion was set outside skyops: promote the intended version, which records it: skyops models promote N --model {model} --as <ml-engineer>",
        )
    registered = file_path(record.source)
    if registered is not None and registered != weights:
        raise StateFileError(
            f"champion pointer {path} names weights {weights} for {model} v{version}, but the registry has {registered}", hint=hint
        )
    if not weights.is_dir():
        raise StateFileError(
            f"the weights of champion {model} v{version} ({weights}, from {path}) do not exist",
            hint=f"restore the MLflow artifacts folder (mlartifacts/), or make another version the champion: skyops models promote N --model {model}",
        )
    return version, weights


def _problems(value: Any) -> list[str]:
    found = shape_problems(
        value, [("model", is_text, "a model name"), ("version", is_version, "a positive integer"), ("weights", is_text, "a folder path")]
    )
    if not found and not Path(value["weights"]).is_absolute():
        found.append("'weights' is a relative path, not an absolute one")
    return found


def _rewrite_hint(path: Path, model: str, champion: int | None) -> str:
    """How to get a true pointer back: promote the registry's champion again (that rewrites it), or delete it."""
    if champion is None:
        return f"the registry has no @champion for {model}: delete {path} to run without a comparison"
    return f"rewrite it from the registry: skyops models promote {champion} --model {model} --as <ml-engineer> (or delete {path})"
