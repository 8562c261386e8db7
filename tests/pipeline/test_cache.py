from pathlib import Path

from skyops.pipeline.cache import Cache, KeyParts, code_digest, explain_miss, should_run

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
