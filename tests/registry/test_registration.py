"""The same weights are never registered twice, on a real MLflow store, even by two processes at once
(registered as a data scientist through the governed registry, as the register step does)."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

import pytest

from skyops.errors import ConfigError
from skyops.registry.governed import Registered
from skyops.registry.models import WEIGHTS_SHA256, ApprovalStatus, Candidate, ModelRegistry, ModelVersion
from skyops.training.tracking import TrackingStore

from .conftest import governed


def register(state_dir: Path, model: str, weights: bytes, *, gate: bool = True) -> tuple[Registered, ModelVersion]:
    store = TrackingStore.local(state_dir)
    run = store.client.create_run(store.experiment_id("registration-tests"))
    candidate = Candidate(
        run_id=run.info.run_id,
        source=f"{run.info.artifact_uri}/weights",
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        metrics={"map50": 0.5, "map50_95": 0.3, "precision": 0.5, "recall": 0.5},
        card={"summary": "test"},
        gate={"passed": gate, "reasons": [f"gate {gate}"]},
    )
    done = governed(state_dir, model).register("bob", candidate, ApprovalStatus.PENDING if gate else ApprovalStatus.REJECTED)
    return done, ModelRegistry(store, model).get(done.version)


def test_the_same_weights_return_their_version_untouched(store_dir: Path, model: str) -> None:
    done, first = register(store_dir, model, b"weights A", gate=False)
    assert done.created and first.version == 1 and first.status is ApprovalStatus.REJECTED
    assert first.weights_sha256 == first.tags[WEIGHTS_SHA256] == hashlib.sha256(b"weights A").hexdigest()

    done, again = register(store_dir, model, b"weights A", gate=True)  # e.g. a re-run against a new champion
    assert not done.created
    assert again.version == 1 and again.run_id == first.run_id
    assert again.status is ApprovalStatus.REJECTED and again.gate == {"passed": False, "reasons": ["gate False"]}

    done, other = register(store_dir, model, b"weights B")
    assert done.created and other.version == 2
    assert [v.version for v in ModelRegistry(TrackingStore.local(store_dir), model).versions()] == [2, 1]


def test_weights_of_a_deleted_version_register_anew(store_dir: Path, model: str) -> None:
    _, first = register(store_dir, model, b"weights C")
    governed(store_dir, model).delete("alice", first.version)
    done, again = register(store_dir, model, b"weights C")
    assert done.created and again.version == 2


def test_a_digest_must_be_sha256_hex(store_dir: Path, model: str) -> None:
    registry = ModelRegistry(TrackingStore.local(store_dir), model)
    with pytest.raises(ConfigError, match='weights_sha256 "\' or 1=1" is not a sha256 hex digest'):
        registry.by_weights("' or 1=1")


def _register_same(state_dir: str, model: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    done, _ = register(Path(state_dir), model, b"the same weights, twice at once")
    queue.put((done.version, done.created))


def test_two_processes_registering_the_same_weights_make_one_version(store_dir: Path, model: str) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_register_same, args=(str(store_dir), model, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(180)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in workers) == [(1, False), (1, True)]
    assert len(ModelRegistry(TrackingStore.local(store_dir), model).versions()) == 1
