"""How step processes start: the warm fork host boots only when a step has to run."""

from __future__ import annotations

import subprocess

import pytest

from skyops.pipeline import launch

from .conftest import statuses


@pytest.fixture
def hosts_started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The command line of every fork host started from here on."""
    started: list[list[str]] = []
    real = subprocess.Popen

    def popen(args, *rest, **kwargs):  # type: ignore[no-untyped-def]
        if "skyops.pipeline.forkhost" in args:
            started.append(list(args))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(launch.subprocess, "Popen", popen)
    monkeypatch.delenv("SKYOPS_LAUNCHER", raising=False)
    return started


@pytest.mark.skipif(not hasattr(__import__("os"), "pidfd_open"), reason="the fork host needs Linux pidfds")
def test_a_cached_run_starts_no_step_host(make_engine, numbers, hosts_started) -> None:
    assert statuses(make_engine().run(numbers)) == {"emit": "done", "double": "done", "total": "done"}
    assert len(hosts_started) == 1  # a first run: one host, booted up front, for the three steps
    assert statuses(make_engine().run(numbers)) == {"emit": "cached", "double": "cached", "total": "cached"}
    assert len(hosts_started) == 1  # nothing to launch: no host
    record = make_engine().run(numbers, {"factor": "5"})  # a re-run that misses after all
    assert statuses(record) == {"emit": "cached", "double": "done", "total": "done"}
    assert len(hosts_started) == 2  # started at its first launch
