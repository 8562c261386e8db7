"""The drift report: one self-contained HTML page, checked in a real headless Chromium (Debian's package).

The browser loads the page from a file with every host name unresolvable, takes a screenshot and logs
its console to stderr; a clean page logs no console line at all. The page's Content-Security-Policy
makes any external URL or script a console line, so the check also catches a report that tries to load
something (test_the_browser_check_sees_what_the_policy_blocks shows it can fail).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from skyops.monitoring.baseline import Baseline, baseline_from
from skyops.monitoring.drift import DriftThresholds, detect_drift
from skyops.monitoring.report import render_report

from .test_drift import META, WINDOW_META, table

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get install -y chromium")
INFO = {"images": 200, "skipped": {"input is not a readable image": 2}}


@pytest.fixture(scope="module")
def report_html() -> str:
    baseline = baseline_from(table(600, 0), META, dims=8, seed=0)
    baseline = Baseline(
        baseline.table,
        baseline.projection,
        {
            **baseline.meta,
            "dataset": {"fingerprint": "a" * 64, "split": "train"},
            "model": {"weights_sha256": "b" * 64, "imgsz": 128},
            "thresholds": {"conf": 0.25, "iou": 0.45, "max_det": 300},
        },
    )
    window = table(200, 2, brightness=-25)
    result = detect_drift(baseline, window, {**WINDOW_META, "requests": 200}, DriftThresholds(permutations=1499))
    return render_report(result, baseline, window, INFO)


def browse(html: str, folder: Path) -> tuple[Path, list[str]]:
    """Open `html` from a file in headless Chromium: the screenshot, and the console lines it logged."""
    page, shot = folder / "report.html", folder / "shot.png"
    page.write_text(html, encoding="utf-8")
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing can leave the machine, whatever the page says
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return shot, [line for line in done.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def test_the_report_is_one_self_contained_page(report_html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?!data:)[a-z]+:|//[a-z0-9.-]+\.[a-z]{2,}/""", report_html, re.IGNORECASE)
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:' in report_html
    assert report_html.count('src="data:image/png;base64,') == 1
    assert "<script" not in report_html
    assert "DRIFTED" in report_html and "brightness" in report_html and "r2-" in report_html  # verdict, tests, requests


@needs_chromium
def test_the_report_renders_in_chromium_without_console_messages(report_html: str, tmp_path: Path) -> None:
    shot, console = browse(report_html, tmp_path)
    assert console == []
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[1] == 1280
    red = (image[:, :, 2] > 150) & (image[:, :, 1] < 90) & (image[:, :, 0] < 90)  # the DRIFTED badge, #c0392b
    assert red[:200].sum() > 500, "the verdict badge is not drawn at the top"
    assert image.std() > 20  # text, tables and plots, not a blank page


@needs_chromium
def test_the_browser_check_sees_what_the_policy_blocks(report_html: str, tmp_path: Path) -> None:
    tampered = report_html.replace("<h2>Tests</h2>", '<h2>Tests</h2><img src="https://example.invalid/pixel.png">', 1)
    _, console = browse(tampered, tmp_path)
    assert len(console) == 1 and "https://example.invalid/pixel.png" in console[0] and "Content Security Policy" in console[0]
