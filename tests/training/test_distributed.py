"""The scale-out launcher: the world it reads from SageMaker, rank 0's decisions reaching every rank, and
two real CPU ranks (gloo) training one model through torchrun: only rank 0 writes, a kill resumes on both."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from skyops.errors import ConfigError
from skyops.training import distributed
from skyops.training.distributed import Rank, World, sagemaker_world

ROOT = Path(__file__).resolve().parents[2]


def test_sagemaker_hosts_give_nodes_node_rank_and_the_first_host_as_master() -> None:
    environ = {"SM_HOSTS": '["algo-2", "algo-1", "algo-3"]', "SM_CURRENT_HOST": "algo-3", "SM_NUM_GPUS": "4"}
    assert sagemaker_world(environ, Path("/nonexistent")) == World(nnodes=3, node_rank=2, nproc_per_node=4, master_addr="algo-1")


def test_without_the_toolkits_variables_resourceconfig_and_the_local_gpus_decide(tmp_path: Path) -> None:
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}))
    assert sagemaker_world({}, config, local_gpus=lambda: 0) == World(nnodes=2, node_rank=0, nproc_per_node=1, master_addr="algo-1")
    assert sagemaker_world({}, config, local_gpus=lambda: 8).nproc_per_node == 8  # type: ignore[union-attr]


def test_outside_sagemaker_there_is_no_sagemaker_world(tmp_path: Path) -> None:
    assert sagemaker_world({}, tmp_path / "resourceconfig.json") is None


def test_a_current_host_outside_the_host_list_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"SM_HOSTS: the current host 'algo-9' is not among the hosts \['algo-1', 'algo-2'\]"):
        sagemaker_world({"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-9"}, Path("/nonexistent"))


def test_a_malformed_host_list_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"SM_HOSTS: expected a JSON list of host names"):
        sagemaker_world({"SM_HOSTS": "algo-1,algo-2", "SM_CURRENT_HOST": "algo-1"}, Path("/nonexistent"))


def test_the_torchrun_command_names_the_whole_world() -> None:
    world = World(nnodes=2, node_rank=1, nproc_per_node=4, master_addr="algo-1", master_port=29500)
    assert world.command("skyops.steps.train", ["--x", "1"])[1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--node_rank=1",
        "--nproc_per_node=4",
        "--master_addr=algo-1",
        "--master_port=29500",
        "-m",
        "skyops.steps.train",
        "--x",
        "1",
    ]
    assert world.size == 8


def test_rank_comes_from_torchruns_variables() -> None:
    assert distributed.current({}) == Rank()
    assert distributed.current({"WORLD_SIZE": "1", "RANK": "0"}).distributed is False
    follower = distributed.current({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (follower.rank, follower.local_rank, follower.world_size, follower.writer) == (3, 1, 4, False)
    assert distributed.current({"WORLD_SIZE": "4", "RANK": "0", "LOCAL_RANK": "0"}).writer


AGREE = """
import sys
from skyops.training import distributed
rank = int(sys.argv[1])
environ = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": sys.argv[2], "TORCHELASTIC_RUN_ID": "t", "TORCHELASTIC_RESTART_COUNT": "0"}
mine = ("resume", b"checkpoint bytes") if rank == 0 else ("fresh", None)
print(distributed.agree(mine, distributed.Rank(rank, rank, 2), environ))
"""


def test_every_rank_gets_rank_zeros_value_through_a_real_store() -> None:
    with socket.socket() as s:  # a free port for the store rank 0 hosts (no torchrun agent here)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", AGREE, str(r), str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for r in (0, 1)
    ]
    try:
        outs = [p.communicate(timeout=120) for p in ranks]
    finally:
        for p in ranks:
            p.kill()  # a rank left waiting for the other must not outlive the test
    assert [p.returncode for p in ranks] == [0, 0], outs
    assert [out for out, _ in outs] == ["('resume', b'checkpoint bytes')\n"] * 2


def test_one_process_agrees_with_itself_without_a_store() -> None:
    assert distributed.agree(["x"], Rank()) == ["x"]


def _launch(tmp_path: Path, data_yaml: Path, state: Path, epochs: int) -> subprocess.Popen[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    command = [sys.executable, "-m", "skyops.training.distributed", "--nproc-per-node", "2", "--master-port", str(port)]
    command += ["tests.training.distributed_worker", str(data_yaml), str(tmp_path), str(state), str(epochs)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


EPOCHS = 4


@pytest.mark.slow
def test_two_cpu_ranks_train_one_model_only_rank_0_writes_and_a_kill_resumes_both(tmp_path: Path, tiny_data_yaml: Path) -> None:
    state = tmp_path / "state"
    first = _launch(tmp_path, tiny_data_yaml, state, epochs=EPOCHS)
    lines: list[str] = []
    try:
        assert first.stdout is not None
        for line in first.stdout:  # until rank 0 reports epoch 1 (or the run dies)
            lines.append(line)
            if line.strip() == "EPOCH 1":
                break
    finally:
        # The launcher, torchrun and both ranks (torchrun starts each rank in a session of its own): as a lost instance.
        for process in [*psutil.Process(first.pid).children(recursive=True), psutil.Process(first.pid)]:
            process.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    out = "".join(lines)
    assert "EPOCH 1" in out, out
    # Rendezvous: both ranks joined one gloo group of two.
    assert "skyops-distributed: rank 0 of 2 (gloo)" in out and "skyops-distributed: rank 1 of 2 (gloo)" in out, out
    assert (tmp_path / "ckpt-0" / "resume.pt").is_file()

    second = _launch(tmp_path, tiny_data_yaml, state, epochs=EPOCHS)
    out, _ = second.communicate(timeout=900)
    assert second.returncode == 0, out
    done = sorted(line for line in out.splitlines() if line.startswith("DONE"))
    # Both ranks resumed at the epoch after rank 0's last checkpoint (epoch 1, or a later one if the kill came late).
    resumed = int(done[0].split("resumed_from=")[1].split()[0]) if "resumed_from=None" not in done[0] else 0
    assert 2 <= resumed <= EPOCHS, out
    assert done == [f"DONE rank=0 world=2 resumed_from={resumed} writer=True", f"DONE rank=1 world=2 resumed_from={resumed} writer=False"]
    # Rank 0 alone reports epochs, those trained after the resume; results.csv holds every epoch once.
    assert [line for line in out.splitlines() if line.startswith("EPOCH")] == [f"EPOCH {e}" for e in range(resumed, EPOCHS + 1)], out
    assert sorted(p.name for p in (tmp_path / "out-0").iterdir()) == ["args.yaml", "best.pt", "last.pt", "plots", "results.csv"]
    rows = (tmp_path / "out-0" / "results.csv").read_text().splitlines()[1:]
    assert [int(float(row.split(",")[0])) for row in rows] == list(range(1, EPOCHS + 1))
    # Rank 1 wrote nothing: no checkpoint folder, no output folder.
    assert not (tmp_path / "ckpt-1").exists() and not (tmp_path / "out-1").exists()
