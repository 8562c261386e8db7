"""Which device `device: auto` trains on, and a hard stop when a GPU is there but torch cannot use it.

`auto` takes every CUDA GPU torch sees, else the CPU. The CPU fallback is only honest when the
machine has no NVIDIA GPU: a torch build whose CUDA is newer than the host's driver (PyPI's torch
2.14.1 is a CUDA 13 build, which needs an R580 driver; SageMaker GPU hosts may run an older one)
sees no GPU either, and would train for hours on the CPU of a GPU instance without a word. So before
falling back, the host is asked directly, without torch:

1. `/dev/nvidia<N>` device files: the container runtime mounts one per GPU it hands the container;
2. `nvidia-smi --query-gpu=name,driver_version` (mounted beside them by the NVIDIA runtime);
3. `NVIDIA_VISIBLE_DEVICES` naming GPUs by index or UUID (what the runtime sets on a GPU host);
   `all` is ignored, because CUDA base images set it at build time, on CPU hosts too.

Any of them and no usable CUDA is a `ConfigError` naming the torch build's CUDA, the driver's
version, and the two ways out. An explicit `device: cpu` still trains on the CPU.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skyops.errors import ConfigError

DRIVER_FILE = Path("/proc/driver/nvidia/version")  # written by the NVIDIA kernel module; visible in containers
# The oldest Linux driver each CUDA major version runs on (NVIDIA's minor-version compatibility):
# a build for CUDA 12.x runs on any driver from 525.60.13, one for CUDA 13.x needs the R580 branch.
MIN_DRIVER = {11: (450, 80, 2), 12: (525, 60, 13), 13: (580,)}
_GPU_FILE = re.compile(r"nvidia\d+")
_DRIVER = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)")  # "...Kernel Module  535.183.01  Sun May ..."
_NAMED_GPU = re.compile(r"\d+|(?:MIG-)?GPU-[0-9a-fA-F-]+")  # an index or a UUID, as the runtime writes them


@dataclass(frozen=True)
class HostGpus:
    """What the host says about NVIDIA GPUs, asked without torch.

    evidence: one line per sign of a GPU ("/dev/nvidia0", "nvidia-smi: Tesla T4"); empty without one.
    driver: the NVIDIA driver's version ("535.183.01"), '' when the host does not say.
    """

    evidence: tuple[str, ...]
    driver: str


@dataclass(frozen=True)
class TorchCuda:
    """What the installed torch says. cuda: the CUDA version it was built for ("12.6"), None for a CPU build."""

    version: str
    cuda: str | None
    available: bool
    count: int


def host_gpus(
    *,
    dev_dir: Path = Path("/dev"),
    environ: Mapping[str, str] | None = None,
    driver_file: Path = DRIVER_FILE,
    nvidia_smi: str | None = "",
) -> HostGpus:
    """Look for NVIDIA GPUs the way the module docstring says (every input can be given, for tests).

    Args:
        nvidia_smi: path of the nvidia-smi executable; '' finds it on PATH, None skips it.
    """
    environ = os.environ if environ is None else environ
    evidence = [str(dev_dir / name) for name in sorted(os.listdir(dev_dir)) if _GPU_FILE.fullmatch(name)] if dev_dir.is_dir() else []
    driver = _driver_from_file(driver_file)
    smi = shutil.which("nvidia-smi") if nvidia_smi == "" else nvidia_smi
    for name, version in _ask_nvidia_smi(smi) if smi else []:
        evidence.append(f"nvidia-smi: {name}")
        driver = driver or version
    visible = environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if visible and all(_NAMED_GPU.fullmatch(part.strip()) for part in visible.split(",")):
        evidence.append(f"NVIDIA_VISIBLE_DEVICES={visible}")
    return HostGpus(tuple(evidence), driver)


def torch_cuda() -> TorchCuda:
    import torch  # heavy; only when `auto` has to choose

    available = torch.cuda.is_available()
    return TorchCuda(torch.__version__, torch.version.cuda, available, torch.cuda.device_count() if available else 0)


def resolve_device(device: str, *, torch_state: TorchCuda | None = None, host: HostGpus | None = None) -> str:
    """'auto' -> every CUDA GPU ('0', '0,1', ...), else 'cpu' when the host has no NVIDIA GPU; others unchanged.

    Raises:
        ConfigError: `auto`, the host has an NVIDIA GPU, and torch cannot use it (see the module docstring).
    """
    if device != "auto":
        return device
    torch_state = torch_state or torch_cuda()
    if torch_state.available and torch_state.count:
        return ",".join(str(i) for i in range(torch_state.count))
    host = host or host_gpus()
    if host.evidence:
        raise ConfigError(unusable_gpu_message(torch_state, host), hint=UNUSABLE_GPU_HINT)
    return "cpu"


UNUSABLE_GPU_HINT = (
    "run an image whose torch build matches the driver (docker/Dockerfile installs the CUDA 12.6 build, for drivers "
    "from 525.60.13), or set the train step's device to cpu to train on the CPU on purpose"
)


def unusable_gpu_message(torch_state: TorchCuda, host: HostGpus) -> str:
    """What failed and why: the GPU found, the CUDA the torch build needs, and the driver the host has."""
    found = f"device auto: this machine has an NVIDIA GPU ({', '.join(host.evidence)}) but torch {torch_state.version} cannot use it"
    if torch_state.cuda is None:
        return f"{found}: it is a CPU-only build"
    needed = MIN_DRIVER.get(int(torch_state.cuda.split(".")[0]))
    floor = "" if needed is None else ".".join(map(str, needed)) if len(needed) > 1 else f"R{needed[0]}"
    built = f"it was built for CUDA {torch_state.cuda}" + (f", which needs NVIDIA driver {floor} or newer" if floor else "")
    if not host.driver:
        return f"{found}: {built}; the driver's version is unknown (no {DRIVER_FILE}, no nvidia-smi)"
    if needed is not None and _version(host.driver) < needed:
        return f"{found}: {built}, and the driver here is {host.driver}"
    return f"{found}: {built}; the driver here, {host.driver}, should do: torch.cuda.is_available() is False for another reason (see torch's warning)"


def _driver_from_file(path: Path) -> str:
    try:
        match = _DRIVER.search(path.read_text(errors="replace"))
    except OSError:
        return ""
    return match[1] if match else ""


def _ask_nvidia_smi(executable: str) -> list[tuple[str, str]]:
    """(name, driver version) per GPU nvidia-smi lists; [] when it fails (no GPU, no driver, a hung tool)."""
    try:
        done = subprocess.run(
            [executable, "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    rows = [line.rsplit(",", 1) for line in done.stdout.splitlines() if "," in line]
    return [(name.strip(), version.strip()) for name, version in rows]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))
