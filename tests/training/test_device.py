"""`device: auto`: every GPU torch can use, the CPU on a machine without one, a clear error for a GPU torch cannot use.

No GPU here: the host's answers (device files, nvidia-smi, the driver file, the environment) are
made in tmp_path, and torch's answer is given as a `TorchCuda`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyops.errors import ConfigError
from skyops.training.device import HostGpus, TorchCuda, host_gpus, resolve_device, torch_cuda

CUDA13 = TorchCuda("2.14.1+cu130", "13.0", available=False, count=0)  # PyPI's build on an old driver
NO_GPU = HostGpus((), "")
T4_ON_R535 = HostGpus(("/dev/nvidia0",), "535.183.01")


def fake_host(root: Path, *, gpus: int = 0, driver_line: str = "", smi_rows: str | None = None) -> dict[str, object]:
    """A /dev with `gpus` nvidia<N> files (plus the control files every driver install has), a driver file, and an nvidia-smi."""
    dev = root / "dev"
    dev.mkdir()
    for name in ("nvidiactl", "nvidia-uvm", *(f"nvidia{i}" for i in range(gpus))):
        (dev / name).touch()
    driver_file = root / "version"
    if driver_line:
        driver_file.write_text(driver_line)
    smi: str | None = None
    if smi_rows is not None:
        script = root / "nvidia-smi"
        script.write_text(f"#!/bin/sh\nprintf '%s' '{smi_rows}'\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        smi = str(script)
    return {"dev_dir": dev, "driver_file": driver_file, "nvidia_smi": smi, "environ": {}}


@given(st.integers(min_value=1, max_value=16))
def test_auto_takes_every_gpu_torch_can_use(count: int) -> None:
    usable = TorchCuda("2.14.1+cu126", "12.6", available=True, count=count)
    assert resolve_device("auto", torch_state=usable, host=T4_ON_R535) == ",".join(map(str, range(count)))


def test_auto_is_the_cpu_on_a_machine_without_an_nvidia_gpu() -> None:
    assert resolve_device("auto", torch_state=CUDA13, host=NO_GPU) == "cpu"


def test_a_gpu_torch_cannot_use_stops_auto_with_what_why_and_how() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_device("auto", torch_state=CUDA13, host=T4_ON_R535)
    assert caught.value.message == (
        "device auto: this machine has an NVIDIA GPU (/dev/nvidia0) but torch 2.14.1+cu130 cannot use it: "
        "it was built for CUDA 13.0, which needs NVIDIA driver R580 or newer, and the driver here is 535.183.01"
    )
    assert "CUDA 12.6 build" in caught.value.hint and "device to cpu" in caught.value.hint


def test_an_explicit_device_is_kept_even_when_the_gpu_is_unusable() -> None:
    assert resolve_device("cpu", torch_state=CUDA13, host=T4_ON_R535) == "cpu"
    assert resolve_device("0,1", torch_state=CUDA13, host=T4_ON_R535) == "0,1"  # Ultralytics refuses a bad index itself


@pytest.mark.parametrize(
    ("torch_state", "host", "ending"),
    [
        (TorchCuda("2.14.1+cpu", None, False, 0), T4_ON_R535, "cannot use it: it is a CPU-only build"),
        (CUDA13, HostGpus(("/dev/nvidia0",), ""), "; the driver's version is unknown (no /proc/driver/nvidia/version, no nvidia-smi)"),
        (
            TorchCuda("2.14.1+cu126", "12.6", False, 0),
            T4_ON_R535,
            "which needs NVIDIA driver 525.60.13 or newer; the driver here, 535.183.01, should do: "
            "torch.cuda.is_available() is False for another reason (see torch's warning)",
        ),
    ],
)
def test_the_message_says_what_is_known_about_the_mismatch(torch_state: TorchCuda, host: HostGpus, ending: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_device("auto", torch_state=torch_state, host=host)
    assert caught.value.message.endswith(ending)


def test_device_files_and_the_driver_file_are_read(tmp_path: Path) -> None:
    host = host_gpus(
        **fake_host(
            tmp_path, gpus=2, driver_line="NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
        )
    )
    assert host == HostGpus((str(tmp_path / "dev" / "nvidia0"), str(tmp_path / "dev" / "nvidia1")), "535.183.01")


def test_the_open_kernel_modules_driver_line_is_read(tmp_path: Path) -> None:
    line = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder@U16-I3-B03-4-3)\n"
    assert host_gpus(**fake_host(tmp_path, gpus=1, driver_line=line)).driver == "570.86.15"


def test_control_files_alone_are_no_gpu(tmp_path: Path) -> None:
    assert host_gpus(**fake_host(tmp_path)) == NO_GPU  # nvidiactl and nvidia-uvm exist wherever the driver is installed


def test_nvidia_smi_lists_gpus_and_their_driver(tmp_path: Path) -> None:
    host = host_gpus(**fake_host(tmp_path, smi_rows="Tesla T4, 535.183.01\nTesla T4, 535.183.01\n"))
    assert host == HostGpus(("nvidia-smi: Tesla T4", "nvidia-smi: Tesla T4"), "535.183.01")


def test_a_failing_nvidia_smi_is_no_gpu(tmp_path: Path) -> None:
    parts = fake_host(tmp_path, smi_rows="")
    Path(str(parts["nvidia_smi"])).write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert host_gpus(**parts) == NO_GPU


@pytest.mark.parametrize(
    ("value", "names_a_gpu"),
    [
        ("0", True),
        ("0,1", True),
        ("GPU-8f3c2a1e-1b2c-4d5e-9f00-123456789abc", True),
        ("all", False),
        ("none", False),
        ("void", False),
        ("", False),
    ],
)
def test_nvidia_visible_devices_counts_when_it_names_gpus(tmp_path: Path, value: str, names_a_gpu: bool) -> None:
    parts = fake_host(tmp_path)
    host = host_gpus(**{**parts, "environ": {"NVIDIA_VISIBLE_DEVICES": value}})
    assert host.evidence == ((f"NVIDIA_VISIBLE_DEVICES={value}",) if names_a_gpu else ())


def test_this_machine_trains_on_the_cpu() -> None:
    # The real probes on a machine without a GPU: auto must pick the CPU rather than raise.
    if any(name.startswith("nvidia") and name[6:].isdigit() for name in os.listdir("/dev")):
        pytest.skip("this machine has an NVIDIA GPU")
    assert resolve_device("auto", torch_state=torch_cuda(), host=host_gpus(environ={})) == "cpu"
