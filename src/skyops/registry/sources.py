"""`registry:<model>@champion`: the current champion's weights, as a pipeline input source.

A pipeline declares where an input comes from (`inputs: {champion: "registry:${model_name}@champion"}`)
and each engine resolves it with its own registry: here the local one, through the checked
@champion pointer (champion.py), without importing MLflow; on SageMaker the model package group's
newest Approved version (skyops.aws.model_packages.registry_resolver). The core knows neither: the
CLI gives the engine `{REGISTRY_SCHEME: registry_resolver(...)}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from skyops.errors import ConfigError
from skyops.registry.champion import champion_weights
from skyops.settings import DEFAULT_MODEL

REGISTRY_SCHEME = "registry"
CHAMPION = "champion"  # the one alias both engines resolve (SageMaker's registry has no aliases)
_REFERENCE = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<alias>[a-z]+)$")


def parse_reference(reference: str) -> str:
    """The model named by `<model>@champion`.

    Raises:
        ConfigError: another shape or another alias.
    """
    m = _REFERENCE.match(reference)
    if m is None or m.group("alias") != CHAMPION:
        raise ConfigError(
            f"{REGISTRY_SCHEME}:{reference} is not {REGISTRY_SCHEME}:<model>@{CHAMPION}",
            hint=f"the registry source names a model's @{CHAMPION}, e.g. {REGISTRY_SCHEME}:{DEFAULT_MODEL}@{CHAMPION}",
        )
    return m.group("model")


def registry_resolver(
    state_dir: Path, tracking_uri: str = "", announce: Callable[[str], None] | None = None
) -> Callable[[str], Path | None]:
    """The local engine's resolver of `registry:` references: @champion's weights folder, or None without a champion.

    Args:
        state_dir: the project's state dir (where the champion pointer lives beside the embedded store).
        tracking_uri: the configured store (SKYOPS_TRACKING_URI); default: the state dir's sqlite store.
        announce: told one line when a champion is found ("comparing with the champion: ...").

    The resolver raises StateFileError when the pointer cannot be trusted (damaged, stale, weights gone).
    """

    def resolve(reference: str) -> Path | None:
        model = parse_reference(reference)
        found = champion_weights(state_dir, model, tracking_uri)  # checked against the registry
        if found is None:
            return None
        version, weights = found
        if announce is not None:
            announce(f"comparing with the champion: {model} v{version} ({REGISTRY_SCHEME}:{reference})")
        return weights

    return resolve
