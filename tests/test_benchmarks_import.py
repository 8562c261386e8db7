"""Every benchmark still imports and has its `main`: they run only by hand (`make bench`), so a renamed helper they
share would otherwise go unnoticed until someone measures (tune_overhead.py imported a function that had been renamed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.stem)
def test_benchmark_imports_and_a_runnable_one_has_a_main(script: Path) -> None:
    # Imported as `make bench` runs it (its folder first on the path, for sibling imports), without running main().
    runnable = 'if __name__ == "__main__":' in script.read_text()  # serve_client.py is a module its siblings import
    code = f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import {script.stem} as b"
    code += "; assert callable(b.main)" if runnable else ""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
