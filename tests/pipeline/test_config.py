import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyops.errors import ConfigError
from skyops.pipeline.builders import config_arguments
from skyops.pipeline.config import Range, StepConfig, build_config, coerce, parse_arguments


class Mode(StrEnum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True, kw_only=True)
class Example(StepConfig):
    epochs: Annotated[int, Range(ge=1)] = 3
    lr: float = 0.01
    optimizer: Literal["SGD", "AdamW"] = "SGD"
    mode: Mode = Mode.FAST
    flip: bool = True
    ratios: tuple[float, ...] = (0.8, 0.2)
    names: dict[str, int] | None = None
    tag: str = ""

    def problems(self) -> list[str]:
        return [] if abs(sum(self.ratios) - 1) < 1e-9 else [f"ratios must sum to 1, got {sum(self.ratios)}"]


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(
        ConfigError,
        match=r"4 problems in step 'x' config:\n  - epochs: 0 must be >= 1\n  - flip: expected true or false, got 'maybe'\n  - optimizer: expected one of 'SGD', 'AdamW', got 'adam'\n  - unknown key 'epoch'",
    ):
        build_config(Example, {"epochs": "0", "optimizer": "adam", "flip": "maybe", "epoch": 3}, where="step 'x' config")


def test_cross_field_problems_come_from_the_config() -> None:
    with pytest.raises(ConfigError, match=r"ratios must sum to 1, got 1\.1"):
        build_config(Example, {"ratios": [0.9, 0.2]}, where="c")


def test_strings_from_a_command_line_become_typed_values() -> None:
    config = build_config(
        Example, {"epochs": "5", "lr": "1e-3", "mode": "slow", "flip": "false", "ratios": "[0.5, 0.5]", "names": '{"car": 0}'}, where="c"
    )
    assert config == Example(epochs=5, lr=0.001, mode=Mode.SLOW, flip=False, ratios=(0.5, 0.5), names={"car": 0})


def test_an_integer_field_refuses_a_fraction_and_a_bool() -> None:
    with pytest.raises(ValueError, match=r"expected an integer, got 2\.5"):
        coerce(2.5, int)
    with pytest.raises(ValueError, match="expected an integer, got True"):
        coerce(True, int)


@given(
    epochs=st.integers(1, 10_000),
    lr=st.floats(1e-6, 10, allow_nan=False),
    optimizer=st.sampled_from(["SGD", "AdamW"]),
    flip=st.booleans(),
    tag=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    names=st.none() | st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 9), max_size=3),
)
def test_config_survives_the_trip_through_command_line_arguments(
    epochs: int, lr: float, optimizer: str, flip: bool, tag: str, names: dict[str, int] | None
) -> None:
    config = Example(epochs=epochs, lr=lr, optimizer=optimizer, flip=flip, tag=tag, names=names)  # type: ignore[arg-type]
    assert build_config(Example, parse_arguments(config_arguments(config)), where="c") == config


def test_parse_arguments_needs_pairs() -> None:
    with pytest.raises(ConfigError, match="argument '--epochs' has no value"):
        parse_arguments(["--epochs"])
    with pytest.raises(ConfigError, match="unexpected argument 'x'"):
        parse_arguments(["x"])


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", float("nan"), float("inf")])
def test_a_float_must_be_finite(value: object) -> None:
    """nan passes every range check (nan < 0 and nan > 1 are both False), so it is refused as a value."""
    with pytest.raises(ValueError, match=rf"^expected a finite number, got {re.escape(repr(value))}$"):
        coerce(value, float)


def test_a_non_finite_config_value_is_a_config_problem() -> None:
    with pytest.raises(ConfigError, match=r"1 problem in c:\n  - lr: expected a finite number, got 'nan'$"):
        build_config(Example, {"lr": "nan"}, where="c")
    with pytest.raises(ConfigError, match=r"ratios: expected a finite number, got inf"):
        build_config(Example, {"ratios": [float("inf"), 0.2]}, where="c")


def test_choices_match_ignoring_case() -> None:
    config = build_config(Example, {"optimizer": "adamw", "mode": "SLOW"}, where="c")
    assert (config.optimizer, config.mode) == ("AdamW", Mode.SLOW)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"expected one of 'a', 'A', got 'b'"):
        coerce("b", Literal["a", "A"])
    assert coerce("A", Literal["a", "A"]) == "A"  # an exact match wins over a case-blind one
