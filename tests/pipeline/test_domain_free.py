"""The core names nothing of the domain: no step type, port of the built-in catalog or domain module
appears as a string in skyops.pipeline, where import-linter cannot see it."""

from __future__ import annotations

import ast
from pathlib import Path

import skyops
from skyops.pipeline.catalog import catalog_of
from skyops.settings import DEFAULT_CATALOG

SKYOPS = Path(skyops.__file__).parent
CORE = SKYOPS / "pipeline"

# The core's own words that happen to equal a built-in port name, each with why it is the core's.
CORE_WORDS = {
    ("contract.py", "registration"): "JobKind.REGISTRATION, the core's name of a job kind",
    ("spec.py", "source"): "NodeType.SOURCE, the core's name of a step with no inputs",
    ("engine.py", "source"): "the run record's key saying where an input came from",
    ("sagemaker/sources.py", "source"): "the key of a source parameter's Metadata entry",
    ("cache.py", "package"): "code-memo.json's key of the Python package a step's code closure starts from",
}


def domain_names() -> set[str]:
    """Step types and port names of the built-in catalog, and every skyops module outside the core."""
    names = set()
    for definition in catalog_of(DEFAULT_CATALOG):
        names.add(definition.spec.step_type)
        names |= {p.name for p in (*definition.spec.inputs, *definition.spec.outputs)}
    for path in SKYOPS.rglob("*.py"):
        module = ".".join(("skyops", *path.relative_to(SKYOPS).with_suffix("").parts)).removesuffix(".__init__")
        if module.startswith("skyops.") and not module.startswith("skyops.pipeline"):  # "skyops" alone names no domain
            names.add(module)
    return names


def string_constants(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant in a module, f-string parts included, docstrings excluded."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_string_in_the_core_names_a_step_a_built_in_port_or_a_domain_module() -> None:
    names = domain_names()
    assert {"register", "evaluate", "model", "evaluation", "skyops.steps", "skyops.aws.pipelines"} <= names  # the check sees them
    found = {
        (path.relative_to(CORE).as_posix(), line, value)
        for path in sorted(CORE.rglob("*.py"))
        for line, value in string_constants(path)
        if value in names or any(value.startswith(f"{name}.") for name in names if name.startswith("skyops."))
    }
    named = {(where, value) for where, _, value in found}
    assert sorted(f"{where}:{line}: {value!r}" for where, line, value in found if (where, value) not in CORE_WORDS) == []
    assert named == set(CORE_WORDS), "an entry of CORE_WORDS no longer occurs: remove it"
