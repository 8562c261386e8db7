"""Local deployment, blue/green: an environment's desired version live behind one stable address on this machine.

    deploy/environments/staging.yaml -> skyops deploy apply --env staging ->
        router (127.0.0.1:8081, skyops.serving.router) -> skyops serve <the version's package> (127.0.0.1:<free port>)

`LocalDeploy` (rollout.py) is the one entry point: `skyops deploy apply` calls its `apply` through
`GovernedRegistry.deploy` (role, approval and audit first). `status` (status.py) says what runs where.
docs/adr/0016-local-blue-green-router.md says why a router, and deploy/environments/README.md how to use it.
"""

from skyops.deploy_local.lock import DeployBusy
from skyops.deploy_local.rollout import LocalDeploy, RolloutFailed

__all__ = ["DeployBusy", "LocalDeploy", "RolloutFailed"]
