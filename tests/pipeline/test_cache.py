import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.pipeline.cache import Cache, KeyParts, code_digest, explain_miss, should_run
from skyops.pipeline.locks import LockWaitStopped, key_lock

from .conftest import HERE, SKYOPS_ROOT

TOYSTEPS = HERE / "toysteps" / "double"


def parts(**changes: object) -> KeyParts:
    base = {"step": "s", "code": "c" * 64, "config": {"n": 1}, "inputs": {"data": "d" * 64}, "env": {}, "libraries": {"python": "3.11"}}
    return KeyParts(**{**base, **changes})  # type: ignore[arg-type]


def test_key_depends_on_every_part() -> None:
    keys = {
        parts().key,
        parts(code="x").key,
        parts(config={"n": 2}).key,
        parts(inputs={"data": "e"}).key,
        parts(env={"A": "1"}).key,
        parts(libraries={"torch": "2"}).key,
    }
    assert len(keys) == 6


def test_miss_is_explained_part_by_part() -> None:
    assert explain_miss(None, parts()) == ["first run of this step"]
    assert explain_miss(parts(), parts(code="x", config={"n": 2})) == ["step code changed", "config changed (n: 1 -> 2)"]


def test_should_run_rules(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", tmp_path / "staging")
    staged = cache.stage(parts().key)
    (staged / "outputs" / "out").mkdir()
    entry = cache.publish(staged, parts(), {"out": "digest"})
    assert should_run(entry, use_cache=False) == (True, "caching is off (--no-cache)")
    assert should_run(None, use_cache=True) == (True, "no cache entry for this key")
    assert should_run(entry, use_cache=True) == (False, "cache hit")
    (entry.output_dir("out")).rmdir()
    assert should_run(entry, use_cache=True) == (True, "cache entry is missing outputs out")


def test_code_digest_follows_imports_and_ignores_root_order() -> None:
    roots = {"skyops": SKYOPS_ROOT, "tests": HERE.parent}
    forward = code_digest(TOYSTEPS, roots)
    assert forward == code_digest(TOYSTEPS, dict(reversed(roots.items())))
    assert forward != code_digest(TOYSTEPS, {"tests": HERE.parent})  # skyops imports count


def test_should_run_checks_declared_files_then_asks_recheck(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", tmp_path / "staging")
    staged = cache.stage(parts().key)
    (staged / "outputs" / "out").mkdir()
    (staged / "outputs" / "out" / "best.pt").write_text("w")
    entry = cache.publish(staged, parts(), {"out": "digest"})
    asked: list[str] = []

    def recheck(answer: str | None) -> Callable[[], str | None]:
        return lambda: asked.append("asked") or answer  # type: ignore[func-returns-value]

    assert should_run(entry, use_cache=True, files={"out": ("best.pt",)}, recheck=recheck(None)) == (False, "cache hit")
    assert should_run(entry, use_cache=True, recheck=recheck("version 3 was deleted")) == (
        True,
        "cached result no longer holds: version 3 was deleted",
    )
    assert asked == ["asked", "asked"]
    assert should_run(entry, use_cache=True, files={"out": ("best.pt", "last.pt")}, recheck=recheck(None)) == (
        True,
        "cache entry's output 'out' lacks last.pt",
    )
    assert should_run(None, use_cache=True, recheck=recheck(None)) == (True, "no cache entry for this key")
    assert asked == ["asked", "asked"], "recheck is asked only when every other rule would reuse the entry"


def test_a_forced_publish_that_fails_keeps_the_old_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path / "cache", tmp_path / "staging")
    staged = cache.stage(parts().key)
    (staged / "outputs" / "out").mkdir()
    old = cache.publish(staged, parts(), {"out": "old"})
    (old.output_dir("out") / "model.pt").write_text("old weights")
    failing = cache.stage(parts().key)
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:  # the file system refuses to move the new entry into place
        if src == failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="No space left on device"):
        cache.publish(failing, parts(), {"out": "new"}, replace=True)
    assert cache.lookup(parts().key) == old and (old.output_dir("out") / "model.pt").read_text() == "old weights"


def test_key_lock_makes_a_second_holder_wait_and_a_stopping_run_give_up(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "k.lock"
    stop, waits = threading.Event(), []
    with key_lock(lock, stop=stop, on_wait=lambda: waits.append("first")) as waited:
        assert waited == 0 and waits == []
        stop.set()
        with pytest.raises(LockWaitStopped), key_lock(lock, stop=stop, on_wait=lambda: waits.append("second")):
            pass
    assert waits == ["second"]
    with key_lock(lock, stop=threading.Event(), on_wait=lambda: waits.append("third")) as waited:
        assert waited == 0, "released when the holder left its block"
