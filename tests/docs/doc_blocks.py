"""The shell blocks of the docs, and the two ways a test checks them: run for real, or parse against the CLI.

A block is a fenced `console`, `bash` or `sh` block. The HTML comment on the line before it says what
the doc tests do with it:

    <!-- doc-test: run -->            run each command, in order, in the page's temp project; exit 0
    <!-- doc-test: run exit=2 -->     the same, each command must exit 2
    <!-- doc-test: parse-only ... --> (AWS, long, servers) the command path and every option must exist

In a `console` block, `$ ` starts a command and the lines after it, up to the next command, are output
it must print (stdout or stderr); `...` in such a line stands for any text (a path, a hash, a time).
Only `skyops`, `make` and `python tools/*.py` commands are checked; other lines (curl, git, aws) are prose.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = ("console", "bash", "sh")
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*doc-test:\s*(run|parse-only)\b(?:\s+exit=(\d+))?.*-->\s*$")


class Mode(StrEnum):
    RUN = "run"
    PARSE = "parse-only"


@dataclass(frozen=True)
class Command:
    """One command of a block: its argv, the output lines a console block shows under it, where it is."""

    argv: tuple[str, ...]
    expected: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    mode: Mode
    marked: bool  # False: no marker, parsed like parse-only
    exit_code: int
    commands: tuple[Command, ...] = field(default=())


def doc_pages() -> list[Path]:
    """Every page of the site and the README."""
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def blocks_of(path: Path) -> list[Block]:
    """The shell blocks of one Markdown page, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(1)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        i = end + 1
        if lang not in SHELL_LANGS:
            continue
        marker = _MARKER.match(lines[start - 1]) if start else None
        mode = Mode(marker.group(1)) if marker else Mode.PARSE
        exit_code = int(marker.group(2) or 0) if marker else 0
        where = f"{page}:{start + 1}"
        body = lines[start + 1 : end]
        commands = _console_commands(body, where) if lang == "console" else _script_commands(body, where)
        blocks.append(Block(page, start + 1, lang, mode, marker is not None, exit_code, tuple(commands)))
    return blocks


def _console_commands(body: list[str], where: str) -> list[Command]:
    commands: list[Command] = []
    argv: list[str] | None = None
    expected: list[str] = []
    for line in body:
        if line.startswith("$ "):
            if argv is not None:
                commands.append(Command(tuple(argv), tuple(expected), where))
            argv, expected = shlex.split(line[2:], comments=True), []
        elif argv is not None and line.strip():
            expected.append(line.rstrip())
    if argv is not None:
        commands.append(Command(tuple(argv), tuple(expected), where))
    return commands


def _script_commands(body: list[str], where: str) -> list[Command]:
    joined: list[str] = []
    for line in body:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line.strip())
    argvs = (shlex.split(line, comments=True) for line in joined if line and not line.startswith("#"))
    return [Command(tuple(argv), (), where) for argv in argvs if argv]


def output_matches(expected: str, actual_lines: list[str]) -> bool:
    """Whether one line shown in the docs is printed: `...` is any text, the rest must be exact."""
    pattern = ".*".join(re.escape(part) for part in expected.strip().split("..."))
    return any(re.fullmatch(pattern, line.strip()) for line in actual_lines)


def parse_problems(argv: tuple[str, ...], root_group: click.Group, makefile: Path) -> list[str]:
    """Why a documented command would not parse: an unknown command path, option or make target; [] if it does."""
    if not argv:
        return []
    if argv[0] == "make":
        targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile.read_text(encoding="utf-8"), re.MULTILINE))
        return [f"make target {t!r} is not in the Makefile" for t in argv[1:] if not t.startswith("-") and t not in targets]
    if argv[0] == "python" and len(argv) > 1 and argv[1].startswith("tools/"):
        return [] if (ROOT / argv[1]).is_file() else [f"{argv[1]} does not exist"]
    if argv[0] != "skyops":
        return []
    command: click.Command = root_group
    path = ["skyops"]
    tokens = [t.strip("[]") for t in argv[1:]]
    while isinstance(command, click.Group) and tokens and not tokens[0].startswith("-"):
        sub = command.get_command(click.Context(command), tokens[0])
        if sub is None:
            return [f"`{' '.join(path)}` has no command {tokens[0]!r}"]
        command, path = sub, [*path, tokens.pop(0)]
    options: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            options.update({name: param for name in (*param.opts, *param.secondary_opts)})
    problems: list[str] = []
    takes_value = False
    for token in tokens:
        if takes_value:
            takes_value = False
            continue
        if not token.startswith("-") or token == "-":
            continue
        name = token.split("=", 1)[0]
        if name == "--help":
            continue
        option = options.get(name)
        if option is None:
            problems.append(f"`{' '.join(path)}` has no option {name}")
            continue
        takes_value = "=" not in token and not option.is_flag and not option.count
    return problems
