"""The panels: letter strip, conv1 filters, blob tiles, the Surgery panel, the auto scale."""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5 import QtCore, QtGui

import gui_helpers
from gui_helpers import (MAP_TIMEOUT, fake_reading_module, item_rect, open_window,  # noqa: F401
                         plate_file, settings, window)
from viewer.gui.blob_panel import BLANK
from viewer.maps import render
from viewer.net.geometry import geometry_of
from viewer.app import jobs
from viewer.app.pictures import filter_picture

CELLS = [(6, 8), (6, 20), (7, 33)]
LABELS = ["K", "4", "Z"]


@pytest.fixture
def reading_window(qtbot, plate_file, settings, monkeypatch):
    win = gui_helpers.reading_window(qtbot, plate_file, settings, monkeypatch, CELLS, LABELS)
    yield win
    win.close()


def test_the_strip_shows_each_letter_with_its_probability_and_runners_up(reading_window):
    strip = reading_window.letters
    letters = reading_window.state.result.reading.letters
    assert [b.letter.label for b in strip.buttons] == LABELS
    assert "K4Z" in strip.summary.text()
    for button, letter in zip(strip.buttons, letters):
        text = button.findChild(type(strip.summary)).text()
        assert f"{letter.prob:.2f}" in text
        assert f"{letter.top[1][0]} {letter.top[1][1]:.2f}" in text


def test_clicking_a_letter_selects_its_channel_and_highlights_its_box(reading_window, qtbot):
    win = reading_window
    button = win.letters.buttons[1]
    qtbot.mouseClick(button, QtCore.Qt.LeftButton)
    letter = win.state.result.reading.letters[1]
    assert win.state.channel == "4" and win.channels.currentText() == "4"
    assert np.array_equal(win.plate.heat.image, win.state.fm.probs[win.state.fm.labels.index("4")])
    box = win.plate.highlight_box
    assert box.isVisible()
    assert np.allclose((box.rect().x(), box.rect().y(), box.rect().width(), box.rect().height()),
                       letter.box)
    assert button.isChecked() and not win.letters.buttons[0].isChecked()
    qtbot.keyClick(win.plate, QtCore.Qt.Key_Escape)
    assert not box.isVisible() and not button.isChecked()


def _tile_pixels(tile) -> np.ndarray:
    """The gray levels a conv1 tile draws, read back from its icon."""
    image = tile.icon().pixmap(tile.iconSize()).toImage().convertToFormat(
        QtGui.QImage.Format_Grayscale8)
    pixels = np.frombuffer(image.constBits().asstring(image.byteCount()), np.uint8)
    return pixels.reshape(image.height(), image.bytesPerLine())[:, :image.width()]


def test_conv1_grid_has_a_tile_per_filter_with_its_kernel(window):
    """Each tile starts with its own kernel, one uniform block per weight, darkest at the
    smallest weight and brightest at the largest, in the kernel's row and column order."""
    dense = window.state.model.dense
    kernels = dense.engine.params[dense.first_conv][0]
    assert len(window.conv1.tiles) == len(kernels) == window.state.fm.conv1.shape[0]
    kh, kw = kernels.shape[2:]
    block = window.conv1.picture_height // kh
    for k in (0, 7, len(kernels) - 1):
        drawn = _tile_pixels(window.conv1.tiles[k])[:kh * block, :kw * block].astype(int)
        blocks = drawn.reshape(kh, block, kw, block)
        assert (blocks == blocks[:, :1, :, :1]).all(), f"tile {k}: blocks are not uniform"
        levels, weights = blocks[:, 0, :, 0], kernels[k].mean(axis=0)
        assert levels.flat[weights.argmin()] == 0 and levels.flat[weights.argmax()] == 255
        assert np.corrcoef(levels.ravel(), weights.ravel())[0, 1] > 0.99


def test_clicking_a_filter_overlays_its_output_where_conv1_looks(window, qtbot):
    qtbot.mouseClick(window.conv1.tiles[3], QtCore.Qt.LeftButton)
    fm, dense = window.state.fm, window.state.model.dense
    assert window.state.filter == 3 and window.conv1.tiles[3].isChecked()
    assert np.array_equal(window.plate.heat.image, fm.conv1[3])
    g = geometry_of(dense.net, dense.first_conv, fm.geometry.scale)
    assert np.allclose(item_rect(window.plate.heat), g.heatmap_rect(*fm.conv1.shape[1:]))
    assert np.allclose(window.plate.heat.levels, (fm.conv1[3].min(), fm.conv1[3].max()),
                       atol=1e-5)
    status = window.summary.full
    assert "filter #3" in status
    assert f"{fm.conv1.shape[1]}x{fm.conv1.shape[2]} cells, stride {g.stride[0]}, window " \
        f"{g.receptive_field[0]} px" in status
    qtbot.mouseClick(window.conv1.tiles[3], QtCore.Qt.LeftButton)
    assert window.state.filter is None and window.plate.classes.isVisible()


