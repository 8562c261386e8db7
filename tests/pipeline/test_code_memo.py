"""The code version of a step, remembered between processes: never stale, never re-parsed for nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from skyops.pipeline.cache import CodeMemo, code_digest, library_versions

from .conftest import SKYOPS_ROOT

# Another process: adopt the saved memo, then compute the digest with ast.parse broken, so it
# prints a digest only if nothing had to be parsed (or "parsed" if the memo did not cover it).
NEXT_PROCESS = """
import ast, sys
from pathlib import Path
from skyops.pipeline.cache import CodeMemo, code_digest

CodeMemo(Path(sys.argv[1]))
def parse(*args, **kwargs):
    print("parsed", args[1] if len(args) > 1 else kwargs.get("filename"))
    sys.exit(3)
ast.parse = parse
print(code_digest(Path(sys.argv[2]), {"skyops": Path(sys.argv[3]), sys.argv[4]: Path(sys.argv[5])}))
"""


def next_process(memo: Path, step: Path, package: str, root: Path) -> subprocess.CompletedProcess[str]:
    args = [str(memo), str(step.parent), str(SKYOPS_ROOT), package, str(root / package)]
    return subprocess.run([sys.executable, "-c", NEXT_PROCESS, *args], capture_output=True, text=True, timeout=60)


def test_the_next_process_reuses_the_saved_closure_without_parsing(scratch_package, tmp_path: Path) -> None:
    step = scratch_package("one", '(outputs["out"] / "x.txt").write_text("hello")')
    roots = {"skyops": SKYOPS_ROOT, scratch_package.package: scratch_package.root / scratch_package.package}
    memo = CodeMemo(tmp_path / "code-memo.json")
    digest = code_digest(step.parent, roots)
    memo.save()
    done = next_process(tmp_path / "code-memo.json", step, scratch_package.package, scratch_package.root)
    assert (done.returncode, done.stdout.strip()) == (0, digest), done.stdout + done.stderr


def test_a_module_added_to_the_step_package_is_followed_by_the_next_process(scratch_package, tmp_path: Path) -> None:
    step = scratch_package("one", '(outputs["out"] / "x.txt").write_text("hello")')
    roots = {"skyops": SKYOPS_ROOT, scratch_package.package: scratch_package.root / scratch_package.package}
    memo = CodeMemo(tmp_path / "code-memo.json")
    before = code_digest(step.parent, roots)
    memo.save()
    (step.parent / "helper.py").write_text("GREETING = 'hello'\n")  # no other file changes
    done = next_process(tmp_path / "code-memo.json", step, scratch_package.package, scratch_package.root)
    assert done.returncode == 3 and done.stdout.startswith("parsed "), done.stdout + done.stderr  # it looked again
    assert code_digest(step.parent, roots) != before


def test_a_module_replaced_under_its_old_mtime_changes_the_digest(scratch_package) -> None:
    step = scratch_package("one", '(outputs["out"] / "x.txt").write_text("hello")')
    roots = {"skyops": SKYOPS_ROOT, scratch_package.package: scratch_package.root / scratch_package.package}
    before = code_digest(step.parent, roots)
    stat = step.stat()
    step.write_text(step.read_text().replace('"hello"', '"howdy"'))  # same size
    os.utime(step, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or an unpacked archive would leave it
    assert step.stat().st_mtime_ns == stat.st_mtime_ns and step.stat().st_size == stat.st_size
    assert code_digest(step.parent, roots) != before


def test_a_damaged_memo_only_costs_reading_the_sources(scratch_package, tmp_path: Path) -> None:
    step = scratch_package("one", '(outputs["out"] / "x.txt").write_text("hello")')
    roots = {"skyops": SKYOPS_ROOT, scratch_package.package: scratch_package.root / scratch_package.package}
    path = tmp_path / "code-memo.json"
    path.write_text('{"closures": [{"package": 1}]')
    memo = CodeMemo(path)
    digest = code_digest(step.parent, roots)
    memo.save()
    assert json.loads(path.read_text())["closures"]  # rewritten whole
    done = next_process(path, step, scratch_package.package, scratch_package.root)
    assert (done.returncode, done.stdout.strip()) == (0, digest)


def test_library_versions_read_from_the_metadata_header_match_importlib() -> None:
    names = tuple(sorted({d.metadata["Name"] for d in metadata.distributions()}))
    versions = library_versions(names)
    assert {name: versions[name] for name in names} == {name: metadata.version(name) for name in names}
    assert library_versions(("no-such-distribution-skyops",))["no-such-distribution-skyops"] == "not installed"
