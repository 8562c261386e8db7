"""A CPU training runs its model and EMA channels-last (skyops.training.memory_format), and still learns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from skyops.training.memory_format import CHANNELS_LAST, CONTIGUOUS
from skyops.training.train import TrainConfig, _memory_format, train


def test_a_cpu_training_converts_model_and_ema_and_its_optimizer_keeps_updating_them(
    tmp_path: Path, tiny_data_yaml: Path, tiny_config: TrainConfig, ultra_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(ultra_state)
    import torch
    from ultralytics.utils import callbacks

    seen: list[tuple[bool, bool, bool, float]] = []

    def record(trainer: object) -> None:  # after each batch: the first convolution's weight, as the optimizer sees it
        weight = trainer.model.model[0].conv.weight  # type: ignore[attr-defined]
        optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}  # type: ignore[attr-defined]
        ema_weight = trainer.ema.ema.model[0].conv.weight  # type: ignore[attr-defined]
        seen.append(
            (
                weight.is_contiguous(memory_format=torch.channels_last),
                ema_weight.is_contiguous(memory_format=torch.channels_last),
                id(weight) in optimized,
                float(weight.detach().sum()),
            )
        )

    monkeypatch.setitem(callbacks.default_callbacks, "on_train_batch_end", [*callbacks.default_callbacks["on_train_batch_end"], record])
    config = dataclasses.replace(tiny_config, nbs=tiny_config.batch)  # an optimizer step every batch (nbs 64: none after the first)
    result = train(tiny_data_yaml, config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state)

    assert result.memory_format == CHANNELS_LAST
    assert len(seen) == 4  # 8 images at batch 4, 2 epochs
    assert all(s[:3] == (True, True, True) for s in seen)  # converted, and still the optimizer's parameter
    assert len({s[3] for s in seen[1:]}) == 3  # ... which it updated at each step (the first one's learning rate is 0)


def test_only_a_cpu_training_in_one_process_changes_the_layout() -> None:
    assert _memory_format("cpu", distributed_run=False) == CHANNELS_LAST
    assert _memory_format("cpu", distributed_run=True) == CONTIGUOUS  # DDP laid out its gradient buckets already
    assert _memory_format("0", distributed_run=False) == CONTIGUOUS  # the GPU path is untested here: Ultralytics' layout
