"""The plate-format prior: which twins (O/0, I/1) to swap so that a reading fits a format."""
from __future__ import annotations

import pytest

from viewer.plates.formats import MAX_SWAPS, PATTERNS, TWINS, kinds, twin_swaps


def test_kinds_of_a_text():
    assert kinds("RK857AI") == "LLDDDLL"
    assert kinds("1T43213") == "DLDDDDD"


@pytest.mark.parametrize("text, swaps", [
    ("OYO9FEU", [2]),        # GB LLDD LLL: the third character is a digit
    ("R1857A1", [1, 6]),     # SK LL DDD LL, two twins away
    ("1T4321O", [6]),        # CZ DLD DDDD
    ("ABCD12O", [6]),        # HU LLLL DDD, the last of the patterns: no length stops the search
    ("RKB57AI", []),         # B and 8 are no twins: the net's choice stands
    ("RK857AI", []),         # fits SK already
    ("IT43213", []),         # fits PL's LL DDDDD already, though CZ is a swap away
    ("ABCDEFG", []),         # a vanity text: no format near
    ("OOOIII", []),          # HU's LLLDDD is three swaps away: more than MAX_SWAPS
    ("O1O", []),             # no format of three characters
])
def test_twin_swaps(text, swaps):
    assert twin_swaps(text, TWINS) == swaps


def test_two_formats_equally_near_leave_the_reading_as_it_is():
    # `AB123O1`: SK wants the last as a letter (1 -> I), PL's LL DDDDD the O as a digit.
    assert {"LLDDDLL", "LLDDDDD"} <= set(PATTERNS)
    assert twin_swaps("AB123O1", TWINS) == []
    assert MAX_SWAPS == 2
