"""`skyops pipeline list|explain|check`: inspect pipeline definitions without running them."""

from __future__ import annotations

from skyops.cli.common import load, settings
from skyops.cli.params import argument
from skyops.cli.usage import SkyopsGroup
from skyops.settings import DEFAULT_CATALOG

app = SkyopsGroup(
    "pipeline", help="Inspect pipelines: list them, explain their wiring, check the four layers of their steps.", no_args_is_help=True
)


@app.command("list")
def list_() -> None:
    """List the pipelines in pipelines/ with their steps."""
    from skyops.pipeline.definition import list_pipelines

    for path in list_pipelines(settings().pipeline_dirs):
        pipeline = load(str(path))
        print(f"{pipeline.name:24} {' -> '.join(s.name for s in pipeline.steps)}")


@app.command()
@argument("name", metavar="NAME", help="Pipeline name or path.")
def explain(name: str) -> None:
    """Print every parameter, step and edge of a pipeline, and why each edge was chosen."""
    pipeline = load(name)
    print(f"pipeline {pipeline.name}  ({pipeline.source})")
    if pipeline.description:
        print(f"  {pipeline.description}")
    print("parameters:")
    for p in pipeline.parameters:
        print(f"  {p.name} ({p.type}) = {p.default!r}  {p.description}")
    print("steps:")
    for node in pipeline.steps:
        contract = node.definition.contract
        print(f"  {node.name}  [{node.definition.name}, {contract.job_kind} job, python -m {contract.entry_point}]")
    print("edges:")
    for edge in pipeline.edges:
        print(f"  {edge}")
    for gate in pipeline.gates:
        conditions = " and ".join(str(c) for c in gate.conditions)
        print(f"gate {gate.name}: after {gate.step}, {gate.output}/{gate.file}: {conditions} -> runs {', '.join(gate.guards)}")
    unbound = [
        f"{node.name}.{port.name}"
        for node in pipeline.steps
        for port in node.definition.spec.inputs
        if not any(e.consumer == node.name and e.port == port.name for e in pipeline.edges)
    ]
    if unbound:
        print("unbound optional inputs: " + ", ".join(unbound))


@app.command()
@argument("name", required=False, metavar="NAME", help="Pipeline name or path; default: every step of every catalog in use.")
def check(name: str | None) -> None:
    """Check that spec, contract, builder and script of every step agree (static, runs nothing)."""
    from skyops.errors import CheckError, problems_error
    from skyops.pipeline.catalog import catalog_of
    from skyops.pipeline.check import check_catalog
    from skyops.pipeline.definition import list_pipelines

    pipelines = [load(name)] if name else [load(str(p)) for p in list_pipelines(settings().pipeline_dirs)]
    problems = []
    checked = 0
    packages = sorted({DEFAULT_CATALOG, *(n.definition.script_module.rsplit(".", 2)[0] for p in pipelines for n in p.steps)})
    for package in packages:
        catalog = catalog_of(package)
        only = {n.definition.name for p in pipelines for n in p.steps} if name else None
        problems += check_catalog(catalog, only)
        checked += sum(1 for d in catalog if only is None or d.name in only)
    if problems:
        raise problems_error(CheckError, f"{checked} steps", problems, hint="each line names the file and what to declare or change")
    print(f"ok: {checked} steps aligned across spec, contract, builder and script; {len(pipelines)} pipelines wired")
