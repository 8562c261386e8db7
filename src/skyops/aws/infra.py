"""The AWS environment skyops deploys: its stacks, their templates, names and the tags that make a resource skyops'.

    env = infra_environment("dev")            # or $SKYOPS_INFRA_ENV, default 'dev'
    env.core_stack, env.studio_stack          # 'skyops-dev', 'skyops-dev-studio'
    env.owns(tags, env.core_stack)            # True only for Project=skyops, Environment=dev, ManagedBy=skyops-dev

Two stacks per environment (templates in infra/cloudformation/, docs/infrastructure.md): the core stack (bucket,
image repository, roles, model package group, alerts, budget, and the GitHub CI role when a repository is given)
and, when a VPC is given, the Studio stack (the domain and one user profile per persona, running as the core
stack's persona roles). Plain data: no request is made here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skyops.errors import ConfigError, SkyopsError

PROJECT = "skyops"
ENV_VAR = "SKYOPS_INFRA_ENV"
DEFAULT_ENVIRONMENT = "dev"
CORE_TEMPLATE = "skyops-core.yaml"
STUDIO_TEMPLATE = "skyops-studio.yaml"
TEMPLATE_DIR = Path("infra") / "cloudformation"  # under the project folder
PERSONAS = ("data-scientist", "ml-engineer")
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{1,14}$")  # the templates' AllowedPattern
# The core template's AllowedPatterns of GitHubRepository and GitHubOidcProviderArn, less their "^$|" (empty: none).
GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}/[A-Za-z0-9._-]{1,100}$")
GITHUB_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\.actions\.githubusercontent\.com$")


class InfraError(SkyopsError):
    """A stack operation AWS started did not end well (a failed change set, a rolled-back stack, a failed delete).

    The message names the stack and what failed; the hint, the recovery steps."""

    exit_code = 1


@dataclass(frozen=True)
class InfraEnvironment:
    """One environment's names. `name` matches the templates' Environment parameter (lower case, 2-15 characters)."""

    name: str

    @property
    def core_stack(self) -> str:
        return f"{PROJECT}-{self.name}"

    @property
    def studio_stack(self) -> str:
        return f"{PROJECT}-{self.name}-studio"

    @property
    def stacks(self) -> tuple[str, str]:
        """Both stacks, in the order they are created (the Studio stack needs the core stack's roles)."""
        return (self.core_stack, self.studio_stack)

    @property
    def bucket_prefix(self) -> str:
        """What the artifact bucket's name starts with: `skyops-<env>-<account>-<region>` (the core template)."""
        return f"{PROJECT}-{self.name}-"

    def tags(self, stack: str, owner: str, cost_center: str) -> dict[str, str]:
        """The tags of `stack` and every resource in it (the templates set the same on each resource)."""
        return {"Project": PROJECT, "Environment": self.name, "Owner": owner, "CostCenter": cost_center, "ManagedBy": stack}

    def ownership(self, stack: str) -> dict[str, str]:
        """The tags that make a stack, or a resource of it, skyops' own: `destroy` deletes nothing else."""
        return {"Project": PROJECT, "Environment": self.name, "ManagedBy": stack}

    def owns(self, tags: Mapping[str, str], stack: str) -> bool:
        return all(tags.get(key) == value for key, value in self.ownership(stack).items())

    def why_not_owned(self, tags: Mapping[str, str], stack: str) -> str:
        """Why `tags` do not make a resource skyops' (for the log and the refusal), '' when they do."""
        if not tags:
            return f"it has no tags; skyops deletes only what is tagged {_show(self.ownership(stack))}"
        wrong = [
            f"{key}={tags[key]!r}" if key in tags else f"no {key} tag"
            for key, value in self.ownership(stack).items()
            if tags.get(key) != value
        ]
        return f"{', '.join(wrong)}: not skyops' {self.name} environment (expected {_show(self.ownership(stack))})" if wrong else ""


def infra_environment(name: str | None = None) -> InfraEnvironment:
    """The environment named `name`, else $SKYOPS_INFRA_ENV, else 'dev'.

    Raises:
        ConfigError: a name the templates would refuse.
    """
    chosen = name or os.environ.get(ENV_VAR) or DEFAULT_ENVIRONMENT
    if not _ENVIRONMENT.match(chosen):
        where = "--env" if name else f"${ENV_VAR}"
        raise ConfigError(
            f"environment {chosen!r} ({where}) is not a skyops environment name: 2-15 lower-case letters, digits and '-', "
            f"starting with a letter",
            hint="use e.g. --env dev, --env staging or --env prod",
        )
    return InfraEnvironment(chosen)


def template_path(project_dir: Path, template: str) -> Path:
    """The template file in the project (infra/cloudformation/), or ConfigError naming where it was looked for."""
    path = project_dir / TEMPLATE_DIR / template
    if not path.is_file():
        raise ConfigError(
            f"no CloudFormation template {template} in {project_dir / TEMPLATE_DIR}",
            hint="run skyops from the project's root folder, or set SKYOPS_PROJECT_DIR to it",
        )
    return path


def tag_map(tags: object) -> dict[str, str]:
    """AWS's [{"Key": k, "Value": v}, ...] (any casing of the two names) as {k: v}."""
    found: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else []:
        if isinstance(tag, dict):
            key, value = tag.get("Key", tag.get("key")), tag.get("Value", tag.get("value"))
            if isinstance(key, str) and isinstance(value, str):
                found[key] = value
    return found


def _show(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())
