"""`skyops run PIPELINE -p dataset=s3://...` as a user meets it: the data mirrored through the guard on the first run,
the second run lists the bucket, downloads nothing and is served from the cache; a wrong profile sends nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MotoServer
from .s3_world import PREFIX, Bucket, make_bucket

ROOT = Path(__file__).resolve().parents[2]
READER = """\
name: reader
catalog: tests.pipeline.toysteps
parameters:
  dataset: {type: string, default: ""}
steps:
  - step: node
    inputs:
      a: ${dataset}
"""


@pytest.fixture
def bucket(moto: MotoServer) -> Bucket:
    made = make_bucket(moto)
    made.put(PREFIX + "value.txt", b"v1")
    made.forget_requests()
    return made


def skyops(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}  # the moto fixture's AWS settings included
    return subprocess.run([sys.executable, "-m", "skyops", *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_an_unchanged_bucket_is_listed_not_downloaded_and_the_step_hits_the_cache(tmp_path: Path, bucket: Bucket) -> None:
    pipeline = tmp_path / "reader.yaml"
    pipeline.write_text(READER)
    first = skyops("run", str(pipeline), "-p", f"dataset={bucket.uri()}", state=tmp_path / "state")
    assert first.returncode == 0, first.stderr
    assert bucket.downloads() == [PREFIX + "value.txt"]
    assert "s3://drone-data/visdrone/: 1 objects (2 B), 1 downloaded (2 B), 0 unchanged -> " in first.stdout

    bucket.forget_requests()
    second = skyops("run", str(pipeline), "-p", f"dataset={bucket.uri()}", "--explain-cache", state=tmp_path / "state")
    assert second.returncode == 0, second.stderr
    assert bucket.downloads() == [] and len(bucket.moto.operations) == 1  # one ListObjectsV2
    assert next(line for line in second.stdout.splitlines() if line.startswith("node ")).split()[:2] == ["node", "cached"]

    bucket.put(PREFIX + "value.txt", b"v2")
    bucket.forget_requests()
    third = skyops("run", str(pipeline), "-p", f"dataset={bucket.uri()}", state=tmp_path / "state")
    assert third.returncode == 0, third.stderr
    assert bucket.downloads() == [PREFIX + "value.txt"]
    record = next((tmp_path / "state" / "runs").glob("*/run.json"))  # any record names its input's source
    assert "external s3://drone-data/visdrone/ (local copy " in record.read_text()


def test_a_wrong_profile_makes_zero_requests_and_one_error_line(tmp_path: Path, bucket: Bucket) -> None:
    pipeline = tmp_path / "reader.yaml"
    pipeline.write_text(READER)
    env = {**os.environ, "SKYOPS_STATE_DIR": str(tmp_path / "state"), "SKYOPS_AWS_PROFILE": "prod"}
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(pipeline), "-p", f"dataset={bucket.uri()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "profile 'prod' is not defined" in done.stderr and "Traceback" not in done.stderr
    assert bucket.moto.requests == []
    assert not (tmp_path / "state" / "s3").exists()


PREP = """\
name: prep
catalog: skyops.steps
parameters:
  dataset: {type: string, default: ""}
steps:
  - step: ingest
    inputs:
      source: ${dataset}
  - step: validate
  - step: profile
  - step: split
"""


@pytest.mark.slow
def test_the_real_data_steps_read_the_mirror_and_a_local_folder_of_the_same_files_hits_their_cache(tmp_path: Path, bucket: Bucket) -> None:
    """ingest, validate, profile and split on synthetic scenes from S3: the mirror's read-only hard links are a dataset
    like any other, and its digest is the local folder's (so the same files given as a path are served from the cache)."""
    import json

    local = tmp_path / "scenes"
    made = subprocess.run(
        [sys.executable, "-m", "skyops", "data", "synth", str(local), "--count", "24", "--size", "128"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    names = json.loads((local / "manifest.json").read_text())["names"]
    (local / "data.yaml").write_text(f"names: {json.dumps(names)}\n")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        bucket.put(f"scenes/{path.relative_to(local).as_posix()}", path.read_bytes())
    pipeline = tmp_path / "prep.yaml"
    pipeline.write_text(PREP)
    state = tmp_path / "state"

    first = skyops("run", str(pipeline), "-p", f"dataset={bucket.uri('scenes')}", state=state)
    assert first.returncode == 0, first.stdout + first.stderr
    by_path = skyops("run", str(pipeline), "-p", f"dataset={local}", state=state)
    assert by_path.returncode == 0, by_path.stderr
    table = by_path.stdout[by_path.stdout.index("step ") :].splitlines()[1:5]
    assert [row.split()[:2] for row in table] == [["ingest", "cached"], ["validate", "cached"], ["profile", "cached"], ["split", "cached"]]
