"""One rank of a distributed test training: `python -m tests.training.distributed_worker DATA_YAML ROOT STATE EPOCHS`.

Each rank gets its own checkpoint and output folder (as on separate SageMaker instances), so the test
can see that only rank 0 writes. Prints, flushed: `EPOCH n` per epoch (rank 0 only: on_epoch runs
on the writer), then `DONE rank=R world=W resumed_from=E writer=B`, with W the size of the process
world torchrun set up (the process group itself prints `skyops-distributed: rank R of W (gloo)`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from skyops.training import distributed
from skyops.training.train import TrainConfig, train


def main() -> None:
    data_yaml, root, state, epochs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    rank = distributed.current()
    config = TrainConfig(epochs=epochs, imgsz=64, batch=4, workers=0, device="cpu", mosaic=0.0)
    result = train(
        data_yaml,
        config,
        out_dir=root / f"out-{rank.rank}",
        checkpoint_dir=root / f"ckpt-{rank.rank}",
        state_dir=state,
        on_epoch=lambda e: print(f"EPOCH {e.epoch}", flush=True),
    )

    print(f"DONE rank={rank.rank} world={rank.world_size} resumed_from={result.resumed_from_epoch} writer={result.writer}", flush=True)


if __name__ == "__main__":
    main()
