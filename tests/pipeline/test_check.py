import importlib

import pytest

from skyops.errors import ContractError, PipelineError
from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepSpec, processing_output, training_channel
from skyops.pipeline.builders import builder_for
from skyops.pipeline.catalog import Catalog, catalog_of
from skyops.pipeline.check import check_catalog


def test_toy_catalog_is_aligned() -> None:
    assert check_catalog(catalog_of("tests.pipeline.toysteps")) == []


def test_check_catches_undeclared_ports_env_vars_and_container_paths(scratch_package) -> None:
    scratch_package(
        "good", 'text = inputs["src"].joinpath("a.txt").read_text()\n(outputs["out"] / "a.txt").write_text(text + env["SCRATCH_MODE"])'
    )
    scratch_package(
        "bad",
        """
        import os
        model = inputs["model"]
        token = env.get("SECRET_TOKEN")
        home = os.environ["HOME"]
        raw = open("/opt/ml/processing/input/raw/x.txt").read()
        for port in ("out",):
            (outputs[port] / "x").write_text(raw)
        """,
    )
    lines = (scratch_package.root / scratch_package.package / "bad" / "script.py").read_text().splitlines()
    at = {
        key: lines.index(next(line for line in lines if key in line)) + 1 for key in ("model", "SECRET", "HOME", "raw =", "write_text(raw)")
    }
    problems = check_catalog(catalog_of(scratch_package.package))
    assert problems == [
        f"step 'bad': script.py:{at['model']} reads input port 'model', which the contract does not declare",
        f"step 'bad': script.py:{at['SECRET']} reads env var 'SECRET_TOKEN', which the contract does not declare",
        f"step 'bad': script.py:{at['HOME']} reads os.environ['HOME'] directly; declare it in the contract and read env[...]",
        f"step 'bad': script.py:{at['raw =']} names the container path '/opt/ml/processing/input/raw/x.txt'; read it from inputs/outputs instead",
        f"step 'bad': script.py:{at['write_text(raw)']} reads outputs[...] with a non-literal key; use a literal port or variable name",
    ]


def test_a_signature_that_does_not_match_fails_at_definition_time() -> None:
    catalog = Catalog("nowhere")
    spec = StepSpec(step_type="s", node_type=NodeType.SOURCE, outputs=(Port(name="out", kind="k"),))
    contract = ScriptContract(entry_point="nowhere.s", job_kind=JobKind.PROCESSING, outputs={"result": processing_output("result")})
    with pytest.raises(
        ContractError,
        match=r"3 problems in step 's':\n  - contract output path for 'result' has no port in the spec\n  - script .*main takes \(inputs, outputs\); expected \(inputs, outputs, env, args\)\n  - spec output port 'out' has no path in the contract",
    ):

        @catalog.step(spec=spec, contract=contract)
        def main(inputs, outputs):  # type: ignore[no-untyped-def]
            pass


def test_builder_refuses_paths_its_job_kind_cannot_mount() -> None:
    contract = ScriptContract(
        entry_point="x.s",
        job_kind=JobKind.PROCESSING,
        inputs={"data": training_channel("data")},
        outputs={"out": processing_output("out")},
        checkpoint_path="/opt/ml/checkpoints",
    )
    assert builder_for(contract).path_problems(contract) == [
        "input 'data' at /opt/ml/input/data/data is not under /opt/ml/processing/input/ (processing jobs mount inputs there)",
        "processing jobs have no checkpoint folder, but the contract declares /opt/ml/checkpoints",
    ]


def test_catalog_load_reports_every_broken_step(scratch_package) -> None:
    scratch_package("fine", 'outputs["out"].joinpath("x").write_text("1")')
    broken = scratch_package("broken", "pass")
    broken.write_text(broken.read_text().replace("def main(inputs, outputs, env, args):", "def main(inputs, outputs, env):"))
    package = scratch_package.package
    module = importlib.import_module(package)
    with pytest.raises(PipelineError) as info:
        module.CATALOG.load()
    assert info.value.message == (
        f"1 problem in catalog '{package}':\n"
        f"  - broken: script {package}.broken.script.main takes (inputs, outputs, env); expected (inputs, outputs, env, args)"
    )
