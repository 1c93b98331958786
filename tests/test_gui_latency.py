"""The latency probe: scale change -> repainted map, GUI-thread stalls, first map on screen."""
from __future__ import annotations

import threading

import pytest

from gui_helpers import MAP_TIMEOUT, open_window, plate_file, settings, window  # noqa: F401
from viewer.app import jobs
from viewer.gui.latency import LatencyProbe


def test_a_scale_change_is_timed_to_the_paint_that_shows_its_map(window, qtbot):
    probe = LatencyProbe(window)
    with qtbot.waitSignal(probe.repainted, timeout=MAP_TIMEOUT) as repainted:
        window.scale.spin.setValue(0.85)
    (shown,) = probe.figures.repaints
    assert shown.scale == pytest.approx(0.85) == window.state.fm.scale
    assert shown.ms == repainted.args[0]
    assert shown.ms >= shown.forward_ms == window.state.fm.forward_ms > 0
    probe.stop()


def test_stalls_of_the_gui_thread_while_mapping_are_measured(window, qtbot, monkeypatch):
    """A map job that holds the GUI thread's attention for a known time shows as lateness."""
    probe = LatencyProbe(window)
    started, release = threading.Event(), threading.Event()
    real = jobs.compute_map

    def slow_map(*args):
        started.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(jobs, "compute_map", slow_map)
    window.scale.spin.setValue(0.9)
    qtbot.waitUntil(started.is_set, timeout=MAP_TIMEOUT)
    probe.reset()
    qtbot.waitUntil(lambda: probe._last_tick is not None, timeout=1000)
    block = threading.Event()
    block.wait(0.12)                    # the GUI thread is blocked on purpose, 120 ms
    with qtbot.waitSignal(probe.repainted, timeout=MAP_TIMEOUT):
        release.set()
    assert probe.figures.worst_block_ms >= 100
    assert probe.figures.worst_block_any_ms >= probe.figures.worst_block_ms
    probe.stop()


def test_the_first_map_on_screen_is_timed(qtbot, plate_file, settings):  # noqa: F811
    from gui_helpers import Recorder, default_args
    from viewer.app import session
    from viewer.cli.view import initial_model
    from viewer.gui.main_window import MainWindow

    model = initial_model(default_args())
    win = MainWindow(model, session.read_image(plate_file), settings, scale=1.0,
                     auto_check=False)
    qtbot.addWidget(win)
    win.show_error = Recorder()
    probe = LatencyProbe(win)
    assert probe.figures.first_map_at is None
    with qtbot.waitSignal(probe.first_map, timeout=MAP_TIMEOUT):
        win.show()
    assert probe.figures.first_map_at is not None and win.state.fm is not None
    win.close()
