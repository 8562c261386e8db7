"""`skyops demo gitops` without its training: the options, the step list, the project it makes, its data, and how a
failed or stopped step ends (the whole story runs in test_gitops_demo.py, in the slow set)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from skyops.demo.gitops import STEPS
from skyops.demo.project import check_workdir, make_project, set_version
from skyops.demo.scenes import DUSK, new_batch
from skyops.demo.stage import DemoFailed, Stage
from skyops.errors import ConfigError
from skyops.registry.gitops import load_desired
from tests.clirun import cli


def test_the_story_has_its_steps_in_order() -> None:
    assert [name for name, _ in STEPS] == [
        "train-v1",
        "approve-v1",
        "promote-v1",
        "serve-v1",
        "new-data",
        "retrain-v2",
        "approve-v2",
        "promote-v2",
        "traffic",
        "monitor",
        "alert",
        "slices",
        "revert",
        "rollback",
        "audit",
    ]


def test_help_lists_the_options_and_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "demo", "gitops", "--help")
    assert (code, err) == (0, "")
    for option in ("--workdir", "--keep", "--images", "--epochs", "--image-size"):
        assert option in out
    listed = out.split("The steps:\n")[1].splitlines()
    assert [line.split()[0] for line in listed if line.strip()] == [name for name, _ in STEPS]


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (["--image-size", "100"], ["error: --image-size 100: expected a multiple of 32", "hint: e.g. --image-size 96"]),
        (
            ["--images", "10"],
            ["error: --images 10: must be >= 60", "hint: e.g. --images 400 (the default); see `skyops demo gitops --help`"],
        ),
        (["--epochs", "0"], ["error: --epochs 0: must be >= 1", "hint: e.g. --epochs 7 (the default); see `skyops demo gitops --help`"]),
        (
            ["--epochs", "two"],
            ["error: --epochs two: expected an integer", "hint: e.g. --epochs 7 (the default); see `skyops demo gitops --help`"],
        ),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], lines: list[str]) -> None:
    code, out, err = cli(capsys, "demo", "gitops", *args)
    assert (code, out) == (2, "")
    assert err.splitlines() == lines


def test_a_workdir_with_files_is_refused_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "my-repo"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, out, err = cli(capsys, "demo", "gitops", "--workdir", str(mine))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: --workdir {mine}: expected a new or empty folder, found a folder with files in it",
        "hint: the demo makes a project of its own: name a new or empty folder, or leave --workdir out",
    ]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="expected a new or empty folder, found a file"):
        check_workdir(tmp_path / "file")


def test_the_project_is_a_git_repository_with_environments_roles_and_pipelines(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    make_project(project, 18080)
    production = load_desired(project, "production")  # the real parser of deploy/environments/
    assert (production.model, production.alias, production.version) == ("drone-detector", "champion", None)
    assert production.local is not None and production.local.port == 18080
    assert load_desired(project, "staging").alias == "staging"
    assert {p.name for p in (project / "pipelines").iterdir()} == {"drone-detection.yaml", "monitor.yaml", "slice-check.yaml"}
    assert "emil: ml-engineer" in (project / "skyops-roles.yaml").read_text()
    log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True, check=True).stdout
    assert log.splitlines() == ["a drone-detection project"]
    set_version(project, "production", 2)
    assert load_desired(project, "production").version == 2


def test_the_new_batch_is_darker_and_has_no_person_label(tmp_path: Path) -> None:
    from skyops.data.synth import generate_scenes

    counts = new_batch(tmp_path / "batch", 4, 64, seed=3)
    day = generate_scenes(tmp_path / "day", 4, size=64, seed=3, workers=1)
    assert counts["images"] == 4 and counts["unlabelled_persons"] > 0
    rows = [row for p in sorted((tmp_path / "batch" / "labels").glob("*.txt")) for row in p.read_text().splitlines()]
    assert len(rows) == counts["boxes"] > 0 and {row.split()[0] for row in rows} <= {"0", "1", "2"}  # person is class 3
    day_rows = [r for p in sorted((tmp_path / "day" / "labels").glob("*.txt")) for r in p.read_text().splitlines()]
    assert len(day_rows) == counts["boxes"] + counts["unlabelled_persons"] and len(day.images) == 4
    for image in sorted((tmp_path / "batch" / "images").glob("*.jpg")):
        dusk, daylight = cv2.imread(str(image)).mean(), cv2.imread(str(tmp_path / "day" / "images" / image.name)).mean()
        assert dusk == pytest.approx(daylight * DUSK, abs=2.0)


def test_a_failed_command_names_its_step(tmp_path: Path) -> None:
    stage = Stage(tmp_path, echo=False)
    with pytest.raises(
        DemoFailed, match=r"^step approve-v1: `skyops nosuchcommand` exited 2: error: skyops has no command 'nosuchcommand'$"
    ):
        stage.skyops("approve-v1", ["nosuchcommand"], user="emil")
    assert stage.started == []


def test_stop_everything_stops_what_the_demo_started(tmp_path: Path) -> None:
    stage = Stage(tmp_path, echo=False)
    proc = stage.spawn([sys.executable, "-c", "import time; time.sleep(600)"], user="emil", log=tmp_path / "sleeper.log")
    assert proc.poll() is None
    assert stage.stop_everything() == [f"pid {proc.pid}"]
    assert proc.poll() is not None and stage.started == []


@pytest.mark.parametrize(("how", "code"), [("ctrl-c", 130), ("step-failed", 1)])
def test_an_interrupted_or_failed_story_stops_its_processes_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str, code: int
) -> None:
    """The command's ending, with the story cut short after it started a process (the full story: the slow tests)."""
    import skyops.demo.gitops

    started: list[subprocess.Popen[bytes]] = []

    def short_story(stage: Stage, options: object) -> None:
        stage.project.mkdir()
        started.append(stage.spawn([sys.executable, "-c", "import time; time.sleep(600)"], user="emil", log=tmp_path / "s.log"))
        stage.record("serve-v1", "skyops deploy apply --env production --as emil", "applied", 1.0)
        if how == "ctrl-c":
            raise KeyboardInterrupt
        raise DemoFailed("step promote-v2: `skyops deploy apply --env production --as emil` exited 1: error: canary failed")

    monkeypatch.setattr(skyops.demo.gitops, "play", short_story)
    project = tmp_path / "demo"
    exit_code, out, err = cli(capsys, "demo", "gitops", "--workdir", str(project))
    assert exit_code == code
    assert started[0].poll() is not None  # stopped
    assert "  serve-v1  skyops deploy apply --env production --as emil  applied  1.0" in out.splitlines()
    assert f"stopped 1 processes the demo started: pid {started[0].pid}" in out
    if how == "ctrl-c":
        assert err.splitlines() == ["error: the demo was interrupted after 1 steps; every server it started is stopped"]
    else:
        assert err.splitlines()[0] == (
            "error: step promote-v2: `skyops deploy apply --env production --as emil` exited 1: error: canary failed"
        )
