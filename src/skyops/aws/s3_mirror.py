"""A local, content-addressed mirror of S3 prefixes: what the local engine reads for `dataset=s3://bucket/prefix`.

    mirror = S3Mirror(state_dir / "s3", AwsGuard())   # every request goes through the profile guard
    copy = mirror.fetch("s3://my-data/visdrone/")      # -> Mirrored(path=.skyops/s3/trees/<digest>, digest, ...)
    LocalEngine(..., fetchers={"s3": mirror})          # the engine's fetcher: (path, digest)

Layout under the mirror's root (`.skyops/s3/`):

    objects/<sha256[:2]>/<sha256>   each object's bytes, named by their sha256, read-only
    seen.jsonl                      one line per verified download: bucket, key, ETag, size -> sha256
    trees/<digest>/<key below prefix>  a listing made a folder: hard links to objects/, never written again
    listings/<digest>.json          what that folder was made from: each key, ETag, size, sha256, how it was verified
    staging/                        downloads and trees being made; emptied by the next fetch
    mirror.lock                     held (flock) while a fetch changes the mirror

A fetch lists the prefix (ListObjectsV2), checks every key (`s3_keys.relative_path`: one hostile key
refuses the listing, before anything is downloaded), then downloads only the objects whose bucket, key,
ETag and size it has not verified before: an unchanged bucket costs its listing and no GetObject, a
changed object costs one. `<digest>` is `hash_tree`'s digest of the folder (sha256 over each relative
path and its file's sha256), so the engine's cache key is the one a local folder of the same files gives.

Content, honestly: the sha256 is computed here from the bytes received. An ETag is MD5 of the content
only for objects uploaded in one part without SSE-KMS/SSE-C; a multipart ETag (`<hex>-<parts>`) is
MD5 of the parts' MD5s and an SSE-KMS one is opaque. So the ETag is used as a *change detector*
(with the size), and as a content check only where it is an MD5: verified when it is, and when the
object carries `x-amz-meta-sha256` (`aws s3 cp --metadata sha256=...`) that is checked too. Each
GetObject sends `If-Match: <listed ETag>`, so an object replaced between listing and download is an
error, never a silent mix of two versions.

Faults: a download goes to staging/ and is renamed into objects/ only once verified, then recorded in
seen.jsonl, so a fetch killed at any point leaves nothing that a later fetch trusts wrongly: it empties
staging/, ignores a torn last line of seen.jsonl, and downloads what was not recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skyops.aws.s3_keys import S3Location, clashes, parse_s3_uri, relative_path
from skyops.aws.session import AwsGuard, aws_request
from skyops.errors import SkyopsError, problems_error
from skyops.pipeline.faults import writing
from skyops.pipeline.hashing import write_json_atomic
from skyops.pipeline.locks import key_lock

SHA256_METADATA = "sha256"  # x-amz-meta-sha256: hex sha256 of the content, set by whoever uploads
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")  # a multipart ETag ends in -<parts>; SSE-KMS ones are opaque
_OPAQUE_SSE = ("aws:kms", "aws:kms:dsse")  # server-side encryption whose ETag is not the content's MD5
_CHUNK = 1 << 20  # bytes read at a time


class MirrorError(SkyopsError):
    """An S3 prefix cannot be mirrored as it is: hostile keys, nothing under it, or bytes that fail their checks."""

    exit_code = 1


@dataclass(frozen=True)
class Listed:
    """One object as listed: where it goes in the copy, and what says it changed (ETag and size)."""

    key: str
    path: str  # relative posix path in the copy
    etag: str  # without quotes
    size: int


@dataclass(frozen=True)
class Verified:
    """One object as mirrored: its sha256 and the check its bytes passed ('md5-etag', 'sha256-metadata', both, or none)."""

    key: str
    path: str
    etag: str
    size: int
    sha256: str
    checked: str


@dataclass(frozen=True)
class Mirrored:
    """A fetched prefix: the read-only local copy, its digest, and what this fetch downloaded."""

    location: S3Location
    path: Path
    digest: str
    objects: int
    total_bytes: int
    downloaded: int
    downloaded_bytes: int


class S3Mirror:
    """The content-addressed mirror of S3 prefixes under `root` (see the module docstring).

    Args:
        root: the mirror's folder (`<state dir>/s3`).
        guard: the profile guard every request goes through; checked on the first fetch only.
        announce: told one line per fetch: objects, what was downloaded, where the copy is.
    """

    def __init__(self, root: Path, guard: AwsGuard, announce: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.guard = guard
        self.announce = announce or (lambda _line: None)
        self._client: Any = None

    def __call__(self, uri: str) -> tuple[Path, str]:
        """The local engine's fetcher: (the copy, its digest)."""
        mirrored = self.fetch(uri)
        return mirrored.path, mirrored.digest

    def fetch(self, uri: str) -> Mirrored:
        """Mirror what `uri` lists; download only objects not verified before.

        Raises:
            ConfigError: `uri` is not an S3 URI of a valid bucket.
            AwsGuardError: the profile guard refused (no request was sent).
            AwsRequestError: S3 refused the listing or a download.
            MirrorError: hostile keys, nothing under the prefix, bytes that fail their checks, an object changed mid-fetch.
            StateError: the state folder cannot take the writes (full disk, read-only).
        """
        location = parse_s3_uri(uri)
        listed = self._list(location)
        verified: list[Verified] = []
        downloaded: list[int] = []  # bytes of each object downloaded

        def waiting() -> None:
            self.announce(f"{location}: waiting for another fetch to finish with the mirror")

        with writing("the S3 mirror", self.root), key_lock(self.root / "mirror.lock", stop=threading.Event(), on_wait=waiting):
            self._empty_staging()
            seen = self._read_seen()
            for item in listed:
                sha = seen.get((location.bucket, item.key, item.etag, item.size))
                if sha is not None and self._blob(sha).is_file():
                    verified.append(Verified(item.key, item.path, item.etag, item.size, sha, "verified before"))
                else:
                    verified.append(self._download(location, item))
                    downloaded.append(item.size)
            digest, tree = self._tree(location, verified)
        mirrored = Mirrored(
            location=location,
            path=tree,
            digest=digest,
            objects=len(verified),
            total_bytes=sum(v.size for v in verified),
            downloaded=len(downloaded),
            downloaded_bytes=sum(downloaded),
        )
        self.announce(
            f"{location}: {mirrored.objects} objects ({human_size(mirrored.total_bytes)}), {mirrored.downloaded} downloaded "
            f"({human_size(mirrored.downloaded_bytes)}), {mirrored.objects - mirrored.downloaded} unchanged -> {tree}"
        )
        return mirrored

    # ---- S3 ---------------------------------------------------------------------------------------------

    def _s3(self) -> Any:
        if self._client is None:
            self._client = self.guard.client("s3")  # the guard decides here, before any request
        return self._client

    def _list(self, location: S3Location) -> list[Listed]:
        """Every object under the prefix, each key checked; all problems at once, before any download."""
        client = self._s3()
        listed, problems = [], []
        with aws_request(f"list {location}", hint=f"check the bucket and prefix (`aws s3 ls {location} --profile {self.guard.profile}`)"):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.prefix):
                for entry in page.get("Contents", []):
                    path, problem = relative_path(entry["Key"], location.prefix, entry["Size"])
                    if problem:
                        problems.append(problem)
                    elif path is not None:
                        listed.append(Listed(entry["Key"], path, entry["ETag"].strip('"'), entry["Size"]))
        problems += clashes(item.path for item in listed)
        if problems:
            raise problems_error(
                MirrorError,
                f"the keys under {location} (nothing was downloaded)",
                problems,
                hint="rename or remove those objects (or point at a prefix without them): a local copy cannot hold them safely",
            )
        if not listed:
            raise MirrorError(
                f"{location} holds no objects", hint=f"check the prefix: `aws s3 ls {location} --profile {self.guard.profile}`"
            )
        return sorted(listed, key=lambda item: item.path)

    def _download(self, location: S3Location, item: Listed) -> Verified:
        """GetObject (If-Match the listed ETag) into staging/, verify, rename into objects/, record in seen.jsonl."""
        from botocore.exceptions import ClientError  # heavy: loaded only when AWS is used

        uri = location.uri(item.key)
        staged = self.root / "staging" / f"{os.getpid()}.{threading.get_ident()}.part"
        staged.parent.mkdir(parents=True, exist_ok=True)
        sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        try:
            with aws_request(f"download {uri}"):
                try:
                    response = self._s3().get_object(Bucket=location.bucket, Key=item.key, IfMatch=f'"{item.etag}"')
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                        raise MirrorError(
                            f"{uri} changed while it was being mirrored (its ETag is no longer {item.etag})",
                            hint="run again once the upload is finished",
                        ) from exc
                    raise
                with open(staged, "wb") as out:
                    size = copy_stream(response["Body"], out, (sha, md5))
                    out.flush()
                    os.fsync(out.fileno())  # on disk before seen.jsonl says so
            checked = _check(uri, item, response, sha.hexdigest(), md5.hexdigest(), size)
            blob = self._blob(sha.hexdigest())
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(staged, 0o444)  # objects/ is content-addressed: its files never change
            os.replace(staged, blob)
        finally:
            staged.unlink(missing_ok=True)
        record = {"bucket": location.bucket, "key": item.key, "etag": item.etag, "size": item.size, "sha256": sha.hexdigest()}
        with open(self.root / "seen.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(record, sort_keys=True) + "\n")
        return Verified(item.key, item.path, item.etag, item.size, sha.hexdigest(), checked)

    # ---- the local side ---------------------------------------------------------------------------------

    def _blob(self, sha: str) -> Path:
        return self.root / "objects" / sha[:2] / sha

    def _empty_staging(self) -> None:
        """Remove what a killed fetch left in staging/ (the lock is held: no fetch is using it)."""
        staging = self.root / "staging"
        if staging.is_dir():
            for leftover in staging.iterdir():
                remove_path(leftover)

    def _read_seen(self) -> dict[tuple[str, str, str, int], str]:
        """(bucket, key, etag, size) -> sha256 of every verified download; a torn last line (a kill) is cut off."""
        path = self.root / "seen.jsonl"
        if not path.is_file():
            return {}
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # the next append must start a line of its own
            data = data[: data.rfind(b"\n") + 1]
            with open(path, "r+b") as f:
                f.truncate(len(data))
        seen = {}
        for line in data.decode("utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                r = json.loads(line)
                seen[(str(r["bucket"]), str(r["key"]), str(r["etag"]), int(r["size"]))] = str(r["sha256"])
        return seen

    def _tree(self, location: S3Location, verified: list[Verified]) -> tuple[str, Path]:
        """The listing as a folder of hard links to objects/, published by rename: (its digest, its path)."""
        digest = hashlib.sha256("".join(f"{v.path}\0{v.sha256}\n" for v in sorted(verified, key=lambda v: v.path)).encode()).hexdigest()
        tree = self.root / "trees" / digest
        if not tree.is_dir():  # trees appear only by the rename below, under the lock: one that exists is whole
            staged = self.root / "staging" / f"tree.{os.getpid()}"
            try:
                for v in verified:
                    target = (staged / v.path).resolve()
                    if not target.is_relative_to(staged.resolve()):  # relative_path refused these already: never trust one check
                        raise MirrorError(f"key {v.key!r} would be written outside {staged}", hint="report this: it is a bug")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    link_readonly(self._blob(v.sha256), target)
                tree.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staged, tree)
            finally:
                remove_path(staged)
        listing = {"uri": str(location), "digest": digest, "objects": [asdict(v) for v in verified]}
        write_json_atomic(self.root / "listings" / f"{digest}.json", listing, sort_keys=False)
        return digest, tree


def copy_stream(body: Any, out: Any, digests: tuple[Any, ...]) -> int:
    """Copy a streaming body into `out`, feeding every digest; the byte count."""
    size = 0
    for chunk in body.iter_chunks(_CHUNK):
        for digest in digests:
            digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return size


def _check(uri: str, item: Listed, response: dict[str, Any], sha: str, md5: str, size: int) -> str:
    """Which checks the bytes passed: the listed size always, the ETag when it is an MD5, the sha256 metadata when set."""
    problems, checked = [], []
    if size != item.size:
        problems.append(f"{size} bytes arrived, the listing said {item.size}")
    encrypted = response.get("ServerSideEncryption") in _OPAQUE_SSE or "SSECustomerAlgorithm" in response
    if _MD5_ETAG.match(item.etag) and not encrypted:
        checked.append("md5-etag")
        if md5 != item.etag:
            problems.append(f"the bytes' MD5 is {md5}, the ETag {item.etag}")
    declared = (response.get("Metadata") or {}).get(SHA256_METADATA)
    if declared:
        checked.append("sha256-metadata")
        if declared.strip().lower() != sha:
            problems.append(f"the bytes' sha256 is {sha}, its x-amz-meta-{SHA256_METADATA} says {declared}")
    if problems:
        raise MirrorError(
            f"{uri} failed its checks ({'; '.join(problems)}); nothing of it was kept",
            hint="run again; if it fails again, the object or its metadata is wrong: upload it again",
        )
    return "+".join(checked) or "none"


def link_readonly(blob: Path, target: Path) -> None:
    """Hard-link the object (same bytes, no copy); copy it where the file system has no hard links."""
    try:
        os.link(blob, target)
    except OSError:
        shutil.copyfile(blob, target)
        os.chmod(target, 0o444)


def remove_path(path: Path) -> None:
    """Remove a file or a folder tree (a symlink is removed, never followed); nothing if it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def human_size(count: float) -> str:
    """Bytes for people: 512 B, 3.4 MB."""
    units = ["B", "KB", "MB", "GB", "TB"]
    while count >= 1000 and len(units) > 1:
        count, units = count / 1000, units[1:]
    return f"{count:.0f} B" if units[0] == "B" else f"{count:.1f} {units[0]}"
