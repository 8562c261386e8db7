"""`RunStore` on a real moto server with a real finished run: push uploads each content once and the manifest last, a
second push uploads nothing, pull round-trips the bytes (and the digests the run recorded); a tampered object, a
hostile manifest, changed local outputs, another run's manifest and a wrong profile are each refused, sending or
keeping nothing they should not."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyops.aws import run_store
from skyops.aws.run_manifest import RunStoreError, tree_digest
from skyops.aws.run_store import RunStore
from skyops.aws.session import AwsGuard
from skyops.errors import AwsGuardError, ConfigError
from skyops.pipeline.hashing import hash_tree
from skyops.pipeline.lineage import RunRecord, load_record

from .conftest import CountingListener, MotoServer
from .run_world import FILES, OBJECTS, make_run, manifest_json, output_files, pulled_files
from .s3_world import Bucket, make_bucket

PREFIX = "team/published/"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state folder of one finished toy run, for the module (push and pull only read it)."""
    folder = tmp_path_factory.mktemp("run") / "state"
    make_run(folder)
    return folder


@pytest.fixture
def run(state: Path) -> RunRecord:
    return load_record(state / "runs", "latest")


@pytest.fixture
def bucket(moto: MotoServer) -> Iterator[Bucket]:
    made = make_bucket(moto)
    made.forget_requests()
    yield made


@pytest.fixture
def store(moto: MotoServer) -> RunStore:
    return RunStore(AwsGuard())


def s3_operations(bucket: Bucket) -> list[str]:
    """The server's operations since `forget_requests`, keys shortened to what follows the prefix."""
    return [op.replace(f"/{bucket.name}/{PREFIX}", "") for op in bucket.moto.operations]


def manifest_of(bucket: Bucket, run_id: str) -> bytes:
    return bytes(bucket.client.get_object(Bucket=bucket.name, Key=f"{PREFIX}runs/{run_id}.json")["Body"].read())


