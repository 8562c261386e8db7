"""`skyops infra upload-notebooks`: notebooks/<persona>/*.ipynb into the artifact bucket under the persona's prefix.

    found = find_notebooks(project_dir / "notebooks")       # {persona: [paths]}; ConfigError when there are none
    upload_notebooks(guard.client("s3"), bucket, found)      # -> [(path, s3 URI)]

The prefixes are those the core template's roles grant: `notebooks/data-scientist/` is read and written by the Data
Scientist (and read by the ML Engineer), `notebooks/ml-engineer/` by the ML Engineer only. Only the notebooks
directly in a persona's folder are uploaded; the files are read, never changed, and no path leaves the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skyops.aws.infra import PERSONAS
from skyops.aws.session import aws_request
from skyops.errors import ConfigError, problems_error

PREFIX = "notebooks"
CONTENT_TYPE = "application/x-ipynb+json"


def notebook_key(persona: str, path: Path) -> str:
    return f"{PREFIX}/{persona}/{path.name}"


def find_notebooks(root: Path) -> dict[str, list[Path]]:
    """Each persona's notebooks (sorted), only personas that have some.

    Raises:
        ConfigError: no notebook at all, a folder that names no persona, or a notebook that is a link leaving `root`.
    """
    problems: list[str] = []
    found: dict[str, list[Path]] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    resolved_root = root.resolve()
    for folder in folders:
        notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
        if folder.name not in PERSONAS:
            if notebooks:
                problems.append(f"{folder}/ holds notebooks but names no persona (expected {' or '.join(PERSONAS)})")
            continue
        for path in notebooks:
            if not path.resolve().is_relative_to(resolved_root):
                problems.append(f"{path} links outside {root}; notebooks are uploaded from the folder itself only")
        if notebooks:
            found[folder.name] = notebooks
    if problems:
        raise problems_error(
            ConfigError, f"notebooks in {root}", problems, hint=f"put each notebook in {root}/<persona>/, one of {', '.join(PERSONAS)}"
        )
    if not found:
        raise ConfigError(
            f"no notebooks to upload: {root} has no {' or '.join(f'{persona}/*.ipynb' for persona in PERSONAS)}",
            hint=f"add the personas' notebooks under {root}/<persona>/ (or give --source FOLDER), then run this again",
        )
    return found


def upload_notebooks(s3: Any, bucket: str, found: dict[str, list[Path]]) -> list[tuple[Path, str]]:
    """Put every notebook at s3://bucket/notebooks/<persona>/<name> (overwriting the previous version: the bucket keeps it)."""
    uploaded = []
    for persona, paths in sorted(found.items()):
        for path in paths:
            key = notebook_key(persona, path)
            with aws_request(f"upload {path} to s3://{bucket}/{key}", hint="the profile needs s3:PutObject on the artifact bucket"):
                s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=CONTENT_TYPE)
            uploaded.append((path, f"s3://{bucket}/{key}"))
    return uploaded
