"""Plates found in a photo: boxes with their text over it, a click zooms, a region is read."""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5 import QtCore

from gui_helpers import MAP_TIMEOUT, item_rect, open_window, settings  # noqa: F401
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


def test_a_click_maps_only_the_plates_neighbourhood_or_reuses_the_map_at_its_scale(
        photo_window, qtbot):
    """Issue 27 item 4: a whole photo at a plate's scale took 30 s; the plate's crop is enough,
    and the map on screen is kept when it is at that scale already."""
    from viewer.plates.locate import crop_around

    win = photo_window
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.controller.request_plates()
    best = win.found.plates[0]
    shown = win.state.fm
    # the map at the plate's scale is on screen: a click maps nothing, the reading follows
    assert shown.scale == best.scale
    asked = []
    win.maps.submitted = asked
    real = win.maps.submit
    win.maps.submit = lambda kind, *args: (asked.append(kind), real(kind, *args))
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.controller.choose_plate(0)
    assert win.state.fm is shown and asked == [] and win.state.result.reading is best.reading
    # at another scale, a click maps the plate's neighbourhood, placed in the photo
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.controller.choose_scale(1.0)
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.controller.choose_plate(0)
    fm, height, width = win.state.fm, *win.state.image.pixels.shape[:2]
    region = crop_around(best.box, (height, width))
    assert asked == ["map", "map"] and fm.region == region and fm.scale == best.scale
    assert fm.image_shape == (height, width)
    whole = win.state.model.dense.run(win.state.image.pixels, best.scale)
    crop = win.state.model.dense.run(
        win.state.image.pixels[region[1]:region[1] + region[3], region[0]:region[0] + region[2]],
        best.scale)
    np.testing.assert_allclose(fm.probs, crop.probs, atol=1e-6)
    x, y, w, h = fm.geometry.cell_window(0, 0)
    cx, cy, cw, ch = crop.geometry.cell_window(0, 0)
    assert (x, y, w, h) == pytest.approx((cx + region[0], cy + region[1], cw, ch))
    assert fm.probs.shape[1] < whole.probs.shape[1] or fm.probs.shape[2] < whole.probs.shape[2]
    # the layer over the plate sits on the crop, and a hover finds the cell under it
    assert item_rect(win.plate.classes) == pytest.approx(fm.geometry.heatmap_rect(
        *fm.probs.shape[1:]))
    win.state.hover_at(x + w / 2, y + h / 2)
    assert win.state.cell == (0, 0)
    assert win.state.result.reading.text == "4B40262"
