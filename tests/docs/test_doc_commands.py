"""Every shell command in the docs is checked: run for real in a temp project, or parsed by the CLI.

The rule and its markers are in tests/docs/doc_blocks.py and on docs/index.md. The run blocks of a
page share one fresh project (pipelines/, deploy/, skyops-roles.yaml copied; an empty state folder;
no AWS configuration), in page order, in this process (a command costs milliseconds, not a start-up).
The empty MLflow store is made once per session and copied into each project: creating one runs
MLflow's migrations, seconds of CPU that would otherwise be paid per page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.cli import app
from tests.clirun import cli
from tests.docs.doc_blocks import ROOT, Block, Command, Mode, blocks_of, doc_pages, output_matches, parse_problems

# The pages of this site that mark every shell block (the reference pages predate the markers:
# their blocks are parsed, the default).
MARKED_PAGES = (
    "docs/index.md",
    "docs/governance.md",
    "docs/aws-setup.md",
    "docs/usage.md",
    "docs/troubleshooting.md",
    "docs/adr/index.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs" / "runbooks").glob("*.md")),
)
ALL_BLOCKS = [block for page in doc_pages() for block in blocks_of(page)]
RUN_PAGES = sorted({block.page for block in ALL_BLOCKS if block.mode is Mode.RUN})


def _id(block: Block) -> str:
    return f"{block.page}:{block.line}"


def _run(capsys: pytest.CaptureFixture[str], command: Command, exit_code: int) -> list[str]:
    """Run one documented skyops command; the problems with what it did, [] when it did as the docs say."""
    code, out, err = cli(capsys, *command.argv[1:])
    printed = (out + err).splitlines()
    problems = [f"exit {code}, the docs say {exit_code}"] if code != exit_code else []
    problems += [f"did not print: {line}" for line in command.expected if not output_matches(line, printed)]
    if problems:
        shown = "\n    ".join(printed[-15:])
        problems.append(f"it printed:\n    {shown}")
    return problems


@pytest.mark.parametrize("page", RUN_PAGES)
def test_run_blocks_do_what_the_page_shows(page: str, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures = []
    for block in (b for b in ALL_BLOCKS if b.page == page and b.mode is Mode.RUN):
        for command in block.commands:
            assert command.argv[0] == "skyops", f"{command.where}: a run block holds skyops commands only, not {command.argv[0]!r}"
            for problem in _run(capsys, command, block.exit_code):
                failures.append(f"{command.where}: $ {' '.join(command.argv)}: {problem}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.mode is Mode.PARSE], ids=_id)
def test_parse_only_commands_exist_with_their_options(block: Block) -> None:
    problems = [
        f"{command.where}: {' '.join(command.argv)}: {problem}"
        for command in block.commands
        for problem in parse_problems(command.argv, app, ROOT / "Makefile")
    ]
    assert not problems, "\n".join(problems)


def test_site_pages_mark_every_shell_block() -> None:
    unmarked = [_id(b) for b in ALL_BLOCKS if b.page in MARKED_PAGES and not b.marked]
    assert not unmarked, f"shell blocks without a `<!-- doc-test: run|parse-only -->` marker: {unmarked}"


def test_the_docs_hold_runnable_and_parsed_commands() -> None:
    # Guards the extraction itself: a regex slip that finds no blocks would make every test above vacuous.
    run = sum(len(b.commands) for b in ALL_BLOCKS if b.mode is Mode.RUN)
    parsed = sum(len(b.commands) for b in ALL_BLOCKS if b.mode is Mode.PARSE)
    assert run >= 20 and parsed >= 40, (run, parsed)
    assert set(MARKED_PAGES) <= {b.page for b in ALL_BLOCKS} | {"docs/adr/index.md"}
