"""Model references: name@alias, name/version and a bare name."""

from __future__ import annotations

import pytest

from hybridops.errors import HybridopsError
from hybridops.registry.client import ModelRef, parse_model_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("flight_delay@champion", ModelRef("flight_delay", alias="champion")),
        ("flight_delay@previous_champion", ModelRef("flight_delay", alias="previous_champion")),
        ("flight_delay/3", ModelRef("flight_delay", version="3")),
        ("flight_delay/12", ModelRef("flight_delay", version="12")),
        ("flight_delay", ModelRef("flight_delay")),
        ("models:/flight_delay@challenger", ModelRef("flight_delay", alias="challenger")),
        ("  flight-delay.v2/7 ", ModelRef("flight-delay.v2", version="7")),
    ],
)
def test_good_refs(text: str, expected: ModelRef) -> None:
    assert parse_model_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "@champion", "flight_delay@", "flight_delay/", "flight_delay/0", "flight_delay/x", "flight_delay/3@champion",
     "flight_delay@champion/3", "flight delay", "a/b/c", "flight_delay@@x", "/3"],
)  # fmt: skip
def test_bad_refs_name_the_expected_forms(text: str) -> None:
    with pytest.raises(HybridopsError) as info:
        parse_model_ref(text)
    message = str(info.value)
    assert repr(text) in message
    assert "<name>@<alias>" in message and "<name>/<version>" in message


def test_str_round_trips() -> None:
    for text in ("flight_delay@champion", "flight_delay/3", "flight_delay"):
        assert str(parse_model_ref(text)) == text