def test_push_uploads_each_content_once_and_the_manifest_last(store: RunStore, bucket: Bucket, run: RunRecord) -> None:
    pushed = store.push(run, bucket.uri(PREFIX))
    shas = sorted({hashlib.sha256(body).hexdigest() for body in FILES.values()})
    assert (pushed.files, pushed.objects, pushed.uploaded, pushed.replaced, pushed.manifest_written) == (5, OBJECTS, OBJECTS, 0, True)
    operations = s3_operations(bucket)
    manifest = f"runs/{run.run_id}.json"
    assert operations[0] == f"HEAD {manifest}"  # another run's manifest under this id would stop the push here
    assert sorted(operations[1:-1]) == sorted([f"HEAD objects/{sha}" for sha in shas] + [f"PUT objects/{sha}" for sha in shas])
    assert operations[-1] == f"PUT {manifest}"  # last: a reader that sees it sees every object
    for sha in shas:
        head = bucket.client.head_object(Bucket=bucket.name, Key=f"{PREFIX}objects/{sha}", ChecksumMode="ENABLED")
        assert head["Metadata"] == {"sha256": sha}
        assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(sha)).decode()  # sent for S3 to verify (moto only keeps it)
        body = bucket.client.get_object(Bucket=bucket.name, Key=f"{PREFIX}objects/{sha}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha
    published = manifest_json(manifest_of(bucket, run.run_id))
    assert {
        f"{step}/{port}/{path}": sha
        for step, ports in published["steps"].items()
        for port, out in ports.items()
        for path, sha in out["files"].items()
    } == {name: hashlib.sha256(body).hexdigest() for name, body in FILES.items()}
    assert published["record"]["run_id"] == run.run_id and published["status"] == "succeeded"
    assert published["steps"]["writer"]["model"]["digest"] == run.steps["writer"].outputs["model"]["digest"]


def test_a_second_push_uploads_nothing(store: RunStore, bucket: Bucket, tmp_path: Path) -> None:
    state = tmp_path / "state"
    record = make_run(state)  # the record in memory, as the engine returns it
    store.push(record, bucket.uri(PREFIX))
    before = manifest_of(bucket, record.run_id)
    bucket.forget_requests()
    run = load_record(state / "runs", record.run_id)  # the record read back from run.json, as `skyops runs push` reads it
    again = RunStore(AwsGuard()).push(run, bucket.uri(PREFIX))
    assert (again.uploaded, again.manifest_written) == (0, False)
    assert [op.split()[0] for op in s3_operations(bucket)] == ["HEAD"] * (1 + OBJECTS)  # looked up, nothing sent
    assert manifest_of(bucket, run.run_id) == before  # the same bytes: the manifest is a function of the run


def test_a_push_repairs_a_missing_object_and_a_wrong_one(store: RunStore, bucket: Bucket, run: RunRecord) -> None:
    store.push(run, bucket.uri(PREFIX))
    total = hashlib.sha256(FILES["total/total/total.txt"]).hexdigest()
    weights = hashlib.sha256(FILES["writer/model/best.pt"]).hexdigest()
    bucket.client.delete_object(Bucket=bucket.name, Key=f"{PREFIX}objects/{total}")
    bucket.put(f"{PREFIX}objects/{weights}", b"not the weights")  # no sha256 metadata: not trusted to be the content
    bucket.forget_requests()
    again = store.push(run, bucket.uri(PREFIX))
    assert (again.uploaded, again.replaced, again.manifest_written) == (2, 1, False)
    assert sorted(op for op in s3_operations(bucket) if op.startswith("PUT")) == sorted([f"PUT objects/{total}", f"PUT objects/{weights}"])


def test_pull_round_trips_the_bytes_and_the_recorded_digests(store: RunStore, bucket: Bucket, run: RunRecord, tmp_path: Path) -> None:
    store.push(run, bucket.uri(PREFIX))
    bucket.forget_requests()
    pulled = RunStore(AwsGuard()).pull(run.run_id, bucket.uri(PREFIX), tmp_path / "imports")
    assert [op.split()[0] for op in s3_operations(bucket)] == ["GET"] * (1 + OBJECTS)  # the manifest, then each distinct object once
    assert pulled.path == tmp_path / "imports" / run.run_id
    assert (pulled.files, pulled.objects, pulled.already) == (5, OBJECTS, False)
    assert pulled_files(pulled.path) == output_files(run) == FILES
    for name, step in run.steps.items():
        for port, output in step.outputs.items():
            assert hash_tree(pulled.path / name / port).digest == output["digest"]  # the same input digest as the original
    assert (pulled.path / "manifest.json").read_bytes() == manifest_of(bucket, run.run_id)
    assert not any(p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for p in pulled.path.rglob("*") if p.is_file())
    assert sorted(p.name for p in (tmp_path / "imports").iterdir()) == [run.run_id]  # no staging left

    bucket.forget_requests()
    again = RunStore(AwsGuard()).pull(run.run_id, bucket.uri(PREFIX), tmp_path / "imports")
    assert again.already and s3_operations(bucket) == [f"GET runs/{run.run_id}.json"]


def test_a_tampered_object_refuses_the_pull_and_keeps_nothing(store: RunStore, bucket: Bucket, run: RunRecord, tmp_path: Path) -> None:
    store.push(run, bucket.uri(PREFIX))
    weights = hashlib.sha256(FILES["writer/model/best.pt"]).hexdigest()
    bucket.put(f"{PREFIX}objects/{weights}", b"evil weights", sha256=weights)  # even its metadata lies
    with pytest.raises(
        RunStoreError,
        match=rf"^s3://drone-data/{PREFIX}objects/{weights} failed its check \(the bytes' sha256 is [0-9a-f]{{64}}, 12 bytes; "
        rf"the manifest says {weights}, 8 bytes\); nothing of the run was kept$",
    ) as info:
        store.pull(run.run_id, bucket.uri(PREFIX), tmp_path / "imports")
    assert info.value.hint.startswith("the object under that name is not the content it names")
    assert list((tmp_path / "imports").iterdir()) == []  # neither the run nor its staging


def republish(bucket: Bucket, run_id: str, change: dict[str, dict[str, str]], *, consistent: bool) -> None:
    """Rewrite the published manifest: each 'step/port' of `change` gets those files (path -> sha256). With `consistent`,
    its digest and the record's are made to agree with them, as a careful forger would."""
    value = manifest_json(manifest_of(bucket, run_id))
    for where, files in change.items():
        step, port = where.rsplit("/", 1)
        output = value["steps"].setdefault(step, {}).setdefault(port, {"digest": "", "files": {}})
        output["files"] = files
        if consistent:
            output["digest"] = tree_digest(files)
            value["record"]["steps"][step]["outputs"][port]["digest"] = output["digest"]
    bucket.client.put_object(Bucket=bucket.name, Key=f"{PREFIX}runs/{run_id}.json", Body=json.dumps(value).encode())


def test_a_hostile_manifest_is_refused_whole_before_any_download(store: RunStore, bucket: Bucket, run: RunRecord, tmp_path: Path) -> None:
    store.push(run, bucket.uri(PREFIX))
    sha = hashlib.sha256(FILES["writer/model/best.pt"]).hexdigest()
    hostile = {"../../escape.txt": sha, "/etc/passwd": sha, "a\\b": sha, "best.pt": sha, "BEST.pt": sha, "x": "f" * 64}
    republish(bucket, run.run_id, {"writer/model": hostile, "../evil/model": {"x": sha}}, consistent=False)
    bucket.forget_requests()
    with pytest.raises(
        RunStoreError, match=rf"^7 problems in the run manifest s3://drone-data/{PREFIX}runs/{run.run_id}.json \(nothing was downloaded\)"
    ) as info:
        store.pull(run.run_id, bucket.uri(PREFIX), tmp_path / "imports")
    model = "step 'writer' output 'model': "
    assert info.value.problems == sorted(
        [
            "step '../evil' is not a step name with its outputs (it names a folder of the pulled run)",
            model + "path '../../escape.txt' has an empty, '.' or '..' segment (it would leave or alias its folder)",
            model + "path '/etc/passwd' is absolute",
            model + "path 'a\\\\b' holds a backslash or a control character",
            model + "'BEST.pt' and 'best.pt' differ only in case (one file on a case-insensitive file system)",
            model + "'x' names an object the manifest does not list",
            model + "its digest is not the digest of its files",
        ]
    )
    assert info.value.hint.startswith("it was not written by `skyops runs push`, or was changed since")
    assert s3_operations(bucket) == [f"GET runs/{run.run_id}.json"]  # no object was downloaded
    assert not (tmp_path / "imports").exists()


def test_a_path_out_of_the_folder_is_refused_even_when_every_digest_agrees(
    store: RunStore, bucket: Bucket, run: RunRecord, tmp_path: Path
) -> None:
    store.push(run, bucket.uri(PREFIX))
    sha = hashlib.sha256(FILES["writer/model/best.pt"]).hexdigest()
    republish(bucket, run.run_id, {"writer/model": {"best.pt": sha, "../../../escape.txt": sha}}, consistent=True)
    with pytest.raises(
        RunStoreError, match=r"^1 problem in the run manifest .*\n  - step 'writer' output 'model': path '../../../escape.txt' has an empty"
    ):
        store.pull(run.run_id, bucket.uri(PREFIX), tmp_path / "imports")
    assert not (tmp_path / "imports").exists() and not (tmp_path.parent / "escape.txt").exists()


def test_nested_paths_are_pulled_into_their_folders(store: RunStore, bucket: Bucket, run: RunRecord, tmp_path: Path) -> None:
    store.push(run, bucket.uri(PREFIX))
    sha = hashlib.sha256(FILES["writer/model/best.pt"]).hexdigest()
    republish(bucket, run.run_id, {"writer/model": {"best.pt": sha, "deep/er/copy.pt": sha}}, consistent=True)
    pulled = store.pull(run.run_id, bucket.uri(PREFIX), tmp_path)
    assert (pulled.path / "writer/model/deep/er/copy.pt").read_bytes() == FILES["writer/model/best.pt"]
    assert os.path.samefile(pulled.path / "writer/model/best.pt", pulled.path / "writer/model/deep/er/copy.pt")  # one object, linked twice


def test_changed_local_outputs_are_refused_before_any_request(bucket: Bucket, tmp_path: Path, moto: MotoServer) -> None:
    record = make_run(tmp_path / "state")
    best = Path(record.steps["writer"].outputs["model"]["path"]) / "best.pt"
    best.write_bytes(b"edited after the run")
    gone = Path(record.steps["total"].outputs["total"]["path"])
    for file in gone.iterdir():
        file.unlink()
    gone.rmdir()
    with pytest.raises(RunStoreError, match=rf"^2 problems in the outputs of run {record.run_id} \(nothing was sent\)") as info:
        RunStore(AwsGuard()).push(record, bucket.uri(PREFIX))
    assert info.value.problems == [
        f"step 'total' output 'total': {gone} is gone (its cache entry was removed)",
        f"step 'writer' output 'model': {best.parent} no longer holds what the run recorded (sha256 "
        f"{hash_tree(best.parent).digest[:12]}, recorded {record.steps['writer'].outputs['model']['digest'][:12]}): "
        "a later run replaced its cache entry, or it was edited",
    ]
    assert moto.requests == []


def test_files_larger_than_one_put_are_refused_before_any_request(
    store: RunStore, bucket: Bucket, run: RunRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_store, "MAX_OBJECT_BYTES", 7)  # 5 GiB in S3; best.pt and notes.txt hold 8 bytes
    model = Path(run.steps["writer"].outputs["model"]["path"])
    with pytest.raises(
        RunStoreError,
        match=rf"^2 problems in the outputs of run {run.run_id}: files larger than one S3 PutObject takes \(7 B; nothing was sent\)",
    ) as info:
        store.push(run, bucket.uri(PREFIX))
    assert info.value.problems == [f"{model / 'best.pt'} (8 B)", f"{model / 'notes.txt'} (8 B)"]
    assert bucket.moto.requests == []


def test_another_manifest_under_the_same_run_id_is_never_replaced(store: RunStore, bucket: Bucket, run: RunRecord) -> None:
    foreign = b'{"format": "skyops-run-manifest/1", "note": "pushed from another machine"}'
    bucket.put(f"{PREFIX}runs/{run.run_id}.json", foreign, sha256=hashlib.sha256(foreign).hexdigest())
    bucket.forget_requests()
    with pytest.raises(RunStoreError, match=rf"^s3://drone-data/{PREFIX}runs/{run.run_id}.json already holds another manifest of run "):
        store.push(run, bucket.uri(PREFIX))
    assert s3_operations(bucket) == [f"HEAD runs/{run.run_id}.json"]  # nothing uploaded
    assert manifest_of(bucket, run.run_id) == foreign


def test_a_manifest_written_between_the_look_up_and_the_put_is_not_overwritten(
    store: RunStore, bucket: Bucket, run: RunRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = b'{"note": "another push, a moment earlier"}'
    key = f"{PREFIX}runs/{run.run_id}.json"
    look_up = RunStore._head
    raced: list[bool] = []

    def racing(self: RunStore, location: object, asked: str) -> object:
        if asked == key and not raced:  # the first look-up finds nothing, then another push publishes
            raced.append(True)
            found = look_up(self, location, asked)  # type: ignore[arg-type]
            bucket.put(key, foreign, sha256=hashlib.sha256(foreign).hexdigest())
            return found
        return look_up(self, location, asked)  # type: ignore[arg-type]

    monkeypatch.setattr(RunStore, "_head", racing)
    with pytest.raises(RunStoreError, match="already holds another manifest"):
        store.push(run, bucket.uri(PREFIX))
    assert manifest_of(bucket, run.run_id) == foreign  # If-None-Match: * kept it


def test_a_wrong_profile_sends_nothing(
    bucket: Bucket, run: RunRecord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: CountingListener
) -> None:
    with pytest.raises(AwsGuardError, match=r"profile 'prod' is not defined"):
        RunStore(AwsGuard("prod")).push(run, bucket.uri(PREFIX))
    monkeypatch.setenv("AWS_PROFILE", "other")
    with pytest.raises(AwsGuardError, match=r"\$AWS_PROFILE=other names another profile"):
        RunStore(AwsGuard()).pull(run.run_id, bucket.uri(PREFIX), tmp_path / "imports")
    assert bucket.moto.requests == [] and listener.connections() == []  # nor the instance metadata or container endpoints
    assert not (tmp_path / "imports").exists()


def test_bad_names_are_refused_before_the_guard_is_asked(run: RunRecord, tmp_path: Path) -> None:
    store = RunStore(AwsGuard("no-such-profile"))
    with pytest.raises(ConfigError, match=r"^'\.\./x' is not a run id"):
        store.pull("../x", "s3://drone-data/runs/", tmp_path)
    with pytest.raises(ConfigError, match=r"^'s3://Bad_Bucket/x': 'Bad_Bucket' is not an S3 bucket name"):
        store.push(run, "s3://Bad_Bucket/x")


def test_a_run_never_pushed_is_named_with_where_it_was_looked_for(store: RunStore, bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^no run 20990101-000000-000000 is published under s3://drone-data/{PREFIX} \(") as info:
        store.pull("20990101-000000-000000", bucket.uri(PREFIX), tmp_path / "imports")
    assert (
        info.value.hint
        == f"`aws s3 ls s3://drone-data/{PREFIX}runs/ --profile ab` lists the published runs; `skyops runs push` publishes one"
    )
    assert not (tmp_path / "imports").exists()
