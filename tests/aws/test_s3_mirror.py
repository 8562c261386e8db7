"""The S3 mirror on a real moto server: an unchanged bucket is listed, never downloaded again; a changed object
is the only one downloaded; hostile keys refuse the listing before any download; a wrong profile sends nothing;
every download is checked (size, MD5 ETag, sha256 metadata) and a kill mid-download is recovered from."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyops.aws import s3_mirror
from skyops.aws.s3_mirror import MirrorError, S3Mirror
from skyops.aws.session import AwsGuard
from skyops.errors import AwsGuardError, ConfigError
from skyops.pipeline.hashing import hash_tree

from .conftest import MotoServer
from .s3_world import DATASET, PREFIX, Bucket, make_bucket, sha256


@pytest.fixture
def bucket(moto: MotoServer) -> Iterator[Bucket]:
    """Bucket drone-data holding DATASET under visdrone/; requests counted from here."""
    made = make_bucket(moto)
    for name, body in DATASET.items():
        made.put(PREFIX + name, body)
    made.forget_requests()
    yield made


@pytest.fixture
def mirror(tmp_path: Path, moto: MotoServer) -> S3Mirror:
    return S3Mirror(tmp_path / "state" / "s3", AwsGuard())


def files(tree: Path) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


def test_the_first_fetch_downloads_the_second_downloads_nothing(mirror: S3Mirror, bucket: Bucket) -> None:
    said: list[str] = []
    mirror.announce = said.append
    first = mirror.fetch(bucket.uri())
    assert sorted(bucket.downloads()) == sorted(PREFIX + name for name in DATASET)
    assert files(first.path) == DATASET
    assert first.path == mirror.root / "trees" / first.digest
    assert first.digest == hash_tree(first.path).digest  # the engine's digest of the same files in a local folder
    assert (first.objects, first.downloaded) == (5, 5)
    assert not any(p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for p in first.path.rglob("*") if p.is_file())

    bucket.forget_requests()
    second = mirror.fetch(bucket.uri().rstrip("/"))  # s3://b/visdrone and s3://b/visdrone/ name the same folder
    assert bucket.downloads() == []  # listed only
    assert len(bucket.moto.operations) == 1 and bucket.moto.operations[0].startswith(f"GET /{bucket.name}")
    assert (second.path, second.digest, second.downloaded) == (first.path, first.digest, 0)
    assert sum(map(len, DATASET.values())) == 78
    assert said[-1] == f"s3://drone-data/visdrone/: 5 objects (78 B), 0 downloaded (0 B), 5 unchanged -> {first.path}"


def test_a_changed_object_is_the_only_one_downloaded_and_makes_a_new_copy(mirror: S3Mirror, bucket: Bucket) -> None:
    first = mirror.fetch(bucket.uri())
    bucket.put(PREFIX + "labels/b.txt", b"0 0.3 0.3 0.1 0.1\n")
    bucket.put(PREFIX + "labels/c.txt", b"")  # a new, empty label file (an image without objects)
    bucket.forget_requests()
    second = mirror.fetch(bucket.uri())
    assert sorted(bucket.downloads()) == [PREFIX + "labels/b.txt", PREFIX + "labels/c.txt"]
    assert second.digest != first.digest and files(second.path)["labels/b.txt"] == b"0 0.3 0.3 0.1 0.1\n"
    assert files(first.path) == DATASET  # the earlier copy is never written again
    listing = json.loads((mirror.root / "listings" / f"{second.digest}.json").read_text())
    by_key = {o["key"]: o for o in listing["objects"]}
    assert by_key[PREFIX + "labels/b.txt"]["checked"] == "md5-etag"
    assert by_key[PREFIX + "images/a.jpg"]["checked"] == "verified before"


def test_the_same_bytes_under_two_keys_are_stored_once(mirror: S3Mirror, bucket: Bucket) -> None:
    bucket.put(PREFIX + "images/copy-of-a.jpg", DATASET["images/a.jpg"])
    copy = mirror.fetch(bucket.uri())
    assert os.path.samefile(copy.path / "images/a.jpg", copy.path / "images/copy-of-a.jpg")
    assert len(list((mirror.root / "objects").rglob("*/*"))) == len(set(DATASET.values()))


HOSTILE = {
    "visdrone/../escape.txt": "key 'visdrone/../escape.txt' has an empty, '.' or '..' segment below 'visdrone/' (it would leave or alias its folder)",
    "visdrone//etc/passwd": "key 'visdrone//etc/passwd' would be the absolute path '/etc/passwd'",
    "visdrone/images/../../../x": (
        "key 'visdrone/images/../../../x' has an empty, '.' or '..' segment below 'visdrone/' (it would leave or alias its folder)"
    ),
    "visdrone/images/a.jpg/b": "'images/a.jpg' is an object and also a folder of 'images/a.jpg/b'",
    "visdrone/a\\b.txt": "key 'visdrone/a\\\\b.txt' holds a backslash or a control character",
    "visdrone/folder/": "key 'visdrone/folder/' ends with '/' but holds 4 bytes (a file named like a folder)",
    "visdrone/images/A.jpg": "'images/A.jpg' and 'images/a.jpg' differ only in case (one file on a case-insensitive file system)",
}


def test_hostile_keys_refuse_the_listing_before_any_download(mirror: S3Mirror, bucket: Bucket, tmp_path: Path) -> None:
    for key in HOSTILE:
        bucket.put(key, b"evil")
    bucket.forget_requests()
    with pytest.raises(MirrorError, match=r"^7 problems in the keys under s3://drone-data/visdrone/ \(nothing was downloaded\)") as info:
        mirror.fetch(bucket.uri())
    assert info.value.problems == sorted(HOSTILE.values())  # every one at once
    assert info.value.hint.startswith("rename or remove those objects")
    assert bucket.downloads() == []
    assert not (mirror.root / "trees").exists() and not (mirror.root / "objects").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aws-config", "aws-credentials", "credential_process.py", "home"]


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_each_hostile_key_alone_is_refused(key: str) -> None:
    from skyops.aws.s3_keys import clashes, relative_path

    path, problem = relative_path(key, PREFIX, 4)
    if problem is None:  # a clash shows only beside the object it clashes with
        assert path is not None and clashes([path, "images/a.jpg"]) == [HOSTILE[key]]
    else:
        assert (path, problem) == (None, HOSTILE[key])


def test_a_folder_marker_is_skipped_and_an_empty_prefix_is_refused(mirror: S3Mirror, bucket: Bucket) -> None:
    bucket.put(PREFIX + "images/", b"")  # what the S3 console's "Create folder" makes
    assert files(mirror.fetch(bucket.uri()).path) == DATASET
    with pytest.raises(MirrorError, match=r"^s3://drone-data/nothing-here/ holds no objects$"):
        mirror.fetch(bucket.uri("nothing-here"))


def test_a_wrong_profile_sends_nothing(tmp_path: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")
    with pytest.raises(AwsGuardError, match=r"\$AWS_PROFILE=other names another profile"):
        S3Mirror(tmp_path / "s3", AwsGuard()).fetch(bucket.uri())
    with pytest.raises(AwsGuardError, match=r"profile 'prod' is not defined"):
        S3Mirror(tmp_path / "s3", AwsGuard("prod")).fetch(bucket.uri())
    assert bucket.moto.requests == []
    assert not (tmp_path / "s3").exists()


def test_not_an_s3_uri_is_refused_before_the_guard_is_asked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^'s3://Bad_Bucket/x': 'Bad_Bucket' is not an S3 bucket name"):
        S3Mirror(tmp_path / "s3", AwsGuard("no-such-profile")).fetch("s3://Bad_Bucket/x")


def test_multipart_etags_are_change_detectors_and_sha256_metadata_checks_the_bytes(mirror: S3Mirror, bucket: Bucket) -> None:
    big = [os.urandom(5 * 1024 * 1024), b"tail"]
    etag = bucket.put_multipart(PREFIX + "video.bin", big)
    assert etag.endswith("-2")  # not an MD5 of the content
    bucket.put_multipart(PREFIX + "checked.bin", big, sha256=sha256(b"".join(big)))
    copy = mirror.fetch(bucket.uri())
    checked = {o["key"]: o["checked"] for o in json.loads((mirror.root / "listings" / f"{copy.digest}.json").read_text())["objects"]}
    assert checked[PREFIX + "video.bin"] == "none"
    assert checked[PREFIX + "checked.bin"] == "sha256-metadata"
    assert (copy.path / "video.bin").read_bytes() == b"".join(big)


def test_bytes_that_fail_a_check_are_not_kept(mirror: S3Mirror, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket.put(PREFIX + "labels/b.txt", DATASET["labels/b.txt"], sha256="0" * 64)  # metadata that lies
    with pytest.raises(MirrorError, match=r"^s3://drone-data/visdrone/labels/b.txt failed its checks \(the bytes' sha256 is "):
        mirror.fetch(bucket.uri())
    bucket.put(PREFIX + "labels/b.txt", DATASET["labels/b.txt"])
    original = s3_mirror.copy_stream

    def flipping(body: object, out: object, digests: tuple[object, ...]) -> int:  # a byte flipped on the way
        data = body.read()  # type: ignore[attr-defined]
        corrupt = bytes([data[0] ^ 1]) + data[1:]
        for d in digests:
            d.update(corrupt)  # type: ignore[attr-defined]
        out.write(corrupt)  # type: ignore[attr-defined]
        return len(corrupt)

    monkeypatch.setattr(s3_mirror, "copy_stream", flipping)
    with pytest.raises(MirrorError, match=r"failed its checks \(the bytes' MD5 is [0-9a-f]{32}, the ETag [0-9a-f]{32}\)"):
        mirror.fetch(bucket.uri())
    monkeypatch.setattr(s3_mirror, "copy_stream", original)
    assert not list((mirror.root / "staging").iterdir())
    seen = (mirror.root / "seen.jsonl").read_text().splitlines()
    assert not any(json.loads(line)["key"] == PREFIX + "labels/b.txt" for line in seen)  # never recorded as verified
    assert files(mirror.fetch(bucket.uri()).path) == DATASET


def test_an_object_replaced_between_listing_and_download_is_an_error(
    mirror: S3Mirror, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = S3Mirror._list

    def list_then_replace(self: S3Mirror, location: object) -> object:
        listed = listing(self, location)  # type: ignore[arg-type]
        bucket.put(PREFIX + "images/a.jpg", b"\xff\xd8 a newer image a")
        return listed

    monkeypatch.setattr(S3Mirror, "_list", list_then_replace)
    with pytest.raises(MirrorError, match=r"^s3://drone-data/visdrone/images/a.jpg changed while it was being mirrored \(its ETag is no"):
        mirror.fetch(bucket.uri())


KILLER = """
import os, signal, sys
from pathlib import Path
from skyops.aws import s3_mirror
from skyops.aws.session import AwsGuard

