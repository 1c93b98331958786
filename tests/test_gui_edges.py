"""Issue 27's small edges: help, saves, dialogs' folders, recent names, the one scale
precision, Esc in the LMDB browser, `surgery --help`, the legend of a model without plates."""
from __future__ import annotations

import numpy as np
from PyQt5 import QtCore
import pytest

from gui_helpers import (MAP_TIMEOUT, generated_plate, plate_file, settings,  # noqa: F401
                         window)
from viewer.app.jobs import JobKind, PlatesTag
from viewer.maps.images import load_image
from viewer.plates.locate import FoundPlate, PhotoReading
from viewer.plates.reading import PlateReading


def test_help_lists_the_plate_click_the_shift_drag_and_esc_aborting_it():
    from viewer.gui.menus import KEYS_HELP

    assert "Click a plate's box (a photo): its reading, and the map of its neighbourhood" in \
        KEYS_HELP
    assert "Shift-drag over the image: find the plates in that region (Esc during the drag " \
           "aborts it)" in KEYS_HELP
    assert "Esc: abort a Shift-drag" in KEYS_HELP


def test_a_saved_overlay_has_the_plate_boxes_and_says_it_was_saved(window, tmp_path):
    box = (30, 20, 120, 50)
    window.controller.job_done(JobKind.PLATES, PlatesTag(window.state.generation, False),
                               PhotoReading([FoundPlate(PlateReading([], 1.0), box, 0.9)]))
    window.maps.cancel()
    target = tmp_path / "out" / "overlay.png"
    target.parent.mkdir()
    window.files.ask_save = lambda *args: target
    assert window.files.export_overlay() == target
    assert window.statusBar().currentMessage() == f"saved {target}"
    saved = load_image(target)
    x, y, w, h = box
    # the box's edges in the overlay's yellow (the chosen plate's red), inside untouched
    edge = saved[y, x + w // 2]
    assert tuple(edge) in ((255, 200, 0), (255, 80, 40))
    assert tuple(saved[y + h // 2, x + w // 2]) not in ((255, 200, 0), (255, 80, 40))


def test_the_first_dialogs_open_in_the_images_folder_and_recent_names_show_it(window,
                                                                              plate_file):
    assert window.files.start_folder("exports") == str(plate_file.parent.resolve())
    assert window.files.start_folder("models") == str(plate_file.parent.resolve())
    window.settings.set_last_folder("exports", "/tmp")
    assert window.files.start_folder("exports") == "/tmp"
    from pathlib import Path

    from viewer.gui.menus import recent_name
    assert recent_name(Path("/a/photos/eu2.jpg")) == "eu2.jpg  (photos)"
    assert recent_name(Path("/b/other/eu2.jpg")) != recent_name(Path("/a/photos/eu2.jpg"))


def test_the_preprocessing_dialog_writes_the_scale_as_the_spin_box_does(window):
    from viewer.gui.preprocess_dialog import PreprocessDialog

    dialog = PreprocessDialog(window.state.model.dense.transformer, window.state.image.pixels,
                              0.510277, window)
    assert "at scale 0.510:" in dialog.caption.text() and "0.510277" not in \
        dialog.caption.text()
    window.scale.set_scale(0.510277)
    assert window.scale.spin.text() == "0.510"


def test_esc_in_the_lmdb_browser_lets_go_of_the_record_first(qtbot):
    from types import SimpleNamespace

    from viewer.gui.dataset_browser import DatasetBrowser

    browser = DatasetBrowser(["A", "B"])
    qtbot.addWidget(browser)
    browser.show()
    record = SimpleNamespace(label=1, key=b"7", image=np.zeros((1, 28, 28), np.uint8))
    browser.show_record(record)
    assert browser.detail.pixmap() is not None and not browser.detail.pixmap().isNull()
    browser.escape()
    assert browser.isVisible() and browser.shown_record is None
    assert browser.detail_text.text() == "Click a record to see it large."
    browser.escape()
    assert not browser.isVisible()
    browser.shutdown()


def test_surgery_help_names_the_engine_the_check_runs_on(capsys):
    from viewer.cli.run import main
    from viewer.engines import DEFAULT_ENGINE

    with pytest.raises(SystemExit):
        main(["surgery", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"engine for the check (default: {DEFAULT_ENGINE}, the fastest installed)" in text
    assert "default: opencv" not in text


def test_the_legend_of_a_model_without_plate_labels_speaks_of_classes():
    from viewer.gui.bindings import legend_html

    assert legend_html([], plates=False) == "Colours: no class is sure anywhere on this map"
    assert legend_html([]) == "Colours: no character is sure anywhere on this map"


def test_the_plate_does_not_jump_when_the_histogram_comes_and_goes(window, qtbot):
    """Issue 27 item 11: picking one channel showed the histogram and moved the plate."""
    view = window.plate.view
    qtbot.wait(50)
    best = view.sceneBoundingRect().getRect()
    window.state.set_channel("A")
    qtbot.wait(50)
    assert window.plate.histogram.isVisible()
    assert view.sceneBoundingRect().getRect() == pytest.approx(best)
    window.state.set_channel(None)
    qtbot.wait(50)
    assert view.sceneBoundingRect().getRect() == pytest.approx(best)


def test_the_readout_gets_its_width_back_when_the_window_grows(window, qtbot):
    from viewer.gui.main_window import READOUT_FLOOR

    window.resize(1280, 800)
    qtbot.wait(50)
    window.resizeDocks([window.readout_dock], [60], QtCore.Qt.Horizontal)  # squeezed
    qtbot.wait(50)
    assert window.readout_dock.width() < READOUT_FLOOR
    window.resize(700, 600)
    qtbot.wait(50)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.readout_dock.width() >= READOUT_FLOOR, timeout=2000)
    assert window.readout_dock.width() == pytest.approx(0.22 * 1280, abs=30)


def test_the_letter_cards_scroll_instead_of_widening_the_window(window, qtbot):
    from gui_helpers import fake_reading

    fm = window.state.fm
    reading = fake_reading(fm, [(0, j % fm.probs.shape[2]) for j in range(12)], ["A"] * 12)
    window.letters.set_reading(reading)
    assert len(window.letters.buttons) == 12
    assert window.letters.minimumSizeHint().width() < 400
    hint = window.minimumSizeHint()
    assert hint.width() <= 640 and hint.height() <= 480


def test_the_memory_note_leads_the_status_line_so_eliding_keeps_it(window):
    from dataclasses import replace

    from viewer.app.jobs import MapResult
    from viewer.gui.bindings import summary_text

    note = "blas: onnx would need 3.1 GB at this scale"
    window.state.show_result(MapResult(replace(window.state.fm, engine_note=note)))
    assert summary_text(window.state).startswith(note + " | ")
    window.resize(640, 480)
    assert window.summary.text_shown().startswith(note[:20])
