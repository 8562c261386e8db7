"""A run's artifacts published to S3 and fetched back: `skyops runs push|pull`. A publication, not the engine's cache.

    store = RunStore(AwsGuard())                               # every request goes through the profile guard
    store.push(record, "s3://bucket/experiments/runs/")        # objects/<sha256> for each new content, then runs/<id>.json
    store.pull("20250101-120000-a1b2c3", "s3://bucket/experiments/runs/", state_dir / "imports")

Push (the layout and the manifest are in `run_manifest`): every output the run record names is hashed again and
must still be what the run made (`local_run`; nothing is sent otherwise). Then, through the guard: a HEAD of the
run's manifest (another manifest under the same id is refused before anything is uploaded: a published run is never
replaced), a HEAD per distinct content (an object already there with its sha256 and size is not uploaded again),
a PUT of each missing one (x-amz-meta-sha256 and the ChecksumSHA256 S3 verifies), and the manifest LAST, with
If-None-Match: * (two pushers cannot replace each other's). A reader that finds a manifest finds every object it
names; a push killed before its manifest leaves objects only, which the next push finds and does not upload again.

Pull: the manifest is fetched and checked whole (`read_manifest`: hostile names and paths, digests that do not add
up), then each distinct object is downloaded into a staging folder beside the target and its sha256 and size
checked; every file is hard-linked from there into `<into>/<run_id>/<step>/<port>/<path>` (read-only), checked
to stay inside the staging folder, the manifest is written beside them, and the folder is renamed into place. A
failed or killed pull leaves no `<run_id>` folder; the next pull removes what a dead one staged.

Why the engine's cache is still not here: docs/adr/0013-s3-data-mirror-not-artifact-store.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from skyops.aws.run_manifest import (
    SHA256_METADATA,
    LocalObject,
    LocalRun,
    Manifest,
    RunStoreError,
    check_run_id,
    local_run,
    manifest_key,
    object_key,
    read_manifest,
)
from skyops.aws.s3_keys import S3Location, parse_s3_uri
from skyops.aws.s3_mirror import copy_stream, human_size, link_readonly, remove_path
from skyops.aws.session import AwsGuard, aws_request
from skyops.errors import ConfigError, StateError, problems_error
from skyops.pipeline.faults import writing
from skyops.pipeline.lineage import RunRecord, pid_exists

MANIFEST_FILE = "manifest.json"  # the fetched manifest, beside the pulled outputs
MAX_OBJECT_BYTES = 5 * 1024**3  # one PutObject's limit (a ChecksumSHA256 covers one part only)
MAX_MANIFEST_BYTES = 256 * 1024**2  # a manifest larger than this is not read (a run of ~1M files stays below it)
_MISSING = ("404", "NoSuchKey", "NotFound")
_CONDITION_FAILED = ("412", "PreconditionFailed", "409", "ConditionalRequestConflict")
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Pushed:
    """What a push found and sent."""

    run_id: str
    location: S3Location
    manifest_uri: str
    files: int  # files in the run's outputs
    objects: int  # distinct contents among them
    total_bytes: int
    uploaded: int
    uploaded_bytes: int
    replaced: int  # objects that were there under their name with another sha256 or size, uploaded again
    manifest_written: bool  # False: the same manifest was already published


@dataclass(frozen=True)
class Pulled:
    """What a pull fetched, and where the run's outputs now are."""

    run_id: str
    manifest_uri: str
    path: Path  # <into>/<run_id>
    files: int
    objects: int
    downloaded_bytes: int
    already: bool  # True: the same manifest was pulled there before; nothing was downloaded


