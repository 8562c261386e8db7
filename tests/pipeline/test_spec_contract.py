import dataclasses
from dataclasses import replace

import pytest

from skyops.errors import ContractError, SpecError
from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepSpec, processing_output


def test_port_rejects_bad_names_and_kinds() -> None:
    with pytest.raises(SpecError, match=r"port name 'Data' must match .*kind 'Yolo Dataset' must match"):
        Port(name="Data", kind="Yolo Dataset")


def test_spec_reports_duplicates_and_node_type_problems_at_once() -> None:
    ports = (Port(name="a", kind="k"), Port(name="a", kind="k"))
    with pytest.raises(SpecError, match=r"a source step may only have optional inputs; input port 'a' is declared twice"):
        StepSpec(step_type="s", node_type=NodeType.SOURCE, inputs=ports, outputs=(Port(name="o", kind="k"),))


def test_sink_has_no_outputs() -> None:
    with pytest.raises(SpecError, match="a sink step has no outputs"):
        StepSpec(step_type="s", node_type=NodeType.SINK, outputs=(Port(name="o", kind="k"),))


def test_spec_is_frozen_and_replace_returns_a_checked_copy() -> None:
    spec = StepSpec(step_type="s", node_type=NodeType.SOURCE, outputs=(Port(name="o", kind="k"),))
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'step_type'"):
        spec.step_type = "t"  # type: ignore[misc]
    assert replace(spec, step_type="t").step_type == "t"
    with pytest.raises(SpecError, match="needs at least one output"):
        replace(spec, outputs=())


def test_contract_rejects_relative_and_shared_paths_and_bad_env() -> None:
    with pytest.raises(
        ContractError,
        match=r"env var 'lower' must match.*path '/opt/ml/processing/output/o' is used by two ports; path 'rel/x' is not absolute",
    ):
        ScriptContract(
            entry_point="m",
            job_kind=JobKind.PROCESSING,
            inputs={"a": "rel/x", "b": processing_output("o")},
            outputs={"o": processing_output("o")},
            optional_env={"lower": ""},
        )


def test_training_runtime_reads_sagemaker_hyperparameters(tmp_path) -> None:
    import json

    from skyops.pipeline.runtime import HYPERPARAMETERS, PATHS_ENV, prepare
    from skyops.steps.train.script import main as train_step

    hp = tmp_path / "hyperparameters.json"
    hp.write_text(json.dumps({"epochs": "7", "imgsz": "320", "sagemaker_program": "x"}))
    splits = tmp_path / "splits"
    splits.mkdir()
    paths = {
        HYPERPARAMETERS: str(hp),
        "/opt/ml/input/data/splits": str(splits),
        "/opt/ml/model": str(tmp_path / "m"),
        "/opt/ml/checkpoints": str(tmp_path / "c"),
    }
    _, _, _, args = prepare(train_step, ["--imgsz", "256"], {PATHS_ENV: json.dumps(paths)})
    assert (args.epochs, args.imgsz) == (7, 256)  # the file fills in, the command line wins


REGISTERS = dict(
    model="model",
    metrics="metrics",
    metrics_file="metrics.json",
    decision="decision",
    decision_file="decision.json",
    card_file="card.json",
    model_name_config="model_name",
)


def registration(**changes: object) -> ScriptContract:
    from skyops.pipeline import Registers, processing_input

    fields = {
        "entry_point": "x.enroll",
        "job_kind": JobKind.REGISTRATION,
        "inputs": {"model": processing_input("model"), "metrics": processing_input("metrics")},
        "outputs": {"decision": processing_output("decision")},
        "optional_env": {"SKYOPS_REGISTRY": "local"},
        "registers": Registers(**REGISTERS),  # type: ignore[arg-type]
        **changes,
    }
    return ScriptContract(**fields)  # type: ignore[arg-type]


def test_a_registration_contract_names_the_ports_its_engine_registers_from() -> None:
    from skyops.pipeline import Registers

    assert registration().registers == Registers(**REGISTERS)  # type: ignore[arg-type]
    with pytest.raises(ContractError, match=r"a registration job declares registers=Registers\(\.\.\.\)"):
        registration(registers=None)
    with pytest.raises(ContractError, match=r"only a registration job declares registers; this is a processing job"):
        registration(job_kind=JobKind.PROCESSING)
    wrong = Registers(**{**REGISTERS, "model": "weights", "decision": "verdict", "card_file": "decision.json"})  # type: ignore[arg-type]
    with pytest.raises(ContractError) as info:
        registration(registers=wrong, optional_env={})
    assert info.value.message == (
        "contract of 'x.enroll': a registration contract declares SKYOPS_REGISTRY (the engine says there which registry acts on "
        "the decision); registers names input 'weights', which the contract does not declare; registers.decision names output "
        "'verdict', which the contract does not declare; registers.decision_file and card_file are both 'decision.json'"
    )


def test_the_model_name_config_must_be_a_field_of_the_config() -> None:
    from skyops.pipeline.catalog import Catalog

    spec = StepSpec(
        step_type="enroll",
        node_type=NodeType.INTERNAL,
        inputs=(Port(name="model", kind="m"), Port(name="metrics", kind="k")),
        outputs=(Port(name="decision", kind="d"),),
    )
    with pytest.raises(
        ContractError, match=r"registers.model_name_config names config field 'model_name', which EmptyConfig does not have"
    ):

        @Catalog("nowhere").step(spec=spec, contract=registration())
        def main(inputs, outputs, env, args):  # type: ignore[no-untyped-def]
            pass


def test_only_a_training_contract_declares_a_launcher() -> None:
    trained = ScriptContract(entry_point="x.train", job_kind=JobKind.TRAINING, launcher="x.launch")
    assert trained.launcher == "x.launch"
    with pytest.raises(ContractError, match=r"contract of 'x.prep': only a training job declares a launcher; this is a processing job"):
        ScriptContract(entry_point="x.prep", job_kind=JobKind.PROCESSING, launcher="x.launch")
