"""The main view: the map layer sits where the geometry says and shows the model's numbers."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PyQt5 import QtCore

from gui_helpers import (MAP_TIMEOUT, cell_centre, item_rect, open_window, pixel_at,  # noqa: F401
                         plate_file, settings, window)
from viewer.maps import render
from viewer.net.geometry import geometry_of
from viewer.app import jobs
from viewer.gui.controls import BEST


def close_to(actual, expected, tolerance: float = 1e-6) -> bool:
    return np.allclose(actual, expected, atol=tolerance)


def test_first_map_is_the_best_class_placed_by_the_geometry(window):
    fm = window.state.fm
    assert fm.scale == 1.0
    assert window.channels.currentText() == BEST
    assert window.plate.classes.isVisible() and not window.plate.heat.isVisible()
    assert close_to(item_rect(window.plate.classes), fm.geometry.heatmap_rect(*fm.probs.shape[1:]))
    assert np.array_equal(window.plate.classes.image, render.best_class_rgba(fm))


@pytest.fixture
def text_window(qtbot, tmp_path, settings):
    """A window on a generated plate with real characters, drawn at the net's height at scale 1,
    so that some cells are sure of a character (the bars of `plate_file` need not be)."""
    from viewer.dataset.plates import PlateStyle, synthesize_plate
    from viewer.maps.export import save_png

    plate = synthesize_plate("RK857AI", char_height_px=22.5, style=PlateStyle(layout="plain"))
    win = open_window(qtbot, save_png(plate.image, tmp_path / "text.png"), settings, scale=1.0)
    yield win
    win.close()


def test_best_class_pixels_blend_the_class_color_by_its_alpha_at_full_opacity(text_window):
    window = text_window
    window.layer_controls.opacity.setValue(100)
    fm = window.state.fm
    rgba = render.best_class_rgba(fm).astype(float)
    alphas = rgba[..., 3] / 255
    sure, unsure = np.unravel_index(alphas.argmax(), alphas.shape), \
        np.unravel_index(alphas.argmin(), alphas.shape)
    assert alphas[sure] > 0.9 and alphas[unsure] < 0.1  # a character, and plain background
    for i, j in (sure, unsure):
        x, y = cell_centre(fm, i, j)
        plate = np.broadcast_to(window.state.image.pixels[int(y), int(x)], (3,)).astype(float)
        expected = (1 - alphas[i, j]) * plate + alphas[i, j] * rgba[i, j, :3]
        assert close_to(pixel_at(window, x, y), expected, 3), (i, j)


def test_opacity_blends_the_map_with_the_plate(window):
    window.layer_controls.opacity.setValue(0)
    fm = window.state.fm
    i, j = 3, 5
    x, y = cell_centre(fm, i, j)
    plate = window.state.image.pixels[int(y), int(x)]
    assert close_to(pixel_at(window, x, y), plate, 3)
    assert window.plate.classes.opacity() == 0


def test_a_class_channel_is_drawn_through_the_colormap_on_levels_0_to_1(window):
    window.layer_controls.opacity.setValue(100)
    window.channels.set_channel("K")
    fm = window.state.fm
    k = fm.labels.index("K")
    assert window.plate.heat.isVisible() and not window.plate.classes.isVisible()
    assert np.array_equal(window.plate.heat.image, fm.probs[k])
    assert close_to(window.plate.heat.levels, (0, 1))
    assert close_to(item_rect(window.plate.heat), fm.geometry.heatmap_rect(*fm.probs.shape[1:]))
    inferno = pg.colormap.get("inferno")
    for i, j in [(2, 2), (fm.probs.shape[1] // 2, fm.probs.shape[2] // 2)]:
        expected = inferno.map(fm.probs[k, i, j], mode="byte")[:3]
        assert close_to(pixel_at(window, *cell_centre(fm, i, j)), expected, 6)


def test_raw_scores_show_the_scores_on_their_own_range(window):
    window.channels.set_channel("3")
    window.layer_controls.raw.setChecked(True)
    fm = window.state.fm
    k = fm.labels.index("3")
    assert np.array_equal(window.plate.heat.image, fm.scores[k])
    assert close_to(window.plate.heat.levels, (fm.scores.min(), fm.scores.max()), 1e-4)
    assert window.files.raw_action.isChecked()
    window.layer_controls.raw.setChecked(False)
    assert close_to(window.plate.heat.levels, (0, 1))


def test_colormap_choice_changes_the_drawn_colors(window):
    window.layer_controls.opacity.setValue(100)
    window.channels.set_channel("A")
    window.layer_controls.colormap.setCurrentText("viridis")
    fm = window.state.fm
    i, j = 4, 6
    expected = pg.colormap.get("viridis").map(fm.probs[0, i, j], mode="byte")[:3]
    assert close_to(pixel_at(window, *cell_centre(fm, i, j)), expected, 6)


def test_moving_the_scale_recomputes_and_replaces_the_layer(window, qtbot):
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.spin.setValue(0.8)
    fm = window.state.fm
    assert fm.scale == pytest.approx(0.8)
    assert window.scale.slider.value() == 80
    assert close_to(item_rect(window.plate.classes), fm.geometry.heatmap_rect(*fm.probs.shape[1:]))
    assert "scale 0.800" in window.summary.full


def test_dragging_the_slider_coalesces_into_the_last_scale(window, qtbot):
    shown = []
    window.map_shown.connect(lambda: shown.append(window.state.fm.scale))
    for value in range(60, 141, 2):
        window.scale.slider.setValue(value)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == pytest.approx(1.4) and
                    not window.maps.is_busy(), timeout=MAP_TIMEOUT)
    assert len(shown) < 10, "stale scales were computed one by one"
    assert window.state.fm.scale == pytest.approx(1.4)
    # the busy bar hides once the surgery check that may follow is done too (fails on timeout)
    qtbot.waitUntil(lambda: not window.slow.is_busy() and not window.busy.isVisible(),
                    timeout=60_000)


def test_plus_and_minus_keys_step_the_scale(window, qtbot):
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        qtbot.keyClick(window.plate, QtCore.Qt.Key_Plus)
    assert window.state.fm.scale == pytest.approx(1.05)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        qtbot.keyClick(window.plate, QtCore.Qt.Key_Minus)
    assert window.state.fm.scale == pytest.approx(1.0)


def test_the_scale_cannot_go_below_one_window(window):
    smallest = window.state.model.dense.planner.min_scale(window.state.image.pixels.shape[:2])
    assert window.scale.spin.minimum() >= smallest
    window.scale.set_scale(0.01)
    assert window.scale.value() >= smallest


def test_typing_a_letter_or_digit_jumps_to_its_channel(window, qtbot):
    qtbot.keyClick(window.plate, QtCore.Qt.Key_R)
    assert window.state.channel == "R" and window.channels.currentText() == "R"
    fm = window.state.fm
    assert np.array_equal(window.plate.heat.image, fm.probs[fm.labels.index("R")])
    qtbot.keyClick(window.plate, QtCore.Qt.Key_7)
    assert window.state.channel == "7"
    assert window.files.channel_actions["7"].isChecked()
    qtbot.keyClick(window.plate, QtCore.Qt.Key_Escape)
    assert window.state.channel is None and window.plate.classes.isVisible()


def test_picking_a_channel_from_the_menu(window):
    window.files.channel_actions["Q"].trigger()
    assert window.state.channel == "Q" and window.channels.currentText() == "Q"
    assert "P(Q)" in window.summary.full
    window.files.channel_actions[None].trigger()
    assert window.state.channel is None


def test_the_picker_lists_best_class_and_every_label(window):
    items = [window.channels.itemText(k) for k in range(window.channels.count())]
    assert items == [BEST] + window.state.model.dense.labels
    assert len(window.state.model.dense.labels) >= 36


def test_hovering_shows_the_cell_its_window_and_its_probabilities(window, qtbot):
    fm = window.state.fm
    i, j = 5, 9
    x, y = cell_centre(fm, i, j)
    qtbot.mouseMove(window.plate.viewport(), window.plate.image_to_widget(x, y))
    qtbot.waitUntil(lambda: window.readout.cell == (i, j), timeout=3000)
    assert window.plate.window_box.isVisible()
    box = window.plate.window_box.rect()
    assert close_to((box.x(), box.y(), box.width(), box.height()), fm.geometry.cell_window(i, j))
    assert close_to(window.readout.heights(), fm.probs[:, i, j])
    best = fm.labels[int(fm.probs[:, i, j].argmax())]
    named = window.readout.named()
    assert 1 <= len(named) <= 5 and named[0] == best
    assert f"cell ({i}, {j})" in window.readout.title.text()


def test_leaving_the_map_clears_the_readout(window):
    window.state.hover_cell(2, 2)
    assert window.plate.window_box.isVisible()
    window.state.hover_at(-500, -500)
    assert window.readout.cell is None and not window.plate.window_box.isVisible()


def test_a_failure_in_the_worker_comes_back_as_a_message(window, qtbot, monkeypatch):
    from viewer.errors import ImageError

    def broken(*args):
        raise ImageError("the plate vanished")

    monkeypatch.setattr(jobs, "compute_map", broken)
    previous = window.state.fm
    with qtbot.waitSignal(window.maps.failed, timeout=MAP_TIMEOUT):
        window.controller.request_map()
    assert "the plate vanished" in window.statusBar().currentMessage()
    assert window.state.fm is previous
    assert window.errors.errors == []


def test_switching_the_engine_recomputes_the_same_map(window, qtbot):
    before = window.state.fm
    other = next(name for name in window.files.engine_actions if name != "opencv")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.files.engine_actions[other].trigger()
    assert window.state.model.dense.engine_name == other
    assert other in window.summary.full
    assert np.allclose(window.state.fm.probs, before.probs, atol=1e-4)
