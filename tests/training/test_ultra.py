"""The offline adapter: env names, the prepared folder, and a real training with the network refused."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skyops.errors import ConfigError
from skyops.training import ultra

Runner = Callable[..., subprocess.CompletedProcess[str]]

# Installed before anything else in the child: refuses and records every attempt to reach a
# non-loopback address (name lookups included). The refusal happens in Python, before any syscall.
SOCKET_GUARD = """
import socket

ATTEMPTS = []
_real = (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo)

def _loopback(host):
    host = str(host)
    return host in ("localhost", "::1", "") or host.startswith("127.")

def _refuse(what, host):
    ATTEMPTS.append(f"{what} {host}")
    raise OSError(f"network refused by the test guard: {what} {host}")

def _connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _refuse("connect", address[0])
    return _real[0](self, address)

def _connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _refuse("connect_ex", address[0])
    return _real[1](self, address)

def _create_connection(address, *args, **kwargs):
    if not _loopback(address[0]):
        _refuse("create_connection", address[0])
    return _real[2](address, *args, **kwargs)

def _getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
        _refuse("getaddrinfo", host)
    return _real[3](host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex = _connect, _connect_ex
socket.create_connection, socket.getaddrinfo = _create_connection, _getaddrinfo
"""

GUARDED_TRAINING = """
import json, sys
from pathlib import Path

# The guard must catch what it is for (192.0.2.1 is a documentation address; nothing is sent).
for probe in (lambda: socket.create_connection(("192.0.2.1", 80)), lambda: socket.getaddrinfo("example.com", 443)):
    try:
        probe()
    except OSError:
        pass
assert len(ATTEMPTS) == 2, ATTEMPTS
ATTEMPTS.clear()

from skyops.training.tracking import TrackingStore, run_tags
from skyops.training.train import TrainConfig, train

data_yaml, state, work = (Path(p) for p in sys.argv[1:4])
config = TrainConfig(epochs=1, imgsz=64, batch=4, workers=0, device="auto", mosaic=0.0)
store = TrackingStore.local(state)
with store.tracker("offline", tags=run_tags(dataset_fingerprint="tiny", pipeline_run_id="r1", step_name="train")) as tracker:
    tracker.log_config(config)
    result = train(data_yaml, config, out_dir=work / "out", checkpoint_dir=work / "ckpt", state_dir=state, on_epoch=tracker.log_epoch)
    tracker.log_training(result)

from ultralytics import utils
run = store.find_runs("offline")[0]
print(json.dumps({
    "attempts": ATTEMPTS,
    "settings_file": str(utils.SETTINGS_FILE),
    "status": run.status,
    "epochs": result.epochs_completed,
    "history": store.run_metrics_history(run.run_id, "metrics/mAP50(B)"),
}))
"""

USER_SETTINGS = {"settings_version": "0.0.8", "sync": True, "mlflow": True, "runs_dir": "/somewhere/else"}


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `folder`: relative path -> (mtime ns, bytes)."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def guarded_run(tmp_path_factory: pytest.TempPathFactory, tiny_data_yaml: Path) -> dict[str, Any]:
    """One real training + tracking in a child process with the network refused and a fake user HOME."""
    import sys
    import textwrap

    work = tmp_path_factory.mktemp("guarded")
    home = work / "home"
    user_settings = home / ".config" / "Ultralytics" / "settings.json"
    user_settings.parent.mkdir(parents=True)
    user_settings.write_text(json.dumps(USER_SETTINGS))
    before = snapshot(home / ".config" / "Ultralytics")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_", "MLFLOW_"))}
    env = {**base, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "CUDA_VISIBLE_DEVICES": ""}
    code = textwrap.dedent(SOCKET_GUARD) + textwrap.dedent(GUARDED_TRAINING)
    done = subprocess.run(
        [sys.executable, "-c", code, str(tiny_data_yaml), str(work / "state"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {**report, "home": home, "state": work / "state", "before": before, "after": snapshot(home / ".config" / "Ultralytics")}


def test_training_and_tracking_make_no_network_attempt(guarded_run: dict[str, Any]) -> None:
    assert guarded_run["attempts"] == []
    assert guarded_run["epochs"] == 1
    assert guarded_run["status"] == "FINISHED"
    assert [step for step, _ in guarded_run["history"]] == [1]


def test_user_ultralytics_settings_are_untouched(guarded_run: dict[str, Any]) -> None:
    assert guarded_run["after"] == guarded_run["before"]
    assert Path(guarded_run["settings_file"]) == ultra.config_dir(guarded_run["state"]) / "settings.json"
    assert [p for p in guarded_run["home"].rglob("*") if "ultralytics" in p.name.lower()] == [
        guarded_run["home"] / ".config" / "Ultralytics"
    ]


def test_offline_environment_names_what_ultralytics_reads(tmp_path: Path) -> None:
    env = ultra.offline_environment(tmp_path, verbose=True)
    assert env == {
        "YOLO_CONFIG_DIR": str(tmp_path.resolve() / "ultralytics"),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
        "YOLO_VERBOSE": "True",
        "ULTRALYTICS_API_KEY": "",
    }
    assert ultra.offline_environment(tmp_path)["YOLO_VERBOSE"] == "False"


def test_prepare_offline_writes_settings_and_fonts_once(tmp_path: Path) -> None:
    folder = ultra.prepare_offline(tmp_path)
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["sync"] is False
    assert all(settings[key] is False for key in ultra.OFF_SWITCHES if key in settings)
    assert settings["runs_dir"].startswith(str(tmp_path.resolve()))
    assert all((folder / name).stat().st_size > 100_000 for name in ultra.FONT_NAMES)
    first = snapshot(folder)
    ultra.prepare_offline(tmp_path)
    assert snapshot(folder) == first
    assert not [p for p in folder.iterdir() if p.name.startswith(".") and p.name != ultra.MARKER]  # no temp files left


def test_prepare_offline_repairs_a_changed_settings_file(tmp_path: Path) -> None:
    folder = ultra.prepare_offline(tmp_path)
    (folder / "settings.json").write_text(json.dumps({**ultra.offline_settings(tmp_path), "sync": True, "wandb": True}))
    ultra.prepare_offline(tmp_path)
    assert json.loads((folder / "settings.json").read_text()) == ultra.offline_settings(tmp_path)


def test_settings_schema_matches_the_installed_ultralytics(ultra_state: Path) -> None:
    """If Ultralytics changes its settings keys, the file written before import must follow."""
    ultra.import_ultralytics(ultra_state)
    from ultralytics.utils import SETTINGS

    assert set(ultra.offline_settings(ultra_state)) == set(SETTINGS.defaults)
    assert SETTINGS["settings_version"] == ultra.SETTINGS_VERSION


def test_import_refuses_an_ultralytics_it_did_not_prepare(tmp_path: Path, run_python: Runner) -> None:
    done = run_python(
        f"""
        import ultralytics
        from pathlib import Path
        from skyops.errors import ConfigError
        from skyops.training.ultra import import_ultralytics
        try:
            import_ultralytics(Path({str(tmp_path / "state")!r}))
        except ConfigError as e:
            print(e)
        """,
        env={"YOLO_CONFIG_DIR": str(tmp_path / "foreign"), "YOLO_OFFLINE": "1"},  # never the real user settings
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ultralytics was imported before skyops could make it offline: it uses the config dir" in done.stdout
    assert "it may pip-install packages" in done.stdout


def test_amp_check_skips_the_download_on_an_accelerator(ultra_state: Path) -> None:
    import torch

    ultra.import_ultralytics(ultra_state)
    from ultralytics.engine import trainer

    # 'meta' stands in for a GPU: not cpu/mps, and the reference weights are absent.
    assert trainer.check_amp(torch.nn.Linear(2, 2, device="meta")) is True
    assert trainer.check_amp(torch.nn.Linear(2, 2)) is False  # CPU: the original check, AMP off


def test_missing_bundled_font_is_a_clear_error_before_any_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ultra.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="matplotlib is not installed; skyops needs its bundled font"):
        ultra.prepare_offline(tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_a_second_import_sets_the_log_level_it_asks_for(tmp_path: Path, run_python: Runner) -> None:
    """A step forked from a warm host finds Ultralytics imported (quiet): its own `verbose` still holds."""
    done = run_python(
        f"""
        from pathlib import Path
        from skyops.training.ultra import import_ultralytics
        state = Path({str(tmp_path / "state")!r})
        utils = import_ultralytics(state).utils
        quiet = (utils.VERBOSE, utils.LOGGER.level)
        import_ultralytics(state, verbose=True)
        print(quiet, (utils.VERBOSE, utils.LOGGER.level), [h.level for h in utils.LOGGER.handlers])
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "(False, 40) (True, 20) [20]"  # ERROR, then INFO


def test_the_train_steps_warm_hook_leaves_a_process_safe_to_fork(tmp_path: Path, run_python: Runner) -> None:
    """What the step host of a study imports before forking trials: the heavy libraries, no thread, no polars."""
    done = run_python(
        """
        import os, sys, threading
        from skyops.steps.train.script import warm
        warm()
        loaded = [m for m in ("torch", "torch._dynamo", "ultralytics", "mlflow.store.tracking.sqlalchemy_store") if m in sys.modules]
        print(threading.active_count(), "polars" in sys.modules, loaded)
        import polars  # kept out of the host only: the step imports it as usual
        from ultralytics import utils
        print(utils.ONLINE, utils.USER_CONFIG_DIR)
        """,
        env={"SKYOPS_STATE_DIR": str(tmp_path / "state")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "1 False ['torch', 'torch._dynamo', 'ultralytics', 'mlflow.store.tracking.sqlalchemy_store']"
    assert lines[1] == f"False {ultra.config_dir(tmp_path / 'state')}"  # offline, in this state folder's settings
