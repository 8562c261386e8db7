"""The step catalog: each step registers itself with a decorator on its script's `main`.

    CATALOG = Catalog("skyops.steps")

    @CATALOG.step(spec=SPEC, contract=CONTRACT, config=SplitConfig)
    def main(inputs, outputs, env, args): ...

A definition is checked when it is made: the function's signature, the spec's ports against the
contract's paths, and the config class. A broken step fails at import, not half-way through a run.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from skyops.errors import ContractError, PipelineError, SkyopsError, problems_error
from skyops.pipeline.config import StepConfig
from skyops.pipeline.contract import ScriptContract
from skyops.pipeline.spec import StepSpec

# The one signature every script's main has: (inputs, outputs, env, args).
ScriptMain = Callable[[dict[str, Path], dict[str, Path], dict[str, str], Any], None]
SCRIPT_PARAMETERS = ("inputs", "outputs", "env", "args")
# recheck(outputs, env) -> None while a cached result still holds, else why not (see StepDefinition).
Recheck = Callable[[Mapping[str, Path], Mapping[str, str]], str | None]
RECHECK_PARAMETERS = ("outputs", "env")
# warm() -> None imports what the script needs, ahead of a fork (see StepDefinition).
Warm = Callable[[], None]


@dataclass(frozen=True)
class EmptyConfig(StepConfig):
    """Config of a step that takes no settings."""


@dataclass(frozen=True, kw_only=True)
class StepDefinition:
    """The four layers of one step type: spec, contract, config class and script function.

    The builder is chosen by `contract.job_kind`, one builder per job kind.

    `recheck`, for a step whose output refers to state outside the cache (a registry version, a
    deployed endpoint): on a cache hit the local engine calls `recheck(outputs, env)` with each
    output port's published folder and the step's env (its contract's variables and the run
    context); None means the result still holds, a string says why it no longer does and the step
    runs again. An exception fails the step. It runs in the engine's process: keep it quick, and
    import heavy libraries inside it.

    `warm()`, for a step with heavy imports that runs many times in a row (the train step of a tuning
    study): it imports them, and the step host that keeps one process for the study
    (`LocalEngine(keep_warm=True)`) calls it once, before it forks the step, under the step's
    environment. It must start no thread and run no parallel work (a forked child gets no threads),
    and must not depend on anything but the environment.
    """

    spec: StepSpec
    contract: ScriptContract
    config: type[StepConfig]
    func: ScriptMain
    libraries: tuple[str, ...] = ()  # distributions whose versions enter the cache key
    recheck: Recheck | None = None
    warm: Warm | None = None
    _source_file: str = field(default="", repr=False)

    @property
    def name(self) -> str:
        return self.spec.step_type

    @property
    def script_module(self) -> str:
        return self.func.__module__

    @property
    def warm_hook(self) -> str:
        """The warm hook as "module:function" (what a step host imports and calls), or ""."""
        return f"{self.warm.__module__}:{self.warm.__qualname__}" if self.warm else ""

    @property
    def source_file(self) -> Path:
        return Path(self._source_file or inspect.getfile(self.func))

    @property
    def package_dir(self) -> Path:
        return self.source_file.parent

    def __call__(self, inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: Any) -> None:
        self.func(inputs, outputs, env, args)


def definition_problems(
    spec: StepSpec,
    contract: ScriptContract,
    config: type,
    func: Callable[..., Any],
    recheck: Callable[..., Any] | None = None,
    warm: Callable[..., Any] | None = None,
) -> list[str]:
    """Problems visible without running anything: signatures, spec ports vs contract paths, config."""
    problems = []
    params = tuple(inspect.signature(func).parameters)
    if params != SCRIPT_PARAMETERS:
        problems.append(f"script {func.__module__}.{func.__name__} takes ({', '.join(params)}); expected ({', '.join(SCRIPT_PARAMETERS)})")
    if recheck is not None:
        taken = tuple(inspect.signature(recheck).parameters) if callable(recheck) else None
        if taken != RECHECK_PARAMETERS:
            where = f"{recheck.__module__}.{recheck.__qualname__}" if callable(recheck) else repr(recheck)
            problems.append(f"recheck {where} takes ({', '.join(taken or ())}); expected ({', '.join(RECHECK_PARAMETERS)})")
    if warm is not None:
        qualname = getattr(warm, "__qualname__", "<>")
        named = callable(warm) and "<" not in qualname and "." not in qualname
        if not named or inspect.signature(warm).parameters:
            problems.append(f"warm hook {warm!r} must be a module-level function that takes no arguments (a step host calls it by name)")
    for side, ports, paths in (("input", spec.inputs, contract.inputs), ("output", spec.outputs, contract.outputs)):
        names = {p.name for p in ports}
        problems += [f"spec {side} port {n!r} has no path in the contract" for n in sorted(names - set(paths))]
        problems += [f"contract {side} path for {n!r} has no port in the spec" for n in sorted(set(paths) - names)]
    if not (isinstance(config, type) and issubclass(config, StepConfig) and is_dataclass(config)):
        problems.append(f"config {config!r} is not a StepConfig dataclass")
    elif contract.registers is not None and contract.registers.model_name_config not in {f.name for f in fields(config)}:
        problems.append(
            f"registers.model_name_config names config field {contract.registers.model_name_config!r}, which {config.__name__} does not have"
        )
    return problems


class Catalog:
    """Step definitions of one package, registered by decorator and found by importing it.

    Args:
        package: dotted name of the package whose sub-packages each hold one step
            (`<package>.<step>.script` registers it).
    """

    def __init__(self, package: str) -> None:
        self.package = package
        self._steps: dict[str, StepDefinition] = {}
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()  # engine threads may ask at once; a step module's import may ask again

    def step(
        self,
        *,
        spec: StepSpec,
        contract: ScriptContract,
        config: type[StepConfig] = EmptyConfig,
        libraries: tuple[str, ...] = (),
        recheck: Recheck | None = None,
        warm: Warm | None = None,
    ) -> Callable[[ScriptMain], StepDefinition]:
        """Register the decorated `main(inputs, outputs, env, args)` as a step.

        `recheck(outputs, env)` says whether a cached result still holds, `warm()` imports the step's
        heavy libraries ahead of a fork (see `StepDefinition`).
        """

        def register(func: ScriptMain) -> StepDefinition:
            problems = definition_problems(spec, contract, config, func, recheck, warm)
            if problems:
                raise problems_error(ContractError, f"step {spec.step_type!r}", problems, hint="make the spec, contract and main() agree")
            definition = StepDefinition(
                spec=spec, contract=contract, config=config, func=func, libraries=libraries, recheck=recheck, warm=warm
            )
            # Re-registration happens when a module is run as __main__ after being imported; keep the first.
            self._steps.setdefault(spec.step_type, definition)
            return definition

        return register

    def load(self) -> None:
        """Import every step of the package, all or nothing; report every step that fails to define.

        A catalog is loaded only when every step module imported: after a failure (a step that does
        not define, or one whose import raises anything) the catalog stays unloaded, so each later use
        (`get`, iterating, the alignment check) fails the same way until the step is fixed, rather than
        serving the steps that happened to register first. Steps a failed module registered before it
        raised are dropped, so the retry registers them afresh.
        """
        with self._lock:
            if self._loaded or self._loading:
                return  # loaded, or a step module being imported asked for its own catalog
            self._loading = True
            registered_before = set(self._steps)
            try:
                problems = self._import_steps()
                if problems:
                    raise problems_error(PipelineError, f"catalog {self.package!r}", problems)
                self._loaded = True
            except BaseException:
                # Keep what imported whole (its module stays imported and will not register again); drop the rest.
                self._steps = {name: d for name, d in self._steps.items() if name in registered_before or d.script_module in sys.modules}
                raise
            finally:
                self._loading = False

    def _import_steps(self) -> list[str]:
        import pkgutil  # only listing a catalog needs it; a step's own process never does

        package = importlib.import_module(self.package)
        problems = []
        for module in pkgutil.iter_modules(package.__path__):
            if not module.ispkg:
                continue
            if not Path(module.module_finder.path, module.name, "script.py").is_file():  # type: ignore[union-attr]
                problems.append(f"{module.name}: step package has no script.py registering its step")
                continue
            try:
                importlib.import_module(f"{self.package}.{module.name}.script")
            except SkyopsError as e:
                problems += [f"{module.name}: {p}" for p in e.problems]
        return problems

    def get(self, name: str) -> StepDefinition:
        self.load()
        try:
            return self._steps[name]
        except KeyError:
            raise PipelineError(
                f"unknown step {name!r} in catalog {self.package!r}",
                hint=f"known steps: {', '.join(sorted(self._steps)) or 'none'}",
            ) from None

    def __iter__(self) -> Iterator[StepDefinition]:
        self.load()
        return iter(sorted(self._steps.values(), key=lambda d: d.name))


def catalog_of(package: str) -> Catalog:
    """The Catalog object a step package exposes as `CATALOG`."""
    try:
        module = sys.modules.get(package) or importlib.import_module(package)
    except ModuleNotFoundError as e:
        raise PipelineError(
            f"step catalog {package!r} cannot be imported: {e}", hint="install it, or add its folder to PYTHONPATH"
        ) from None
    catalog = getattr(module, "CATALOG", None)
    if not isinstance(catalog, Catalog):
        raise PipelineError(f"package {package!r} has no CATALOG", hint="define CATALOG = Catalog(__name__) in its __init__.py")
    return catalog
