"""A run's manifest: what `skyops runs push` publishes and `skyops runs pull` trusts, made and checked without AWS.

A destination is an S3 prefix; one holds any number of runs, and a file's bytes are stored once however many
runs or paths hold them:

    <prefix>objects/<sha256>     one object per distinct file content, named by it (x-amz-meta-sha256 says it too)
    <prefix>runs/<run_id>.json   the run's manifest, written last: a reader that finds it finds every object it names

The manifest is JSON with sorted keys, a function of the run record and the outputs' bytes only (no time, no
version), so pushing the same run again makes the same bytes and a second push can tell it is already published:

    {"format": "skyops-run-manifest/1", "run_id": ..., "pipeline": ..., "status": "succeeded",
     "steps": {"<step>": {"<port>": {"digest": "<hash_tree digest>", "files": {"<relative path>": "<sha256>"}}}},
     "objects": {"<sha256>": <bytes>},
     "record": {... the run record, runs/<id>/run.json ...}}

`digest` is the engine's `hash_tree` digest of the output folder, the one the run record holds: a pulled folder
hashes to it again, so a step given the pulled folder as input gets the same input digest as the original.
The record's paths are the pushing machine's (its cache), kept as lineage.

Both sides check what they handle: `local_run` refuses a run whose outputs are gone, changed since the run, or
hold a symbolic link (its target is not the run's) or a path a pull would refuse; `read_manifest` refuses a
manifest whose names or paths would leave the pull's folder, whose digests do not add up, or whose shape is
wrong, listing every problem at once, before anything is downloaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.aws.s3_keys import S3Location, clashes
from skyops.errors import ConfigError, SkyopsError, problems_error
from skyops.pipeline.hashing import hash_tree
from skyops.pipeline.lineage import RunRecord, RunStatus

FORMAT = "skyops-run-manifest/1"
SHA256_METADATA = "sha256"  # x-amz-meta-sha256, as the S3 mirror reads it
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # one key segment and one folder name
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")  # a step or port name: a folder name, never 'manifest.json'
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_NAME = 255  # bytes of one path segment on ext4, xfs, btrfs, APFS


class RunStoreError(SkyopsError):
    """A run cannot be pushed or pulled as it is: outputs changed or gone, a hostile or damaged manifest, bytes
    that fail their sha256, a different run already published under the same id."""

    exit_code = 1


@dataclass(frozen=True)
class LocalObject:
    """One distinct content of a run's outputs: a file that holds it, its sha256 and size."""

    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class LocalRun:
    """A finished run ready to push: its manifest (bytes and their sha256) and the objects it names."""

    run_id: str
    manifest: bytes
    manifest_sha256: str
    objects: tuple[LocalObject, ...]  # sorted by sha256
    files: int


@dataclass(frozen=True)
class ManifestFile:
    """One file a manifest names: where it goes below the pulled run's folder, and its sha256."""

    step: str
    port: str
    path: str  # relative posix path inside the port's folder
    sha256: str

    @property
    def relative(self) -> str:
        return f"{self.step}/{self.port}/{self.path}"


@dataclass(frozen=True)
class Manifest:
    """A manifest read back and checked (`read_manifest`)."""

    run_id: str
    record: RunRecord
    files: tuple[ManifestFile, ...]
    objects: dict[str, int]  # sha256 -> bytes
    digests: dict[tuple[str, str], str]  # (step, port) -> hash_tree digest of its folder


def check_run_id(run_id: str) -> None:
    """A run id is one S3 key segment and one folder name; anything else is refused before it is used as either.

    Raises:
        ConfigError: not a run id.
    """
    if not _RUN_ID.match(run_id):
        raise ConfigError(
            f"{run_id!r} is not a run id (letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit)",
            hint="`skyops runs list` shows the local runs' ids, e.g. 20250101-120000-a1b2c3",
        )


def object_key(location: S3Location, sha256: str) -> str:
    return f"{location.prefix}objects/{sha256}"


