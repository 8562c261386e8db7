"""Every built-in step passes the alignment check, and every pipeline in pipelines/ wires."""

from pathlib import Path

from skyops.pipeline.catalog import catalog_of
from skyops.pipeline.check import check_catalog
from skyops.pipeline.definition import list_pipelines, load_pipeline

ROOT = Path(__file__).resolve().parents[2]


def test_every_builtin_step_is_aligned() -> None:
    catalog = catalog_of("skyops.steps")
    assert {d.name for d in catalog} >= {"ingest", "validate", "profile", "split"}
    assert check_catalog(catalog) == []


def test_every_shipped_pipeline_loads_and_wires() -> None:
    paths = list_pipelines([ROOT / "pipelines"])
    assert "drone-detection" in [p.stem for p in paths]
    for path in paths:
        pipeline = load_pipeline(str(path))
        bound = {(e.consumer, e.port) for e in pipeline.edges}
        required = {(n.name, p.name) for n in pipeline.steps for p in n.definition.spec.inputs if not p.optional}
        assert required <= bound, required - bound
