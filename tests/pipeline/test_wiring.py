import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyops.errors import PipelineError
from skyops.pipeline.spec import Port
from skyops.pipeline.wiring import ExternalRef, OutputRef, WiringNode, wire

from .conftest import toy


def node(name: str, ins: list[Port], outs: list[Port], **bindings: object) -> WiringNode:
    return WiringNode(name, ins, outs, dict(bindings))  # type: ignore[arg-type]


def test_binds_by_name_and_by_alias_and_explains_why() -> None:
    edges, problems = wire(
        [
            node("a", [], [Port(name="data", kind="ds")]),
            node("b", [Port(name="data", kind="ds")], [Port(name="clean", kind="ds", aliases=("train_data",))]),
            node("c", [Port(name="train_data", kind="ds")], [Port(name="m", kind="model")]),
        ]
    )
    assert problems == []
    assert [str(e) for e in edges] == [
        "a.data -> b.data  (only upstream ds output matching by name)",
        "b.clean -> c.train_data  (only upstream ds output matching by alias 'train_data')",
    ]


def test_several_candidates_is_an_error_naming_them() -> None:
    _, problems = wire(
        [
            node("a", [], [Port(name="data", kind="ds")]),
            node("b", [], [Port(name="data", kind="ds")]),
            node("c", [Port(name="data", kind="ds")], [Port(name="x", kind="y")]),
        ]
    )
    assert problems == [
        "input c.data (kind 'ds') matches 2 upstream outputs: a.data, b.data; bind one explicitly with inputs: {data: STEP.OUTPUT}"
    ]


def test_no_candidate_lists_same_kind_outputs_or_says_none_exists() -> None:
    _, problems = wire(
        [
            node("a", [], [Port(name="raw", kind="ds")]),
            node("c", [Port(name="data", kind="ds"), Port(name="model", kind="weights")], [Port(name="x", kind="y")]),
        ]
    )
    assert problems == [
        "input c.data (kind 'ds') matches no upstream output by name or alias; same-kind outputs: a.raw; bind one explicitly",
        "input c.model (kind 'weights') has no upstream producer of that kind; add a step that outputs 'weights' before 'c' or bind an external path",
    ]


def test_same_name_of_another_kind_never_binds() -> None:
    _, problems = wire(
        [node("a", [], [Port(name="data", kind="text")]), node("b", [Port(name="data", kind="ds")], [Port(name="x", kind="y")])]
    )
    assert problems and "has no upstream producer" in problems[0]


def test_explicit_binding_wins_and_is_checked() -> None:
    nodes = [
        node("a", [], [Port(name="data", kind="ds")]),
        node("b", [], [Port(name="data", kind="ds")]),
        node("c", [Port(name="data", kind="ds")], [Port(name="x", kind="y")], data=OutputRef("b", "data")),
        node("d", [Port(name="data", kind="ds")], [Port(name="x", kind="y")], data=OutputRef("c", "x")),
        node("e", [Port(name="data", kind="ds")], [Port(name="x", kind="y")], data=ExternalRef("/data/visdrone")),
    ]
    edges, problems = wire(nodes)
    assert [str(e.source) for e in edges] == ["b.data", "/data/visdrone"]
    assert problems == ["step 'd' input 'data' is bound to c.x, whose kind 'y' differs from the input's kind 'ds'"]


def test_a_pipeline_with_ambiguous_wiring_fails_when_defined() -> None:
    with pytest.raises(
        PipelineError,
        match=r"1 problem in pipeline 'toy':\n  - input total.values \(kind 'numbers'\) matches 2 upstream outputs: one.doubled, two.doubled",
    ):
        toy(
            [
                {"step": "emit"},
                {"name": "one", "step": "double"},
                {"name": "two", "step": "double", "inputs": {"numbers": "emit.numbers"}},
                {"step": "total"},
            ]
        )


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["k1", "k2"])), min_size=1, max_size=6))
def test_wiring_is_deterministic_and_only_binds_earlier_equal_kind_outputs(ports: list[tuple[str, str]]) -> None:
    nodes = [node(f"s{i}", [Port(name=n, kind=k, optional=True)], [Port(name=n, kind=k)]) for i, (n, k) in enumerate(ports)]
    first = wire(nodes)
    assert wire(nodes) == first
    order = [n.name for n in nodes]
    for edge in first[0]:
        assert isinstance(edge.source, OutputRef)
        assert order.index(edge.source.step) < order.index(edge.consumer)
        assert ports[order.index(edge.source.step)] == ports[order.index(edge.consumer)]
