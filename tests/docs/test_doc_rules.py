"""The doc-test rules themselves can fail: a wrong option, command, target or output is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.cli import app
from tests.docs.doc_blocks import ROOT, Mode, blocks_of, output_matches, parse_problems

MAKEFILE = ROOT / "Makefile"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (("skyops", "deploy", "plan", "--envv", "staging"), "`skyops deploy plan` has no option --envv"),
        (("skyops", "models", "aprove", "1"), "`skyops models` has no command 'aprove'"),
        (("skyops", "infra", "destroy", "[--yess]"), "`skyops infra destroy` has no option --yess"),
        (("make", "docs", "deploy-everything"), "make target 'deploy-everything' is not in the Makefile"),
        (("python", "tools/nope.py"), "tools/nope.py does not exist"),
    ],
)
def test_parse_catches_what_does_not_exist(argv: tuple[str, ...], problem: str) -> None:
    assert parse_problems(argv, app, MAKEFILE) == [problem]


def test_parse_accepts_real_commands_and_skips_option_values() -> None:
    # -p takes a value that looks like nothing the command knows; --reason's value starts with a dash.
    argv = ("skyops", "run", "drone-detection", "-p", "epochs=5", "--explain-cache", "--workers=2")
    assert parse_problems(argv, app, MAKEFILE) == []
    assert parse_problems(("skyops", "models", "approve", "1", "--reason", "-ok-"), app, MAKEFILE) == []
    assert parse_problems(("curl", "--nonsense"), app, MAKEFILE) == []  # not ours to check


def test_output_lines_match_with_ellipsis_only() -> None:
    printed = ["roles file /tmp/x/skyops-roles.yaml (sha256 abc123)", "default_role: data-scientist"]
    assert output_matches("roles file .../skyops-roles.yaml (sha256 ...)", printed)
    assert not output_matches("roles file .../skyops-roles.yml (sha256 ...)", printed)
    assert not output_matches("default_role: ml-engineer", printed)


def test_markers_and_console_output_are_read(tmp_path: Path) -> None:
    page = ROOT / "docs" / "_doc_rules_probe.md"  # must sit under ROOT for its relative name
    page.write_text(
        "text\n\n<!-- doc-test: run exit=2 -->\n```console\n$ skyops run nope\nerror: no pipeline 'nope' in ...\n"
        "hint: ...\n$ skyops runs list\n```\n\n```bash\nskyops deploy plan \\\n  --env staging   # comment\n# only a comment\n```\n"
        "\n```python\nskyops = 1\n```\n",
        encoding="utf-8",
    )
    try:
        run, parsed = blocks_of(page)
    finally:
        page.unlink()
    assert (run.mode, run.exit_code, run.marked, run.line) == (Mode.RUN, 2, True, 4)
    assert [c.argv for c in run.commands] == [("skyops", "run", "nope"), ("skyops", "runs", "list")]
    assert run.commands[0].expected == ("error: no pipeline 'nope' in ...", "hint: ...")
    assert (parsed.mode, parsed.marked) == (Mode.PARSE, False)
    assert [c.argv for c in parsed.commands] == [("skyops", "deploy", "plan", "--env", "staging")]
