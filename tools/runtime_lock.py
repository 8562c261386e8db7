"""Write requirements-runtime.lock: the dev lock's pins of what `pip install skyops[aws]` needs, and nothing else.

    python tools/runtime_lock.py            # (re)write requirements-runtime.lock   (`make lock`)
    python tools/runtime_lock.py --check    # exit 1 if the file is not what this would write

The dev lock (requirements-lock.txt) pins everything the project installs, test tools included. The
image and a plain install need only pyproject's runtime dependencies (plus the `aws` extra: the
image runs on SageMaker) and what they require, at the dev lock's versions. That closure is walked
here from the dependency metadata of the installed distributions (`make install` put the dev lock
into the venv; a distribution whose version differs from its pin is an error), with environment
markers evaluated for this interpreter: the lock is for the platform of the image, Linux x86_64,
CPython 3.11. No resolver, no index: the dev lock already made every choice.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DEV_LOCK = ROOT / "requirements-lock.txt"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
RUNTIME_EXTRAS = ("aws",)  # pyproject extras the image needs besides the dependencies
HEADER = """\
# The runtime pins of skyops[aws]: pyproject's dependencies, the aws extra, and everything they require,
# at the versions of requirements-lock.txt (which adds the dev and test tools). Generated, do not edit:
#     make lock        (python tools/runtime_lock.py; --check tells whether this file is current)
# docker/Dockerfile installs it, with torch and its CUDA libraries replaced by a CUDA 12.6 build.
"""


class LockError(Exception):
    """The dev lock and the installed distributions cannot give a runtime lock."""


def read_pins(lock: Path) -> dict[str, str]:
    """Canonical name -> pinned version of a `name==version` lock file."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(lock.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        versions = [s.version for s in requirement.specifier if s.operator == "=="]
        if len(versions) != 1:
            raise LockError(f"{lock.name}:{number}: {raw!r} is not a name==version pin")
        pins[canonicalize_name(requirement.name)] = versions[0]
    return pins


def runtime_requirements(pyproject: Path) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [Requirement(r) for r in [*project["dependencies"], *(r for extra in RUNTIME_EXTRAS for r in extras[extra])]]


def closure(roots: Iterable[Requirement], pins: dict[str, str]) -> dict[str, str]:
    """Every distribution `roots` need (with the extras they ask for), pinned as in `pins`."""
    needed: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    queue = [(r, "") for r in roots if _wanted(r, "")]
    problems: list[str] = []
    while queue:
        requirement, asked_by = queue.pop()
        name = canonicalize_name(requirement.name)
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            if name not in pins:
                problems.append(f"{name} (required by {asked_by or 'pyproject.toml'}) has no pin in {DEV_LOCK.name}")
                break
            try:
                distribution = importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                problems.append(f"{name}=={pins[name]} is pinned but not installed: run `make install` first")
                break
            if Version(distribution.version).public != Version(pins[name]).public:
                problems.append(f"{name} is installed at {distribution.version}, pinned at {pins[name]}: run `make install` first")
                break
            if not requirement.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{name}=={pins[name]} does not meet {asked_by or 'pyproject.toml'}'s requirement {requirement}")
            needed[name] = pins[name]
            queue += [(child, name) for child in map(Requirement, distribution.requires or []) if _wanted(child, extra)]
    if problems:
        raise LockError("cannot write the runtime lock:\n" + "\n".join(f"  - {p}" for p in sorted(set(problems))))
    return needed


def _wanted(requirement: Requirement, extra: str) -> bool:
    """Does the "" (base) or `extra` part of a distribution need this requirement of its metadata, here?"""
    if requirement.marker is None:
        return not extra  # unconditional: the base part asks for it
    base = requirement.marker.evaluate({"extra": ""})
    return base if not extra else requirement.marker.evaluate({"extra": extra}) and not base


def runtime_lock_text(root: Path = ROOT) -> str:
    """What requirements-runtime.lock should hold for the pyproject and dev lock under `root`:
    the dev lock's lines of the runtime closure, in the dev lock's order and spelling."""
    dev_lock = root / DEV_LOCK.name
    needed = closure(runtime_requirements(root / "pyproject.toml"), read_pins(dev_lock))
    kept = [line for line in dev_lock.read_text().splitlines() if _pinned_name(line) in needed]
    return HEADER + "\n".join(kept) + "\n"


def _pinned_name(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    return canonicalize_name(Requirement(line).name) if line else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if requirements-runtime.lock is not current")
    args = parser.parse_args(argv)
    try:
        text = runtime_lock_text()
    except LockError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        current = RUNTIME_LOCK.read_text() if RUNTIME_LOCK.is_file() else ""
        if current != text:
            print(f"error: {RUNTIME_LOCK.name} is not current\nhint: run `make lock` and commit the result", file=sys.stderr)
            return 1
        return 0
    tmp = RUNTIME_LOCK.with_suffix(".lock.tmp")
    tmp.write_text(text)
    tmp.replace(RUNTIME_LOCK)
    print(f"wrote {RUNTIME_LOCK.name}: {text.count(chr(10)) - HEADER.count(chr(10))} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
