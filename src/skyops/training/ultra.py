"""Run Ultralytics fully offline, with its own settings, never touching the user's.

Ultralytics decides at import time where its settings live and whether it is online:
`ultralytics/utils/__init__.py` reads `YOLO_CONFIG_DIR` (else `$XDG_CONFIG_HOME/Ultralytics`), loads
or creates `settings.json` there (`sync`, integrations, runs/weights/datasets dirs), and probes DNS
unless `YOLO_OFFLINE` is set. Later it downloads `Arial.ttf` / `Arial.Unicode.ttf` into that folder
(`checks.check_font`) before plotting labels. So the environment must be set, and the folder
filled, before the first `import ultralytics`:

    <state_dir>/ultralytics/            YOLO_CONFIG_DIR
      Ultralytics/settings.json         sync and every integration off; runs/weights/datasets inside
      Ultralytics/Arial*.ttf            matplotlib's DejaVuSans under the names check_font looks for
      Ultralytics/.skyops-offline       marks a folder prepared here

`import_ultralytics(state_dir)` does all of that, then imports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from skyops.errors import ConfigError

CONFIG_SUBDIR = "ultralytics"  # YOLO_CONFIG_DIR = <state_dir>/ultralytics
ULTRALYTICS_SUBDIR = "Ultralytics"  # the name get_user_config_dir() appends
MARKER = ".skyops-offline"
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")  # what check_font() asks for (ASCII / non-ASCII class names)
# Settings keys switched off. ultralytics 8.4 knows the first eight; 'hub' and 'neptune' are kept for
# versions that have them (older ones did). Unknown keys are never written: Ultralytics would reset the file.
OFF_SWITCHES = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb", "hub", "neptune")
# The settings schema of ultralytics 8.4 (SettingsManager, version 0.0.8), written before the first import.
SETTINGS_VERSION = "0.0.8"
AMP_CHECK_WEIGHTS = "yolo26n.pt"  # what ultralytics 8.4's check_amp() loads, downloading it if absent


def config_dir(state_dir: Path) -> Path:
    """The folder Ultralytics uses as its user config dir for this state dir."""
    return Path(state_dir).resolve() / CONFIG_SUBDIR / ULTRALYTICS_SUBDIR


def offline_environment(state_dir: Path, *, verbose: bool = False) -> dict[str, str]:
    """Environment variables that make Ultralytics offline and private to `state_dir`.

    Set them before Ultralytics is imported (in this process, or in a child's environment: a `yolo`
    CLI run or a DDP worker). They are read once, at import.

    Args:
        state_dir: the project's state dir; settings go under `<state_dir>/ultralytics/`.
        verbose: Ultralytics' own progress output (YOLO_VERBOSE).
    """
    return {
        "YOLO_CONFIG_DIR": str(config_dir(state_dir).parent),
        "YOLO_OFFLINE": "1",  # skips the DNS probe; downloads fail at once instead of retrying
        "YOLO_AUTOINSTALL": "False",  # never pip-install a missing requirement at run time
        "YOLO_VERBOSE": "True" if verbose else "False",
        "ULTRALYTICS_API_KEY": "",  # an inherited key would switch on Platform streaming
    }


def offline_settings(state_dir: Path) -> dict[str, Any]:
    """The settings.json content for `state_dir` (ultralytics 8.4 schema)."""
    home = Path(state_dir).resolve() / CONFIG_SUBDIR
    return {
        "settings_version": SETTINGS_VERSION,
        "datasets_dir": str(home / "datasets"),
        "weights_dir": str(home / "weights"),
        "runs_dir": str(home / "runs"),
        "uuid": "skyops-offline",  # only used by the (disabled) analytics
        "sync": False,
        "api_key": "",
        "openai_api_key": "",
        "clearml": False,
        "comet": False,
        "dvc": False,
        "mlflow": False,  # skyops logs to MLflow itself (skyops.training.tracking)
        "raytune": False,
        "tensorboard": False,
        "wandb": False,
        "vscode_msg": False,
        "openvino_msg": False,
    }


def prepare_offline(state_dir: Path) -> Path:
    """Write the settings file and fonts for `state_dir` (idempotent; each file replaced atomically).

    Returns:
        The Ultralytics config dir (`<state_dir>/ultralytics/Ultralytics`).
    """
    font = _bundled_font()  # before writing anything: a missing font is the one thing that can fail here
    folder = config_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    settings = folder / "settings.json"
    wanted = offline_settings(state_dir)
    if _read_json(settings) != wanted:
        _atomic_write(settings, json.dumps(wanted, indent=2).encode())
    for name in FONT_NAMES:
        target = folder / name
        if not target.is_file() or target.stat().st_size != font.stat().st_size:
            _atomic_write(target, font.read_bytes())
    marker = folder / MARKER
    if not marker.is_file():
        _atomic_write(marker, b"prepared by skyops.training.ultra: offline, integrations off\n")
    return folder


def import_ultralytics(state_dir: Path, *, verbose: bool = False) -> ModuleType:
    """Prepare `state_dir`, set the offline environment, import ultralytics, and check the result.

    Ultralytics can be imported once per process. A second call with another state dir is accepted
    when the first one was also prepared here (it is offline too); an import that skyops did not
    prepare (the user's global settings, online) raises. `verbose` holds for every call: it sets
    Ultralytics' log level again when it was imported already (a step forked from a warm host).

    Raises:
        ConfigError: ultralytics was already imported without skyops' offline settings.
    """
    imported = "ultralytics" in sys.modules
    if not imported:
        prepare_offline(state_dir)
        os.environ.update(offline_environment(state_dir, verbose=verbose))
    import ultralytics  # heavy (torch): about 2 s

    _check_offline()
    _patch_amp_check()
    if imported:
        _set_verbose(verbose)
    return ultralytics


def _set_verbose(verbose: bool) -> None:
    """What YOLO_VERBOSE decides at import (ultralytics.utils.set_logging), set after it."""
    import logging

    from ultralytics import utils

    level = logging.INFO if verbose and utils.RANK in {-1, 0} else logging.ERROR
    utils.VERBOSE = verbose
    utils.LOGGER.setLevel(level)
    for handler in utils.LOGGER.handlers:
        handler.setLevel(level)


def _check_offline() -> None:
    from ultralytics import utils

    folder = Path(utils.USER_CONFIG_DIR)
    problems = []
    if not (folder / MARKER).is_file():
        problems.append(f"it uses the config dir {folder}, which skyops did not prepare")
    if utils.ONLINE:
        problems.append("it considers itself online (YOLO_OFFLINE was not set when it was imported)")
    if utils.AUTOINSTALL:
        problems.append("it may pip-install packages (YOLO_AUTOINSTALL was not set when it was imported)")
    if problems:
        raise ConfigError(
            "ultralytics was imported before skyops could make it offline: " + "; ".join(problems),
            hint="call skyops.training.ultra.import_ultralytics(state_dir) before anything imports ultralytics, or run in a new process",
        )
    # A newer ultralytics migrates our settings file on import and may add integrations switched on.
    switched_on = {key: False for key in OFF_SWITCHES if utils.SETTINGS.get(key) is not False and key in utils.SETTINGS.defaults}
    if switched_on:
        utils.SETTINGS.update(switched_on)


def _patch_amp_check() -> None:
    """Keep the trainer's AMP check from downloading its reference weights on a GPU.

    On CUDA, `check_amp` loads yolo26n.pt from the weights dir and downloads it when missing; offline
    that attempt fails and ultralytics keeps AMP on ("checks skipped"). This reaches the same verdict
    without the attempt. CPU (AMP off) and a present file go to the original check.
    """
    from ultralytics.engine import trainer

    original = trainer.check_amp
    if getattr(original, "skyops_offline", False):
        return

    def offline_check_amp(model: Any) -> bool:
        from ultralytics.utils import LOGGER, WEIGHTS_DIR

        device = next(model.parameters()).device
        if device.type in {"cpu", "mps"} or (Path(WEIGHTS_DIR) / AMP_CHECK_WEIGHTS).is_file():
            return bool(original(model))
        LOGGER.warning(f"AMP: checks skipped offline ({AMP_CHECK_WEIGHTS} is not in {WEIGHTS_DIR}); keeping amp=True")
        return True

    offline_check_amp.skyops_offline = True  # type: ignore[attr-defined]
    trainer.check_amp = offline_check_amp


def _bundled_font() -> Path:
    # matplotlib (a dependency) ships DejaVuSans; found without importing matplotlib (~0.3 s).
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise ConfigError("matplotlib is not installed; skyops needs its bundled font for Ultralytics plots", hint="pip install matplotlib")
    font = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not font.is_file():
        raise ConfigError(f"matplotlib's bundled font is missing at {font}", hint="reinstall matplotlib")
    return font


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    # Several step processes may prepare the same state dir at once: each writes its own temp file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; the state dir may be shared
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