def test_a_filter_overlay_follows_the_scale(window, qtbot):
    qtbot.mouseClick(window.conv1.tiles[5], QtCore.Qt.LeftButton)
    with qtbot.waitSignals([window.map_shown, window.panels_shown], timeout=MAP_TIMEOUT):
        window.scale.spin.setValue(1.3)
    assert np.array_equal(window.plate.heat.image, window.state.fm.conv1[5])
    assert window.conv1.tiles[5].isChecked()             # the tiles of the new map, still picked
    expected = filter_picture(window.state.model.dense.engine.params["conv1"][0][5],
                              window.state.fm.conv1[5],
                              window.conv1.picture_height)
    assert window.conv1.tiles[5].iconSize().width() == expected.shape[1]


def test_the_blob_selector_tiles_any_blob(window, qtbot):
    window.tabs.setCurrentWidget(window.blobs)
    names = [window.blobs.picker.itemText(k) for k in range(window.blobs.picker.count())]
    assert names == window.state.model.dense.engine.blob_names
    shown_map = window.state.fm
    window.blobs.picker.setCurrentText("pool2")
    qtbot.waitUntil(lambda: "pool2" in window.state.fm.blobs, timeout=MAP_TIMEOUT)
    assert window.state.fm is shown_map           # looking at a blob never changes the map
    values = window.state.fm.blobs["pool2"]
    shown = window.blobs.image.image
    columns = (shown.shape[1] + 2) // (values.shape[2] + 2)
    assert columns == window.blobs.columns
    gray = render.tile_channels(values, columns)
    used = np.any(shown != BLANK, axis=2)          # unused slots are blue-gray, not white
    assert np.array_equal(shown[..., 0][used], gray[used])
    assert used.sum() == values.size      # every channel's pixels; gaps and slots blank
    sheet_aspect = shown.shape[1] / shown.shape[0]
    canvas_aspect = window.blobs.canvas.width() / window.blobs.canvas.height()
    assert sheet_aspect / canvas_aspect < 4 and canvas_aspect / sheet_aspect < 4
    assert f"{values.shape[0]} channels of {values.shape[1]}x{values.shape[2]}" in \
        window.blobs.info.text()


def test_the_surgery_panel_shows_layers_check_and_timing(window, qtbot):
    if window.state.checked_generation != window.state.generation or window.slow.is_busy():
        qtbot.waitSignal(window.check_shown, timeout=60_000).wait()
    table = window.surgery.table
    rows = [[table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())]
    conversions = {c.layer: c for c in window.state.model.conversions}
    assert "ip1" in conversions
    ip1 = next(r for r in rows if r[0].startswith("ip1 "))
    assert ip1[1].startswith("x".join(map(str, conversions["ip1"].old_shape)))
    assert ip1[2] == "->"
    assert ip1[4].startswith("x".join(map(str, conversions["ip1"].new_shape)))
    assert "passed" in window.surgery.equivalence.text()
    assert "faster" in window.surgery.timing.text()


def test_measure_again_uses_the_current_scale(window, qtbot):
    window.tabs.setCurrentWidget(window.surgery)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.spin.setValue(0.9)
    qtbot.waitUntil(window.surgery.button.isEnabled, timeout=60_000)
    qtbot.mouseClick(window.surgery.button, QtCore.Qt.LeftButton)
    qtbot.waitUntil(lambda: "at scale 0.900" in window.surgery.timing.text()
                    and not window.slow.is_busy(), timeout=60_000)
    assert window.surgery.button.isEnabled()


def test_auto_sets_the_scale_the_reader_picks(reading_window, qtbot):
    win = reading_window
    assert win.scale.auto.isEnabled()
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        qtbot.mouseClick(win.scale.auto, QtCore.Qt.LeftButton)
    assert win.scale.value() == pytest.approx(0.7)
    assert win.state.fm.scale == pytest.approx(0.7)


def test_without_the_reading_module_the_app_still_runs(qtbot, plate_file, settings, monkeypatch):
    monkeypatch.setattr(jobs, "reading_module", lambda: None)
    win = open_window(qtbot, plate_file, settings)
    assert not win.scale.auto.isEnabled()
    assert "not available" in win.letters.summary.text()
    win.close()


