"""`skyops sagemaker compile|upsert|start|status|executions`: the same pipeline, on Amazon SageMaker.

`compile` needs no AWS at all. The other commands send requests through the profile guard
(`skyops.aws.session`), which refuses before the first request unless the configured profile
(SKYOPS_AWS_PROFILE, default `ab`) is the one in use.

Settings come from the options, then `SKYOPS_SAGEMAKER_*`, then the outputs of the environment's stacks
(`skyops infra deploy`, environment $SKYOPS_INFRA_ENV or dev): `compile` reads the copy `skyops infra` kept in
the state folder; `upsert` reads it when it is of the same profile and region, else looks the stack up.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skyops.cli.common import code_roots, load, parse_params, settings
from skyops.cli.params import IntegerRange, argument
from skyops.cli.usage import SkyopsGroup
from skyops.settings import DEFAULT_PIPELINE

if TYPE_CHECKING:
    from skyops.aws.pipelines import SageMakerPipelines
    from skyops.pipeline.definition import Pipeline
    from skyops.pipeline.sagemaker.archive import CodeArchive
    from skyops.pipeline.sagemaker.settings import SageMakerSettings

app = SkyopsGroup(
    "sagemaker",
    help="Run a pipeline on Amazon SageMaker: compile it to a pipeline definition, upsert it, start and watch executions.",
    no_args_is_help=True,
)

# What skyops' train step prints once per epoch: "epoch 3/10: mAP50(B) 0.412, mAP50-95(B) 0.233 (120 s)".
# SageMaker reads training metrics from the job's log with these regexes (first group = the value).
TRAIN_METRICS = {
    "epoch": r"epoch ([0-9]+)/[0-9]+:",
    "map50": r"mAP50\(B\) ([0-9.]+)",
    "map50_95": r"mAP50-95\(B\) ([0-9.]+)",
}

name_argument = argument(
    "name", default=DEFAULT_PIPELINE, metavar="NAME", help="Pipeline name (pipelines/NAME.yaml) or path to a pipeline file."
)


def _settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `compile` and `upsert` share: the `--param` defaults and the SageMaker settings (each also from the environment)."""
    options = [
        click.option("--param", "-p", multiple=True, help="Replace a parameter's default: -p dataset=s3://bucket/visdrone/ (repeatable)."),
        click.option("--bucket", help="S3 bucket of code, outputs and checkpoints. [env: SKYOPS_SAGEMAKER_BUCKET]"),
        click.option("--role-arn", help="IAM role of the pipeline and its jobs. [env: SKYOPS_SAGEMAKER_ROLE_ARN]"),
        click.option("--region", help="AWS region. [env: SKYOPS_SAGEMAKER_REGION, AWS_REGION, AWS_DEFAULT_REGION; upsert: the profile's]"),
        click.option("--prefix", help="S3 key prefix. [env: SKYOPS_SAGEMAKER_PREFIX; default: skyops]"),
        click.option(
            "--image-uri", help="ECR URI of the skyops image in this region (docker/Dockerfile). [env: SKYOPS_SAGEMAKER_IMAGE_URI]"
        ),
        click.option(
            "--spot/--no-spot", default=None, show_default=False, help="Managed spot training. [env: SKYOPS_SAGEMAKER_SPOT; default: off]"
        ),
        click.option(
            "--tune",
            is_flag=False,
            flag_value="",
            default=None,
            metavar="[SPACE]",
            help="Tune the training step in a SageMaker tuning job over a search space file (default: NAME.tune.yaml beside the pipeline).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _sagemaker_settings(stack_defaults: dict[str, str], **given: Any) -> SageMakerSettings:
    """Settings from the options, over `SKYOPS_SAGEMAKER_*`, over the environment's stack outputs (`skyops infra`)."""
    from skyops.errors import ConfigError
    from skyops.pipeline.sagemaker.settings import ENV_PREFIX, settings_from_env

    if not os.environ.get(ENV_PREFIX + "METRIC_DEFINITIONS"):
        given.setdefault("metric_definitions", TRAIN_METRICS)
    try:
        return settings_from_env({**stack_defaults, **os.environ}, given)
    except ConfigError as e:
        if not stack_defaults:
            e.hint += "; or deploy the environment's stacks once (skyops infra deploy): their outputs become these settings"
        raise


def _needs_stack(**given: Any) -> bool:
    """Whether a setting the stack provides is given neither as an option nor as a variable (then the stack is asked)."""
    from skyops.pipeline.sagemaker.settings import ENV_PREFIX

    provided = {
        "bucket": ("BUCKET",),
        "role_arn": ("ROLE_ARN",),
        "image_uri": ("IMAGE_URI", "IMAGE_URIS"),
    }
    return any(given.get(name) is None and not any(os.environ.get(ENV_PREFIX + v) for v in names) for name, names in provided.items())


def _kept_stack_settings() -> dict[str, str]:
    """What the last `skyops infra deploy|outputs` kept in the state folder (no request: compile is offline)."""
    from skyops.aws.infra import infra_environment
    from skyops.aws.infra_outputs import kept_outputs, sagemaker_defaults

    return sagemaker_defaults(kept_outputs(settings().state_dir, infra_environment()))


def _compile(
    pipeline: Pipeline, options: SageMakerSettings, param: Sequence[str], tune: str | None
) -> tuple[dict[str, Any], SageMakerSettings, CodeArchive]:
    from skyops.pipeline.sagemaker import build_code_archive, compile_pipeline, with_code
    from skyops.pipeline.search import load_search_space, search_space_path

    space = None
    if tune is not None:  # "" (bare --tune): the space file beside the pipeline
        space = load_search_space(Path(tune) if tune else search_space_path(Path(pipeline.source)), pipeline)
    archive = build_code_archive(code_roots(pipeline))
    compiled_settings = with_code(options, archive)
    return compile_pipeline(pipeline, compiled_settings, parse_params(param), tune=space), compiled_settings, archive


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temp file beside `path`, then rename it over `path`: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


@app.command("compile")
@name_argument
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Write the definition to this file (atomically) instead of stdout.")
@_settings_options
def compile_(
    name: str,
    out: Path | None,
    param: Sequence[str],
    bucket: str | None,
    role_arn: str | None,
    region: str | None,
    prefix: str | None,
    image_uri: str | None,
    spot: bool | None,
    tune: str | None,
) -> None:
    """Print the SageMaker pipeline definition (JSON) of a pipeline. Offline: sends nothing to AWS."""
    pipeline = load(name)
    given = {"bucket": bucket, "role_arn": role_arn, "region": region, "prefix": prefix, "image_uri": image_uri, "spot": spot}
    options = _sagemaker_settings(_kept_stack_settings() if _needs_stack(**given) else {}, **given)
    definition, compiled, archive = _compile(pipeline, options, param, tune)
    text = json.dumps(definition, indent=2, sort_keys=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        _write_atomic(out, text)
        print(f"wrote {out} ({len(definition['Steps'])} top-level steps)", file=sys.stderr)
    print(f"code archive {compiled.code_uri} ({len(archive.data) / 1024:.0f} KiB), uploaded by `skyops sagemaker upsert`", file=sys.stderr)


@app.command()
@name_argument
@_settings_options
def upsert(
    name: str,
    param: Sequence[str],
    bucket: str | None,
    role_arn: str | None,
    region: str | None,
    prefix: str | None,
    image_uri: str | None,
    spot: bool | None,
    tune: str | None,
) -> None:
    """Upload the code archive, then create the SageMaker pipeline or update its definition."""
    from skyops.pipeline.sagemaker.settings import ENV_PREFIX

    pipelines = _pipelines(region or os.environ.get(ENV_PREFIX + "REGION"))
    checked = pipelines.guard.check()  # refuses here, before any request, unless the profile is right
    pipeline = load(name)
    given = {"bucket": bucket, "role_arn": role_arn, "region": checked.region, "prefix": prefix, "image_uri": image_uri, "spot": spot}
    options = _sagemaker_settings(_stack_settings(pipelines) if _needs_stack(**given) else {}, **given)
    definition, compiled, archive = _compile(pipeline, options, param, tune)
    pipelines.upload_code(compiled.bucket, compiled.code_key, archive.data)
    pipelines.upload_unbound_marker(compiled.bucket, compiled.unbound_key)  # what a source's input reads when nothing is found
    result = pipelines.upsert(pipeline.name, definition, compiled.role_arn, pipeline.description)
    print(f"{'created' if result.created else 'updated'} {result.arn}")
    print(f"code     {compiled.code_uri}")
    print(f"next     skyops sagemaker start {pipeline.name}")


@app.command()
@name_argument
@click.option("--param", "-p", multiple=True, help="Set a parameter for this execution: -p epochs=30 (repeatable).")
@click.option("--display-name", default="", show_default=False, help="Name shown in SageMaker Studio.")
def start(name: str, param: Sequence[str], display_name: str) -> None:
    """Start an execution of a pipeline that `upsert` sent, checking the parameters against its stored definition.

    Each source the pipeline declares (e.g. registry:MODEL@champion) is resolved now, on SageMaker's side.
    Before it starts, the cost of the execution is estimated offline (`skyops cost estimate` says more).
    """
    from skyops.aws.model_packages import ModelPackages, registry_resolver
    from skyops.cli.cost_cmd import estimate_before_start
    from skyops.pipeline.sagemaker.parameters import check_start_parameters
    from skyops.pipeline.sagemaker.sources import fill_sources
    from skyops.registry.sources import REGISTRY_SCHEME

    pipeline_name = load(name).name if name.endswith((".yaml", ".yml", ".py")) else name
    pipelines: SageMakerPipelines = _pipelines(None)
    definition = pipelines.stored_definition(pipeline_name)
    values = check_start_parameters(pipeline_name, definition, parse_params(param))
    found, notes = fill_sources(definition, values, {REGISTRY_SCHEME: registry_resolver(ModelPackages(pipelines.guard))})
    values.update(found)
    for note in notes:
        print(f"source  {note}")
    estimate_before_start(pipeline_name, definition, values, pipelines.guard.check().region)
    arn = pipelines.start(pipeline_name, values, display_name)
    print(f"started {arn}")
    print("next    skyops sagemaker status latest" + ("" if pipeline_name == DEFAULT_PIPELINE else f" --pipeline {pipeline_name}"))


@app.command()
@argument("execution", default="latest", metavar="EXECUTION", help="Execution ARN, or 'latest' (of --pipeline).")
@click.option("--pipeline", default=DEFAULT_PIPELINE, help="Pipeline whose newest execution 'latest' means.")
def status(execution: str, pipeline: str) -> None:
    """Show an execution: status, times, failure and its steps."""
    pipelines = _pipelines(None)
    arn = pipelines.latest(pipeline) if execution == "latest" else execution
    found = pipelines.status(arn)
    print(f"execution {found.arn}")
    print(f"status    {found.status}" + (f": {found.failure}" if found.failure else ""))
    print(f"started   {_time(found.created)}   last change {_time(found.modified)}")
    if found.steps is None:
        print(f"steps     not available: {found.steps_unavailable}")
        return
    for step in found.steps:
        print(
            f"  {step.name:28} {step.status:12} {_time(step.started)}  {_time(step.ended)}" + (f"  {step.failure}" if step.failure else "")
        )


@app.command()
@name_argument
@click.option("--limit", type=IntegerRange(min=1, max=100), default=20, help="Most executions to list, newest first.")
def executions(name: str, limit: int) -> None:
    """List the newest executions of a SageMaker pipeline."""
    pipeline_name = load(name).name if name.endswith((".yaml", ".yml", ".py")) else name
    found = _pipelines(None).executions(pipeline_name, limit)
    if not found:
        print(f"no executions of {pipeline_name} yet; start one: skyops sagemaker start {pipeline_name}")
    for e in found:
        print(f"{_time(e.started)}  {e.status:10}  {e.arn}" + (f"  {e.display_name}" if e.display_name else ""))


def _stack_settings(pipelines: SageMakerPipelines) -> dict[str, str]:
    """The environment's stack outputs for the guard's profile and region: the kept copy, else DescribeStacks."""
    from skyops.aws.infra import infra_environment
    from skyops.aws.infra_outputs import stack_settings

    return stack_settings(pipelines.guard, settings().state_dir, infra_environment())


def _pipelines(region: str | None) -> SageMakerPipelines:
    from skyops.aws.pipelines import SageMakerPipelines
    from skyops.aws.session import AwsGuard

    return SageMakerPipelines(AwsGuard.from_settings(settings(), region))


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"
