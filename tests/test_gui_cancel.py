"""Cancelling long work: the window is idle at once, late results are dropped, timings stop.

Passes already inside an engine cannot be interrupted, so the jobs here block on an event the
test releases: that is the moment an engine would return.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
from PyQt5 import QtCore, QtWidgets

from gui_helpers import MAP_TIMEOUT, plate_file, settings, window  # noqa: F401
from viewer.app import jobs
from viewer.maps.sliding import MeasurementCancelled


class Gate:
    """Wraps a job function so that it waits, as if inside an engine, until `release()`."""

    def __init__(self, function) -> None:
        self.function = function
        self.started, self.opened = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        self.started.set()
        self.opened.wait(10)
        return self.function(*args, **kwargs)

    def release(self) -> None:
        self.opened.set()


def wait_until_drained(qtbot, worker) -> None:
    """Until the worker thread has finished its jobs, cancelled ones included, and what they
    sent back has reached the GUI thread (to be delivered or dropped)."""
    qtbot.waitUntil(lambda: not worker.is_running(), timeout=MAP_TIMEOUT)
    QtWidgets.QApplication.processEvents()


@pytest.fixture
def gated_map(window, qtbot, monkeypatch):
    """A map request at scale 0.8 stuck inside the 'engine'."""
    gate = Gate(jobs.compute_map)
    monkeypatch.setattr(jobs, "compute_map", gate)
    window.scale.spin.setValue(0.8)
    qtbot.waitUntil(gate.started.is_set, timeout=MAP_TIMEOUT)
    assert window.busy.isVisible() and window.cancel_button.isVisible()
    assert "computing the map" in window.busy_label.text()
    yield gate
    gate.release()


def test_cancel_goes_idle_at_once_and_drops_the_late_map(window, qtbot, gated_map):
    shown, drawn = window.state.fm, window.plate.classes.image.copy()
    qtbot.mouseClick(window.cancel_button, QtCore.Qt.LeftButton)
    assert not window.maps.is_busy()
    assert not window.busy.isVisible() and not window.cancel_button.isVisible()
    assert window.statusBar().currentMessage().startswith("cancelled: computing the map")
    assert window.scale.value() == pytest.approx(shown.scale)   # the controls match the map
    with qtbot.assertNotEmitted(window.map_shown):
        gated_map.release()
        wait_until_drained(qtbot, window.maps)
    assert window.state.fm is shown
    assert np.array_equal(window.plate.classes.image, drawn)


def test_escape_cancels_a_map_and_otherwise_picks_the_best_class(window, qtbot, gated_map):
    window.state.set_channel("K")
    qtbot.keyClick(window.plate, QtCore.Qt.Key_Escape)
    assert not window.maps.is_busy() and window.state.channel == "K"      # cancelled, nothing else
    gated_map.release()
    wait_until_drained(qtbot, window.maps)
    qtbot.keyClick(window.plate, QtCore.Qt.Key_Escape)
    assert window.state.channel is None and window.plate.classes.isVisible()


def test_a_new_request_after_cancel_is_computed(window, qtbot, gated_map):
    window.cancel_work()
    gated_map.release()
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.spin.setValue(0.9)
    assert window.state.fm.scale == pytest.approx(0.9)


def test_cancel_stops_the_surgery_timing_between_batches(window, qtbot, monkeypatch):
    batches: list[bool] = []

    def timing(dense, image, scale, classifier=None, cancelled=None, budget_s=None):
        while not cancelled():          # compare_with_windows asks before each batch
            batches.append(False)
            threading.Event().wait(0.005)
        batches.append(True)
        raise MeasurementCancelled("stopped")

    window.cancel_work()                # the check that started with the window
    monkeypatch.setattr(jobs, "compare_with_windows", timing)
    window.controller.request_check()
    qtbot.waitUntil(lambda: bool(batches), timeout=MAP_TIMEOUT)
    assert "timing the surgery" in window.busy_label.text()
    qtbot.keyClick(window.plate, QtCore.Qt.Key_Escape)      # Esc leaves background work alone
    assert window.slow.is_busy() and window.state.channel is None
    with qtbot.assertNotEmitted(window.check_shown):
        qtbot.mouseClick(window.cancel_button, QtCore.Qt.LeftButton)
        assert not window.slow.is_busy() and not window.busy.isVisible()
        assert "cancelled" in window.surgery.timing.text()
        assert window.surgery.button.isEnabled()
        wait_until_drained(qtbot, window.slow)
    assert batches[-1] is True


def test_cancel_ends_the_automatic_scale_search_between_passes(window, qtbot, monkeypatch):
    passes: list[float] = []
    gate = Gate(lambda: None)

    def auto_read(dense, image):
        for scale in (0.5, 0.6, 0.7, 0.8):
            if scale == 0.6:
                gate()                  # the second pass is "inside the engine"
            passes.append(scale)
            dense.run(image, scale)
        raise AssertionError("the search should have stopped")

    monkeypatch.setattr(jobs, "reading_module", lambda: SimpleNamespace(auto_read=auto_read))
    window.controller.request_auto_scale()
    qtbot.waitUntil(gate.started.is_set, timeout=MAP_TIMEOUT)
    assert "choosing the scale" in window.busy_label.text()
    assert window.cancel_work(background=False) == ["auto"]
    with qtbot.assertNotEmitted(window.map_shown), qtbot.assertNotEmitted(window.map_failed):
        gate.release()
        wait_until_drained(qtbot, window.maps)
    assert passes == [0.5, 0.6]          # the pass in progress ended, no new one started


def test_cancelling_a_model_load_keeps_the_model(window, qtbot, monkeypatch, lenet_files):
    gate = Gate(jobs.read_model)
    monkeypatch.setattr(jobs, "read_model", gate)
    model = window.state.model
    assert window.files.open_model(*lenet_files)
    qtbot.waitUntil(gate.started.is_set, timeout=MAP_TIMEOUT)
    assert "loading the model" in window.busy_label.text()
    assert window.cancel_work(background=False) == ["model"]
    with qtbot.assertNotEmitted(window.loader.loaded), \
            qtbot.assertNotEmitted(window.loader.failed):
        gate.release()
        wait_until_drained(qtbot, window.maps)
    assert window.state.model is model and window.errors.errors == []
