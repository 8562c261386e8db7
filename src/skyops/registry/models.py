"""The model registry on MLflow: versions, approval status, aliases, model cards, gate decisions.

Approval uses SageMaker's vocabulary (PendingManualApproval, Approved, Rejected), stored as the
version tag `skyops.approval`, so the same words mean the same thing in both registries. Aliases:
`@staging`, `@champion` and `@previous` (the champion before the last promotion).

This is the raw store under `skyops.registry.governed.GovernedRegistry`: its reads are public, its
writes (`_register`, `_set_status`, `_set_alias`, `_delete`) are private. Who may change what, and
which changes are allowed at all (only Approved versions are promoted, ...), is decided there, once,
and audited; only the registry package calls the writes (a test scans the code for other callers).

The same weights are never registered twice: each version carries the sha256 of its weights file
(tag `skyops.weights_sha256`), and registering weights that already have a version returns that
version untouched (created False). Its status, card and gate decision stay those of its
registration: approval is an ML Engineer's act, and a re-run's gate decision is recorded by the run
(registration.json), not written over the version a reviewer already saw.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from skyops.errors import ConfigError, SkyopsError, StateFileError
from skyops.registry.champion import write_pointer
from skyops.settings import DEFAULT_MODEL
from skyops.training.tracking import TrackingStore, sqlite_path

TAG = "skyops."
APPROVAL = TAG + "approval"
WEIGHTS_SHA256 = TAG + "weights_sha256"
# The exported package a version was registered with (skyops.serving.package): its backends, the sha256
# of its model.tar.gz, and where its model folder's files were logged.
ARTIFACTS = TAG + "artifacts"  # comma-separated backend names: "onnx,int8,torch"
PACKAGE_SHA256 = TAG + "package_sha256"
PACKAGE_URI = TAG + "package_uri"
_SHA256_HEX = frozenset("0123456789abcdef")
ALIASES = ("staging", "champion", "previous")


class ApprovalStatus(StrEnum):
    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str
    source: str
    created: int  # ms since the epoch
    tags: dict[str, str] = field(repr=False)

    @property
    def status(self) -> ApprovalStatus:
        """The approval status (tag `skyops.approval`; PendingManualApproval when absent)."""
        approval = self.tags.get(APPROVAL, ApprovalStatus.PENDING.value)
        if approval not in tuple(ApprovalStatus):
            raise StateFileError(
                f"model {self.name!r} v{self.version}: registry tag {APPROVAL} is not an approval status; expected one of {', '.join(ApprovalStatus)}",
                hint=f"the tag was changed outside skyops (MLflow UI or API); set it again: skyops models approve {self.version} (or reject)",
            )
        return ApprovalStatus(approval)

    @property
    def metrics(self) -> dict[str, float]:
        return self._json_tag("metrics")

    @property
    def gate(self) -> dict[str, Any]:
        return self._json_tag("gate")

    @property
    def card(self) -> dict[str, Any]:
        return self._json_tag("card")

    @property
    def weights_sha256(self) -> str:
        """sha256 of the registered weights file ('' for versions registered before skyops recorded it)."""
        return self.tags.get(WEIGHTS_SHA256, "")

    @property
    def artifacts(self) -> tuple[str, ...]:
        """The backends of the package the version was registered with (empty: registered without one)."""
        return tuple(name for name in self.tags.get(ARTIFACTS, "").split(",") if name)

    @property
    def package_sha256(self) -> str:
        """sha256 of that package's model.tar.gz ('' without one)."""
        return self.tags.get(PACKAGE_SHA256, "")

    @property
    def package_uri(self) -> str:
        """Where that package's model folder (metadata.json, model.onnx, ...) was logged ('' without one)."""
        return self.tags.get(PACKAGE_URI, "")

    def _json_tag(self, name: str) -> dict[str, Any]:
        """A JSON-object tag skyops wrote at registration; {} when absent, StateFileError when damaged."""
        text = self.tags.get(TAG + name)
        if text is None:
            return {}
        try:
            value = json.loads(text)
            problem = "" if isinstance(value, dict) else "is not a JSON object"
        except json.JSONDecodeError:
            value, problem = {}, "is not JSON"
        if problem:
            raise StateFileError(
                f"model {self.name!r} v{self.version}: registry tag {TAG + name} {problem}; expected the JSON object skyops wrote at registration",
                hint="the tag was changed outside skyops (MLflow UI or API); set it back there, "
                f"or delete the version: skyops models delete {self.version} --model {self.name}",
            )
        return value


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """What registering a version in MLflow takes: the training run, its weights and the decision on them."""

    run_id: str
    source: str  # the weights folder's artifact URI
    weights_sha256: str
    metrics: dict[str, float]
    card: dict[str, Any]
    gate: dict[str, Any]
    artifacts: tuple[str, ...] = ()  # the exported package's backends (skyops.serving.package.ARTIFACTS)
    package_sha256: str = ""  # sha256 of its model.tar.gz
    package_uri: str = ""  # where its model folder was logged


