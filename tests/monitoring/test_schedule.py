"""`skyops monitor schedule`: periods every scheduler can say, systemd units systemd itself accepts, a cron line, and
an EventBridge Scheduler request checked against botocore's model and accepted by a moto server."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skyops.errors import ConfigError
from skyops.monitoring.schedule import Every, Job, cron_line, request_problems, scheduler_request, service_unit, systemd_quote, timer_unit
from skyops.settings import Settings
from tests.aws.conftest import MotoServer

from .conftest import cli

PIPELINE_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/monitor"
ROLE_ARN = "arn:aws:iam::123456789012:role/skyops-scheduler"
SYSTEMD = shutil.which("systemd-analyze")


@pytest.mark.parametrize(
    ("text", "systemd", "cron", "rate"),
    [
        ("5m", "*-*-* *:00/5:00", "*/5 * * * *", "rate(5 minutes)"),
        ("1m", "*-*-* *:00/1:00", "*/1 * * * *", "rate(1 minute)"),
        ("1h", "*-*-* 00/1:00:00", "0 * * * *", "rate(1 hour)"),
        ("6H", "*-*-* 00/6:00:00", "0 */6 * * *", "rate(6 hours)"),
        ("1d", "*-*-* 00:00:00", "0 0 * * *", "rate(1 day)"),
    ],
)
def test_a_period_in_each_schedulers_words(text: str, systemd: str, cron: str, rate: str) -> None:
    every = Every.parse(text)
    assert (every.systemd, every.cron, every.rate) == (systemd, cron, rate)
    if SYSTEMD:
        done = subprocess.run([SYSTEMD, "calendar", every.systemd], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and f"Normalized form: {systemd}" in done.stdout, done.stderr


@pytest.mark.parametrize("text", ["7m", "5h", "2d", "0m", "90m", "hourly", "1w", ""])
def test_a_period_that_not_every_scheduler_can_say_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"--every '{text}' is not a period systemd, cron and EventBridge share"):
        Every.parse(text)


def job(tmp_path: Path, *monitor_args: str) -> Job:
    return Job("skyops-monitor", sys.executable, tmp_path / "my project", tmp_path / "my project" / ".skyops", monitor_args, ("--retrain",))


def test_arguments_are_quoted_the_way_systemd_reads_them() -> None:
    assert systemd_quote("/usr/bin/python3") == "/usr/bin/python3"
    assert systemd_quote("a b") == '"a b"'
    assert systemd_quote("50%") == "50%%"  # a specifier otherwise
    assert systemd_quote("$HOME") == "$$HOME"  # a variable otherwise
    assert systemd_quote('say "hi"') == '"say \\"hi\\""'
    assert systemd_quote("") == '""'


@pytest.mark.skipif(SYSTEMD is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    the_job = job(tmp_path, "--captures", "/srv/captures at 100%")
    (tmp_path / "units").mkdir()
    for name, text in (
        ("skyops-monitor.service", service_unit(the_job, Every.parse("15m"))),
        ("skyops-monitor.timer", timer_unit(the_job, Every.parse("15m"))),
    ):
        (tmp_path / "units" / name).write_text(text)
    done = subprocess.run(
        [SYSTEMD, "verify", str(tmp_path / "units" / "skyops-monitor.service"), str(tmp_path / "units" / "skyops-monitor.timer")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_service_runs_the_check_then_the_alert_in_the_project_with_its_state(tmp_path: Path) -> None:
    text = service_unit(job(tmp_path, "--captures", "/srv/captures at 100%"), Every.parse("15m"))
    project = tmp_path / "my project"
    assert f"WorkingDirectory={project}\n" in text  # a path setting: the rest of the line, never quoted
    assert f'Environment="SKYOPS_STATE_DIR={project}/.skyops"' in text
    assert f"EnvironmentFile=-{project}/skyops-monitor.env\n" in text
    assert [line for line in text.splitlines() if line.startswith("ExecStart=")] == [
        f'ExecStart={sys.executable} -m skyops monitor run --captures "/srv/captures at 100%%"',
        f"ExecStart={sys.executable} -m skyops monitor alert --from-run latest --retrain",
    ]
    assert "Type=oneshot" in text  # so the second ExecStart runs only after the first succeeded


def test_the_cron_line_runs_both_commands_in_the_project(tmp_path: Path) -> None:
    the_job = job(tmp_path, "--captures", "/srv/captures at 100%")
    line = cron_line(the_job, Every.parse("30m"))
    assert line.startswith("*/30 * * * * cd ") and line.endswith("\n") and line.count("\n") == 1
    command = line.split(" ", 5)[5].replace("\\%", "%")  # cron turns \% back into %
    words = shlex.split(command)
    project = str(tmp_path / "my project")
    assert words[:3] == ["cd", project, "&&"]
    assert words[3:5] == [f"SKYOPS_PROJECT_DIR={project}", f"SKYOPS_STATE_DIR={project}/.skyops"]
    assert words[5 : 5 + len(the_job.commands()[0])] == the_job.commands()[0]
    assert words[-len(the_job.commands()[1]) :] == the_job.commands()[1]
    assert "%" not in line.replace("\\%", "")  # a bare % would end cron's command


def test_the_scheduler_request_is_valid_by_botocores_model() -> None:
    request = scheduler_request(
        "skyops-monitor", Every.parse("6h"), pipeline_arn=PIPELINE_ARN, role_arn=ROLE_ARN, parameters={"captures": "s3://b/captures/"}
    )
    assert request_problems("CreateSchedule", request) == []
    assert request["ScheduleExpression"] == "rate(6 hours)"
    assert request["Target"]["SageMakerPipelineParameters"] == {
        "PipelineParameterList": [{"Name": "captures", "Value": "s3://b/captures/"}]
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"role_arn": "skyops-scheduler"}, r"Target\.RoleArn 'skyops-scheduler' does not match arn:aws"),
        ({"parameters": {"bad name": "x"}}, r"PipelineParameterList\[0\]\.Name 'bad name' does not match"),
        (
            {"parameters": {"empty": ""}},
            r"Target\.SageMakerPipelineParameters\.PipelineParameterList\[0\]\.Value is 0 characters long, at least 1 needed",
        ),
        ({"name": "x" * 65}, r"Name is 65 characters long, at most 64 allowed"),
        ({"pipeline_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model/monitor"}, r"is not a SageMaker pipeline ARN"),
    ],
)
def test_a_request_botocore_would_refuse_is_refused_here(changes: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"name": "skyops-monitor", "pipeline_arn": PIPELINE_ARN, "role_arn": ROLE_ARN, "parameters": {}} | changes
    name = args.pop("name")
    with pytest.raises(ConfigError, match=message):
        scheduler_request(name, Every.parse("1h"), **args)


def test_moto_creates_the_schedule_from_the_written_request(project: Settings, moto: MotoServer, capsys: Any) -> None:
    from skyops.aws.session import AwsGuard

    out = project.project_dir / "schedule"
    arguments = ["--every", "1d", "--out", str(out), "--sagemaker-pipeline-arn", PIPELINE_ARN, "--scheduler-role-arn", ROLE_ARN]
    code, stdout, err = cli(capsys, "monitor", "schedule", *arguments, "--sagemaker-param", "window=24h")
    assert code == 0, err
    request = json.loads((out / "skyops-monitor.eventbridge-schedule.json").read_text())
    scheduler = AwsGuard().client("scheduler")
    scheduler.create_schedule(**request)
    created = scheduler.get_schedule(Name="skyops-monitor")
    assert (created["ScheduleExpression"], created["Target"]["Arn"], created["Target"]["RoleArn"]) == (
        "rate(1 day)",
        PIPELINE_ARN,
        ROLE_ARN,
    )
    assert created["Target"]["SageMakerPipelineParameters"]["PipelineParameterList"] == [{"Name": "window", "Value": "24h"}]
    assert f"aws scheduler create-schedule --cli-input-json file://{out}/skyops-monitor.eventbridge-schedule.json --profile ab" in stdout


def test_the_cli_writes_the_local_files_and_passes_arguments_to_monitor_run(project: Settings, capsys: Any) -> None:
    code, out, err = cli(capsys, "monitor", "schedule", "--every", "15m", "--retrain", "--", "--captures", "/srv/captures")
    assert code == 0, err
    folder = project.project_dir / "deploy" / "schedule"
    assert sorted(p.name for p in folder.iterdir()) == ["skyops-monitor.cron", "skyops-monitor.service", "skyops-monitor.timer"]
    assert f"ExecStart={sys.executable} -m skyops monitor run --captures /srv/captures" in (folder / "skyops-monitor.service").read_text()
    assert "OnCalendar=*-*-* *:00/15:00\nPersistent=true" in (folder / "skyops-monitor.timer").read_text()
    assert "no EventBridge schedule: give --sagemaker-pipeline-arn and --scheduler-role-arn for SageMaker" in out
    assert f"systemctl --user link {folder}/skyops-monitor.service {folder}/skyops-monitor.timer" in out
    code, _, err = cli(capsys, "monitor", "schedule", "--sagemaker-pipeline-arn", PIPELINE_ARN)
    assert (code, err.splitlines()[0]) == (2, "error: an EventBridge schedule needs both --sagemaker-pipeline-arn and --scheduler-role-arn")
    code, _, err = cli(capsys, "monitor", "schedule", "--every", "7m")
    assert (code, err.splitlines()[0]) == (2, "error: --every '7m' is not a period systemd, cron and EventBridge share")


def test_a_mistyped_option_is_refused_not_passed_to_monitor_run(project: Settings, capsys: Any) -> None:
    code, _, err = cli(capsys, "monitor", "schedule", "--evry", "1h")
    assert (code, err.splitlines()[0]) == (2, "error: skyops monitor schedule has no option --evry")
    assert not (project.project_dir / "deploy").exists()


def test_a_sagemaker_parameter_must_be_name_value(project: Settings, capsys: Any) -> None:
    arns = ["--sagemaker-pipeline-arn", PIPELINE_ARN, "--scheduler-role-arn", ROLE_ARN]
    code, _, err = cli(capsys, "monitor", "schedule", *arns, "--sagemaker-param", "window")
    assert (code, err.splitlines()) == (
        2,
        ["error: --sagemaker-param 'window' is not name=value", "hint: e.g. --sagemaker-param window=24h"],
    )
