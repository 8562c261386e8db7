"""`GovernedRegistry.deploy`'s serve hook (the local blue/green, skyops.deploy_local) runs only for a deploy the role
and the rules allow, inside the audited action and before the alias moves; when it raises, the alias and the deployed
record stay, and the failure is audited with what the hook put in the details."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from skyops.errors import ConfigError, PermissionDenied, SkyopsError
from skyops.registry.audit import AuditLog
from skyops.registry.gitops import DesiredState, deployed_path

from .conftest import governed, register_version


def test_the_serve_hook_runs_only_when_allowed_and_a_failure_in_it_keeps_the_alias(store_dir: Path, model: str) -> None:
    version = register_version(store_dir, model, 0.3, approve=True)
    api = governed(store_dir, model)
    environment = f"env-{model[-8:]}"
    desired = DesiredState(environment=environment, model=model, alias="staging", version=version, source="test.yaml")
    calls: list[dict[str, Any]] = []

    def serve(details: MutableMapping[str, Any]) -> None:
        calls.append(dict(details))
        details["serving"] = {"address": "http://127.0.0.1:1"}

    with pytest.raises(PermissionDenied):
        api.deploy("bob", desired, store_dir, serve=serve)
    pending = register_version(store_dir, model, 0.3)
    with pytest.raises(ConfigError, match=rf"^{model} v{pending} is PendingManualApproval, not Approved"):
        api.deploy("alice", replace(desired, version=pending), store_dir, serve=serve)
    assert calls == []

    def failing(details: MutableMapping[str, Any]) -> None:
        details["rolled_back"] = {"version": version, "kept": None, "reason": "failed its canary"}
        raise SkyopsError("v1 was not deployed (rolled back)")

    with pytest.raises(SkyopsError, match=r"rolled back"):
        api.deploy("alice", desired, store_dir, changes=["staging: start v1"], serve=failing)
    assert "staging" not in api.store.aliases() and not deployed_path(store_dir, environment).exists()
    failed = AuditLog(store_dir / "audit.log").tail(1)[0]
    assert (failed.action, str(failed.outcome)) == ("deploy", "failed")
    assert failed.details["rolled_back"]["reason"] == "failed its canary"
    assert failed.details["changes"] == ["staging: start v1"]
    assert failed.details["error"] == "SkyopsError: v1 was not deployed (rolled back)"

    api.deploy("alice", desired, store_dir, changes=["staging: start v1"], serve=serve)
    assert calls == [{"environment": environment, "alias": "staging", "version": version, "changes": ["staging: start v1"]}]
    assert api.store.aliases()["staging"] == version and deployed_path(store_dir, environment).exists()
    done = AuditLog(store_dir / "audit.log").tail(1)[0]
    assert str(done.outcome) == "succeeded" and done.details["serving"] == {"address": "http://127.0.0.1:1"}