def manifest_key(location: S3Location, run_id: str) -> str:
    return f"{location.prefix}runs/{run_id}.json"


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a file's relative path inside a folder, or None.

    Rules (the S3 mirror's, `s3_keys.relative_path`): not absolute; no empty, '.' or '..' segment (they leave or
    alias the folder); no backslash (a separator on Windows) or control character (NUL ends a path); no segment
    longer than 255 bytes.
    """
    where = f"path {_cut(path)}"
    if path.startswith("/"):
        return f"{where} is absolute"
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return f"{where} has an empty, '.' or '..' segment (it would leave or alias its folder)"
    if "\\" in path or _CONTROL.search(path):
        return f"{where} holds a backslash or a control character"
    if any(len(s.encode()) > _MAX_NAME for s in segments):
        return f"{where} has a segment longer than {_MAX_NAME} bytes"
    return None


def tree_digest(files: dict[str, str]) -> str:
    """`hash_tree`'s digest of a folder holding `files` (relative path -> sha256), computed from the list alone."""
    return hashlib.sha256("".join(f"{rel}\0{sha}\n" for rel, sha in sorted(files.items())).encode()).hexdigest()


def local_run(record: RunRecord) -> LocalRun:
    """The manifest of a finished run and the objects to upload, every output checked against the record.

    Raises:
        ConfigError: the run id is not one (a record edited by hand).
        RunStoreError: the run is still running, or an output is gone, changed since the run, holds a symbolic
            link or a path a pull would refuse; every problem at once. Nothing was sent.
    """
    check_run_id(record.run_id)
    if record.status is RunStatus.RUNNING:
        raise RunStoreError(
            f"run {record.run_id} is still running: its outputs are not final",
            hint="push it once it has ended (`skyops runs show` says when)",
        )
    steps: dict[str, dict[str, Any]] = {}
    objects: dict[str, LocalObject] = {}
    problems: list[str] = []
    count = 0
    for name, step in record.steps.items():
        for port, output in step.outputs.items():
            where = f"step {name!r} output {port!r}"
            folder = Path(output["path"])
            if not folder.is_dir():
                problems.append(f"{where}: {folder} is gone (its cache entry was removed)")
                continue
            tree = hash_tree(folder)
            if tree.digest != output["digest"]:
                problems.append(
                    f"{where}: {folder} no longer holds what the run recorded (sha256 {tree.digest[:12]}, recorded "
                    f"{str(output['digest'])[:12]}): a later run replaced its cache entry, or it was edited"
                )
                continue
            found = [f"{where}: {p}" for p in filter(None, map(path_problem, tree.files))]
            found += [f"{where}: {p}" for p in clashes(tree.files)]
            found += [
                f"{where}: {rel!r} is a symbolic link (its target is not part of the run)"
                for rel in tree.files
                if (folder / rel).is_symlink()
            ]
            if found:
                problems += found
                continue
            steps.setdefault(name, {})[port] = {"digest": tree.digest, "files": tree.files}
            count += len(tree.files)
            for rel, sha in tree.files.items():
                if sha not in objects:
                    objects[sha] = LocalObject(folder / rel, sha, (folder / rel).stat().st_size)
    if problems:
        raise problems_error(
            RunStoreError,
            f"the outputs of run {record.run_id} (nothing was sent)",
            problems,
            hint="push a run whose outputs are still in the cache as it made them: run the pipeline again, then push that run",
        )
    manifest = {
        "format": FORMAT,
        "run_id": record.run_id,
        "pipeline": record.pipeline,
        "status": str(record.status),
        "steps": steps,
        "objects": {sha: obj.size for sha, obj in objects.items()},
        "record": record.to_json(),
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode()
    ordered = tuple(objects[sha] for sha in sorted(objects))
    return LocalRun(record.run_id, data, hashlib.sha256(data).hexdigest(), ordered, count)


def read_manifest(data: bytes, uri: str, run_id: str) -> Manifest:
    """A fetched manifest, checked before any of its objects is downloaded.

    Raises:
        RunStoreError: it is not JSON of the format, is another run's, names a step, port or path that would leave
            the pulled run's folder or clash with another, an object that is not a sha256, or digests that do not
            add up (each port's against its files, and against the record's); every problem at once.
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nesting no manifest has
        raise _hostile(uri, [f"it is not JSON ({type(e).__name__})"]) from None
    problems = _shape(value, run_id)
    if problems:
        raise _hostile(uri, problems)
    objects: dict[str, Any] = value["objects"]
    problems += [f"object {_cut(sha)} is not a sha256 with a size in bytes" for sha, size in objects.items() if not _is_object(sha, size)]
    record = _record(value["record"], run_id, problems)
    files: list[ManifestFile] = []
    digests: dict[tuple[str, str], str] = {}
    for step, ports in value["steps"].items():
        if not _NAME.match(step) or not isinstance(ports, dict):
            problems.append(f"step {_cut(step)} is not a step name with its outputs (it names a folder of the pulled run)")
            continue
        for port, output in ports.items():
            found = _output_problems(f"step {step!r} output {_cut(port)}", port, output, objects)
            if not found and record is not None and _recorded_digest(record, step, port) != output["digest"]:
                found.append(f"step {step!r} output {port!r}: its digest is not the one the run record holds")
            if found:
                problems += found
                continue
            digests[(step, port)] = output["digest"]
            files += [ManifestFile(step, port, rel, sha) for rel, sha in sorted(output["files"].items())]
    if problems or record is None:
        raise _hostile(uri, problems)
    return Manifest(run_id, record, tuple(files), dict(objects), digests)


def _shape(value: Any, run_id: str) -> list[str]:
    if not isinstance(value, dict):
        return ["it is not a JSON object"]
    problems = []
    if value.get("format") != FORMAT:
        problems.append(f"'format' is not {FORMAT!r}")
    if value.get("run_id") != run_id:
        problems.append(f"'run_id' is not {run_id!r}")
    problems += [f"{key!r} is missing or not an object" for key in ("steps", "objects", "record") if not isinstance(value.get(key), dict)]
    return problems


def _is_object(sha: str, size: Any) -> bool:
    return bool(_SHA256.match(sha)) and isinstance(size, int) and not isinstance(size, bool) and size >= 0


def _output_problems(where: str, port: str, output: Any, objects: dict[str, Any]) -> list[str]:
    """What is wrong with one port's entry: its name, its paths, the objects it names, its digest."""
    if not _NAME.match(port) or not isinstance(output, dict):
        return [f"{where}: not a port name with its files"]
    tree = output.get("files")
    if not isinstance(tree, dict) or not all(isinstance(sha, str) for sha in tree.values()):
        return [f"{where}: 'files' is not an object of path -> sha256"]
    found = [f"{where}: {p}" for p in filter(None, map(path_problem, tree))] + [f"{where}: {p}" for p in clashes(tree)]
    found += [f"{where}: {_cut(rel)} names an object the manifest does not list" for rel, sha in tree.items() if sha not in objects]
    if output.get("digest") != tree_digest(tree):
        found.append(f"{where}: its digest is not the digest of its files")
    return found


def _record(value: dict[str, Any], run_id: str, problems: list[str]) -> RunRecord | None:
    """The run record inside a manifest, or None (and a problem) when it cannot be read as this run's."""
    try:
        record = RunRecord.from_json(copy.deepcopy(value))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        problems.append(f"'record' is not a run record ({type(e).__name__})")
        return None
    if record.run_id != run_id:
        problems.append(f"'record' is the record of another run, not of {run_id!r}")
        return None
    return record


def _recorded_digest(record: RunRecord, step: str, port: str) -> Any:
    recorded = record.steps.get(step)
    output = recorded.outputs.get(port) if recorded is not None and isinstance(recorded.outputs, dict) else None
    return output.get("digest") if isinstance(output, dict) else None


def _cut(text: str) -> str:
    """A name from a manifest, quoted and cut short: a hostile one may be long."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _hostile(uri: str, problems: list[str]) -> SkyopsError:
    return problems_error(
        RunStoreError,
        f"the run manifest {uri} (nothing was downloaded)",
        problems,
        hint="it was not written by `skyops runs push`, or was changed since: do not use it; push the run again",
    )