class RunStore:
    """Push a run's outputs to an S3 prefix and pull them back (see the module docstring).

    Args:
        guard: the profile guard every request goes through; it decides on the first request.
        workers: requests at once (HEADs, uploads, downloads); boto3's clients are thread-safe.
        announce: told one line before a transfer starts ("uploading 12 objects (3.4 MB) to ...").
    """

    def __init__(self, guard: AwsGuard, *, workers: int = 8, announce: Callable[[str], None] | None = None) -> None:
        self.guard = guard
        self.workers = max(1, workers)
        self.announce = announce or (lambda _line: None)
        self._client: Any = None

    # ---- push -------------------------------------------------------------------------------------------

    def push(self, record: RunRecord, destination: str) -> Pushed:
        """Publish `record`'s outputs and its manifest under `destination`; what is already there is not sent again.

        Raises:
            ConfigError: `destination` is not an S3 URI of a valid bucket, or the run id is not one.
            RunStoreError: the run is running, an output is gone or changed (nothing was sent), or another manifest
                is published under this run's id (nothing was uploaded).
            AwsGuardError: the profile guard refused (no request was sent).
            AwsRequestError: S3 refused a request.
        """
        location = parse_s3_uri(destination)
        local = local_run(record)  # checked before the guard is even asked
        too_big = [f"{o.path} ({human_size(o.size)})" for o in local.objects if o.size > MAX_OBJECT_BYTES]
        if too_big:
            raise problems_error(
                RunStoreError,
                f"the outputs of run {local.run_id}: files larger than one S3 PutObject takes ({human_size(MAX_OBJECT_BYTES)}; nothing was sent)",
                too_big,
                hint="split such outputs into smaller files in the step that writes them",
            )
        key = manifest_key(location, local.run_id)
        manifest_uri = location.uri(key)
        published = self._head(location, key)
        if published is not None:
            self._same_manifest(manifest_uri, published, local)
        heads = self._each(lambda obj: self._head(location, object_key(location, obj.sha256)), local.objects)
        found = list(zip(local.objects, heads, strict=True))
        missing = [obj for obj, head in found if not _holds(head, obj)]
        if missing:
            self.announce(
                f"uploading {len(missing)} of {len(local.objects)} objects ({human_size(sum(o.size for o in missing))}) to {location}"
            )
        self._each(lambda obj: self._put_object(location, obj), missing)
        written = published is None and self._put_manifest(location, key, local)
        return Pushed(
            run_id=local.run_id,
            location=location,
            manifest_uri=manifest_uri,
            files=local.files,
            objects=len(local.objects),
            total_bytes=sum(o.size for o in local.objects),
            uploaded=len(missing),
            uploaded_bytes=sum(o.size for o in missing),
            replaced=sum(head is not None and not _holds(head, obj) for obj, head in found),
            manifest_written=written,
        )

    def _put_object(self, location: S3Location, obj: LocalObject) -> None:
        key = object_key(location, obj.sha256)
        with open(obj.path, "rb") as body, aws_request(f"upload {obj.path} to {location.uri(key)}"):
            self._s3().put_object(
                Bucket=location.bucket,
                Key=key,
                Body=body,
                ContentLength=obj.size,
                Metadata={SHA256_METADATA: obj.sha256},
                ChecksumAlgorithm="SHA256",  # S3 refuses the upload if the bytes it got are not these, and keeps the checksum
                ChecksumSHA256=_base64(obj.sha256),
            )

    def _put_manifest(self, location: S3Location, key: str, local: LocalRun) -> bool:
        """PUT the manifest unless one exists (If-None-Match: *); True if this push wrote it."""
        from botocore.exceptions import ClientError  # heavy: loaded only when AWS is used

        uri = location.uri(key)
        with aws_request(f"publish {uri}"):
            try:
                self._s3().put_object(
                    Bucket=location.bucket,
                    Key=key,
                    Body=local.manifest,
                    ContentType="application/json",
                    Metadata={SHA256_METADATA: local.manifest_sha256},
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_base64(local.manifest_sha256),
                    IfNoneMatch="*",  # never over another push's manifest
                )
            except ClientError as exc:
                if _code(exc) not in _CONDITION_FAILED:
                    raise
                published = self._head(location, key)  # another push wrote it between our HEAD and this PUT
                if published is None:
                    raise
                self._same_manifest(uri, published, local)
                return False
        return True

    def _same_manifest(self, uri: str, head: dict[str, Any], local: LocalRun) -> None:
        sha = (head.get("Metadata") or {}).get(SHA256_METADATA, "")
        if sha != local.manifest_sha256:
            raise RunStoreError(
                f"{uri} already holds another manifest of run {local.run_id} (sha256 {sha[:12] or 'not given'}, "
                f"this run's is {local.manifest_sha256[:12]}): a published run is never replaced",
                hint="push to another prefix (--to), or delete that manifest if you know it is wrong",
            )

    # ---- pull -------------------------------------------------------------------------------------------

    def pull(self, run_id: str, source: str, into: Path) -> Pulled:
        """Fetch the run published under `source` into `into/<run_id>/`, every file's sha256 checked, all or nothing.

        Raises:
            ConfigError: `source` is not an S3 URI of a valid bucket, `run_id` is not a run id, or no such run is published.
            RunStoreError: a hostile or damaged manifest (nothing was downloaded), an object whose bytes are not its
                sha256 (nothing was kept), or `into/<run_id>` holding another copy.
            AwsGuardError: the profile guard refused (no request was sent).
            AwsRequestError: S3 refused a request.
            StateError: `into` cannot take the writes (full disk, read-only).
        """
        check_run_id(run_id)
        location = parse_s3_uri(source)
        key = manifest_key(location, run_id)
        uri = location.uri(key)
        data = self._get_manifest(location, key)
        manifest = read_manifest(data, uri, run_id)
        target = into / run_id
        if target.exists():
            if (target / MANIFEST_FILE).is_file() and (target / MANIFEST_FILE).read_bytes() == data:
                return Pulled(run_id, uri, target, len(manifest.files), len(manifest.objects), 0, already=True)
            raise RunStoreError(
                f"{target} already exists and is not this pull of {uri}",
                hint="remove it, or pull into another folder (--into): skyops never writes over a folder it did not make whole",
            )
        try:
            return self._fetch(location, manifest, data, into)
        except StateError as e:  # the state folder's hint speaks of runs; this is a pull
            raise StateError(
                e.message, hint="free space or fix the permissions there, or pull into another folder (--into); then pull again"
            ) from None

    def _fetch(self, location: S3Location, manifest: Manifest, data: bytes, into: Path) -> Pulled:
        """Stage the run in `into` (downloaded, checked, linked), then rename it into place."""
        run_id, target = manifest.run_id, into / manifest.run_id
        needed = sorted({f.sha256 for f in manifest.files})
        size = sum(manifest.objects[sha] for sha in needed)
        self.announce(f"downloading {len(needed)} objects ({human_size(size)}) from {location}")
        with writing("the pulled run", into):
            into.mkdir(parents=True, exist_ok=True)
            _remove_dead_stagings(into, run_id)
            staging = into / f".{run_id}.pull-{os.getpid()}-{os.urandom(4).hex()}"
            try:
                self._stage(location, manifest, needed, staging)
                (staging / MANIFEST_FILE).write_bytes(data)
                os.chmod(staging / MANIFEST_FILE, 0o444)
                won = _publish(staging, target, data)
            finally:
                remove_path(staging)
        return Pulled(run_id, location.uri(manifest_key(location, run_id)), target, len(manifest.files), len(needed), size, already=not won)

    def _stage(self, location: S3Location, manifest: Manifest, needed: list[str], staging: Path) -> None:
        """Each needed object downloaded and checked once, then hard-linked to every path that holds it."""
        blobs = staging / ".objects"
        blobs.mkdir(parents=True)
        self._each(lambda sha: self._download(location, sha, manifest.objects[sha], blobs / sha), needed)
        for step, port in manifest.digests:
            (staging / step / port).mkdir(parents=True, exist_ok=True)  # an empty output stays an (empty) folder
        root = staging.resolve()
        for file in manifest.files:
            destination = staging / file.step / file.port / file.path
            if not destination.resolve().is_relative_to(root):  # read_manifest refused these already: never trust one check
                raise RunStoreError(f"{file.relative!r} would be written outside {staging}", hint="report this: it is a bug")
            destination.parent.mkdir(parents=True, exist_ok=True)
            link_readonly(blobs / file.sha256, destination)
        shutil.rmtree(blobs)

    def _get_manifest(self, location: S3Location, key: str) -> bytes:
        from botocore.exceptions import ClientError  # heavy: loaded only when AWS is used

        uri = location.uri(key)
        with aws_request(f"read {uri}", hint=f"check the prefix: `aws s3 ls {location}runs/ --profile {self.guard.profile}`"):
            try:
                response = self._s3().get_object(Bucket=location.bucket, Key=key)
                if response["ContentLength"] > MAX_MANIFEST_BYTES:
                    raise RunStoreError(
                        f"{uri} holds {human_size(response['ContentLength'])}: more than a run manifest ({human_size(MAX_MANIFEST_BYTES)} at most)",
                        hint="it was not written by `skyops runs push`: do not use it",
                    )
                return bytes(response["Body"].read())
            except ClientError as exc:
                if _code(exc) not in _MISSING:
                    raise
        raise ConfigError(
            f"no run {key.rsplit('/', 1)[1].removesuffix('.json')} is published under {location} ({uri} does not exist)",
            hint=f"`aws s3 ls {location}runs/ --profile {self.guard.profile}` lists the published runs; `skyops runs push` publishes one",
        )

    def _download(self, location: S3Location, sha: str, size: int, blob: Path) -> None:
        """GetObject into `blob`, checked against its sha256 and size; read-only once it passed."""
        uri = location.uri(object_key(location, sha))
        digest = hashlib.sha256()
        with aws_request(f"download {uri}"):
            response = self._s3().get_object(Bucket=location.bucket, Key=object_key(location, sha))
            with open(blob, "wb") as out:
                got = copy_stream(response["Body"], out, (digest,))
        if digest.hexdigest() != sha or got != size:
            blob.unlink()
            raise RunStoreError(
                f"{uri} failed its check (the bytes' sha256 is {digest.hexdigest()}, {got} bytes; the manifest says "
                f"{sha}, {size} bytes); nothing of the run was kept",
                hint="the object under that name is not the content it names: delete it, then push the run again from a machine that has it",
            )
        os.chmod(blob, 0o444)  # a pulled file is a checked copy: not edited in place

    # ---- S3 ---------------------------------------------------------------------------------------------

    def _s3(self) -> Any:
        if self._client is None:
            self._client = self.guard.client("s3")  # the guard decides here, before any request
        return self._client

    def _head(self, location: S3Location, key: str) -> dict[str, Any] | None:
        """HeadObject's answer, or None when there is no such object."""
        from botocore.exceptions import ClientError  # heavy: loaded only when AWS is used

        with aws_request(f"look up {location.uri(key)}", hint="check the bucket, and that the profile's role may read and list it (IAM)"):
            try:
                return dict(self._s3().head_object(Bucket=location.bucket, Key=key))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise

    def _each(self, work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """`work` on every item, `workers` at a time; the results in order. The first error stops what has not started."""
        if self.workers == 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items)), thread_name_prefix="skyops-s3") as pool:
            futures = [pool.submit(work, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _holds(head: dict[str, Any] | None, obj: LocalObject) -> bool:
    """Whether the object found under `obj`'s name says it is `obj`'s content (its sha256 metadata and size)."""
    return head is not None and head.get("ContentLength") == obj.size and (head.get("Metadata") or {}).get(SHA256_METADATA) == obj.sha256


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _base64(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def _publish(staging: Path, target: Path, manifest: bytes) -> bool:
    """Rename the staged run into place: True; False when a pull beside this one put the same run there first."""
    try:
        os.rename(staging, target)  # the run appears whole, or not at all
    except OSError:
        if not (target / MANIFEST_FILE).is_file() or (target / MANIFEST_FILE).read_bytes() != manifest:
            raise
        return False
    return True


def _remove_dead_stagings(into: Path, run_id: str) -> None:
    """Remove what a killed pull of `run_id` staged in `into` (its process is gone)."""
    for leftover in into.glob(f".{run_id}.pull-*"):
        pid = leftover.name.removeprefix(f".{run_id}.pull-").split("-")[0]
        if pid.isdigit() and not pid_exists(int(pid)):
            remove_path(leftover)
