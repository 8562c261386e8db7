"""`skyops monitor schedule`: the monitoring loop on a timer, locally (systemd or cron) and on SageMaker (EventBridge Scheduler).

Locally the job is two commands in the project folder, the second only when the first succeeded:

    python -m skyops monitor run [ARGS...]                      the drift check (writes drift.json)
    python -m skyops monitor alert --from-run latest [--retrain ...]   the alert event, and the retraining decision

written as a systemd service + timer (`<name>.service`, `<name>.timer`: a oneshot service, a timer
with `Persistent=true` so a run missed while the machine was off happens at boot) and, for machines
without systemd, one crontab line (`<name>.cron`). Event-sink settings ($SKYOPS_EVENT_WEBHOOK, ...)
go in the optional environment file `<project>/<name>.env` (KEY=value lines) that the service reads,
never in the units themselves (a webhook URL is often a secret).

On SageMaker the monitor pipeline is started by an EventBridge Scheduler schedule: `<name>.eventbridge-
schedule.json` is the CreateSchedule request (a SageMaker pipeline target with its parameters), checked
against botocore's own model of the API (required members, types, lengths, patterns, enums) before it is
written; send it with `aws scheduler create-schedule --cli-input-json file://<file> --profile ab`.

Periods (`--every`): minutes dividing an hour (1m ... 30m), hours dividing a day (1h ... 12h), or 1d.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError

_EVERY = re.compile(r"^(?P<n>\d+)(?P<unit>[mhd])$")
_PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:pipeline/[A-Za-z0-9](-*[A-Za-z0-9]){0,255}$")


@dataclass(frozen=True)
class Every:
    """A period that systemd, cron and EventBridge can all say: `minutes` divides 60, or is whole hours dividing 24, or 1440."""

    minutes: int

    @classmethod
    def parse(cls, text: str) -> Every:
        match = _EVERY.match(text.strip().lower())
        n = int(match["n"]) if match else 0
        unit = match["unit"] if match else ""
        ok = (unit == "m" and n >= 1 and 60 % n == 0) or (unit == "h" and n >= 1 and 24 % n == 0) or (unit == "d" and n == 1)
        if not ok:
            raise ConfigError(
                f"--every {text!r} is not a period systemd, cron and EventBridge share",
                hint="give minutes dividing an hour (5m, 15m, 30m), hours dividing a day (1h, 6h, 12h) or 1d",
            )
        return cls(n * {"m": 1, "h": 60, "d": 1440}[unit])

    @property
    def systemd(self) -> str:
        """An OnCalendar expression."""
        if self.minutes < 60:
            return f"*-*-* *:00/{self.minutes}:00"
        if self.minutes < 1440:
            return f"*-*-* 00/{self.minutes // 60}:00:00"
        return "*-*-* 00:00:00"

    @property
    def cron(self) -> str:
        if self.minutes < 60:
            return f"*/{self.minutes} * * * *"
        if self.minutes < 1440:
            return "0 * * * *" if self.minutes == 60 else f"0 */{self.minutes // 60} * * *"
        return "0 0 * * *"

    @property
    def rate(self) -> str:
        """An EventBridge Scheduler rate expression."""
        n, unit = (self.minutes, "minute") if self.minutes < 60 else (self.minutes // 60, "hour") if self.minutes < 1440 else (1, "day")
        return f"rate({n} {unit}{'s' if n > 1 else ''})"

    def __str__(self) -> str:
        n, unit = (self.minutes, "m") if self.minutes < 60 else (self.minutes // 60, "h") if self.minutes < 1440 else (1, "d")
        return f"{n}{unit}"


@dataclass(frozen=True)
class Job:
    """What the local schedule runs: in `project_dir`, with `state_dir`, through `python`."""

    name: str
    python: str
    project_dir: Path
    state_dir: Path
    monitor_args: Sequence[str] = ()
    alert_args: Sequence[str] = ()

    def commands(self) -> list[list[str]]:
        base = [self.python, "-m", "skyops", "monitor"]
        return [[*base, "run", *self.monitor_args], [*base, "alert", "--from-run", "latest", *self.alert_args]]


def systemd_quote(arg: str) -> str:
    """One ExecStart argument as systemd reads it: % and $ doubled (specifiers, variables), quoted when needed."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"' if (not arg or any(ch.isspace() or ch in "\"'\\;" for ch in arg)) else escaped


def _systemd_path(path: Path) -> str:
    """A path setting (WorkingDirectory=, EnvironmentFile=): the rest of the line as is, never quoted; % doubled."""
    return str(path).replace("%", "%%")


def service_unit(job: Job, every: Every) -> str:
    lines = [
        "[Unit]",
        f"Description=skyops monitoring every {every}: drift check of captured traffic, alert, retraining decision",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={_systemd_path(job.project_dir)}",
        f"Environment={systemd_quote('SKYOPS_PROJECT_DIR=' + str(job.project_dir))}",
        f"Environment={systemd_quote('SKYOPS_STATE_DIR=' + str(job.state_dir))}",
        f"EnvironmentFile=-{_systemd_path(job.project_dir / (job.name + '.env'))}",
        *(f"ExecStart={' '.join(systemd_quote(a) for a in command)}" for command in job.commands()),
        "Nice=10",
        "",
    ]
    return "\n".join(lines)


