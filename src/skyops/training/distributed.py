"""Scale-out training: several processes (GPUs, instances) training one model under torch.distributed.

One launcher for both shapes, `python -m skyops.training.distributed [--nproc-per-node N] MODULE`:

- **Several SageMaker instances** (`TrainingInstanceCount` > 1): the world comes from
  `SM_HOSTS` / `SM_CURRENT_HOST` / `SM_NUM_GPUS` when set (SageMaker's training toolkit sets them;
  skyops' image does not run it), else /opt/ml/input/config/resourceconfig.json, which SageMaker
  writes in every training job, and the GPUs torch sees.
  The first host (sorted) is the master; every instance runs torchrun (`torch.distributed.run`) with
  `--nnodes len(hosts) --node_rank index(current host) --nproc_per_node gpus`.
- **Several GPUs on one machine**: the same torchrun with `--nnodes 1`.

Why torchrun for one machine too, rather than Ultralytics' own DDP (`device="0,1"` spawns its workers
through a pickled trainer, ultralytics/utils/dist.py): its workers run only the trainer, not skyops'
step around it, so nothing agrees on a resume, keeps the run's state file or publishes once; and it
counts only local devices (`world_size = len(device.split(','))`, passed to `init_process_group`),
which is wrong on a second node. Under torchrun every rank runs the whole step; `RANK`/`LOCAL_RANK`/
`WORLD_SIZE` are set, so Ultralytics never spawns, and `DistributedTrainer` corrects its world size to
the global one (and wraps CPU models itself: Ultralytics hands DDP a device index, which torch refuses
for CPU modules, so the gloo path used by the tests would otherwise fail).

Who writes: global rank 0 only. It alone clears, checkpoints (Ultralytics saves on RANK 0 only),
writes resume.pt, the state file, the published outputs, the MLflow run and the audit record. The other
ranks write nothing under the checkpoint or output folders.

Resume that every rank agrees on: rank 0 decides (train._plan over its own checkpoint folder) and
broadcasts the decision together with the checkpoint's bytes; the other ranks resume from a private
copy. Broadcasting, not reading a synced file, because SageMaker's checkpoint folder is per instance
and only rank 0's is current. The broadcast goes through torchrun's key-value store (`agree`), so the
only process group is the one Ultralytics makes for training (nccl on GPU, gloo on CPU).

Tested here on CPU only (two processes, gloo); the GPU path (nccl, several instances) is untested
(docs/training-scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from skyops.errors import ConfigError

RESOURCE_CONFIG = Path("/opt/ml/input/config/resourceconfig.json")  # SageMaker writes it in every training job
MASTER_PORT = 29500  # torchrun's default; free on a SageMaker instance, which runs one job
AGREE_TIMEOUT = timedelta(minutes=30)  # rank 0 may need a while to read a large checkpoint
STORE_CHUNK = 4 * 1024 * 1024  # bytes per store value: torch's TCPStore refuses payloads over 8 MiB

T = TypeVar("T")


@dataclass(frozen=True)
class Rank:
    """This process's place in the world, from torchrun's variables. rank -1: not distributed."""

    rank: int = -1
    local_rank: int = -1
    world_size: int = 1

    @property
    def writer(self) -> bool:
        """Whether this process writes checkpoints, state and outputs (global rank 0, or the only process)."""
        return self.rank in (-1, 0)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current(environ: Mapping[str, str] | None = None) -> Rank:
    """The Rank of this process (Ultralytics reads the same variables the same way)."""
    environ = os.environ if environ is None else environ
    world = int(environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Rank()
    return Rank(int(environ.get("RANK", "0")), int(environ.get("LOCAL_RANK", "0")), world)


@dataclass(frozen=True, kw_only=True)
class World:
    """How torchrun is started on this machine."""

    nnodes: int
    node_rank: int
    nproc_per_node: int
    master_addr: str
    master_port: int = MASTER_PORT

    @property
    def size(self) -> int:
        return self.nnodes * self.nproc_per_node

    def command(self, module: str, args: Sequence[str] = ()) -> list[str]:
        """The torchrun command running `python -m module args` once per local process."""
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nnodes={self.nnodes}",
            f"--node_rank={self.node_rank}",
            f"--nproc_per_node={self.nproc_per_node}",
            f"--master_addr={self.master_addr}",
            f"--master_port={self.master_port}",
            "-m",
            module,
            *args,
        ]


def sagemaker_world(
    environ: Mapping[str, str],
    resource_config: Path = RESOURCE_CONFIG,
    *,
    nproc: int | None = None,
    local_gpus: Callable[[], int] | None = None,
) -> World | None:
    """The world of a SageMaker training job, or None outside one.

    Args:
        environ: SM_HOSTS (JSON list), SM_CURRENT_HOST, SM_NUM_GPUS, as the training toolkit sets them.
        resource_config: read when SM_HOSTS is not set (SageMaker writes it in every job).
        nproc: processes per instance; default SM_NUM_GPUS (set by SageMaker's training toolkit, which
            skyops' image does not run), else the GPUs torch sees; at least 1 (a CPU instance runs one).
        local_gpus: counts this machine's GPUs (for tests); default: torch.

    Raises:
        ConfigError: the host list is malformed or does not name the current host.
    """
    if environ.get("SM_HOSTS"):
        source = "SM_HOSTS"
        hosts, host = _json_list(environ["SM_HOSTS"], source), environ.get("SM_CURRENT_HOST", "")
    elif resource_config.is_file():
        source = str(resource_config)
        config = json.loads(resource_config.read_text())
        hosts, host = _json_list(json.dumps(config.get("hosts")), source), str(config.get("current_host", ""))
    else:
        return None
    hosts = sorted(hosts)
    if host not in hosts:
        raise ConfigError(
            f"{source}: the current host {host!r} is not among the hosts {hosts}",
            hint="SageMaker sets both; outside SageMaker, unset SM_HOSTS",
        )
    if nproc is None:
        nproc = int(environ["SM_NUM_GPUS"]) if environ.get("SM_NUM_GPUS") else (local_gpus or _local_gpus)()
    return World(nnodes=len(hosts), node_rank=hosts.index(host), nproc_per_node=max(nproc, 1), master_addr=hosts[0])


def _json_list(text: str, source: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not value or not all(isinstance(h, str) for h in value):
        raise ConfigError(f'{source}: expected a JSON list of host names like ["algo-1", "algo-2"], got {text!r}')
    return value


def agree(value: T, rank: Rank, environ: Mapping[str, str] | None = None) -> T:
    """Rank 0's `value` on every rank (other ranks' `value` is ignored); `value` itself when not distributed.

    Goes through torchrun's key-value store (a TCPStore at MASTER_ADDR:MASTER_PORT, which the torchrun
    agent hosts), not a process group: a second gloo group made after a first one was destroyed fails
    to connect (stale keys), and Ultralytics must make the training's own group afterwards.
    Values are pickled (only ever exchanged between the ranks of one job) and sent in chunks of
    STORE_CHUNK bytes: a YOLO11n checkpoint with its optimizer state is ~26 MB, an 11x one ~10x that.
    """
    if not rank.distributed:
        return value
    import pickle

    from torch.distributed import TCPStore  # heavy; only in a distributed run

    environ = os.environ if environ is None else environ
    agent = environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = TCPStore(environ["MASTER_ADDR"], int(environ["MASTER_PORT"]), is_master=rank.writer and not agent, timeout=AGREE_TIMEOUT)
    key = f"skyops/agree/{environ.get('TORCHELASTIC_RUN_ID', '')}/{environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if rank.writer:
        data = pickle.dumps(value)
        chunks = [data[i : i + STORE_CHUNK] for i in range(0, len(data), STORE_CHUNK)] or [b""]
        for i, chunk in enumerate(chunks):
            store.set(f"{key}/{i}", chunk)  # type: ignore[arg-type]  # the stub says str; the store keeps bytes
        store.set(f"{key}/chunks", str(len(chunks)))  # last: a follower that sees it finds every chunk
        # Until every follower has read it: without torchrun's agent, this process hosts the store.
        store.wait([f"{key}/read/{r}" for r in range(1, rank.world_size)])
        return value
    count = int(store.get(f"{key}/chunks"))  # blocks until rank 0 has set it
    agreed = pickle.loads(b"".join(store.get(f"{key}/{i}") for i in range(count)))
    store.set(f"{key}/read/{rank.rank}", "1")
    return agreed


def trainer_class() -> type:
    """Ultralytics' detection trainer, fit to run as one rank of a torchrun world (see the module docstring)."""
    import torch.distributed as dist
    from torch import nn
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import strip_optimizer

    class DistributedTrainer(DetectionTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            rank = current()
            if rank.distributed:
                self.world_size = rank.world_size  # global; Ultralytics counts this node's devices (0 on CPU)
                self.ddp = False  # already a worker: never spawn another world

        def _setup_ddp(self) -> None:
            rank = current()
            if self.device.type != "cpu":
                super()._setup_ddp()
            else:
                dist.init_process_group("gloo", rank=rank.rank, world_size=rank.world_size, timeout=AGREE_TIMEOUT)
            print(f"skyops-distributed: rank {dist.get_rank()} of {dist.get_world_size()} ({dist.get_backend()})", flush=True)

        def final_eval(self) -> None:
            # Ultralytics validates best.pt on every rank, gathering to rank 0: each rank must see best.pt, which
            # on separate instances only rank 0 has, and its validator expects a CUDA device on a DDP rank. So a
            # distributed run leaves the group once every rank is done, rank 0 strips the optimizer state as
            # Ultralytics would, and validating best.pt is left to the evaluate step (final_metrics stays {}).
            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()
            if current().writer:
                for weights in (self.last, self.best):
                    if weights.is_file():
                        strip_optimizer(weights)

        def _setup_train(self) -> None:
            if self.device.type != "cpu" or self.world_size <= 1:
                super()._setup_train()
                return
            # Ultralytics would wrap with device_ids=[None], which torch refuses for a CPU module: wrap here instead.
            # Each rank then loads `batch` images per step (Ultralytics divides it by the world on GPU).
            world, self.world_size = self.world_size, 1
            try:
                super()._setup_train()
            finally:
                self.world_size = world
            self.model = nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)  # type: ignore[assignment]

    return DistributedTrainer


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """`python -m skyops.training.distributed [--nproc-per-node N] MODULE [ARGS...]`: run MODULE on every rank."""
    import subprocess

    parser = argparse.ArgumentParser(prog="python -m skyops.training.distributed", description=main.__doc__)
    parser.add_argument("--nproc-per-node", type=int, default=None, help="processes on this machine (default: its GPUs, at least 1)")
    parser.add_argument("--master-port", type=int, default=MASTER_PORT)
    parser.add_argument("module")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    given = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    world = sagemaker_world(environ, nproc=given.nproc_per_node)
    if world is None:
        world = World(nnodes=1, node_rank=0, nproc_per_node=given.nproc_per_node or _local_gpus(), master_addr="127.0.0.1")
    world = World(
        nnodes=world.nnodes,
        node_rank=world.node_rank,
        nproc_per_node=world.nproc_per_node,
        master_addr=world.master_addr,
        master_port=given.master_port,
    )
    print(
        f"skyops-distributed: {world.nnodes} node(s) x {world.nproc_per_node} process(es); node {world.node_rank}, master {world.master_addr}",
        flush=True,
    )
    command = world.command(given.module, given.args) if world.size > 1 else [sys.executable, "-m", given.module, *given.args]
    return subprocess.run(command, check=False).returncode


def _local_gpus() -> int:
    import torch  # heavy; only to count GPUs when not told

    return max(torch.cuda.device_count() if torch.cuda.is_available() else 0, 1)


if __name__ == "__main__":
    sys.exit(main())
