"""The code archive (same bytes every build) and what runs first in a job: the processing and training entrypoints."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import skyops
from skyops.errors import ConfigError
from skyops.pipeline.sagemaker import build_code_archive, with_code
from skyops.pipeline.sagemaker.container import PROCESSING_CODE_DIR, TRAINING_CODE_DIR, UNPACKED_CODE_DIR, code_entrypoint
from skyops.pipeline.sagemaker.jobs import processing_entrypoint

from .conftest import SETTINGS

SKYOPS = Path(skyops.__file__).parent
PROBE = "import json, os, sys\nprint(json.dumps({'file': __file__, 'argv': sys.argv[1:], 'run': os.environ.get('SKYOPS_RUN_ID')}))\n"


@pytest.fixture
def probe_archive(tmp_path: Path) -> Path:
    """A code archive holding package `probe`, whose __main__ prints where it runs from, its argv and SKYOPS_RUN_ID."""
    (tmp_path / "src" / "probe").mkdir(parents=True)
    (tmp_path / "src" / "probe" / "__init__.py").write_text("")
    (tmp_path / "src" / "probe" / "__main__.py").write_text(PROBE)
    archive = tmp_path / "sourcedir.tar.gz"
    archive.write_bytes(build_code_archive({"probe": tmp_path / "src" / "probe"}).data)
    return archive


def test_archive_is_byte_identical_across_builds() -> None:
    first, second = build_code_archive({"skyops": SKYOPS}), build_code_archive({"skyops": SKYOPS})
    assert first.data == second.data and first.sha256 == second.sha256
    assert with_code(SETTINGS, first).code_key == f"skyops/code/{first.sha256}/sourcedir.tar.gz"


_NAMES = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(files=st.dictionaries(st.tuples(_NAMES, _NAMES), st.binary(max_size=64), min_size=1, max_size=8), seed=st.randoms())
def test_archive_bytes_depend_on_content_only(
    files: dict[tuple[str, str], bytes], seed: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two trees with the same files, written in different orders at different times, archive to the same bytes."""
    order = list(files.items())
    trees = []
    for shuffle in (False, True):
        root = tmp_path_factory.mktemp("tree")
        if shuffle:
            seed.shuffle(order)  # type: ignore[attr-defined]
        for (folder, name), data in order:
            (root / folder).mkdir(exist_ok=True)
            (root / folder / f"{name}.py").write_bytes(data)
            os.utime(root / folder / f"{name}.py", (1e9 if shuffle else 2e9, 1e9 if shuffle else 2e9))
        trees.append(build_code_archive({"pkg": root}))
    assert trees[0].data == trees[1].data


def test_archive_holds_sources_and_package_data_with_neutral_metadata() -> None:
    archive = build_code_archive({"skyops": SKYOPS})
    assert gzip.decompress(archive.data) and archive.data[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    with tarfile.open(fileobj=io.BytesIO(archive.data)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {"skyops/pipeline/sagemaker/container.py", "skyops/steps/train/script.py", "skyops/training/evaluation_schema.json"} <= set(
        names
    )
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_archive_of_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="code archive: not a folder: ghost: "):
        build_code_archive({"ghost": tmp_path / "ghost"})


def test_processing_entrypoint_unpacks_the_code_and_passes_the_arguments(probe_archive: Path, tmp_path: Path) -> None:
    script = processing_entrypoint("probe")
    assert script[0:2] == ["/bin/sh", "-c"] and script[3] == "sh"
    code_dir, unpacked = probe_archive.parent, tmp_path / "unpacked"  # the container's paths, moved under tmp_path
    line = script[2].replace(PROCESSING_CODE_DIR, str(code_dir)).replace(UNPACKED_CODE_DIR, str(unpacked))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [script[0], script[1], line, script[3], "--epochs", "3", "--name", "a b"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["argv"] == ["--epochs", "3", "--name", "a b"] and Path(shown["file"]).is_relative_to(unpacked)


def test_training_entrypoint_unpacks_the_code_and_runs_with_the_jobs_environment(probe_archive: Path, tmp_path: Path) -> None:
    script = code_entrypoint("probe", TRAINING_CODE_DIR, with_arguments=False)
    assert script[0:2] == ["/bin/sh", "-c"] and len(script) == 3
    code_dir, unpacked = probe_archive.parent, tmp_path / "unpacked"  # the channel and scratch paths, moved under tmp_path
    line = script[2].replace(TRAINING_CODE_DIR, str(code_dir)).replace(UNPACKED_CODE_DIR, str(unpacked))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "SKYOPS_RUN_ID": "from-environment"}
    # SageMaker may start the entrypoint with the word `train`: it lands in $0 and the step never sees it.
    done = subprocess.run([script[0], script[1], line, "train"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown == {"file": shown["file"], "argv": [], "run": "from-environment"} and Path(shown["file"]).is_relative_to(unpacked)
