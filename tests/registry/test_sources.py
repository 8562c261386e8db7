"""`registry:<model>@champion` on the local engine: the checked champion pointer's weights, or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.errors import ConfigError, StateFileError
from skyops.registry.champion import pointer_path
from skyops.registry.sources import registry_resolver

from .conftest import governed, register_version


def test_the_champion_s_weights_or_nothing(store_dir: Path, model: str) -> None:
    said: list[str] = []
    resolve = registry_resolver(store_dir, "", said.append)
    assert resolve(f"{model}@champion") is None and said == []  # no champion yet: nothing to compare with
    version = register_version(store_dir, model, 0.3, approve=True)
    governed(store_dir, model).promote("alice", version)
    weights = resolve(f"{model}@champion")
    assert weights is not None and (weights / "best.pt").is_file()
    assert said == [f"comparing with the champion: {model} v{version} (registry:{model}@champion)"]


def test_a_pointer_that_cannot_be_trusted_is_an_error_not_nothing(store_dir: Path, model: str) -> None:
    version = register_version(store_dir, model, 0.3, approve=True)
    governed(store_dir, model).promote("alice", version)
    pointer_path(store_dir, model).write_text("{")
    with pytest.raises(StateFileError, match=rf"^champion pointer {pointer_path(store_dir, model)} is not JSON"):
        registry_resolver(store_dir)(f"{model}@champion")


@pytest.mark.parametrize("reference", ["drone-detector@previous", "drone-detector", "@champion"])
def test_only_a_model_s_champion_is_a_registry_source(store_dir: Path, reference: str) -> None:
    with pytest.raises(ConfigError, match=rf"^registry:{reference} is not registry:<model>@champion$"):
        registry_resolver(store_dir)(reference)
