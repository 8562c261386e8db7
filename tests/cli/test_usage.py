"""Command-line mistakes: one `error:` line, one `hint:` line naming the flag as typed, exit 2, no traceback."""

import os
import socket
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from tests.clirun import cli

ROOT = Path(__file__).resolve().parents[2]


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """The two stderr lines of a usage error, after checking its shape and exit code."""
    code, out, err = cli(capsys, *args)
    assert (code, out) == (2, ""), (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), err
    return lines


def test_a_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert usage_error(capsys, "data", "validate", str(tmp_path / "missing")) == [
        f"error: DATASET {tmp_path / 'missing'}: does not exist",
        "hint: DATASET: a dataset in the canonical layout (manifest.json, images/, labels/); see `skyops data validate --help`",
    ]


def test_a_file_where_a_folder_is_expected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert usage_error(capsys, "data", "validate", str(tmp_path / "labels.txt"))[0] == (
        f"error: DATASET {tmp_path / 'labels.txt'}: is a file, not a folder"
    )


def test_an_unknown_option_lists_the_commands_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "run", "--bogus-option") == [
        "error: skyops run has no option --bogus-option",
        "hint: its options are --param, --params-file, --explain-cache, --no-cache, --workers; see `skyops run --help`",
    ]


def test_a_misspelt_option_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "run", "--worker", "3") == [
        "error: skyops run has no option --worker",
        "hint: did you mean --workers? see `skyops run --help`",
    ]


def test_a_value_of_the_wrong_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "run", "--workers", "abc") == [
        "error: --workers abc: expected an integer",
        "hint: e.g. --workers 2 (the default); see `skyops run --help`",
    ]


def test_a_value_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "run", "--workers", "0")[0] == "error: --workers 0: must be >= 1"
    assert usage_error(capsys, "data", "validate", ".", "--max-invalid", "2")[0] == "error: --max-invalid 2: must be <= 1.0"
    assert usage_error(capsys, "data", "validate", ".", "--max-invalid", "nan")[0] == "error: --max-invalid nan: expected a finite number"
    assert (
        usage_error(capsys, "experiments", "reproduce", "x", "--tolerance", "inf")[0] == "error: --tolerance inf: expected a finite number"
    )


def test_an_option_without_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "run", "--workers") == [
        "error: --workers needs a value",
        "hint: e.g. --workers 2 (the default); see `skyops run --help`",
    ]


def test_a_flag_given_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "runs", "show", "--json=yes") == [
        "error: --json is a flag and takes no value",
        "hint: write --json alone; see `skyops runs show --help`",
    ]


def test_a_misspelt_subcommand_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "data", "convrt") == [
        "error: skyops data has no command 'convrt'",
        "hint: did you mean `skyops data convert`? `skyops data --help` lists every command",
    ]


def test_a_subcommand_without_its_group_is_found_in_the_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "convert")[1] == "hint: did you mean `skyops data convert`? `skyops --help` lists every command"


def test_tune_refuses_a_trial_count_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "tune", "--trials", "0")[0] == "error: --trials 0: must be >= 1"


def test_an_unknown_command_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "nosuchcmd") == [
        "error: skyops has no command 'nosuchcmd'",
        "hint: the commands are run, tune, ui, pipeline, runs, data, experiments, models, serve, monitor, deploy, audit, roles, sagemaker, infra, cost, demo;"
        " `skyops --help` says what each does",
    ]


def test_a_missing_argument_is_named_as_in_the_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "data", "convert") == [
        "error: skyops data convert: missing argument SOURCE",
        "hint: usage: skyops data convert [OPTIONS] SOURCE TARGET; SOURCE: dataset folder (or COCO JSON / Ground Truth manifest);"
        " see `skyops data convert --help`",
    ]


def test_an_extra_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(capsys, "run", "a", "b") == [
        "error: skyops run: got unexpected extra argument(s) (b)",
        "hint: usage: skyops run [OPTIONS] [NAME]; see `skyops run --help`",
    ]


