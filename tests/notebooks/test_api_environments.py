"""`api.set_local_port` and `api.environment_address`: how a notebook's temporary project serves an environment
on a port of its own (the ML Engineer notebook's test picks a free one), without touching the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops import api
from skyops.errors import ConfigError

from .conftest import ROOT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SKYOPS_PROJECT_DIR", "SKYOPS_STATE_DIR"):  # new_project sets them; monkeypatch puts them back
        monkeypatch.setenv(name, "")
    return api.new_project(tmp_path / "project", template=ROOT).project_dir


def test_a_new_port_is_served_there_and_the_checkout_is_untouched(project: Path) -> None:
    checkout = (ROOT / "deploy" / "environments" / "staging.yaml").read_text()
    assert api.environment_address("staging") == "http://127.0.0.1:8081"
    path = api.set_local_port("staging", 18081)
    assert api.environment_address("staging") == "http://127.0.0.1:18081"
    assert path.read_text() == checkout.replace("  port: 8081", "  port: 18081")  # only that line; comments kept
    assert (ROOT / "deploy" / "environments" / "staging.yaml").read_text() == checkout
    assert sorted(p.name for p in path.parent.iterdir()) == ["README.md", "production.yaml", "staging.yaml"]  # no temp file left


def test_a_local_section_without_a_port_gets_one(project: Path) -> None:
    path = project / "deploy" / "environments" / "staging.yaml"
    path.write_text(path.read_text().replace("  port: 8081\n", "  drain_seconds: 5\n"))
    api.set_local_port("staging", 18082)
    assert "local:\n  port: 18082\n  drain_seconds: 5\n" in path.read_text()
    assert api.environment_address("staging") == "http://127.0.0.1:18082"


def test_bad_ports_and_files_are_refused_and_nothing_is_written(project: Path) -> None:
    path = project / "deploy" / "environments" / "staging.yaml"
    before = path.read_text()
    with pytest.raises(ConfigError, match=r"port 80 is not from 1024 to 65535"):
        api.set_local_port("staging", 80)
    with pytest.raises(ConfigError, match=r"port True is not from 1024 to 65535"):
        api.set_local_port("staging", True)
    with pytest.raises(ConfigError, match=r"no desired state for environment 'qa'"):
        api.set_local_port("qa", 18083)
    assert path.read_text() == before
    path.write_text(before.replace("local:\n  port: 8081\n", ""))
    with pytest.raises(ConfigError, match=r"staging.yaml has no `local:` section to give a port"):
        api.set_local_port("staging", 18083)