calls = []
original = s3_mirror.copy_stream

def dying(body, out, digests):
    calls.append(1)
    if len(calls) == 3:  # the third download: part of it on disk, then SIGKILL (no except, no finally runs)
        out.write(body.read(3))
        out.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return original(body, out, digests)

s3_mirror.copy_stream = dying
s3_mirror.S3Mirror(Path(sys.argv[1]), AwsGuard()).fetch(sys.argv[2])
"""


def test_a_fetch_killed_mid_download_is_finished_by_the_next(mirror: S3Mirror, bucket: Bucket) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLER, str(mirror.root), bucket.uri()], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert len(bucket.downloads()) == 3
    assert [p.suffix for p in (mirror.root / "staging").iterdir()] == [".part"]  # the torn download, never trusted
    with open(mirror.root / "seen.jsonl", "a") as seen:
        seen.write('{"bucket": "drone-data", "key": "visd')  # and a torn record, as a kill mid-append leaves

    bucket.forget_requests()
    copy = mirror.fetch(bucket.uri())
    assert len(bucket.downloads()) == 3  # the two recorded before the kill are not downloaded again
    assert files(copy.path) == DATASET and copy.digest == hash_tree(copy.path).digest
    assert list((mirror.root / "staging").iterdir()) == []
    assert [json.loads(line)["key"] for line in (mirror.root / "seen.jsonl").read_text().splitlines()] == sorted(
        PREFIX + name for name in DATASET
    )
    bucket.forget_requests()
    assert mirror.fetch(bucket.uri()).downloaded == 0 and bucket.downloads() == []
