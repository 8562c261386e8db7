"""Pushes and pulls SIGKILLed part-way, in a process of their own: a killed push leaves no manifest (readers see no
run) and the next push finishes it, sending only what is missing; a killed pull leaves no run folder, and the next
pull removes what it staged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from skyops.aws.run_manifest import local_run
from skyops.aws.run_store import RunStore
from skyops.aws.session import AwsGuard
from skyops.pipeline.lineage import RunRecord

from .conftest import MotoServer
from .run_world import FILES, OBJECTS, make_run, pulled_files
from .s3_world import Bucket, make_bucket

PREFIX = "team/published/"

KILLER = """
import os, signal, sys
from pathlib import Path
from skyops.aws import run_store
from skyops.aws.run_store import RunStore
from skyops.aws.session import AwsGuard
from skyops.pipeline.lineage import load_record

state, run_id, uri, when = sys.argv[1:5]
calls = []

def counted(original, last):
    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == last:  # SIGKILL: no except, no finally runs
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return dying

store = RunStore(AwsGuard(), workers=1)
if when == "upload":  # the second object's upload is never sent
    RunStore._put_object = counted(RunStore._put_object, 2)
    store.push(load_record(Path(state) / "runs", run_id), uri)
elif when == "manifest":  # every object is uploaded, the manifest never sent
    RunStore._put_manifest = counted(RunStore._put_manifest, 1)
    store.push(load_record(Path(state) / "runs", run_id), uri)
else:  # a pull: the third object half-written into its staging folder
    copy = run_store.copy_stream
    def half(body, out, digests):
        calls.append(1)
        if len(calls) == 3:
            out.write(body.read(2))
            out.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return copy(body, out, digests)
    run_store.copy_stream = half
    store.pull(run_id, uri, Path(state) / "imports")
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunRecord]:
    state = tmp_path_factory.mktemp("run") / "state"
    return state, make_run(state)


@pytest.fixture
def bucket(moto: MotoServer) -> Bucket:
    made = make_bucket(moto)
    made.forget_requests()
    return made


def kill(state: Path, run_id: str, uri: str, when: str) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLER, str(state), run_id, uri, when], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr


def keys(bucket: Bucket) -> list[str]:
    listed = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=PREFIX).get("Contents", [])
    return sorted(item["Key"].removeprefix(PREFIX) for item in listed)


@pytest.mark.parametrize(("when", "uploaded_before"), [("upload", 1), ("manifest", OBJECTS)])
def test_a_killed_push_leaves_no_manifest_and_the_next_push_finishes_it(
    run: tuple[Path, RunRecord], bucket: Bucket, when: str, uploaded_before: int
) -> None:
    state, record = run
    kill(state, record.run_id, bucket.uri(PREFIX), when)
    found = keys(bucket)
    assert not any(key.startswith("runs/") for key in found)  # no reader can see the run yet
    assert len(found) == uploaded_before

    bucket.forget_requests()
    pushed = RunStore(AwsGuard()).push(record, bucket.uri(PREFIX))
    assert (pushed.uploaded, pushed.manifest_written) == (OBJECTS - uploaded_before, True)
    puts = [op for op in bucket.moto.operations if op.startswith("PUT")]
    assert len(puts) == OBJECTS - uploaded_before + 1 and puts[-1].endswith(f"/runs/{record.run_id}.json")
    every = sorted(f"objects/{o.sha256}" for o in local_run(record).objects)
    assert keys(bucket) == [*every, f"runs/{record.run_id}.json"]


def test_a_killed_pull_leaves_no_run_folder_and_the_next_pull_cleans_up(run: tuple[Path, RunRecord], bucket: Bucket) -> None:
    state, record = run
    RunStore(AwsGuard()).push(record, bucket.uri(PREFIX))
    kill(state, record.run_id, bucket.uri(PREFIX), "pull")
    imports = state / "imports"
    left = [p.name for p in imports.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".{record.run_id}.pull-")  # its staging folder only: no run to mistake for whole

    pulled = RunStore(AwsGuard()).pull(record.run_id, bucket.uri(PREFIX), imports)
    assert pulled_files(pulled.path) == FILES
    assert [p.name for p in imports.iterdir()] == [record.run_id]
