"""Issue 27's walk: nothing of an old image, model or search stays on screen (plates, region,
the Fine toggle), and Esc aborts a Shift-drag."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from PyQt5 import QtCore

from conftest import OTHER_NET, random_biases
from gui_helpers import (MAP_TIMEOUT, generated_plate, load_model, plate_file,  # noqa: F401
                         settings, window)
from test_gui_cancel import Gate, wait_until_drained
from viewer.app import jobs
from viewer.app.jobs import JobKind, PlatesTag
from viewer.caffe import model_io
from viewer.maps.export import save_png
from viewer.net.weights import init_weights
from viewer.plates.locate import FoundPlate, PhotoReading
from viewer.plates.reading import PlateReading


def found(window, box=(20, 10, 120, 40)) -> FoundPlate:
    """A plate 'found' in the window's image, handed over as the worker would."""
    plate = FoundPlate(PlateReading([], window.state.scale), box, 0.8)
    window.controller.job_done(JobKind.PLATES, PlatesTag(window.state.generation, False),
                               PhotoReading([plate]))
    return plate


def other_model(folder):
    net = random_biases(init_weights(model_io.parse_prototxt(OTHER_NET, "o.prototxt")[0],
                                     seed=3), 3)
    files = (folder / "other.prototxt", folder / "other.caffemodel")
    model_io.write_net(net, *files)
    return files


def test_a_new_image_drops_the_old_plates_and_region_at_once(window, qtbot, tmp_path):
    found(window)
    window.found.drawn(5, 5, 60, 30)
    assert len(window.found.boxes) == 1 and window.found.region.isVisible()
    assert window.state.region == (5, 5, 60, 30)
    window.maps.cancel()
    second = save_png(generated_plate(80, 200, seed=4), tmp_path / "second.png")
    assert window.files.open_image(second)
    # before the new image's map or search has come back
    assert window.found.boxes == [] and window.found.labels == []
    assert not window.found.region.isVisible() and window.state.region is None
    assert window.state.plates == []
    qtbot.waitUntil(lambda: window.state.fm is not None, timeout=MAP_TIMEOUT)


def test_esc_during_a_plate_search_says_cancelled_and_leaves_no_plates(window, qtbot,
                                                                       monkeypatch):
    found(window)
    gate = Gate(jobs.find_plates)
    monkeypatch.setattr(jobs, "find_plates", gate)
    window.found.drawn(5, 5, 60, 30)
    qtbot.waitUntil(gate.started.is_set, timeout=MAP_TIMEOUT)
    assert window.found.region.isVisible()
    window.escape()
    assert window.statusBar().currentMessage() == "cancelled: finding plates"
    gate.release()
    wait_until_drained(qtbot, window.maps)
    assert not window.found.region.isVisible() and window.state.region is None
    assert len(window.found.boxes) == 1        # this image's plates from before the region


def test_a_new_model_drops_the_plates_the_old_one_read(window, qtbot, tmp_path):
    found(window)
    window.found.drawn(5, 5, 60, 30)
    window.maps.cancel()
    assert len(window.found.boxes) == 1
    window.confirm = lambda question: True
    assert load_model(qtbot, window, *other_model(tmp_path)) == "loaded"
    assert window.found.boxes == [] and window.state.plates == []
    assert not window.found.region.isVisible()
    assert window.state.model.label == "other.prototxt"


def test_esc_aborts_a_shift_drag_which_then_reads_nothing(window, qtbot):
    overlay, asked = window.found, []
    overlay.region_drawn.connect(lambda *region: asked.append(region))

    def drag(finish: bool):
        view = overlay.view
        start, end = view.mapViewToScene(QtCore.QPointF(5, 5)), \
            view.mapViewToScene(QtCore.QPointF(80, 40))
        return SimpleNamespace(
            modifiers=lambda: QtCore.Qt.ShiftModifier, button=lambda: QtCore.Qt.LeftButton,
            accept=lambda: None, isFinish=lambda: finish, buttonDownPos=lambda: start,
            pos=lambda: end)

    overlay._drag(drag(False))
    assert overlay.dragging and overlay.region.isVisible()
    window.escape()
    assert not overlay.dragging and not overlay.region.isVisible()
    assert window.statusBar().currentMessage() == "region cancelled"
    overlay._drag(drag(False))
    overlay._drag(drag(True))          # the mouse is let go: nothing is read
    assert asked == [] and not overlay.region.isVisible()
    overlay._drag(drag(True))          # the next Shift-drag reads again
    assert len(asked) == 1


