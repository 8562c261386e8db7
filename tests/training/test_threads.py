"""Thread count: what `threads` means on this machine, and that training keeps it from start to final validation."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.training.threads import OPENMP_SPIN, OPENMP_SPIN_VARIABLE, resolve_threads, usable_cpus
from skyops.training.train import TrainConfig, run_identity, train, ultralytics_args


def affinity() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", affinity()),  # no quota
        ("50000 100000\n", 1),  # half a core: still one thread
        ("100000 100000\n", 1),
        (f"{affinity() * 300000} 100000\n", affinity()),  # a quota above the CPU set does not add cores
    ],
)
def test_usable_cpus_is_the_cpu_set_capped_by_the_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert usable_cpus(tmp_path / "cpu.max") == expected


def test_usable_cpus_without_a_cgroup_file_is_the_cpu_set(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "absent") == affinity()


def test_threads_zero_means_every_usable_cpu_and_a_count_means_that_count() -> None:
    assert resolve_threads(0) == usable_cpus()
    assert resolve_threads(3) == 3
    with pytest.raises(ValueError, match=r"threads must be 0 \(every usable CPU\) or positive, got -1"):
        resolve_threads(-1)


def test_threads_is_neither_an_ultralytics_argument_nor_part_of_the_resume_identity() -> None:
    assert "threads" not in ultralytics_args(TrainConfig(threads=3), Path("/data.yaml"), "cpu")
    assert run_identity(TrainConfig(threads=3), "data") == run_identity(TrainConfig(), "data")


def test_training_and_its_validations_run_on_every_core(
    tmp_path: Path, tiny_data_yaml: Path, tiny_config: TrainConfig, ultra_state: Path, threads_seen: Callable[..., list[tuple[str, int]]]
) -> None:
    """Ultralytics sets cores - 1 threads (one on 2 cores) when its trainer, and the final validation of best.pt, pick the CPU."""
    from ultralytics.utils import NUM_THREADS

    if usable_cpus() == NUM_THREADS:
        pytest.skip(f"on {usable_cpus()} cores Ultralytics' count is ours already: the test could not fail")
    import torch

    before = torch.get_num_threads()
    seen = threads_seen("on_train_batch_end", "on_val_batch_end")
    result = train(tiny_data_yaml, tiny_config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state)

    assert result.threads == usable_cpus()
    assert set(seen) == {
        ("on_train_batch_end", usable_cpus()),
        ("on_val_batch_end", usable_cpus()),  # the validation of each epoch
        ("on_val_batch_end (standalone)", usable_cpus()),  # best.pt after the last epoch
    }
    assert torch.get_num_threads() == before  # the caller's own setting is back


RunPython = Callable[..., subprocess.CompletedProcess[str]]  # the run_python fixture (conftest.py)
REPORT = """
import os
from skyops.training.threads import openmp_set_by_skyops, openmp_spin, torch_threads
with torch_threads(2), torch_threads(2):  # the warning, if any, comes once
    pass
print(os.environ.get("GOMP_SPINCOUNT"), "|", openmp_spin(), "|", openmp_set_by_skyops())
"""


def test_importing_skyops_training_before_torch_sets_the_openmp_spin_count_for_torch_and_its_children(run_python: RunPython) -> None:
    done = run_python("import skyops.training, torch\n" + REPORT, unset=(OPENMP_SPIN_VARIABLE,))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == f"{OPENMP_SPIN} | {OPENMP_SPIN} | True"
    assert "OpenMP" not in done.stderr


def test_a_spin_count_the_user_set_is_kept(run_python: RunPython) -> None:
    done = run_python("import torch\n" + REPORT, env={OPENMP_SPIN_VARIABLE: "1000000"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "1000000 | 1000000 | False"  # set before torch loaded: in effect
    assert "OpenMP" not in done.stderr


def test_torch_imported_first_is_recorded_and_warned_about_once_where_threads_are_set(run_python: RunPython) -> None:
    done = run_python("import torch\n" + REPORT, unset=(OPENMP_SPIN_VARIABLE,))
    assert done.returncode == 0, done.stderr
    # The variable is set for the processes this one starts; this one's libgomp had read its environment already.
    assert done.stdout.split("\n")[0] == f"{OPENMP_SPIN} | libgomp default (torch loaded first) | True"
    assert done.stderr.count("torch was imported before skyops.training") == 1, done.stderr
    assert f"set GOMP_SPINCOUNT={OPENMP_SPIN} before torch" in done.stderr
