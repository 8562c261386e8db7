"""Training on tiny data: outputs, per-epoch progress, resume after SIGKILL, finishing a crashed run."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skyops.errors import ConfigError, DataValidationError
from skyops.pipeline.config import build_config
from skyops.training.tracking import TrackingStore
from skyops.training.train import EpochMetrics, TrainConfig, _read_results, publish, run_identity, train, ultralytics_args

# The child trains 3 epochs and stops for good inside the epoch-1 callback, which runs after
# Ultralytics saved last.pt and skyops copied it to resume.pt: the SIGKILL lands after epoch 1.
KILLED_AFTER_EPOCH_1 = """
import sys, time
from pathlib import Path
from skyops.training.train import TrainConfig, train

def stall(epoch):
    print("EPOCH", epoch.epoch, flush=True)
    time.sleep(600)

data_yaml, work, state = (Path(p) for p in sys.argv[1:4])
config = TrainConfig(epochs=3, imgsz=64, batch=4, workers=0, device="cpu", mosaic=0.0)
train(data_yaml, config, out_dir=work / "out", checkpoint_dir=work / "ckpt", state_dir=state, on_epoch=stall)
"""


def epochs_in(results_csv: Path) -> list[int]:
    return [row.epoch for row in _read_results(results_csv)]


def test_train_publishes_weights_metrics_and_plots(
    tmp_path: Path, tiny_data_yaml: Path, tiny_config: TrainConfig, ultra_state: Path
) -> None:
    seen: list[EpochMetrics] = []
    result = train(
        tiny_data_yaml, tiny_config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state, on_epoch=seen.append
    )

    assert [e.epoch for e in seen] == [1, 2]
    assert "metrics/mAP50-95(B)" in seen[0].metrics and "train/box_loss" in seen[0].metrics
    assert result.epochs_completed == 2 and result.resumed_from_epoch is None and result.device == "cpu"
    assert [e.epoch for e in result.epochs] == [1, 2]
    assert result.epochs[1].metrics["train/box_loss"] == pytest.approx(seen[1].metrics["train/box_loss"], abs=1e-5)
    assert "metrics/mAP50(B)" in result.final_metrics
    assert result.best_weights == tmp_path / "out" / "best.pt" and result.best_weights.stat().st_size > 1_000_000
    assert (tmp_path / "out" / "last.pt").is_file() and (tmp_path / "out" / "args.yaml").is_file()
    assert epochs_in(result.results_csv) == [1, 2]
    assert {"results.png", "labels.jpg"} <= {p.name for p in result.plots}
    assert not (tmp_path / "ckpt" / "resume.pt").exists()  # training state is dropped once finished
    assert result.seconds > 0


def test_a_killed_run_resumes_at_the_next_epoch(tmp_path: Path, tiny_data_yaml: Path, ultra_state: Path) -> None:
    # The data yaml moves between the two calls: the resume must read this call's, not the checkpoint's.
    first_yaml = tmp_path / "first" / "data.yaml"
    first_yaml.parent.mkdir()
    shutil.copyfile(tiny_data_yaml, first_yaml)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_AFTER_EPOCH_1, str(first_yaml), str(tmp_path), str(ultra_state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # blocks until epoch 1 is reported (or the child dies)
        assert line.strip() == "EPOCH 1", child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert epochs_in(tmp_path / "ckpt" / "run" / "results.csv") == [1]
    shutil.rmtree(first_yaml.parent)

    seen: list[int] = []
    config = TrainConfig(epochs=3, imgsz=64, batch=4, workers=0, device="cpu", mosaic=0.0)
    result = train(
        tiny_data_yaml,
        config,
        out_dir=tmp_path / "out",
        checkpoint_dir=tmp_path / "ckpt",
        state_dir=ultra_state,
        on_epoch=lambda e: seen.append(e.epoch),
    )

    assert result.resumed_from_epoch == 2
    assert seen == [2, 3]
    assert epochs_in(result.results_csv) == [1, 2, 3]
    assert [e.epoch for e in result.epochs] == [1, 2, 3]


def test_a_crash_after_the_last_checkpoint_finishes_without_training(
    tmp_path: Path, tiny_data_yaml: Path, tiny_config: TrainConfig, ultra_state: Path, tracking_store: TrackingStore
) -> None:
    import torch

    config = dataclasses.replace(tiny_config, epochs=1)

    def crash(epoch: EpochMetrics) -> None:
        raise RuntimeError(f"crash after epoch {epoch.epoch}")

    with pytest.raises(RuntimeError, match="crash after epoch 1"), tracking_store.tracker("crashes", tags={}) as tracker:
        train(tiny_data_yaml, config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state, on_epoch=crash)
    assert tracking_store.find_runs("crashes")[0].run_id == tracker.run_id
    assert tracking_store.find_runs("crashes")[0].status == "FAILED"

    # `crash` again: any epoch trained now would raise.
    result = train(
        tiny_data_yaml, config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state, on_epoch=crash
    )
    assert result.epochs_completed == 1 and result.resumed_from_epoch is None
    assert torch.load(result.last_weights, weights_only=False)["optimizer"] is None  # finalised like Ultralytics does


def test_an_interrupted_run_with_another_config_is_not_resumed(
    tmp_path: Path, tiny_data_yaml: Path, tiny_config: TrainConfig, ultra_state: Path
) -> None:
    def crash(epoch: EpochMetrics) -> None:
        raise RuntimeError("interrupted")

    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="interrupted"):
        train(tiny_data_yaml, tiny_config, out_dir=out, checkpoint_dir=ckpt, state_dir=ultra_state, on_epoch=crash)
    seen: list[int] = []
    changed = dataclasses.replace(tiny_config, seed=1, epochs=1)
    result = train(
        tiny_data_yaml, changed, out_dir=out, checkpoint_dir=ckpt, state_dir=ultra_state, on_epoch=lambda e: seen.append(e.epoch)
    )
    assert seen == [1] and result.resumed_from_epoch is None
    assert epochs_in(result.results_csv) == [1]


def test_two_epochs_on_real_aerial_data(tmp_path: Path, aerial_cars: Path, ultra_state: Path) -> None:
    data_yaml = tmp_path / "aerial.yaml"
    names = {i: str(i) for i in range(4)}
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(aerial_cars),
                "train": str(aerial_cars / "train" / "images"),
                "val": str(aerial_cars / "valid" / "images"),
                "names": names,
            }
        )
    )
    config = TrainConfig(epochs=2, imgsz=96, batch=16, workers=0, device="cpu")

    result = train(data_yaml, config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state)

    assert [e.epoch for e in result.epochs] == [1, 2]
    losses = [e.metrics["train/box_loss"] for e in result.epochs]
    assert all(loss > 0 for loss in losses)
    assert result.best_weights.is_file()


def test_missing_data_yaml_is_a_clear_error(tmp_path: Path, tiny_config: TrainConfig, ultra_state: Path) -> None:
    with pytest.raises(DataValidationError, match=r"data yaml .*nowhere\.yaml does not exist"):
        train(tmp_path / "nowhere.yaml", tiny_config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state)


def test_missing_start_weights_is_a_clear_error(tmp_path: Path, tiny_data_yaml: Path, tiny_config: TrainConfig, ultra_state: Path) -> None:
    config = dataclasses.replace(tiny_config, weights=str(tmp_path / "gone.pt"))
    with pytest.raises(ConfigError, match=r"weights: .*gone\.pt does not exist"):
        train(tiny_data_yaml, config, out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", state_dir=ultra_state)


def test_config_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError, match=r"3 problems in step 'train'") as caught:
        build_config(TrainConfig, {"device": "gpu", "imgsz": "100", "weights": "model.onnx"}, where="step 'train'")
    assert caught.value.problems == [
        "device: expected 'auto', 'cpu' or GPU indices like '0' or '0,1', got 'gpu'",
        "imgsz: 100 is not a multiple of 32 (the model's largest stride); use 128",
        "weights: expected a local .pt file, got 'model.onnx'",
    ]


def test_config_bounds_come_from_ranges() -> None:
    with pytest.raises(ConfigError, match=r"mosaic: 1\.5 must be <= 1"):
        build_config(TrainConfig, {"mosaic": "1.5"}, where="step 'train'")


def test_ultralytics_args_are_all_ultralytics_settings(ultra_state: Path) -> None:
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(ultra_state)
    from ultralytics.cfg import DEFAULT_CFG_DICT

    args = ultralytics_args(TrainConfig(), Path("/data.yaml"), "cpu")
    assert set(args) - set(DEFAULT_CFG_DICT) == set()
    assert args["amp"] is False and args["pretrained"] is False
    assert ultralytics_args(TrainConfig(), Path("/data.yaml"), "0")["amp"] is True


def test_a_step_config_subclass_adds_nothing_ultralytics_sees() -> None:
    from skyops.steps.train.script import TrainStepConfig  # the train step's config: TrainConfig plus its own settings

    config = TrainStepConfig(experiment="other")
    assert ultralytics_args(config, Path("/data.yaml"), "cpu") == ultralytics_args(TrainConfig(), Path("/data.yaml"), "cpu")
    assert run_identity(config, "data") == run_identity(TrainConfig(), "data")


def test_identity_ignores_device_and_workers_only() -> None:
    base = TrainConfig()
    same = run_identity(base, "data")
    assert run_identity(dataclasses.replace(base, device="0,1", workers=0, verbose=True), "data") == same
    assert run_identity(dataclasses.replace(base, epochs=51), "data") != same
    assert run_identity(dataclasses.replace(base, mosaic=0.5), "data") != same
    assert run_identity(base, "other data") != same


def ultralytics_run_dir(root: Path, *, best: bool) -> Path:
    """A finished Ultralytics save dir as `publish` reads it (file contents stand in for weights)."""
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "last.pt").write_bytes(b"last")
    if best:
        (root / "weights" / "best.pt").write_bytes(b"best")
    (root / "results.csv").write_text("epoch,metrics/mAP50(B)\n1,0.1\n")
    (root / "results.png").write_bytes(b"png")
    return root


def test_publish_copies_best_and_last_as_they_are(tmp_path: Path) -> None:
    best, last, results, plots = publish(ultralytics_run_dir(tmp_path / "run", best=True), tmp_path / "out")
    assert (best.read_bytes(), last.read_bytes()) == (b"best", b"last")
    assert results.is_file() and [p.name for p in plots] == ["results.png"]


def test_a_run_without_best_pt_is_an_error_not_last_pt_renamed(tmp_path: Path) -> None:
    run = ultralytics_run_dir(tmp_path / "run", best=False)
    with pytest.raises(DataValidationError, match=rf"^training left no best.pt in {run}; expected best.pt \(saved when"):
        publish(run, tmp_path / "out")
    assert not (tmp_path / "out" / "best.pt").exists()
