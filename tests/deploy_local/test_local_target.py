"""The `local:` section of an environment file: defaults per environment, every problem named with its key, at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.errors import ConfigError
from skyops.registry.gitops import load_desired
from skyops.serving.local_target import LocalTarget, parse_local
from skyops.serving.model import BackendName


@pytest.mark.parametrize(("environment", "port"), [("production", 8080), ("staging", 8081), ("qa", None)])
def test_each_environment_has_its_default_port(environment: str, port: int | None) -> None:
    problems: list[str] = []
    assert parse_local(None, environment, problems) == LocalTarget(port=port)
    assert problems == []


def test_given_values_are_kept() -> None:
    problems: list[str] = []
    value = {"port": 9000, "canary": "deploy/canary/qa", "backend": "openvino", "ready_seconds": 60, "drain_seconds": 0}
    assert parse_local(value, "qa", problems) == LocalTarget(
        port=9000, canary="deploy/canary/qa", backend=BackendName.OPENVINO, ready_seconds=60.0, drain_seconds=0.0
    )
    assert problems == []


def test_every_problem_of_the_section_is_named_with_its_key() -> None:
    problems: list[str] = []
    value = {"port": 80, "canary": "../../etc", "backend": "tensorrt", "ready_seconds": 0, "drain_seconds": float("nan"), "host": "0.0.0.0"}
    assert parse_local(value, "staging", problems) == LocalTarget(port=8081)
    assert problems == [
        "local: unknown key 'host'; expected port, canary, backend, ready_seconds, drain_seconds",
        "local.port: 80 is not a port from 1024 to 65535",
        "local.canary: '../../etc' is not a folder inside the project; expected a relative path such as deploy/canary/staging",
        "local.backend: 'tensorrt' is not one of onnx, int8, openvino, torch",
        "local.ready_seconds: 0 is not a number of seconds from 1 to 3600",
        "local.drain_seconds: nan is not a number of seconds from 0 to 3600",
    ]


@pytest.mark.parametrize("port", [True, "8080", 8080.0])
def test_a_port_must_be_an_integer(port: object) -> None:
    problems: list[str] = []
    parse_local({"port": port}, "staging", problems)
    assert problems == [f"local.port: {port!r} is not a port from 1024 to 65535"]


def test_the_environment_file_reports_local_problems_with_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "deploy" / "environments"
    folder.mkdir(parents=True)
    path = folder / "staging.yaml"
    path.write_text("environment: staging\nmodel: m\nalias: staging\nversion: 0\nlocal: [8081]\n")
    with pytest.raises(ConfigError) as error:
        load_desired(tmp_path, "staging")
    assert error.value.problems == [
        "local: expected a mapping with keys port, canary, backend, ready_seconds, drain_seconds, found list",
        "version 0 is not a positive integer or null",
    ]
    path.write_text("environment: staging\nmodel: m\nalias: staging\nversion: 2\nlocal: {port: 9001}\n")
    assert load_desired(tmp_path, "staging").local == LocalTarget(port=9001)
