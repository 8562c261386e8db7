"""The CloudFormation templates as the tests read them: YAML with CloudFormation's short tags, and intrinsic functions
resolved with given values, so a test can use a template's own policy documents and resource properties.

    template = load_template(CORE)
    values = Values(parameters={"Environment": "dev", ...}, physical={"ArtifactBucket": "skyops-dev-..."}, attributes={...})
    resolve(template["Resources"]["DataScientistRole"]["Properties"]["Policies"], values, template)

Only what the templates use is resolved: Ref, Fn::Sub, Fn::GetAtt, Fn::If (with Fn::Not, Fn::And, Fn::Equals and
Condition conditions); `created` says which resources a template's conditions keep. Anything else is an error, so a new function in a template fails here loudly instead of passing through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "infra" / "cloudformation"
CORE = TEMPLATES / "skyops-core.yaml"
STUDIO = TEMPLATES / "skyops-studio.yaml"
ACCOUNT = "123456789012"
REGION = "eu-west-1"  # profile ab's region in tests/aws/conftest.py
_SUB = re.compile(r"\$\{([^}!]+)\}")


class _Loader(yaml.SafeLoader):
    """YAML with `!Ref x`, `!Sub s`, `!GetAtt A.B`, `!If [...]`, ... as CloudFormation's long form."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):  # the two whose long form has no "Fn::"
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _short_form)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


@dataclass
class Values:
    """What the functions resolve to: parameters (defaults filled from the template), the physical id of each resource
    (what Ref gives), and `Logical.Attribute` -> value (what GetAtt gives)."""

    parameters: dict[str, Any]
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws", "AWS::StackName": self.parameters["_stack"]}
        for table in (pseudo, self.parameters, self.physical):
            if name in table:
                return table[name]
        raise KeyError(f"Ref {name}: no value given")


def parameter_values(template: dict[str, Any], given: dict[str, Any], stack: str) -> dict[str, Any]:
    values = {name: spec["Default"] for name, spec in template.get("Parameters", {}).items() if "Default" in spec}
    return {**values, **given, "_stack": stack}


def condition(template: dict[str, Any], name: str, values: Values) -> bool:
    return bool(_condition(template["Conditions"][name], values, template))


def _condition(node: Any, values: Values, template: dict[str, Any]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Fn::Not":
            return not _condition(arg[0], values, template)
        if key == "Fn::And":
            return all(_condition(item, values, template) for item in arg)
        if key == "Condition":
            return condition(template, arg, values)
        if key == "Fn::Equals":
            return resolve(arg[0], values, template) == resolve(arg[1], values, template)
    return resolve(node, values, template)


def created(template: dict[str, Any], values: Values) -> set[str]:
    """The logical ids of the resources the stack holds with these parameter values (each one's Condition met)."""
    return {
        name for name, spec in template["Resources"].items() if "Condition" not in spec or condition(template, spec["Condition"], values)
    }


def outputs(template: dict[str, Any], values: Values) -> set[str]:
    """The names of the outputs the stack has with these parameter values."""
    return {name for name, spec in template["Outputs"].items() if "Condition" not in spec or condition(template, spec["Condition"], values)}


def resolve(node: Any, values: Values, template: dict[str, Any]) -> Any:
    """`node` with every intrinsic function replaced by its value."""
    if isinstance(node, list):
        return [resolve(item, values, template) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return values.ref(arg)
        if key == "Fn::GetAtt":
            return values.attributes[f"{arg[0]}.{arg[1]}"]
        if key == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], resolve(arg[1], values, template))
            return _SUB.sub(lambda m: str(_sub_value(m.group(1), local, values)), text)
        if key == "Fn::If":
            chosen = arg[1] if condition(template, arg[0], values) else arg[2]
            return resolve(chosen, values, template)
        if key.startswith("Fn::"):
            raise NotImplementedError(f"{key} is not resolved by tests/aws/infra/template.py")
    return {key: resolve(value, values, template) for key, value in node.items()}


def _sub_value(name: str, local: dict[str, Any], values: Values) -> Any:
    if name in local:
        return local[name]
    if "." in name:
        return values.attributes[name]
    return values.ref(name)


def policies(template: dict[str, Any], role: str, values: Values) -> dict[str, dict[str, Any]]:
    """A role's inline policies, resolved: name -> policy document."""
    found = template["Resources"][role]["Properties"]["Policies"]
    return {p["PolicyName"]: resolve(p["PolicyDocument"], values, template) for p in found}
