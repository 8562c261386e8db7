"""The alignment check: are the four layers of every step consistent? Nothing is run.

Checks, for each step of a catalog:
  1. the definition itself: main's and recheck's signatures, spec ports vs contract paths, config
     class, declared output files (relative, on outputs only: checked when the spec is made);
  2. the builder of the contract's job kind can mount every contract path;
  3. the script (read from its syntax tree) reads only ports and env vars its contract declares,
     names container paths only through its contract, and uses literal keys so this can be checked;
  4. the catalog entry is complete: a `__main__.py` runs it, entry point and step type match the package.
Every problem is collected, sorted and reported at once.
"""

from __future__ import annotations

import ast
from pathlib import Path

from skyops.pipeline.builders import builder_for
from skyops.pipeline.catalog import Catalog, StepDefinition, definition_problems
from skyops.pipeline.runtime import CHECKPOINTS

_PORT_MAPS = ("inputs", "outputs")
_ENV_MAP = "env"


def check_catalog(catalog: Catalog, only: set[str] | None = None) -> list[str]:
    """Every alignment problem of the catalog's steps (or of the `only` ones), sorted."""
    problems = []
    for definition in catalog:
        if only is None or definition.name in only:
            problems += [f"step {definition.name!r}: {p}" for p in check_step(definition, catalog.package)]
    return sorted(problems)


def check_step(definition: StepDefinition, package: str) -> list[str]:
    contract = definition.contract
    problems = definition_problems(definition.spec, contract, definition.config, definition.func, definition.recheck, definition.warm)
    problems += builder_for(contract).path_problems(contract)
    problems += script_problems(definition)
    expected_module = f"{package}.{definition.package_dir.name}"
    if contract.entry_point != expected_module:
        problems.append(f"contract entry point {contract.entry_point!r} is not its package {expected_module!r}")
    if definition.name != definition.package_dir.name:
        problems.append(f"step type {definition.name!r} differs from its package folder {definition.package_dir.name!r}")
    if not (definition.package_dir / "__main__.py").is_file():
        problems.append(f"no __main__.py in {definition.package_dir}: `python -m {contract.entry_point}` cannot run it")
    return problems


def script_problems(definition: StepDefinition) -> list[str]:
    """What the script reads that its contract does not declare, found in its syntax tree."""
    contract = definition.contract
    path = definition.source_file
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    declared = {
        "inputs": set(contract.inputs),
        "outputs": set(contract.outputs) | ({CHECKPOINTS} if contract.checkpoint_path else set()),
        _ENV_MAP: set(contract.env_names),
    }
    problems = []
    # Container paths belong in the contract itself; anywhere else they bypass it.
    declaration = {
        id(n) for call in ast.walk(tree) if isinstance(call, ast.Call) and _name(call.func) == "ScriptContract" for n in ast.walk(call)
    }
    for node in ast.walk(tree):
        line = f"{path.name}:{getattr(node, 'lineno', '?')}"
        access = _mapping_access(node)
        if access:
            mapping, key = access
            if mapping in declared:
                if key is None:
                    problems.append(f"{line} reads {mapping}[...] with a non-literal key; use a literal port or variable name")
                elif key not in declared[mapping]:
                    what = "env var" if mapping == _ENV_MAP else f"{mapping[:-1]} port"
                    problems.append(f"{line} reads {what} {key!r}, which the contract does not declare")
            elif mapping == "os.environ":  # even a declared variable: env[...] keeps defaults in one place
                problems.append(f"{line} reads os.environ[{key!r}] directly; declare it in the contract and read env[...]")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("/opt/ml")
            and id(node) not in declaration
        ):
            problems.append(f"{line} names the container path {node.value!r}; read it from inputs/outputs instead")
    return problems


def _mapping_access(node: ast.AST) -> tuple[str, str | None] | None:
    """`inputs["x"]`, `env.get("X")`, `os.environ["X"]`, `os.getenv("X")` -> (mapping, key)."""
    if isinstance(node, ast.Subscript):
        return _name(node.value), _literal(node.slice)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = _name(node.func.value)
        if node.func.attr in ("get", "__getitem__", "pop") and owner and node.args:
            return owner, _literal(node.args[0])
        if owner == "os" and node.func.attr == "getenv" and node.args:
            return "os.environ", _literal(node.args[0])
    return None


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return ""


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
