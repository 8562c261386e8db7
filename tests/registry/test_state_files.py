"""Damaged state files under .skyops/ are one clear line (exit 2, no traceback) in `skyops run`, `models`
and `deploy`, each saying which file, what it should hold and how to recover; and the recovery works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skyops.registry.champion import champion_weights, pointer_path
from skyops.registry.gitops import deployed_path
from skyops.registry.models import ModelRegistry
from skyops.training.tracking import TrackingStore

from .conftest import cli, governed, register_version

DRONE = "drone-detector"  # the model `skyops run` compares with
# An invalid config value as a tripwire: the engine resolves the pipeline's sources (the champion) before it
# checks the step configs, so were the pointer not refused, the run would stop at this instead of training.
RUN = ("run", "drone-detection", "--param", "image_size=100")
TRIPWIRE = "imgsz: 100 is not a multiple of 32"


@pytest.fixture(scope="module")
def champion_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of its own where drone-detector v1 is the approved @champion and v2 is pending."""
    state = tmp_path_factory.mktemp("champion-state")
    first, second = register_version(state, DRONE, 0.3, approve=True), register_version(state, DRONE, 0.35)
    assert (first, second) == (1, 2)
    governed(state, DRONE).promote("alice", 1)
    return state


@pytest.fixture
def pointer(project: Path, champion_state: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The champion pointer of `champion_state`, freshly rewritten from the registry (tests damage it)."""
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(champion_state))
    ModelRegistry(TrackingStore.local(champion_state), DRONE).sync_champion_pointer()
    assert champion_weights(champion_state, DRONE) is not None
    return pointer_path(champion_state, DRONE)


def pointed(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data


REWRITE = f"hint: rewrite it from the registry: skyops models promote 1 --model {DRONE} --as <ml-engineer>"


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (b"\x00\x9f garbage", "is not UTF-8 text"),
        (b"", "is empty"),
        (b'{"model": "drone-detector", "version": 1, "weights": "/x"', "is not JSON (Expecting ',' delimiter at line 1 column 58)"),
        (b'["drone-detector", 1]', "has the wrong shape: it holds an array, not an object"),
        (b'{"model": "drone-detector", "weights": "/x"}', "has the wrong shape: 'version' is missing"),
        (b'{"model": "drone-detector", "version": 1, "weights": "rel/w"}', "has the wrong shape: 'weights' is a relative path"),
    ],
)
def test_run_refuses_a_damaged_champion_pointer(pointer: Path, capsys: pytest.CaptureFixture[str], damage: bytes, problem: str) -> None:
    pointer.write_bytes(damage)
    code, _, err = cli(capsys, *RUN)
    assert code == 2 and "Traceback" not in err
    first, hint = err.splitlines()
    assert first.startswith(f"error: champion pointer {pointer} {problem}")
    assert first.endswith("as `skyops models promote` writes it")
    assert hint.startswith(REWRITE)


def test_run_refuses_a_pointer_to_a_version_the_registry_does_not_have(pointer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pointer.write_text(json.dumps({**pointed(pointer), "version": 99}))
    code, _, err = cli(capsys, *RUN)
    assert code == 2
    assert err.splitlines() == [
        f"error: champion pointer {pointer} names {DRONE} v99, but the registry has no such version",
        REWRITE + f" (or delete {pointer})",
    ]


def test_run_refuses_a_pointer_to_a_version_that_is_not_the_champion(pointer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pointer.write_text(json.dumps({**pointed(pointer), "version": 2}))
    code, _, err = cli(capsys, *RUN)
    assert code == 2 and err.startswith(f"error: champion pointer {pointer} names {DRONE} v2, but the registry has @champion on v1\n")


def test_run_refuses_a_pointer_whose_weights_are_not_the_registered_ones(
    pointer: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pointer.write_text(json.dumps({**pointed(pointer), "weights": str(tmp_path)}))
    code, _, err = cli(capsys, *RUN)
    assert code == 2 and err.startswith(f"error: champion pointer {pointer} names weights {tmp_path} for {DRONE} v1, but the registry has ")


def test_run_refuses_a_champion_whose_weights_are_gone(pointer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = Path(str(pointed(pointer)["weights"]))
    moved = weights.with_name("weights-moved")
    weights.rename(moved)
    try:
        code, _, err = cli(capsys, *RUN)
    finally:
        moved.rename(weights)
    assert code == 2
    assert err.splitlines() == [
        f"error: the weights of champion {DRONE} v1 ({weights}, from {pointer}) do not exist",
        f"hint: restore the MLflow artifacts folder (mlartifacts/), or make another version the champion: skyops models promote N --model {DRONE}",
    ]


def test_run_refuses_a_pointer_whose_registry_is_gone(
    pointer: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan = tmp_path / "state-without-store"
    shutil.copytree(pointer.parent, orphan / "champions")
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(orphan))
    code, _, err = cli(capsys, *RUN)
    assert code == 2
    copy = orphan / "champions" / pointer.name
    assert err.startswith(f"error: champion pointer {copy} names {DRONE} v1 of the registry {orphan / 'mlflow.db'}, which does not exist\n")
    assert not (orphan / "mlflow.db").exists()  # checking never creates a store


def test_the_recovery_the_hint_names_works(pointer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pointer.write_bytes(b"")
    code, _, err = cli(capsys, "models", "promote", "1", "--model", DRONE, "--as", "alice")
    assert code == 0, err
    assert champion_weights(pointer.parents[1], DRONE) == (1, Path(str(pointed(pointer)["weights"])))


def test_a_sound_pointer_binds_the_champion(pointer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, *RUN)
    assert out.startswith(f"comparing with the champion: {DRONE} v1")
    assert code == 2 and err.startswith("error: ") and TRIPWIRE in err  # stopped by the tripwire, after the champion was bound


def test_deleting_the_champion_removes_its_pointer(project: Path, store_dir: Path, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    version = register_version(store_dir, model, 0.3)
    for command in ("approve", "promote", "delete"):
        assert cli(capsys, "models", command, str(version), "--model", model, "--as", "alice")[0] == 0
    assert not pointer_path(store_dir, model).exists()
    assert champion_weights(store_dir, model) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{{{", "is not JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
        ("", "is empty"),
        (
            '{"environment": "e", "model": "m", "alias": "champion", "version": "v1"}',
            "has the wrong shape: 'version' is a string, not a positive integer or null",
        ),
        ("null", "has the wrong shape: it holds null, not an object"),
    ],
    ids=["garbage", "empty", "version-string", "null"],
)
def test_deploy_plan_refuses_a_damaged_record_and_apply_rewrites_it(
    project: Path,
    store_dir: Path,
    model: str,
    capsys: pytest.CaptureFixture[str],
    content: str,
    problem: str,
    request: pytest.FixtureRequest,
) -> None:
    env = "env-" + request.node.callspec.id
    version = register_version(store_dir, model, 0.3, approve=True)
    (project / f"deploy/environments/{env}.yaml").write_text(f"environment: {env}\nmodel: {model}\nalias: staging\nversion: {version}\n")
    record = deployed_path(store_dir, env)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(content)

    code, _, err = cli(capsys, "deploy", "plan", "--env", env)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines() == [
        f"error: deployed record of environment {env!r} {record} {problem}; expected a JSON object "
        '{"environment", "model", "alias", "version": positive integer or null, ...}, as `skyops deploy apply` writes it',
        f"hint: run `skyops deploy apply --env {env}`: it rewrites the record from the desired state",
    ]
    code, out, err = cli(capsys, "deploy", "apply", "--env", env, "--as", "alice")
    assert code == 0, err
    assert out.startswith(f"applied: {env}: rewrite the damaged record: deployed record of environment {env!r} {record} {problem}")
    assert json.loads(record.read_text())["version"] == version
    assert cli(capsys, "deploy", "plan", "--env", env)[1] == f"{env}: in sync ({model} v{version} @staging)\n"


def test_deploy_plan_refuses_a_record_of_a_deleted_version(
    project: Path, store_dir: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = register_version(store_dir, model, 0.3, approve=True), register_version(store_dir, model, 0.32, approve=True)
    env_file = project / "deploy/environments/env-deleted.yaml"
    env_file.write_text(f"environment: env-deleted\nmodel: {model}\nalias: staging\nversion: {old}\n")
    assert cli(capsys, "deploy", "apply", "--env", "env-deleted", "--as", "alice")[0] == 0
    env_file.write_text(f"environment: env-deleted\nmodel: {model}\nalias: staging\nversion: {new}\n")
    assert cli(capsys, "models", "delete", str(old), "--model", model, "--as", "alice")[0] == 0

    code, _, err = cli(capsys, "deploy", "plan", "--env", "env-deleted")
    record = deployed_path(store_dir, "env-deleted")
    assert code == 2
    assert err.splitlines() == [
        f"error: deployed record {record} names {model} v{old}, which the registry does not have",
        "hint: run `skyops deploy apply --env env-deleted`: it deploys the desired version and rewrites the record",
    ]
    assert cli(capsys, "deploy", "apply", "--env", "env-deleted", "--as", "alice")[0] == 0
    assert json.loads(record.read_text())["version"] == new


def test_models_commands_name_a_damaged_registry_tag(
    project: Path, store_dir: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    version = register_version(store_dir, model, 0.3)
    client = TrackingStore.local(store_dir).client
    client.set_model_version_tag(model, str(version), "skyops.gate", "{not json")
    for command in ("list", "show"):
        code, _, err = cli(capsys, "models", command, *([str(version)] if command == "show" else []), "--model", model)
        assert code == 2 and "Traceback" not in err
        assert err.splitlines()[0] == (
            f"error: model {model!r} v{version}: registry tag skyops.gate is not JSON; expected the JSON object skyops wrote at registration"
        )
    client.set_model_version_tag(model, str(version), "skyops.gate", "{}")
    client.set_model_version_tag(model, str(version), "skyops.approval", "approved")  # as someone might type it in the MLflow UI
    code, _, err = cli(capsys, "models", "list", "--model", model)
    assert code == 2 and err.splitlines() == [
        f"error: model {model!r} v{version}: registry tag skyops.approval is not an approval status; "
        "expected one of PendingManualApproval, Approved, Rejected",
        f"hint: the tag was changed outside skyops (MLflow UI or API); set it again: skyops models approve {version} (or reject)",
    ]
    code, out, _ = cli(capsys, "models", "approve", str(version), "--model", model, "--as", "alice")
    assert code == 0 and out == f"{model} v{version}: approved -> Approved\n"
    assert cli(capsys, "models", "list", "--model", model)[0] == 0


def test_the_real_command_prints_two_lines_and_exits_2(pointer: Path, project: Path) -> None:
    """The same through `python -m skyops`, as a user meets it."""
    pointer.write_bytes(b"\x00garbage")
    env = {**os.environ, "SKYOPS_PROJECT_DIR": str(project), "SKYOPS_STATE_DIR": str(pointer.parents[1])}
    done = subprocess.run([sys.executable, "-m", "skyops", *RUN], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert [line.split(" ", 3)[:3] for line in done.stderr.splitlines()] == [["error:", "champion", "pointer"], ["hint:", "rewrite", "it"]]