def test_a_cancelled_fine_map_unticks_the_fine_toggle(window, qtbot):
    coarse = window.state.fm
    window.fine_action.trigger()
    assert window.fine_action.isChecked() and "fine" in window.maps.busy_kinds()
    assert window.cancel_work(background=False) == ["fine"]
    assert not window.fine_action.isChecked() and not window.state.fine_on
    assert window.statusBar().currentMessage() == "cancelled: computing the fine map"
    wait_until_drained(qtbot, window.maps)
    assert window.state.fm is coarse and coarse.geometry.stride == (4, 4)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.fine_action.trigger()      # the next Ctrl+F turns it on
    assert window.fine_action.isChecked() and window.state.fm.geometry.stride == (1, 1)


def test_the_surgery_tab_follows_the_scale_and_names_the_real_menu(window, qtbot):
    from viewer.files import paths
    from viewer.gui.surgery_panel import summary_text
    from viewer.app import session

    if window.surgery.check is None:
        qtbot.waitSignal(window.check_shown, timeout=60_000).wait()
    timed_at = window.surgery.check.scale
    assert f"Speed at scale {timed_at:.3f}" in window.surgery.timing.text()
    assert "now" not in window.surgery.timing.text()
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.controller.choose_scale(0.8)
    assert "The map is at scale 0.800 now: Measure again at this scale" in \
        window.surgery.timing.text()
    classifier = session.read_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    model = session.build_model(classifier, paths.CLASSIFIER_PROTOTXT,
                                paths.CLASSIFIER_WEIGHTS, "numpy")
    assert "File > Export surgered model > Caffe (or ONNX) writes the result." in \
        summary_text(model)
    assert model.verification.passed and model.verification.inputs == 16


def test_the_blobs_tab_pages_and_finds_a_thousand_classes(qtbot):
    """Issue 27 item 9: a zoo net's 1000 class scores, a page at a time; class 281 can be
    reached; captions fit their tiles or are left out; unused slots are not white."""
    import numpy as np

    from viewer.gui.blob_panel import BLANK, PAGE, BlobPanel, find_channel

    panel = BlobPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 260)
    panel.show()
    names = [f"class {k}" for k in range(1000)]
    values = np.random.default_rng(0).random((1000, 1, 1)).astype(np.float32)
    panel.set_blobs(["prob"], "prob")
    panel.show_blob("prob", values, names)
    assert panel.page_box.isVisible() and panel.page_box.maximum() == 16 == -(-1000 // PAGE)
    assert len(panel.shown()) == PAGE and panel.info.text().startswith("1000 channels of 1x1")
    assert panel.find_text("281") == 281 and panel.page == 281 // PAGE == 4
    assert panel.page_box.value() == 5 and panel.found.isVisible()
    r, c = divmod(281 - 4 * PAGE, panel.columns)
    assert panel.found.rect().getRect() == (c * 3 - 1, r * 3 - 1, 3, 3)
    assert panel.shown()[281 - 4 * PAGE, 0, 0] == values[281, 0, 0]
    assert find_channel("Class 99", 1000, names) == 99 and find_channel("zebra", 1000, names) \
        is None
    assert panel.find_text("zebra") is None and "no channel 'zebra'" in panel.info.text()
    # 64 tiles in 900x260: too small for a readable caption, so none is drawn
    assert panel.tile_pixels() < 7 / 0.22 and panel.captions == []
    panel.show_page(15)                                   # 1000 - 960 = 40 channels
    sheet = panel.image.image
    tiles = np.any(sheet != BLANK, axis=2)       # 1x1 tiles: one pixel each, gaps blank
    assert tiles.sum() == 40 and sheet.shape[:2] == (-(-40 // panel.columns) * 3 - 2,
                                                     panel.columns * 3 - 2)
    # a few large tiles get captions no taller than a fifth of a tile
    panel.show_blob("prob", values[:6], names[:6])
    assert not panel.page_box.isVisible() and len(panel.captions) == 6
    size = panel.captions[0].textItem.font().pixelSize()
    assert 7 <= size <= min(12, 0.22 * panel.tile_pixels())
