"""Helpers shared by CLI commands: settings, pipeline loading, the engine, registry and governance."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from skyops.settings import DEFAULT_MODEL, Settings, load_settings

if TYPE_CHECKING:
    from skyops.pipeline.definition import Pipeline
    from skyops.pipeline.engine import LocalEngine


def settings() -> Settings:
    return load_settings()


def load(name: str) -> Pipeline:
    from skyops.pipeline.definition import load_pipeline

    return load_pipeline(name, search=settings().pipeline_dirs)


def code_roots(pipeline: Pipeline) -> dict[str, Path]:
    """Top-level packages whose sources enter cache keys: skyops and each step catalog's package."""
    roots = {}
    for top in {"skyops", *(node.definition.script_module.split(".")[0] for node in pipeline.steps)}:
        spec = importlib.util.find_spec(top)
        if spec and spec.submodule_search_locations:
            roots[top] = Path(next(iter(spec.submodule_search_locations)))
    return roots


def engine(
    pipeline: Pipeline,
    *,
    workers: int = 2,
    use_cache: bool = True,
    announce: Callable[[str], None] | None = None,
    keep_warm: bool = False,
) -> LocalEngine:
    """The local engine, with the resolvers of the sources pipelines declare (`registry:<model>@champion`) and the
    fetcher of `s3://` inputs (the S3 mirror under the state folder, through the profile guard).

    `announce` is told what a source resolved to ("comparing with the champion: ...") and what a fetch downloaded.
    `keep_warm`: one warm step host for all the engine's runs (LocalEngine); close the engine when done.
    """
    from skyops.pipeline.engine import LocalEngine, StateDir
    from skyops.registry.sources import REGISTRY_SCHEME, registry_resolver

    s = settings()
    resolvers = {REGISTRY_SCHEME: registry_resolver(s.state_dir, s.tracking_uri, announce)}
    fetchers = {"s3": s3_fetcher(s, announce)}
    return LocalEngine(
        StateDir(s.state_dir),
        code_roots=code_roots(pipeline),
        workers=workers,
        use_cache=use_cache,
        resolvers=resolvers,
        fetchers=fetchers,
        keep_warm=keep_warm,
    )


def s3_fetcher(s: Settings, announce: Callable[[str], None] | None) -> Callable[[str], tuple[Path, str]]:
    """The engine's fetcher of `s3://` inputs: the S3 mirror, made (and AWS imported) only when a run reads one."""
    made: list[Callable[[str], tuple[Path, str]]] = []

    def fetch(uri: str) -> tuple[Path, str]:
        if not made:
            from skyops.aws.s3_mirror import S3Mirror
            from skyops.aws.session import AwsGuard

            made.append(S3Mirror(s.state_dir / "s3", AwsGuard.from_settings(s), announce))
        return made[0](uri)

    return fetch


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    from skyops.errors import ConfigError

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r} is not key=value", hint="write e.g. --param epochs=3")
        params[key.strip()] = value
    return params


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def registry(model: str = DEFAULT_MODEL):
    from skyops.registry.models import ModelRegistry
    from skyops.training.tracking import TrackingStore

    s = settings()
    return ModelRegistry(TrackingStore.local(s.state_dir, s.tracking_uri), model)


def governance():
    from skyops.registry.roles import Governance

    s = settings()
    return Governance(s.project_dir, s.state_dir / "audit.log")


def actor(explicit: str | None) -> str:
    from skyops.registry.roles import resolve_identity

    return resolve_identity(explicit)
