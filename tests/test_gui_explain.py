"""The "Why here" tab: a letter card or E over a cell explains it off the GUI thread, the panel
shows the same numbers as the core, and a runner-up explains the class against it."""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5 import QtCore

import gui_helpers
from gui_helpers import MAP_TIMEOUT, plate_file, settings  # noqa: F401
from viewer.maps.attribution import METHODS, Explainer
from viewer.maps.attribution_pictures import ZOOM

CELLS = [(6, 8), (6, 20)]
LABELS = ["K", "4"]


@pytest.fixture
def reading_window(qtbot, plate_file, settings, monkeypatch):
    win = gui_helpers.reading_window(qtbot, plate_file, settings, monkeypatch, CELLS, LABELS)
    yield win
    win.close()


def _core(win, cell, label, versus=None):
    """The explanation the core gives for the map on screen, computed here."""
    dense = win.state.model.dense
    explainer = Explainer(dense)
    data = dense.prepare(win.state.image.pixels, win.state.fm.scale)
    return explainer.explain(data, cell, dense.labels.index(label), ["gradient"],
                             versus=None if versus is None else dense.labels.index(versus))


def test_a_letter_card_explains_its_cell_with_every_method(reading_window, qtbot):
    win = reading_window
    qtbot.mouseClick(win.letters.buttons[0], QtCore.Qt.LeftButton)
    qtbot.waitUntil(lambda: win.state.explanation is not None, timeout=MAP_TIMEOUT)
    shown = win.state.explanation
    assert (shown.label, shown.cell) == ("K", (6, 8))
    assert list(shown.maps) == list(METHODS)
    assert win.tabs.currentWidget() is win.why
    assert "Why K here" in win.why.title.text() and "cell (6, 8)" in win.why.title.text()
    core = _core(win, (6, 8), "K")
    np.testing.assert_allclose(shown.maps["gradient"], core.maps["gradient"], atol=1e-6)
    row = win.why.row.pixmap()
    assert row.width() == len(METHODS) * 28 * ZOOM + (len(METHODS) - 1) * 4
    # A runner-up: "why K and not X" is the difference of the two gradients.
    runner = win.why.versus.itemText(1)
    assert runner == [r for r in shown.ranking if r != "K"][0]
    win.why.versus.setCurrentIndex(1)
    win.why.versus.activated.emit(1)
    qtbot.waitUntil(lambda: win.state.explanation.versus_label == runner, timeout=MAP_TIMEOUT)
    against = win.state.explanation
    alone = _core(win, (6, 8), runner)
    np.testing.assert_allclose(against.maps["gradient"],
                               core.maps["gradient"] - alone.maps["gradient"], atol=1e-5)
    assert f"Why K and not {runner} here" in win.why.title.text()


def test_shift_e_over_a_cell_explains_it(reading_window, qtbot):
    win = reading_window
    win.state.hover_cell(5, 13)
    qtbot.keyClick(win.plate, QtCore.Qt.Key_E)              # E alone: the class E, as before
    assert win.state.channel == "E" and win.state.explain_request is None
    qtbot.keyClick(win.plate, QtCore.Qt.Key_E, QtCore.Qt.ShiftModifier)
    qtbot.waitUntil(lambda: win.state.explanation is not None, timeout=MAP_TIMEOUT)
    shown = win.state.explanation
    index = win.state.fm.labels.index("E")                 # the channel picked
    assert shown.cell == (5, 13) and shown.label == "E"
    assert shown.score == pytest.approx(float(win.state.fm.scores[index, 5, 13]), abs=1e-3)
