"""Printing to stdout: rich on a terminal; plain lines elsewhere, without importing rich at all.

`skyops run` prints through `Output`: a line is a sequence of parts, each plain text or a
`(text, style)` pair; a table is columns and rows of such parts. On a terminal rich styles them;
off a terminal (a pipe, a CI log) they print as plain text that never wraps, so a path or a run id
can be pasted back, and a cached re-run does not pay rich's import (~40 ms, benchmarks/engine_overhead.py).
Text is never read as rich markup: a `[bold]` inside a path prints as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

Part = str | tuple[str, str]  # plain text, or (text, rich style such as "bold red")

# Off a terminal a line is as long as it needs to be: rich would otherwise wrap at 80 columns.
UNWRAPPED_WIDTH = 100_000


def stdout_console() -> Console:
    """The rich console for stdout. On a terminal it fits the window; elsewhere (a pipe, a CI log) it
    never wraps, so a path or a run id is never split across two lines and can be pasted back."""
    from rich.console import Console

    on_terminal = Console()
    if on_terminal.is_terminal:
        return on_terminal
    return Console(soft_wrap=True, width=UNWRAPPED_WIDTH)


def stdout_output() -> Output:
    """An `Output` for stdout: rich's when rich would call stdout a terminal, else plain."""
    if not sys.stdout.isatty() and os.environ.get("TTY_COMPATIBLE") != "1" and "FORCE_COLOR" not in os.environ:
        return Output()  # rich would say the same (console.is_terminal): no need to import it to ask
    console = stdout_console()
    return Output(console if console.is_terminal else None)


class Output:
    """Lines and tables on stdout, styled by `console` (a terminal's) or plain when there is none."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console

    def line(self, *parts: Part) -> None:
        if self.console is None:
            print(plain(parts))
        else:
            self.console.print(self._text(parts))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Part]]) -> None:
        """A table: rich's on a terminal; elsewhere a header and one line per row, columns aligned."""
        if self.console is None:
            cells = [list(columns), *([plain([cell]) for cell in row] for row in rows)]
            widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
            for line in cells:
                print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
            return
        from rich.table import Table

        table = Table(*columns)
        for row in rows:
            table.add_row(*(self._text([cell]) for cell in row))
        self.console.print(table)

    def _text(self, parts: Sequence[Part]) -> Text:
        """The parts as one rich Text (never parsed as markup), highlighted as rich highlights a printed string."""
        from rich.text import Text

        assert self.console is not None
        return self.console.highlighter(Text.assemble(*parts))


def plain(parts: Sequence[Part]) -> str:
    return "".join(part if isinstance(part, str) else part[0] for part in parts)