def timer_unit(job: Job, every: Every) -> str:
    lines = [
        "[Unit]",
        f"Description=skyops monitoring every {every} ({job.name}.service)",
        "",
        "[Timer]",
        f"OnCalendar={every.systemd}",
        "Persistent=true",
        f"Unit={job.name}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return "\n".join(lines)


def cron_line(job: Job, every: Every) -> str:
    """One crontab line: cd to the project, pin the state folder, run both commands (% escaped: cron reads it as a newline)."""
    env = f"SKYOPS_PROJECT_DIR={shlex.quote(str(job.project_dir))} SKYOPS_STATE_DIR={shlex.quote(str(job.state_dir))}"
    steps = " && ".join(f"{env} {shlex.join(command)}" for command in job.commands())
    line = f"{every.cron} cd {shlex.quote(str(job.project_dir))} && {steps}"
    return line.replace("%", "\\%") + "\n"


def scheduler_request(
    name: str, every: Every, *, pipeline_arn: str, role_arn: str, parameters: Mapping[str, str], description: str = ""
) -> dict[str, Any]:
    """The EventBridge Scheduler CreateSchedule request that starts a SageMaker pipeline every period (checked).

    Raises:
        ConfigError: the pipeline ARN is not a SageMaker pipeline's, or botocore's model refuses the request.
    """
    if not _PIPELINE_ARN.match(pipeline_arn):
        raise ConfigError(
            f"--sagemaker-pipeline-arn {pipeline_arn[:100]!r} is not a SageMaker pipeline ARN",
            hint="e.g. arn:aws:sagemaker:eu-west-1:123456789012:pipeline/monitor (skyops sagemaker upsert monitor prints it)",
        )
    target: dict[str, Any] = {
        "Arn": pipeline_arn,
        "RoleArn": role_arn,
        "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
        "SageMakerPipelineParameters": {"PipelineParameterList": [{"Name": k, "Value": v} for k, v in parameters.items()]},
    }
    request = {
        "Name": name,
        "Description": description or f"skyops: start the SageMaker pipeline {pipeline_arn.rsplit('/', 1)[-1]} every {every}",
        "ScheduleExpression": every.rate,
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Target": target,
    }
    problems = request_problems("CreateSchedule", request)
    if problems:
        raise ConfigError(
            f"the EventBridge Scheduler request for {name!r} is not valid: " + "; ".join(problems),
            hint="check --name, --scheduler-role-arn and --sagemaker-param values",
        )
    return request


def request_problems(operation: str, request: Mapping[str, Any], service: str = "scheduler") -> list[str]:
    """What botocore's model of `service` finds wrong with `request`: its ParamValidator (required members, types)
    plus every string's and list's length, every string's pattern and enum, and every number's range."""
    try:
        import botocore.session
        from botocore.validate import ParamValidator
    except ImportError:
        raise ConfigError(
            "botocore is not installed: the EventBridge Scheduler request cannot be checked", hint="pip install 'skyops[aws]'"
        ) from None
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(dict(request), shape)
    found = [line.strip() for line in report.generate_report().splitlines()[1:] if line.strip()] if report.has_errors() else []
    return found + _constraints(request, shape, "")


def _constraints(value: Any, shape: Any, at: str) -> list[str]:
    kind, meta = shape.type_name, shape.metadata
    found = []
    if kind == "structure" and isinstance(value, Mapping):
        for key, member in shape.members.items():
            if key in value:
                found += _constraints(value[key], member, f"{at}.{key}" if at else key)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{at} has {len(value)} items, at most {meta['max']} allowed")
        if "min" in meta and len(value) < meta["min"]:
            found.append(f"{at} has {len(value)} items, at least {meta['min']} needed")
        for i, item in enumerate(value):
            found += _constraints(item, shape.member, f"{at}[{i}]")
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{at} is {len(value)} characters long, at most {meta['max']} allowed")
        if "min" in meta and len(value) < meta["min"]:
            found.append(f"{at} is {len(value)} characters long, at least {meta['min']} needed")
        if "enum" in meta and value not in meta["enum"]:
            found.append(f"{at} {value!r} is not one of {', '.join(meta['enum'])}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            found.append(f"{at} {value[:80]!r} does not match {meta['pattern']}")
    elif (
        kind in ("integer", "long")
        and isinstance(value, int)
        and (("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"]))
    ):
        found.append(f"{at} {value} is outside {meta.get('min', '-inf')}..{meta.get('max', 'inf')}")
    return found


@dataclass(frozen=True)
class Written:
    files: list[Path]
    install: list[str]  # what to run to install them


def write_schedule(out: Path, job: Job, every: Every, scheduler: Mapping[str, Any] | None) -> Written:
    """Write the units, the cron line and (when given) the Scheduler request into `out`; each file atomically."""
    from skyops.pipeline.hashing import write_json_atomic

    out.mkdir(parents=True, exist_ok=True)
    texts = {
        f"{job.name}.service": service_unit(job, every),
        f"{job.name}.timer": timer_unit(job, every),
        f"{job.name}.cron": cron_line(job, every),
    }
    files = []
    for name, text in texts.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        files.append(path)
    install = [
        f"systemctl --user link {out / (job.name + '.service')} {out / (job.name + '.timer')}",
        f"systemctl --user enable --now {job.name}.timer",
        f"or: (crontab -l; cat {out / (job.name + '.cron')}) | crontab -",
    ]
    if scheduler is not None:
        path = out / f"{job.name}.eventbridge-schedule.json"
        write_json_atomic(path, dict(scheduler), sort_keys=False)
        files.append(path)
        install.append(f"aws scheduler create-schedule --cli-input-json file://{path} --profile ab")
    return Written(files, install)
