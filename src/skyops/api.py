"""The public Python API: what the `skyops` commands do, as functions a notebook or a script calls.

    from skyops import api
    api.new_project("/tmp/demo", template=".")             # pipelines/, roles, environments; state in /tmp/demo/.skyops
    record = api.run_pipeline(params={"images": 24, "epochs": 1})
    api.compare_runs([a.run_id, b.run_id])                   # rows: parameters that differ, test metrics
    api.approve(1, as_user="alice"); api.promote(1, as_user="alice")
    api.deploy_apply("staging", as_user="alice")
    api.audit_tail(5)

Each function calls the code its command calls (skyops.cli.*), so a notebook and the shell behave the same:
the same engine, resolvers and caches, the same governed registry (role checked, status rules, audit log
written before the action), the same events. Settings come from the environment as for the CLI
(SKYOPS_PROJECT_DIR, SKYOPS_STATE_DIR, ...; `new_project` sets them). Errors are `SkyopsError`s, with the
same message and hint the CLI prints. Every import is inside a function: importing this module is free.
The dataset functions live in `skyops.data` (`synth.generate_scenes`, `convert.convert`, `validate.validate`,
`profile.profile_dataset`, `split.split_dataset`) and are public as they are.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyops.settings import DEFAULT_MODEL, DEFAULT_PIPELINE

if TYPE_CHECKING:
    import click

    from skyops.pipeline.lineage import RunRecord
    from skyops.registry.governed import AliasMove, StatusChange
    from skyops.registry.models import ModelVersion
    from skyops.registry.reproducibility import Reproduction
    from skyops.settings import Settings

# What a project folder needs from a checkout (or the installed examples) to run every command.
PROJECT_FILES = ("pipelines", "skyops-roles.yaml", "deploy/environments")


def new_project(folder: str | os.PathLike[str], *, template: str | os.PathLike[str]) -> Settings:
    """Make `folder` a fresh project and use it: `template`'s pipelines/, skyops-roles.yaml and
    deploy/environments/ copied in (the template is only read), state in `folder/.skyops`.

    Sets SKYOPS_PROJECT_DIR and SKYOPS_STATE_DIR for this process (and the step processes it starts).

    Raises:
        ConfigError: the template lacks one of those files, or `folder` already holds a project.
    """
    from skyops.errors import ConfigError
    from skyops.settings import load_settings

    source, target = Path(template).resolve(), Path(folder).resolve()
    missing = [name for name in PROJECT_FILES if not (source / name).exists()]
    if missing:
        raise ConfigError(
            f"template {source} has no {', '.join(missing)}; expected a skyops checkout",
            hint="pass template= the folder holding pipelines/ and skyops-roles.yaml (the repository's root)",
        )
    if (target / "pipelines").exists():
        raise ConfigError(f"{target} already holds a project (pipelines/)", hint="give a new or empty folder")
    for name in PROJECT_FILES:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)
    os.environ["SKYOPS_PROJECT_DIR"] = str(target)
    os.environ["SKYOPS_STATE_DIR"] = str(target / ".skyops")
    return load_settings()


def settings() -> Settings:
    """The settings every function here uses (read from the environment at each call, as the CLI does)."""
    from skyops.cli.common import settings as current

    return current()


# ---- runs and experiments ----------------------------------------------------------------------------


def run_pipeline(
    name: str = DEFAULT_PIPELINE, params: Mapping[str, object] | None = None, *, use_cache: bool = True, workers: int = 2
) -> RunRecord:
    """Run a pipeline locally, as `skyops run NAME -p k=v ...`: cached steps reused, lineage recorded, events published.

    Raises:
        StepFailed: a step failed or a gate stopped the run (the message names them; the record is on disk).
    """
    from skyops.cli.common import engine, load
    from skyops.cli.run_cmd import announce
    from skyops.errors import StepFailed
    from skyops.pipeline.lineage import RunStatus

    pipeline = load(name)
    overrides = {k: _param_text(v) for k, v in (params or {}).items()}
    record = engine(pipeline, workers=workers, use_cache=use_cache).run(pipeline, overrides)
    announce(record)
    if record.status is not RunStatus.SUCCEEDED:
        stopped = [n for n, gate in record.gates.items() if not gate.passed] or [
            s.name for s in record.steps.values() if s.status == "failed"
        ]
        raise StepFailed(
            f"run {record.run_id} of {pipeline.name!r} ended {record.status} at {', '.join(map(repr, stopped)) or '?'}",
            hint=f"see skyops runs show {record.run_id}; resume with: {record.resume_command}",
        )
    return record


def _param_text(value: object) -> str:
    """A parameter value as `--param` text (booleans lower case, as YAML reads them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def runs(pipeline: str | None = None) -> list[RunRecord]:
    """The recorded runs, newest first (`skyops runs list`), optionally of one pipeline only."""
    from skyops.pipeline.lineage import list_records

    return [r for r in list_records(settings().state_dir / "runs") if pipeline is None or r.pipeline == pipeline]


def run_results(run: str) -> dict[str, Any]:
    """A run's lineage record (`record`), training.json and evaluation.json (a run id, prefix or 'latest')."""
    from skyops.cli.experiments_cmd import run_results as results

    return results(run)


def compare_runs(run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run, as `skyops experiments compare` tabulates them: the parameters that differ between
    the runs, epochs, the test metrics and the MLflow run id (a list of dicts: `pandas.DataFrame(rows)`)."""
    import json

    from skyops.cli.experiments_cmd import METRICS

    results = [run_results(r) for r in run_ids]
    names = sorted({k for r in results for k in r["record"].parameters})
    differing = [p for p in names if len({json.dumps(r["record"].parameters.get(p)) for r in results}) > 1]
    rows = []
    for r in results:
        metrics = r.get("evaluation.json", {}).get("metrics", {})
        rows.append(
            {
                "run": r["record"].run_id,
                **{p: r["record"].parameters.get(p) for p in differing},
                "epochs": r["training.json"]["epochs_completed"],
                **{m: metrics.get(m) for m in METRICS},
                "mlflow_run": r["training.json"]["mlflow_run_id"],
            }
        )
    return rows


def metric_history(run: str, key: str | None = None) -> list[tuple[int, float]]:
    """(epoch, value) of a training metric of a run's MLflow run; default the validation mAP50-95 curve."""
    from skyops.cli.experiments_cmd import CURVE
    from skyops.training.tracking import TrackingStore

    s = settings()
    store = TrackingStore.local(s.state_dir, s.tracking_uri)
    return store.run_metrics_history(run_results(run)["training.json"]["mlflow_run_id"], key or CURVE)


def reproduce(run: str, tolerance: float = 0.02, *, report: bool = True, as_user: str | None = None) -> Reproduction:
    """Re-run a run (id, or MODEL:VERSION) from its recorded inputs and compare, as `skyops experiments reproduce
    RUN --report`: the report beside the re-run, attached to the registered version. `.reproduced` is the verdict."""
    from skyops.cli.experiments_cmd import reproduce_run

    return reproduce_run(run, tolerance, report=report, as_user=as_user)[0]


# ---- SageMaker (compile only: no request) --------------------------------------------------------------


def compile_sagemaker(
    name: str = DEFAULT_PIPELINE,
    params: Mapping[str, object] | None = None,
    *,
    bucket: str,
    role_arn: str,
    image_uri: str,
    region: str = "eu-west-1",
    prefix: str | None = None,
) -> dict[str, Any]:
    """The SageMaker pipeline-definition JSON of a pipeline, as `skyops sagemaker compile` makes it. Offline."""
    from skyops.cli.common import load
    from skyops.cli.sagemaker_cmd import _compile, _sagemaker_settings

    given = {"bucket": bucket, "role_arn": role_arn, "region": region, "prefix": prefix, "image_uri": image_uri, "spot": None}
    options = _sagemaker_settings({}, **given)
    pairs = [f"{k}={_param_text(v)}" for k, v in (params or {}).items()]
    definition, _, _ = _compile(load(name), options, pairs, None)
    return definition


# ---- the governed registry ------------------------------------------------------------------------------


def versions(model: str = DEFAULT_MODEL) -> list[ModelVersion]:
    """Every registered version, newest first (`skyops models list`)."""
    from skyops.cli.common import registry

    return registry(model).versions()


def approve(version: int | str, *, as_user: str | None = None, reason: str = "", model: str = DEFAULT_MODEL) -> StatusChange:
    """Approve a version (ML Engineers only; audited), as `skyops models approve`."""
    from skyops.cli.common import actor
    from skyops.cli.models_cmd import governed

    return governed(model).approve(actor(as_user), version, reason=reason)


def reject(version: int | str, *, as_user: str | None = None, reason: str = "", model: str = DEFAULT_MODEL) -> StatusChange:
    """Reject a version (ML Engineers only; audited), as `skyops models reject`."""
    from skyops.cli.common import actor
    from skyops.cli.models_cmd import governed

    return governed(model).reject(actor(as_user), version, reason=reason)


def promote(version: int | str, *, as_user: str | None = None, reason: str = "", model: str = DEFAULT_MODEL) -> AliasMove:
    """Make an Approved version @champion, the old one @previous (ML Engineers only; audited)."""
    from skyops.cli.common import actor
    from skyops.cli.models_cmd import governed

    return governed(model).promote(actor(as_user), version, reason=reason)


def rollback(*, as_user: str | None = None, reason: str = "", model: str = DEFAULT_MODEL) -> AliasMove:
    """Point @champion back at @previous (ML Engineers only; audited), as `skyops models rollback`."""
    from skyops.cli.common import actor
    from skyops.cli.models_cmd import governed

    return governed(model).rollback(actor(as_user), reason=reason)


def audit_tail(count: int = 10) -> list[str]:
    """The last `count` audit log records, one line each, as `skyops audit` prints them."""
    from skyops.cli.common import governance
    from skyops.registry.audit import format_record

    return [format_record(r) for r in list(governance().audit.records())[-count:]]


# ---- deployment and monitoring ---------------------------------------------------------------------------


def set_desired_version(environment: str, version: int | None) -> Path:
    """Write `version` into deploy/environments/<environment>.yaml (what a reviewed pull request changes), atomically.
    Only the `version:` line changes; comments stay. `deploy_apply` then makes it so."""
    import re

    from skyops.errors import ConfigError
    from skyops.evaluation.report import write_text_atomic
    from skyops.registry.gitops import ENVIRONMENTS

    path = settings().project_dir / ENVIRONMENTS / f"{environment}.yaml"
    if not path.is_file():
        raise ConfigError(f"no environment {environment!r}: {path} does not exist", hint="environments are deploy/environments/*.yaml")
    text, count = re.subn(r"(?m)^version:.*$", f"version: {'null' if version is None else int(version)}", path.read_text())
    if count != 1:
        raise ConfigError(f"{path} has {count} top-level `version:` lines; expected one", hint="fix the file by hand")
    return write_text_atomic(path, text)


def set_local_port(environment: str, port: int) -> Path:
    """Serve `environment` of this project on 127.0.0.1:`port`: the `port:` line of the file's `local:` section
    rewritten (added when the section names none), atomically; checked as `deploy apply` checks it. For a
    project that must not meet another server on the environment's usual port (a second checkout, a test run).

    Raises:
        ConfigError: no such environment, a file without a `local:` section, or a port outside 1024-65535.
    """
    import re

    from skyops.errors import ConfigError
    from skyops.evaluation.report import write_text_atomic
    from skyops.registry.gitops import ENVIRONMENTS, load_desired

    if isinstance(port, bool) or not 1024 <= int(port) <= 65535:
        raise ConfigError(f"port {port!r} is not from 1024 to 65535", hint="ports below 1024 need root; pick a free one above")
    path = settings().project_dir / ENVIRONMENTS / f"{environment}.yaml"
    load_desired(settings().project_dir, environment)  # the file as it is: named, readable, well-formed
    text = path.read_text()
    section = re.search(r"(?m)^local:[ \t]*\n((?:[ \t]+.*\n?)*)", text)
    if section is None:
        raise ConfigError(f"{path} has no `local:` section to give a port", hint="add `local:` with `port: N` by hand")
    body = section.group(1)
    body, count = re.subn(r"(?m)^([ \t]+)port:.*$", lambda m: f"{m.group(1)}port: {int(port)}", body)
    if count == 0:
        body = f"  port: {int(port)}\n" + body
    changed = text[: section.start(1)] + body + text[section.end(1) :]
    return write_text_atomic(path, changed)


def environment_address(environment: str) -> str:
    """Where `environment` is served on this machine (`http://127.0.0.1:PORT`, from its file's `local:` section)."""
    from skyops.errors import ConfigError
    from skyops.registry.gitops import load_desired

    desired = load_desired(settings().project_dir, environment)
    if desired.local is None or desired.local.port is None:
        raise ConfigError(f"environment {environment!r} is not served on this machine (no local port)", hint=f"see {desired.source}")
    return desired.local.address


def deploy_apply(environment: str, *, as_user: str | None = None, wait: float = 0.0) -> None:
    """Make the environment serve its desired version, as `skyops deploy apply --env ENV` (ML Engineers only,
    Approved versions only, audited). Locally: blue/green behind the environment's port; with `version: null`
    in the file it stops what serves there. Prints what it applied."""
    from skyops.cli.deploy_cmd import apply

    _call(apply, env=environment, as_=as_user, wait=wait)


def deploy_status(environment: str) -> None:
    """Print what serves the environment (`skyops deploy status --env ENV`)."""
    from skyops.cli.deploy_cmd import status

    _call(status, env=environment)


def monitor_run(
    captures: str | os.PathLike[str], *, from_run: str = "latest", params: Mapping[str, object] | None = None, alpha: float = 0.01
) -> dict[str, Any]:
    """Check a folder of captured requests for drift against a run's training baseline (`skyops monitor run
    --captures DIR --from-run RUN`); returns drift.json, with `report` the path of its report.html."""
    import json

    from skyops.cli.monitor_cmd import PIPELINE
    from skyops.cli.monitor_cmd import run as monitor

    pairs = tuple(f"{k}={_param_text(v)}" for k, v in (params or {}).items())
    _call(
        monitor,
        captures=Path(captures),
        from_run=from_run,
        splits=None,
        model=None,
        profile=None,
        start="",
        end="",
        last=0,
        alpha=alpha,
        param=pairs,
        no_cache=False,
    )
    folder = Path(runs(PIPELINE)[0].steps["drift"].outputs["drift"]["path"])
    return {**json.loads((folder / "drift.json").read_text()), "report": str(folder / "report.html")}


def _call(command: click.Command, **arguments: Any) -> None:
    """Run a CLI command's own function with these arguments (no argument parsing, no exit)."""
    assert command.callback is not None, f"{command.name} has no callback"
    command.callback(**arguments)