def test_a_format_outside_the_choices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert usage_error(capsys, "data", "convert", str(tmp_path), str(tmp_path / "out"), "--format", "png") == [
        "error: --format png: expected one of auto, visdrone, coco, voc, groundtruth, yolo, dota, dior",
        "hint: e.g. --format visdrone; see `skyops data convert --help`",
    ]


def test_format_is_case_insensitive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    code, _, err = cli(capsys, "data", "convert", str(tmp_path / "src"), str(tmp_path / "out"), "--format", "COCO")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'src'} is not a coco dataset: ")  # read as coco, not refused


def test_the_format_choices_are_the_converters_formats() -> None:
    from skyops.cli.data_cmd import SourceFormat
    from skyops.data.formats import Format

    assert typing.get_args(SourceFormat) == ("auto", *Format)


def test_every_group_names_its_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for group in ("pipeline", "runs", "data", "experiments", "models", "deploy", "audit", "roles", "sagemaker", "cost", "demo"):
        assert usage_error(capsys, group, "nosuch")[0] == f"error: skyops {group} has no command 'nosuch'"


def test_no_arguments_print_the_help_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys)
    assert (code, err) == (0, "") and out.startswith("Usage: skyops [OPTIONS] COMMAND [ARGS]...")
    code, out, err = cli(capsys, "data")
    assert (code, err) == (0, "") and out.startswith("Usage: skyops data [OPTIONS] COMMAND [ARGS]...")
    code, out, err = cli(capsys, "run", "--help")
    assert (code, err) == (0, "") and out.startswith("Usage: skyops run [OPTIONS] [NAME]")


@pytest.mark.parametrize("exit_with", ["click.get_current_context().exit(3)", "raise SystemExit(3)"])
def test_a_commands_exit_code_is_the_process_exit_code(exit_with: str) -> None:
    code = (
        "import click\nfrom skyops.cli import COMMANDS, main\n"
        f"@click.command()\ndef fail() -> None:\n    {exit_with}\n"
        "COMMANDS['fail-with-3'] = ('__main__', 'fail')\n"
        "main(['fail-with-3'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 3, done.stderr


def ui(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    """`skyops ui` in a child process: if it did start the server, it would replace the test's own process."""
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "skyops", "ui", *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_ui_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    done = ui("--port", "99999", state=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: --port 99999: must be <= 65535\nhint: e.g. --port 5000 (the default); see `skyops ui --help`\n"


def test_ui_on_a_port_in_use_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = ui("--port", str(port), state=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        f"error: cannot serve on 127.0.0.1:{port}: the port is in use",
        f"hint: stop what listens there or pick another port, e.g. --port {port % 65535 + 1}",
    ]


def every_command() -> list[tuple[list[str], typing.Any]]:
    """(path after `skyops`, click command) of every leaf command."""
    import click

    from skyops.cli import app

    found, todo = [], [([], app)]
    ctx = click.Context(app)
    while todo:
        path, command = todo.pop()
        if isinstance(command, click.Group):
            todo += [([*path, name], command.get_command(ctx, name)) for name in command.list_commands(ctx)]
        else:
            found.append((path, command))
    return sorted(found, key=lambda item: item[0])


def test_every_commands_mistakes_are_one_line_in_the_users_words(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown option, and a value no typed option accepts, on every command: never a traceback nor a Python name."""
    import click

    python_names = {p.name for _, command in every_command() for p in command.params if p.name and "_" in p.name}
    assert {"max_invalid", "role_arn", "as_", "explain_cache"} <= python_names
    checked = 0
    for path, command in every_command():
        attempts = [[*path, "--no-such-option"]]
        for param in command.params:
            typed = isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType, click.Choice)) or (
                isinstance(param.type, click.Path) and param.type.exists
            )
            if isinstance(param, click.Option) and typed and not param.is_flag:
                attempts.append([*path, param.opts[0], "not/a-value"])
        for argv in attempts:
            lines = usage_error(capsys, *argv)
            assert not any(name in "\n".join(lines) for name in python_names), (argv, lines)
            checked += 1
    assert checked >= 40
