"""Plates found in a photo: boxes with their text over it, a click zooms, a region is read."""
from __future__ import annotations

import pytest
from PyQt5 import QtCore

from gui_helpers import MAP_TIMEOUT, open_window, settings  # noqa: F401
from test_locate import scene
from viewer.maps.export import save_png
from viewer.plates.locate import iou


@pytest.fixture
def photo_window(qtbot, tmp_path, settings):  # noqa: F811
    image, letters_box, plate_box = scene(8, "4B40262")
    path = save_png(image, tmp_path / "scene.png")
    win = open_window(qtbot, path, settings, scale=1.0, auto_check=False)
    win.truth = letters_box
    yield win
    win.close()


def view_rect(win) -> tuple[float, float, float, float]:
    (x0, x1), (y0, y1) = win.plate.view.viewRange()
    return x0, y0, x1 - x0, y1 - y0


def test_found_plates_are_drawn_the_best_is_read_at_its_scale_and_a_click_zooms(
        photo_window, qtbot):
    win = photo_window
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.controller.request_plates()
    best = win.found.plates[0]
    assert best.text == "4B40262" and iou(best.box, win.truth) >= 0.5
    assert len(win.found.boxes) == len(win.found.labels) == len(win.found.plates)
    assert win.found.labels[0].textItem.toPlainText() == "4B40262"
    assert win.found.boxes[0].rect().getRect() == pytest.approx(best.box)
    assert win.found.chosen == 0
    assert win.state.fm.scale == best.scale and win.scale.value() == pytest.approx(best.scale)
    assert win.state.result.reading.text == "4B40262"
    assert "4B40262" in win.letters.summary.text()

    x, y, w, h = best.box
    whole = view_rect(win)
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        qtbot.mouseClick(win.plate.viewport(), QtCore.Qt.LeftButton,
                         pos=win.plate.image_to_widget(x + w / 2, y + h / 2))
    zoomed = view_rect(win)
    assert zoomed[2] < 0.8 * whole[2]
    assert zoomed[0] <= x and x + w <= zoomed[0] + zoomed[2]
    assert win.state.fm.scale == best.scale and win.state.result.reading.text == "4B40262"


def test_a_dragged_region_is_read_and_placed_in_the_image(photo_window, qtbot):
    win = photo_window
    x, y, w, h = win.truth
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.found.drawn(x - 15, y - 10, w + 30, h + 20)     # where a Shift-drag ends
    assert win.found.region.isVisible()
    best = win.found.plates[0]
    assert best.text == "4B40262" and iou(best.box, win.truth) >= 0.5
    assert win.state.result.reading.text == "4B40262"
