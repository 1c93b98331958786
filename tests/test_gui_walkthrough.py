"""Issue 17, a newcomer's walk through the viewer: each rough edge they hit, locked down.

Each test fails on the behaviour the issue describes and passes on the fix.
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5 import QtCore, QtWidgets

from gui_helpers import (MAP_TIMEOUT, fake_reading_module, generated_plate,  # noqa: F401
                         open_window, plate_file, settings, window)
from viewer.maps.export import save_png
from viewer.app import jobs
from viewer.gui.menus import MENU_ROWS

AUTO = 0.2547            # an automatic scale with more decimals than the spin box shows


@pytest.fixture
def auto_window(qtbot, tmp_path, settings, monkeypatch):
    """A window whose plate reading (and automatic scale, AUTO) is fixed."""
    monkeypatch.setattr(jobs, "reading_module",
                        lambda: fake_reading_module([(1, 2), (1, 5)], ["K", "5"], AUTO))
    plate = save_png(generated_plate(200, 520), tmp_path / "large_plate.png")
    win = open_window(qtbot, plate, settings)
    yield win
    win.close()


def view_fits(window, shape) -> bool:
    """Is the plate the whole view (one side filled, within the padding), not a speck?"""
    (x0, x1), (y0, y1) = window.plate.view.viewRange()
    h, w = shape
    inside = x0 <= 0 and y0 <= 0 and x1 >= w and y1 >= h
    return inside and (w / (x1 - x0) > 0.9 or h / (y1 - y0) > 0.9)


# 1. a newly opened image is fitted to the view ---------------------------------------------------
def test_a_new_smaller_image_opens_fitted_not_as_a_speck(window, qtbot, tmp_path):
    big = save_png(generated_plate(600, 1600, seed=2), tmp_path / "big.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.files.open_image(big)
    assert view_fits(window, (600, 1600))
    small = save_png(generated_plate(60, 150, seed=3), tmp_path / "small.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.files.open_image(small)
    assert view_fits(window, (60, 150))
    window.plate.view.scaleBy((4, 4))
    assert not view_fits(window, (60, 150))
    qtbot.keyClick(window.plate, QtCore.Qt.Key_Home)
    assert view_fits(window, (60, 150))


# 2. the Blobs tab shows the current map's blob and never changes the map ---------------------------
def test_the_blob_follows_auto_and_a_new_image(auto_window, qtbot, tmp_path):
    win = auto_window
    win.tabs.setCurrentWidget(win.blobs)
    win.blobs.picker.setCurrentText("conv1")
    qtbot.waitUntil(lambda: "conv1" in win.state.fm.blobs, timeout=MAP_TIMEOUT)
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.scale.set_scale(0.5, emit=True)
    assert win.blobs.values.shape == win.state.fm.blobs["conv1"].shape
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.controller.request_auto_scale()
    assert win.state.fm.scale == AUTO and "conv1" in win.state.fm.blobs
    c, h, w = win.state.fm.blobs["conv1"].shape
    assert win.blobs.values.shape == (c, h, w) and f"of {h}x{w}" in win.blobs.info.text()
    other = save_png(generated_plate(140, 420, seed=5), tmp_path / "other.png")
    win.files.open_image(other)
    assert win.blobs.values is None            # not the previous image's blob
    qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT).wait()
    assert win.blobs.values.shape == win.state.fm.blobs["conv1"].shape


def test_picking_a_blob_or_a_model_keeps_the_automatic_scale(auto_window, qtbot):
    win = auto_window
    shown, reading = win.state.fm, win.state.result.reading
    assert shown.scale == AUTO
    win.tabs.setCurrentWidget(win.blobs)
    win.blobs.picker.setCurrentText("pool1")
    qtbot.waitUntil(lambda: "pool1" in shown.blobs, timeout=MAP_TIMEOUT)
    assert win.state.fm is shown and win.state.result.reading is reading   # the map is the same
    assert win.blobs.values.shape == shown.blobs["pool1"].shape
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.controller.open_model(win.state.model)        # a model loaded: mapped at the same scale
    assert win.state.fm.scale == AUTO


# 5. keys work after the scale spin box and from any widget that does not take text ---------------
def test_return_in_the_spin_box_hands_the_keys_back(window, qtbot):
    spin = window.scale.spin
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "0.9")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        qtbot.keyClick(spin, QtCore.Qt.Key_Return)
    assert window.state.fm.scale == pytest.approx(0.9)
    assert QtWidgets.QApplication.focusWidget() is window.plate
    qtbot.keyClick(QtWidgets.QApplication.focusWidget(), QtCore.Qt.Key_K)
    assert window.state.channel == "K"
    spin.setFocus()
    qtbot.keyClicks(spin, "12")
    qtbot.keyClick(spin, QtCore.Qt.Key_Escape)           # Esc drops what was typed
    assert spin.text() == "0.900" and QtWidgets.QApplication.focusWidget() is window.plate


def test_letter_keys_work_from_a_combo_box(window, qtbot):
    combo = window.layer_controls.colormap
    combo.setFocus()
    before = combo.currentText()
    qtbot.keyClick(combo, QtCore.Qt.Key_7)
    assert window.state.channel == "7" and combo.currentText() == before
    qtbot.keyClick(combo, QtCore.Qt.Key_Escape)
    assert window.state.channel is None


# 6. the map summary is a permanent part of the status bar ---------------------------------------------
def test_the_summary_stays_through_messages_and_beside_the_busy_text(window, qtbot):
    summary = window.summary
    assert "stride 4" in summary.full and summary.isVisible()
    window.statusBar().showMessage("saved /tmp/x.npz", 50)
    qtbot.wait(120)
    assert summary.isVisible() and "stride 4" in summary.full
    window.statusBar().showMessage("a menu's tip")
    assert summary.isVisible()
    window.controller.request_check()                             # "timing the surgery" beside it
    assert window.busy_label.isVisible()
    qtbot.wait(10)
    assert not summary.geometry().intersects(window.busy_label.geometry())
    assert summary.fontMetrics().horizontalAdvance(summary.text_shown()) <= summary.width()
    qtbot.waitUntil(lambda: not window.slow.is_busy(), timeout=60_000)


# 9. words that agree ------------------------------------------------------------------------------
def test_one_scale_number_everywhere(auto_window):
    win = auto_window
    assert win.scale.spin.text() == "0.255"
    assert "at scale 0.255" in win.letters.summary.text()
    assert "scale 0.255, chosen automatically" in win.summary.full


def test_no_channel_menu_spills_into_a_second_column(window):
    menus = [window.files.channel_menu, *window.files.channel_menu.findChildren(QtWidgets.QMenu)]
    for menu in menus:          # a 720-pixel screen holds about 28 entries
        assert len(menu.actions()) <= MENU_ROWS + 2 and menu.sizeHint().height() <= 680
    entries = [a for a in window.files.channel_actions]
    assert set(entries) == {None, *window.state.model.dense.labels}


def test_help_lists_the_mouse_actions():
    from viewer.gui.menus import KEYS_HELP

    for words in ("Wheel: zoom", "Drag the plate: pan", "Click a letter", "Click a conv1 filter"):
        assert words in KEYS_HELP


def test_the_class_tiles_are_labelled(window, qtbot):
    window.tabs.setCurrentWidget(window.blobs)
    qtbot.waitUntil(lambda: window.blobs.values is not None, timeout=MAP_TIMEOUT)
    assert window.blobs.blob() == window.state.model.dense.score_blob
    names = [caption.textItem.toPlainText() for caption in window.blobs.captions]
    assert names == window.state.fm.labels
    window.blobs.picker.setCurrentText("conv1")
    qtbot.waitUntil(lambda: window.blobs.values is not None and
                    len(window.blobs.values) == len(window.state.fm.conv1), timeout=MAP_TIMEOUT)
    assert window.blobs.captions == []


# 3. a conv1 overlay on its own levels, named in the Channel box, its tile standing out ---------------
def test_a_filter_overlay_uses_its_own_levels_and_is_named(window, qtbot):
    fm = window.state.fm
    spread = [float(np.ptp(fm.conv1[k])) for k in range(len(fm.conv1))]
    k = int(np.argmin(spread))             # the filter whose output is narrowest
    qtbot.mouseClick(window.conv1.tiles[k], QtCore.Qt.LeftButton)
    values = fm.conv1[k]
    assert np.allclose(window.plate.histogram.getLevels(), (values.min(), values.max()),
                       atol=1e-5)
    assert window.plate.histogram.isVisible()
    assert window.channels.currentText() == f"conv1 filter #{k}"
    other = int(np.argmax(spread))
    qtbot.mouseClick(window.conv1.tiles[other], QtCore.Qt.LeftButton)
    assert np.allclose(window.plate.histogram.getLevels(),
                       (fm.conv1[other].min(), fm.conv1[other].max()), atol=1e-5)
    assert window.channels.currentText() == f"conv1 filter #{other}"
    picked, plain = window.conv1.tiles[other].grab().toImage(), \
        window.conv1.tiles[k].grab().toImage()
    accent = picked.pixelColor(1, 1)
    assert (accent.red(), accent.green(), accent.blue()) == (255, 140, 0)
    assert plain.pixelColor(1, 1) != accent
    qtbot.mouseClick(window.conv1.tiles[other], QtCore.Qt.LeftButton)   # back to the class
    assert window.channels.currentText() == "best class"
    assert window.channels.findText(f"conv1 filter #{other}") < 0


# 4. the hover chart names the winner and no two names overlap ----------------------------------
def test_the_chart_names_the_winner_without_overlaps(window, qtbot):
    import dataclasses

    labels = window.state.fm.labels
    probs = np.zeros_like(window.state.fm.probs)
    probs[labels.index("K")] = 0.94
    for label, p in (("6", 0.02), (labels[-1], 0.02), ("5", 0.015), ("7", 0.005)):
        probs[labels.index(label)] = p
    window.readout.show_cell(dataclasses.replace(window.state.fm, probs=probs), 0, 0)
    window.readout.chart.grab()
    named = window.readout.named()
    assert named[0] == "K" and set(named) == {"K", "6", labels[-1], "5"}
    view = window.readout.chart.getViewBox().sceneBoundingRect()
    boxes = [name.sceneBoundingRect() for name in window.readout.names
             if name.textItem.toPlainText()]
    for n, box in enumerate(boxes):
        assert view.contains(box), named[n]
        assert not any(box.intersects(other) for other in boxes[n + 1:]), named[n]


# 8. best-class colours that differ, with a legend ------------------------------------------------
def test_the_best_class_picture_has_a_legend(window):
    from viewer.maps import render

    assert window.legend.isVisible()
    text = window.legend.text()
    for label, (r, g, b) in render.best_class_legend(window.state.fm):
        assert f"#{r:02x}{g:02x}{b:02x}; color:" in text and f"<b>{label}</b>" in text
    window.state.set_channel("K")
    assert not window.legend.isVisible()
    window.state.set_channel(None)
    assert window.legend.isVisible()


# 7. the window fits the screen, and tiles grow on a large one --------------------------------------
def test_the_window_fits_a_small_screen_and_tiles_grow_on_a_large_one(auto_window, qtbot):
    win = auto_window
    win.fit_to(QtCore.QRect(0, 0, 1280, 720), 1.0)
    qtbot.waitUntil(lambda: not win.panels.is_busy(), timeout=MAP_TIMEOUT)
    QtWidgets.QApplication.processEvents()
    assert (win.width(), win.height()) == (1280, 720)
    inside = win.rect()
    for widget in (win.layer_controls.raw, win.statusBar(), win.summary):
        corner = widget.mapTo(win, QtCore.QPoint(widget.width() - 1, widget.height() - 1))
        assert widget.isVisible() and inside.contains(corner)
    small_tile = win.conv1.tiles[0].iconSize().height()
    small_card = win.letters.buttons[0].minimumHeight()
    with qtbot.waitSignal(win.panels_shown, timeout=MAP_TIMEOUT):
        win.fit_to(QtCore.QRect(0, 0, 1920, 1080), 1.0)
    assert win.conv1.tiles[0].iconSize().height() > 1.2 * small_tile
    assert win.letters.buttons[0].minimumHeight() > 1.2 * small_card
    assert win.conv1.verticalScrollBar().maximum() == 0      # every tile in view


# 10. the LMDB browser --------------------------------------------------------------------------------
def test_a_dataset_make_folder_offers_its_lmdbs(window, qtbot, tmp_path):
    from test_gui_files import make_lmdb

    out = tmp_path / "plates"
    out.mkdir()
    make_lmdb(out / "train_lmdb", [0, 1, 2] * 10)
    make_lmdb(out / "test_lmdb", [3, 4] * 5)
    asked: list[list[str]] = []
    window.files.ask_choice = lambda caption, question, options: asked.append(options) or \
        "test_lmdb"
    assert window.files.open_lmdb(out)
    assert asked == [["test_lmdb", "train_lmdb"]] and window.errors.errors == []
    browser = window.files.browser
    qtbot.addWidget(browser)
    qtbot.waitSignal(browser.page_shown, timeout=MAP_TIMEOUT).wait()
    assert browser.reader.path.name == "test_lmdb" and len(browser.index.keys) == 10
    window.files.ask_choice = lambda *args: None                  # the user cancels
    assert not window.files.open_lmdb(out)


def test_the_browser_filters_by_a_table_row_shows_a_record_large_and_closes(window, qtbot,
                                                                             tmp_path):
    from test_gui_files import make_lmdb

    make_lmdb(tmp_path / "train_lmdb", [0, 1, 2, 2, 5] * 4)
    window.files.open_lmdb(tmp_path / "train_lmdb")
    browser = window.files.browser
    qtbot.addWidget(browser)
    qtbot.waitSignal(browser.page_shown, timeout=MAP_TIMEOUT).wait()
    row = [browser.counts.item(r, 0).text() for r in range(browser.counts.rowCount())].index("C")
    with qtbot.waitSignal(browser.page_shown, timeout=MAP_TIMEOUT):
        browser.counts.cellClicked.emit(row, 0)
    captions = [c.caption.text() for c in browser.cells if c.caption.text()]
    assert captions == ["<b>C</b>"] * 8
    cell = browser.cells[3]
    qtbot.mouseClick(cell, QtCore.Qt.LeftButton)
    record = cell.record
    assert browser.detail.pixmap().width() == record.image.shape[2] * 8
    text = browser.detail_text.text()
    assert f"key {record.key}" in text and "label 2" in text and "1x28x28" in text
    with qtbot.waitSignal(browser.page_shown, timeout=MAP_TIMEOUT):
        browser.counts.cellClicked.emit(row, 0)                   # the same row: all again
    assert len([c for c in browser.cells if c.caption.text()]) == 20
    for key in (QtCore.Qt.Key_Escape, "ctrl+w"):
        browser.show()
        QtWidgets.QApplication.setActiveWindow(browser)
        qtbot.waitUntil(browser.isActiveWindow, timeout=3000)
        if key == "ctrl+w":
            qtbot.keyClick(browser, QtCore.Qt.Key_W, QtCore.Qt.ControlModifier)
        else:       # a record is shown large: the first Esc lets go of it (issue 27)
            qtbot.keyClick(browser, key)
            assert browser.isVisible() and browser.shown_record is None
            qtbot.keyClick(browser, key)
        assert not browser.isVisible()


# 11. long steps show a real fraction ----------------------------------------------------------------
def test_a_blas_pass_and_saving_the_maps_show_real_fractions(qtbot, tmp_path, settings,
                                                              monkeypatch):
    from gui_helpers import default_args
    from viewer.maps import export
    from viewer.engines.blas_engine import BlasEngine
    from viewer.app import session
    from viewer.cli.view import initial_model
    from viewer.gui.main_window import MainWindow

    model = initial_model(default_args(engine="blas"))
    model.dense.engine = BlasEngine(model.dense.net, band_bytes=128 * 1024)   # many bands
    plate = save_png(generated_plate(120, 360), tmp_path / "wide.png")
    win = MainWindow(model, session.read_image(plate), settings, scale=1.0, auto_check=False)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.show()
    seen: list[tuple[str, float, int, int]] = []
    for worker in (win.maps, win.saving):      # after the window's own slot: what it shows
        worker.progress.connect(lambda kind, f: seen.append(
            (kind, f, win.busy.maximum(), win.busy.value())))
    with qtbot.waitSignal(win.map_shown, timeout=MAP_TIMEOUT):
        win.scale.set_scale(1.2, emit=True)
    shown = [(f, top, value) for kind, f, top, value in seen if kind == "map" and f >= 0]
    assert len(shown) > 10 and shown[-1][0] == 1.0
    assert all(top == 100 and value == round(100 * f) for f, top, value in shown)
    monkeypatch.setattr(export, "NPZ_PIECE", 64 * 1024)
    out = tmp_path / "maps.npz"
    win.files.ask_save = lambda *args: out
    seen.clear()
    with qtbot.waitSignal(win.saved, timeout=MAP_TIMEOUT):
        win.files.export_maps()
        assert "saving" in win.busy_label.text() and win.busy.isVisible()
    saving = [(f, top) for kind, f, top, _ in seen if kind == "save" and f >= 0]
    assert len(saving) > 5 and saving[-1][0] == 1.0 and all(top == 100 for _, top in saving)
    assert "saved" in win.statusBar().currentMessage() and out.exists()
    win.close()


def test_a_new_image_shows_nothing_of_the_last_one_while_it_is_mapped(auto_window, tmp_path):
    win = auto_window
    assert win.letters.buttons and win.legend.isVisible() and win.conv1.outputs is not None
    other = save_png(generated_plate(220, 600, seed=8), tmp_path / "next.png")
    win.files.open_image(other)                       # its map is being computed
    assert win.letters.buttons == [] and "once a map is drawn" in win.letters.summary.text()
    assert not win.legend.isVisible() and win.conv1.outputs is None
    assert all(tile.icon().isNull() for tile in win.conv1.tiles)


def test_the_surgery_tab_shows_its_whole_explanation_in_a_short_dock(window, qtbot):
    from viewer.gui.surgery_panel import verification_text
    from viewer.surgery.verify import Verification

    window.tabs.setCurrentWidget(window.surgery)
    window.fit_to(QtCore.QRect(0, 0, 1280, 720), 1.0)
    label = window.surgery.equivalence
    label.setText(verification_text(Verification(0.004, 16, "onnx", largest=57.0)))
    QtWidgets.QApplication.processEvents()
    assert "the tolerance is relative" in label.text()
    assert label.height() >= label.heightForWidth(label.width())     # no line cut off


def test_the_screenshot_hover_is_on_the_first_letter(auto_window):
    import dataclasses

    win = auto_window
    letter = win.state.result.reading.letters[0]
    # a found plate's letters count cells in the plate's own map: the box is what places them
    win.state.result.reading.letters[0] = dataclasses.replace(letter, cell=(0, 0))
    win.state.hover_example()
    box = win.plate.window_box.rect()
    assert win.readout.cell == letter.cell
    assert np.allclose((box.x(), box.y(), box.width(), box.height()), letter.box)
