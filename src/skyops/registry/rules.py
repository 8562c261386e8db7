"""The status rules of the governed registry, written once: what may happen to a version, whoever asks.

Roles decide who may act (`skyops.registry.roles`); these rules decide what can be done at all:

1. Only an Approved version may be promoted, rolled back to or deployed.
2. A registration is PendingManualApproval or Rejected, never Approved: approving is a person's act.
3. A rollback needs a @champion and a @previous.
4. The @champion stays Approved: rejecting it is refused (roll back or promote another first).
5. Promotion, rollback and deployment move aliases: a registry without aliases (SageMaker's model
   package groups, whose champion is the newest Approved version) refuses them.

Each function returns the problem as one line ('' when there is none), so `skyops deploy plan` can
list every problem of a desired state while the governed action raises on the first.
"""

from __future__ import annotations

from skyops.errors import ConfigError, problems_error

APPROVED = "Approved"
REGISTRABLE = ("PendingManualApproval", "Rejected")


def not_approved(model: str, version: int, status: str, doing: str) -> str:
    """Rule 1: '' when `status` is Approved, else why `doing` (promote, deploy, roll back to) is refused."""
    if status == APPROVED:
        return ""
    return f"{model} v{version} is {status}, not Approved: only an Approved version may be {doing}"


def not_registrable(model: str, status: str) -> str:
    """Rule 2."""
    if status in REGISTRABLE:
        return ""
    return f"a new version of {model} cannot be registered {status}: a registration is {' or '.join(REGISTRABLE)}"


def no_rollback(model: str, champion: int | None, previous: int | None) -> str:
    """Rule 3."""
    if champion is not None and previous is not None:
        return ""
    return f"{model} cannot roll back: it has {'no @champion' if champion is None else 'no @previous'}"


def champion_rejected(model: str, version: int, champion: int | None) -> str:
    """Rule 4."""
    if champion != version:
        return ""
    return f"{model} v{version} is the @champion, which stays Approved: roll back or promote another version before rejecting it"


def no_aliases(model: str, where: str, doing: str) -> str:
    """Rule 5: `where` names the registry ("SageMaker model package group drone-detector")."""
    return f"{where} has no aliases, so {model} cannot be {doing}: its champion is its newest Approved version; approve one instead"


def refuse(subject: str, problems: list[str], *, hint: str) -> None:
    """Raise ConfigError for the problems found (one line for one, a sorted list for several); nothing when there are none."""
    found = [p for p in problems if p]
    if len(found) == 1:
        raise ConfigError(found[0], hint=hint)
    if found:
        raise problems_error(ConfigError, subject, found, hint=hint)
