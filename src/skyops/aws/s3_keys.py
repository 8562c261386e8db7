"""S3 locations and keys as local paths: `s3://bucket/prefix` parsed, and every key under the prefix either a
safe relative path or a named problem.

An S3 key is any UTF-8 string: `data/../../etc/passwd`, `data//x`, `data/a\\b` and `data/` (a console
"folder") are all valid keys. Mirrored naively, some of them would write outside the copy's folder or
overwrite each other, so each key's part below the prefix is checked before anything is downloaded
(`relative_path`, rules numbered there; `clashes` for keys that collide with each other) and one bad
key refuses the whole listing: a dataset with a hostile key is not one to train on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from skyops.errors import ConfigError

SCHEME = "s3"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's rules for bucket names (general purpose buckets)
_MAX_NAME = 255  # bytes of one path segment on ext4, xfs, btrfs, APFS
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix, read as a folder: '' (the whole bucket) or ending with '/'."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def parse_s3_uri(uri: str) -> S3Location:
    """`s3://bucket/prefix` as a folder: `s3://b/data` and `s3://b/data/` both name the keys under `data/`.

    Raises:
        ConfigError: not an s3:// URI, or the bucket name is not one S3 allows.
    """
    if not uri.startswith(f"{SCHEME}://"):
        raise ConfigError(f"{uri!r} is not an S3 URI", hint="write it as s3://BUCKET/PREFIX, e.g. s3://my-data/visdrone/")
    bucket, _, prefix = uri.removeprefix(f"{SCHEME}://").partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"{uri!r}: {bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')",
            hint="write it as s3://BUCKET/PREFIX, e.g. s3://my-data/visdrone/",
        )
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Location(bucket, prefix)


def relative_path(key: str, prefix: str, size: int) -> tuple[str | None, str | None]:
    """(the path of `key` below `prefix` in a local copy, or None to skip it; a problem, or None).

    Rules:
      1. a key ending in '/' with no bytes is a folder marker (the S3 console makes them): skipped;
         with bytes it would be a file named like a folder: refused;
      2. the part below the prefix must not start with '/' (it would be an absolute path);
      3. no segment may be empty ('a//b'), '.' or '..' (they name another file or leave the copy);
      4. no backslash (a folder separator on Windows) and no control character (NUL ends a path);
      5. each segment fits a file name (255 bytes).
    """
    rel = key[len(prefix) :]
    where = f"key {key!r}"
    if key.endswith("/"):
        return None, None if size == 0 else f"{where} ends with '/' but holds {size} bytes (a file named like a folder)"
    if rel.startswith("/"):
        return None, f"{where} would be the absolute path {rel!r}"
    segments = rel.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return None, f"{where} has an empty, '.' or '..' segment below {prefix or 'the bucket root'!r} (it would leave or alias its folder)"
    if "\\" in rel or _CONTROL.search(rel):
        return None, f"{where} holds a backslash or a control character"
    if any(len(s.encode()) > _MAX_NAME for s in segments):
        return None, f"{where} has a segment longer than {_MAX_NAME} bytes (no file system here takes it)"
    return rel, None


def clashes(paths: Iterable[str]) -> list[str]:
    """Problems of paths one local copy cannot hold apart: a path that is also a folder of others ('a' and 'a/b'),
    and paths that differ only in case ('A.jpg' and 'a.jpg': one file on macOS' and Windows' default file systems)."""
    files = set(paths)
    problems = []
    by_case: dict[str, str] = {}
    for path in sorted(files):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                problems.append(f"{folder!r} is an object and also a folder of {path!r}")
                break
        twin = by_case.setdefault(path.casefold(), path)
        if twin != path:
            problems.append(f"{twin!r} and {path!r} differ only in case (one file on a case-insensitive file system)")
    return problems
