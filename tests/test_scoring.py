"""Scoring readings against the truth: the edits, character accuracy, the figures of a set of
plates and when a plate found in a photo counts, all worked out by hand."""
from __future__ import annotations

import pytest

from viewer.plates.scoring import (char_accuracy, edit_distance, edits, is_found,
                                   reading_figures)


def test_edit_distance_and_character_accuracy_by_hand():
    assert edit_distance("KITTEN", "SITTING") == 3
    assert edit_distance("", "AB1") == 3
    assert char_accuracy("XZ1QP", "XZ17QP") == pytest.approx(5 / 6)
    assert char_accuracy("ABCDEFGH", "XY") == 0.0


def test_edits_name_each_edit_of_one_cheapest_alignment():
    assert edits("LH025BD", "LM025BD") == {"M>H": 1}
    assert edits("L169A", "LM169AM") == {"-M": 2}
    assert edits("GVVAGEN", "GWAGEN") == {"W>V": 1, "+V": 1}
    assert edits("RK857AIX", "RK857AI") == {"+X": 1}
    assert edits("RK857AI", "RK857AI") == {}


def test_figures_of_readings_exact_one_character_lost_and_unreadable():
    figures = reading_figures([("RK857AI", "RK857AI"), ("XZ1QP", "XZ17QP"), ("", "AB12CD")])
    assert figures["count"] == 3
    assert figures["char_accuracy"] == pytest.approx((1 + 5 / 6 + 0) / 3)
    assert f"{figures['char_accuracy']:.3f}" == "0.611"
    assert (figures["exact"], f"{figures['exact_share']:.0%}") == (1, "33%")
    assert figures["collapsed"] == 1                    # the unreadable one
    assert list(figures["errors"].items()) == [         # most frequent first, then in order
        ("-7", 1), ("-D", 1), ("-C", 1), ("-2", 1), ("-1", 1), ("-B", 1), ("-A", 1)]
    right = reading_figures([("RK857AI", "RK857AI"), ("XZ17QP", "XZ17QP"), ("AB12CD", "AB12CD")])
    assert (right["char_accuracy"], right["exact"], right["exact_share"]) == (1.0, 3, 1.0)
    assert (right["collapsed"], right["errors"]) == (0, {})
    assert reading_figures([]) == {"count": 0, "char_accuracy": 0.0, "exact": 0,
                                   "exact_share": 0.0, "collapsed": 0, "errors": {}}


def test_a_plate_counts_as_found_by_overlap_and_centre():
    truth = (100.0, 50.0, 120.0, 30.0)
    assert is_found((105.0, 55.0, 100.0, 20.0), truth)          # centre inside, IoU 0.56
    assert not is_found((60.0, 55.0, 100.0, 20.0), truth)       # centre inside, IoU 0.27
    assert not is_found((100.0, 20.0, 120.0, 50.0), truth)      # IoU 0.33, centre above it
    assert not is_found(None, truth)                             # nothing read