def test_without_a_scale_the_window_opens_at_the_automatic_one_and_the_screenshot_waits(
        qtbot, plate_file, monkeypatch, tmp_path):
    from gui_helpers import default_args
    from viewer.cli.view import opening_from_args
    from viewer.gui import app
    from viewer.gui.settings import Settings

    monkeypatch.setattr(jobs, "reading_module", lambda: fake_reading_module(CELLS, LABELS, 0.7))
    win = app.create_window(opening_from_args(default_args(image=str(plate_file))),
                            Settings(None), auto_check=False)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    shot = tmp_path / "shot.png"
    saved = app.schedule_screenshot(win, shot)
    win.show()
    qtbot.waitUntil(lambda: bool(saved), timeout=MAP_TIMEOUT)
    assert saved == [True] and shot.exists()
    assert win.state.auto_shown and win.state.fm.scale == pytest.approx(0.7)
    assert win.conv1.tiles_show(win.state.fm)          # the tiles had followed the map
    assert win.scale.value() == pytest.approx(0.7)
    assert "scale 0.700, chosen automatically" in win.summary.full


def test_a_new_image_opens_at_its_automatic_scale_and_a_given_one_wins(reading_window, qtbot,
                                                                        tmp_path):
    from gui_helpers import generated_plate
    from viewer.maps.export import save_png

    win = reading_window                 # opened with scale=1.0: no search
    assert win.state.fm.scale == 1.0 and not win.state.auto_shown
    assert "chosen automatically" not in win.summary.full
    other = save_png(generated_plate(100, 280, seed=4), tmp_path / "other.png")
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.files.open_image(other)
    assert win.state.auto_shown and win.state.fm.scale == pytest.approx(0.7)
    assert "chosen automatically" in win.summary.full
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.scale.spin.setValue(0.8)     # the user's own scale
    assert not win.state.auto_shown and "chosen automatically" not in win.summary.full


def test_the_panel_shows_the_checks_own_tolerance():
    from viewer.gui.surgery_panel import verification_text
    from viewer.surgery.verify import Verification

    small = Verification(max_abs_diff=3e-5, inputs=64, engine="onnx", largest=0.8)
    assert "tolerance 0.0001 = 0.0001, as no score exceeds 1)" in verification_text(small) \
        and "passed" in verification_text(small)
    raw = Verification(max_abs_diff=0.004, inputs=64, engine="onnx", largest=250.0)
    text = verification_text(raw)
    assert f"tolerance {raw.tolerance:.2g} = 0.0001 x the largest score, 250: the tolerance " \
        "is relative" in text and "passed" in text


def test_a_padded_net_shows_the_classifier_window_and_names_its_padded_field(qtbot, tmp_path,
                                                                             settings):
    """CaffeNet's layout on a 451x451 image at scale 1: 8x8 cells, the hover's rectangle is
    the 227 px window at stride 32, and the status names the 355 px padded field."""
    import gallery
    from gui_helpers import default_args
    from viewer.caffe import model_io
    from viewer.maps.export import save_png

    proto, weights = tmp_path / "caffenet.prototxt", tmp_path / "caffenet.caffemodel"
    model_io.write_net(gallery.load("caffenet_style"), proto, weights)
    image = save_png(gallery.image(451, 451), tmp_path / "image.png")
    win = open_window(qtbot, image, settings, default_args(prototxt=proto, weights=weights),
                      scale=1.0)
    try:
        assert win.state.fm.probs.shape[1:] == (8, 8)
        assert "8x8 cells, stride 32, window 227 px of the scaled image (padded field 355 px)" \
            in win.summary.full
        assert win.state.fm.geometry.cell_window(4, 4) == (128.0, 128.0, 227.0, 227.0)
    finally:
        win.close()


def test_the_surgery_tab_lists_a_global_pooling_with_its_new_kernel(qtbot, tmp_path, settings):
    """SqueezeNet's layout: no InnerProduct, one global pooling that surgery gives a kernel."""
    import gallery
    from gui_helpers import default_args
    from viewer.caffe import model_io
    from viewer.maps.export import save_png

    proto, weights = tmp_path / "squeezenet.prototxt", tmp_path / "squeezenet.caffemodel"
    model_io.write_net(gallery.load("squeezenet_fire"), proto, weights)
    image = save_png(gallery.image(100, 120), tmp_path / "image.png")
    win = open_window(qtbot, image, settings, default_args(prototxt=proto, weights=weights),
                      scale=1.0)
    try:
        table = win.surgery.table
        rows = [[table.item(r, c).text() for c in range(table.columnCount())]
                for r in range(table.rowCount())]
        assert ["pool10 (Pooling)", "global", "->", "pool10 (Pooling)",
                "14x14 kernel, stride 1"] in rows
        assert "global pool10 -> 14x14 pooling" in win.surgery.summary.text()
        assert win.state.fm.probs.shape[1:] == (10, 15)   # (100 - 64) / 4 + 1, (120 - 64) / 4 + 1
    finally:
        win.close()
