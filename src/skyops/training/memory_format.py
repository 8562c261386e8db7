"""Channels-last (NHWC) weights for CPU training: oneDNN's convolutions run faster on them.

PyTorch lays a 4-D tensor out as NCHW unless told otherwise; oneDNN, which runs torch's CPU
convolutions, prefers NHWC and converts back and forth around each convolution given NCHW. A
convolution whose weight is channels-last returns a channels-last output, so converting the model is
enough: the layout then carries through the network, forward and backward. Measured on 2 cores (a bare
YOLO11n forward + backward at batch 8, 256 px): 280 -> 215 ms a step on two threads; in the train step
one demo-recipe epoch's batches 17.1-18.2 -> 14.3-15.1 s (docs/training.md). The numbers are the same
computation in another summation order.

Applied only to a CPU training in one process: the GPU path and DDP (whose gradient buckets are laid out
when it wraps the model, before this runs) keep Ultralytics' layout.
"""

from __future__ import annotations

from typing import Any

CHANNELS_LAST = "channels_last"
CONTIGUOUS = "contiguous"  # torch's default NCHW


def train_channels_last(model: Any) -> None:
    """Make an Ultralytics `YOLO` model's trainer convert its model and EMA to channels-last once both exist.

    `Module.to(memory_format=...)` replaces each parameter's data in place, so the optimizer (built
    before `on_pretrain_routine_end`) keeps updating the same parameters; its state is created on the first step,
    in the parameters' layout. Layout is not content: a checkpoint loads as the same weights either way.
    """
    import torch  # heavy; the caller has imported Ultralytics (hence torch) already

    def convert(trainer: Any) -> None:
        trainer.model.to(memory_format=torch.channels_last)
        if trainer.ema is not None:
            trainer.ema.ema.to(memory_format=torch.channels_last)

    model.add_callback("on_pretrain_routine_end", convert)
