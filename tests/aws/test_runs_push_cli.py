"""`skyops runs push|pull` as a user meets them: a run published and fetched back by two commands; the environment's
bucket as the default destination; no destination at all, or a wrong profile, as one error line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyops.aws.infra import InfraEnvironment
from skyops.aws.infra_outputs import InfraOutputs, outputs_path, save_outputs
from skyops.pipeline.lineage import RunRecord

from .conftest import MotoServer
from .run_world import FILES, OBJECT_BYTES, OBJECTS, make_run, pulled_files
from .s3_world import Bucket, make_bucket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunRecord]:
    state = tmp_path_factory.mktemp("run") / "state"
    return state, make_run(state)


@pytest.fixture
def bucket(moto: MotoServer) -> Bucket:
    made = make_bucket(moto)
    made.forget_requests()
    return made


def skyops(*args: str, state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyops", *args],
        env={**os.environ, "SKYOPS_STATE_DIR": str(state), **env},  # the moto fixture's AWS settings included
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_push_then_pull(run: tuple[Path, RunRecord], bucket: Bucket, tmp_path: Path) -> None:
    state, record = run
    pushed = skyops("runs", "push", "latest", "--to", "s3://drone-data/team", state=state)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.splitlines() == [
        f"uploading {OBJECTS} of {OBJECTS} objects ({OBJECT_BYTES} B) to s3://drone-data/team/",
        f"run       {record.run_id} -> s3://drone-data/team/",
        f"objects   5 files, {OBJECTS} distinct ({OBJECT_BYTES} B): {OBJECTS} uploaded ({OBJECT_BYTES} B), 0 already there",
        f"manifest  s3://drone-data/team/runs/{record.run_id}.json (written)",
        f"next      skyops runs pull {record.run_id} --from s3://drone-data/team/",
    ]
    again = skyops("runs", "push", record.run_id[:10], "--to", "s3://drone-data/team/", state=state)
    assert again.returncode == 0, again.stderr
    assert f"objects   5 files, {OBJECTS} distinct ({OBJECT_BYTES} B): 0 uploaded (0 B), {OBJECTS} already there" in again.stdout
    assert "(already published, the same)" in again.stdout

    pulled = skyops("runs", "pull", record.run_id, "--from", "s3://drone-data/team/", "--into", str(tmp_path / "here"), state=state)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.splitlines()[1:] == [
        f"run       {record.run_id} <- s3://drone-data/team/runs/{record.run_id}.json",
        f"files     5 files, {OBJECTS} objects downloaded ({OBJECT_BYTES} B), every sha256 checked",
        f"into      {tmp_path / 'here' / record.run_id}",
    ]
    assert pulled_files(tmp_path / "here" / record.run_id) == FILES


def test_the_environment_bucket_is_the_default_destination(run: tuple[Path, RunRecord], bucket: Bucket) -> None:
    state, record = run
    env = InfraEnvironment("dev")
    save_outputs(state, InfraOutputs("dev", "ab", "eu-west-1", {"BucketName": "drone-data"}, {}, "2025-01-01T00:00:00+00:00"))
    try:
        pushed = skyops("runs", "push", record.run_id, state=state)
        pulled = skyops("runs", "pull", record.run_id, state=state)
    finally:
        outputs_path(state, env).unlink()
    assert pushed.returncode == 0, pushed.stderr
    assert f"manifest  s3://drone-data/experiments/local-runs/runs/{record.run_id}.json (written)" in pushed.stdout
    assert not any(op == "DescribeStacks" for op in bucket.moto.operations)  # the kept outputs of this profile and region
    assert pulled.returncode == 0, pulled.stderr
    assert pulled_files(state / "imports" / record.run_id) == FILES  # the state folder's imports/ by default


def test_without_a_destination_or_a_stack_one_error_line(run: tuple[Path, RunRecord], bucket: Bucket) -> None:
    state, record = run
    done = skyops("runs", "push", record.run_id, state=state, SKYOPS_INFRA_ENV="nostack")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: no S3 prefix to use: --to is not given and environment 'nostack' has no stack with a bucket (profile ab, region eu-west-1)",
        "hint: give --to s3://BUCKET/PREFIX, or deploy the environment's stacks once (skyops infra deploy): "
        "runs then go to s3://<its bucket>/experiments/local-runs/",
    ]
    assert bucket.moto.operations == ["DescribeStacks"]  # looked for the stack; nothing else


def test_a_wrong_profile_makes_zero_requests_and_one_error_line(run: tuple[Path, RunRecord], bucket: Bucket) -> None:
    state, record = run
    done = skyops("runs", "push", record.run_id, state=state, SKYOPS_AWS_PROFILE="prod")  # the guard decides before the stack is looked up
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and "profile 'prod' is not defined" in done.stderr and "Traceback" not in done.stderr
    assert bucket.moto.requests == []