class ModelRegistry:
    """One registered model (default `skyops.settings.DEFAULT_MODEL`) in an MLflow store."""

    kind = "MLflow registry"
    supports_aliases = True  # what GovernedRegistry asks of a store: promote, rollback and deploy move aliases

    def __init__(self, store: TrackingStore, name: str = DEFAULT_MODEL) -> None:
        self.store = store
        self.name = name

    @property
    def client(self) -> Any:
        return self.store.client

    def by_weights(self, weights_sha256: str) -> ModelVersion | None:
        """The live version registered with these weights (the oldest, should there be several), else None."""
        if not set(weights_sha256) <= _SHA256_HEX:  # it goes into a filter string
            raise ConfigError(f"weights_sha256 {weights_sha256!r} is not a sha256 hex digest")
        found = self.client.search_model_versions(f"name = '{self.name}' and tags.`{WEIGHTS_SHA256}` = '{weights_sha256}'")
        if not found:
            return None
        return self.get(min(int(v.version) for v in found))

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first."""
        aliases = self.aliases()
        found = self.client.search_model_versions(f"name='{self.name}'")
        return sorted((self._version(v, aliases) for v in found), key=lambda v: v.version, reverse=True)

    def get(self, version: int | str) -> ModelVersion:
        """A version by number or by alias (`champion`, `@champion`)."""
        from mlflow.exceptions import MlflowException

        text = str(version).lstrip("@")
        if not text.isdigit():
            found = self.by_alias(text)
            if found is None:
                raise SkyopsError(
                    f"model {self.name!r} has no @{text}", hint=f"aliases in use: {', '.join(sorted(self.aliases())) or 'none'}"
                )
            return found
        try:
            raw = self.client.get_model_version(self.name, text)
        except MlflowException:
            known = ", ".join(str(v.version) for v in self.versions()) or "none"
            raise SkyopsError(f"model {self.name!r} has no version {text}", hint=f"versions: {known}; see `skyops models list`") from None
        return self._version(raw, self.aliases())

    def by_alias(self, alias: str) -> ModelVersion | None:
        version = self.aliases().get(alias)
        return None if version is None else self.get(version)

    def resolve(self, version: int | str) -> int:
        """The number of a version given by number or alias; SkyopsError naming the known ones when there is none."""
        return self.get(version).version

    def status(self, version: int) -> str:
        """The approval tag as stored (also a damaged one: setting a status repairs it); Pending when absent."""
        return self.get(version).tags.get(APPROVAL, ApprovalStatus.PENDING.value)

    def statuses(self) -> dict[int, str]:
        """Every live version's approval tag as stored."""
        found = self.client.search_model_versions(f"name='{self.name}'")
        return {int(v.version): dict(v.tags).get(APPROVAL, ApprovalStatus.PENDING.value) for v in found}

    def aliases(self) -> dict[str, int]:
        """Alias -> version number, as the registry has them now."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException:
            return {}
        return {alias: int(v) for alias, v in (model.aliases or {}).items()}

    def sync_champion_pointer(self) -> None:
        """Rewrite the MLflow-free pointer to @champion's weights (local stores) from the registry's alias."""
        database = sqlite_path(self.store.uri)
        if database is not None:
            champion = self.by_alias("champion")
            write_pointer(database.parent, self.name, champion.version if champion else None, champion.source if champion else "")

    # ---- the writes: private, called by skyops.registry.governed only ----------------------------------

    def _register(self, candidate: Candidate, status: str) -> tuple[int, bool]:
        """(version, created): a new version, unless these weights (by sha256) already have one: then that one, unchanged.

        MLflow numbers versions, so concurrent registrations get distinct numbers. On a local sqlite
        store the look-up and the creation happen under one file lock, so two processes registering
        the same weights at once make one version; a remote store has no such lock.
        """
        from mlflow.exceptions import MlflowException  # heavy; loaded with the client anyway

        digest = candidate.weights_sha256
        if len(digest) != 64 or not set(digest) <= _SHA256_HEX:
            raise ConfigError(f"weights_sha256 {digest!r} is not a sha256 hex digest", hint="pass hashlib.sha256(...).hexdigest()")
        with self._registration_lock():
            existing = self.by_weights(digest)
            if existing is not None:
                return existing.version, False
            try:
                self.client.create_registered_model(self.name, description="YOLO11 drone object detector")
            except MlflowException as e:
                if "already exists" not in str(e).lower() and "RESOURCE_ALREADY_EXISTS" not in str(e):
                    raise
            tags = {
                APPROVAL: ApprovalStatus(status).value,
                WEIGHTS_SHA256: digest,
                TAG + "metrics": json.dumps(candidate.metrics, sort_keys=True),
                TAG + "gate": json.dumps(candidate.gate, sort_keys=True),
                TAG + "card": json.dumps(candidate.card, sort_keys=True),
            }
            if candidate.artifacts:
                tags |= {
                    ARTIFACTS: ",".join(candidate.artifacts),
                    PACKAGE_SHA256: candidate.package_sha256,
                    PACKAGE_URI: candidate.package_uri,
                }
            created = self.client.create_model_version(
                self.name, source=candidate.source, run_id=candidate.run_id, tags=tags, description=candidate.card.get("summary", "")
            )
        return int(created.version), True

    def _registration_lock(self) -> contextlib.AbstractContextManager[Any]:
        """A file lock beside a local sqlite store (serialises look-up + create); a no-op for other stores."""
        database = sqlite_path(self.store.uri)
        if database is None:
            return contextlib.nullcontext()
        from filelock import FileLock

        return FileLock(f"{database}.register.lock")

    def _set_status(self, version: int, status: str, reason: str) -> None:
        self.client.set_model_version_tag(self.name, str(version), APPROVAL, ApprovalStatus(status).value)
        self.client.set_model_version_tag(self.name, str(version), TAG + "status_reason", reason)

    def _set_alias(self, alias: str, version: int | None) -> None:
        """Point @alias at `version` (None removes it); moving @champion rewrites the champion pointer."""
        if alias not in ALIASES:
            raise ConfigError(f"alias {alias!r} is not one of {', '.join(ALIASES)}")
        if version is None:
            if alias in self.aliases():
                self.client.delete_registered_model_alias(self.name, alias)
        else:
            self.client.set_registered_model_alias(self.name, alias, str(version))
        if alias == "champion":
            self.sync_champion_pointer()

    def _delete(self, version: int) -> None:
        """Delete a version; MLflow drops its aliases, so a deleted champion leaves no pointer behind."""
        self.client.delete_model_version(self.name, str(version))
        self.sync_champion_pointer()

    def _version(self, raw: Any, aliases: dict[str, int]) -> ModelVersion:
        version = int(raw.version)
        return ModelVersion(
            name=self.name,
            version=version,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            run_id=raw.run_id or "",
            source=raw.source,
            created=int(raw.creation_timestamp or 0),
            tags=dict(raw.tags),
        )
