"""docker/Dockerfile, read as text (no Docker engine here): the runtime lock, a CUDA 12.6 torch, no test tools, no bootstrap."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from tools.runtime_lock import DEV_LOCK, ROOT, RUNTIME_LOCK, closure, read_pins

DOCKERFILE = ROOT / "docker" / "Dockerfile"
CUDA_INDEX = "https://download.pytorch.org/whl/cu126"
TEST_TOOLS = ("pytest", "hypothesis", "ruff", "mypy", "import-linter", "moto", "cfn-lint", "nbclient", "ipykernel", "types-")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        found.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return found


def runs() -> list[str]:
    return [arguments for keyword, arguments in instructions() if keyword == "RUN"]


def cuda_stack() -> set[str]:
    """torch and torchvision, and what torch's Linux-only requirements (its CUDA 13 libraries) bring."""
    pins = read_pins(DEV_LOCK)
    linux_only = [Requirement(r) for r in importlib.metadata.distribution("torch").requires or [] if "Linux" in r and "extra" not in r]
    return {"torch", "torchvision", *closure(linux_only, pins)}


def test_the_image_installs_the_runtime_lock_and_never_the_dev_lock() -> None:
    assert ("COPY", "requirements-runtime.lock ./") in instructions()
    assert not [i for i in instructions() if "requirements-lock.txt" in i[1] or "[dev]" in i[1]]


def test_no_test_tool_is_installed() -> None:
    for command in runs():
        for word in shlex.split(command.replace("&&", " ")):
            assert not word.lower().startswith(TEST_TOOLS), f"{word!r} in RUN {command}"


def test_only_torchs_cuda_13_stack_is_left_out_of_the_lock() -> None:
    grep = next(c for c in runs() if "requirements-runtime.lock" in c)
    pattern = re.search(r"grep -vE '([^']+)'", grep)
    assert pattern, grep
    left_out = {name for name in read_pins(RUNTIME_LOCK) if re.match(pattern[1], f"{name}==")}
    assert left_out == cuda_stack()
    assert "nvidia-ml-py" not in left_out  # NVML's Python bindings: Ultralytics needs them, and they hold no CUDA library
    assert "pip install --no-deps -r /tmp/runtime-without-cuda.txt" in grep


def test_torch_and_torchvision_come_from_the_pinned_cuda_12_6_index() -> None:
    assert ("ARG", "TORCH_BUILD=cu126") in instructions()
    pins = read_pins(RUNTIME_LOCK)
    install = next(c for c in runs() if "torch==" in c).replace("${TORCH_BUILD}", "cu126")  # the default build
    words = shlex.split(install)
    assert words[words.index("--index-url") + 1] == CUDA_INDEX
    assert f"torch=={pins['torch']}+cu126" in words and f"torchvision=={pins['torchvision']}+cu126" in words
    assert "-c" in words  # the rest stays at the lock's versions
    assert install.index("pip check") > install.index("torch==")


def test_no_entrypoint_is_baked_in_and_train_only_runs_the_code_archive() -> None:
    # Training steps bring their ContainerEntrypoint from the code archive. A tuning job's training jobs have none
    # (its algorithm specification cannot carry one): SageMaker runs `train`, which unpacks the same archive and
    # runs the step the job's Environment names; no skyops step code is baked into the image.
    text = " ".join(arguments for _, arguments in instructions())
    assert "skyops.pipeline.sagemaker.container" not in text
    assert ("COPY", "docker/train /usr/local/bin/train") in instructions()
    script = (ROOT / "docker" / "train").read_text()
    assert 'tar -xzf "$code_dir/sourcedir.tar.gz"' in script and 'exec python -m "$SKYOPS_ENTRY_POINT"' in script
    assert not [keyword for keyword, _ in instructions() if keyword in ("ENTRYPOINT", "CMD")]


def test_skyops_itself_is_installed_without_dependencies() -> None:
    assert "pip install --no-deps . && rm -rf /opt/skyops/src" in runs()


def test_serve_on_path_runs_the_inference_server_on_every_interface(tmp_path: Path) -> None:
    # SageMaker runs an endpoint as `docker run IMAGE serve`: `serve` must be an executable on PATH.
    assert ("COPY", "docker/serve /usr/local/bin/serve") in instructions()
    assert "chmod 755 /usr/local/bin/serve" in runs()
    script = ROOT / "docker" / "serve"
    assert script.stat().st_mode & 0o111, "docker/serve is executable in the repository too"
    assert script.read_text().splitlines()[-1] == 'exec python -m skyops serve --host 0.0.0.0 "$@"'
    # Run it as the image would, with `python` on PATH being this interpreter: it reaches `skyops serve`.
    (tmp_path / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([str(script), str(tmp_path / "no-model")], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr.splitlines()[0]) == (2, f"error: model {tmp_path / 'no-model'} does not exist")
