"""`cli(capsys, *args)`: run `skyops ARGS` in this process, as the shell would, for tests of any area."""

from __future__ import annotations

import pytest

from skyops.cli import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `skyops ARGS` in this process: (exit code, stdout, stderr). A traceback would fail the test as an exception."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
