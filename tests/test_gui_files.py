"""Files in and out of the window: images, models, drops, recent files, settings, LMDBs, export."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image
from PyQt5 import QtCore, QtGui

from gui_helpers import (MAP_TIMEOUT, cell_centre, generated_plate, load_model,  # noqa: F401
                         open_window, plate_file, settings, window)
from viewer.net.weights import load_net
from viewer.caffe import model_io
from viewer.files import paths
from viewer.maps import export, render
from viewer.maps.export import save_png
from viewer.gui.layers import colored
from viewer.caffe.proto import caffe_pb2
from viewer.surgery.convolutional import is_fully_convolutional

ROOT = Path(__file__).resolve().parent.parent


def answer_saves(window, monkeypatch, path: Path) -> None:
    monkeypatch.setattr(window.files, "ask_save", lambda *args: path)


def test_opening_an_image_replaces_the_plate_and_recomputes(window, qtbot, tmp_path):
    other = save_png(generated_plate(120, 300, seed=5), tmp_path / "other.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_image(other)
    assert window.state.image.path == other
    assert window.state.fm.image_shape == (120, 300)
    assert np.array_equal(window.plate.plate.image, window.state.image.pixels)
    assert "other.png" in window.windowTitle()


def test_a_late_map_of_the_previous_image_or_model_is_dropped(window, qtbot, tmp_path,
                                                              lenet_files):
    """A pass that ends after a new image or model came (its generation is older) never
    replaces the map on screen, whichever worker and kind it comes back as."""
    stale_tag, stale = window.state.shown_tag, window.state.result
    other = save_png(generated_plate(120, 300, seed=5), tmp_path / "other.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_image(other)
    fresh = window.state.result
    assert fresh is not stale and stale_tag.generation < window.state.generation
    for worker, kind in ((window.maps, "map"), (window.maps, "auto"), (window.slow, "map")):
        worker.done.emit(kind, stale_tag, stale)
        assert window.state.result is fresh and window.state.fm is fresh.fm, \
            f"{kind} replaced the map"
    state = window.state
    assert state.fm.image_shape == (120, 300) and state.shown_tag.generation == state.generation
    fresh_tag, window.confirm = window.state.shown_tag, lambda question: True
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert load_model(qtbot, window, *lenet_files) == "loaded"
    newer = window.state.result
    window.maps.done.emit("map", fresh_tag, fresh)     # the previous model's pass
    assert state.result is newer and state.shown_tag.generation == state.generation


def test_a_broken_image_shows_an_error_and_keeps_the_plate(window, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    before = (window.state.image, window.state.fm, window.state.generation)
    assert not window.files.open_image(broken)
    assert len(window.errors.errors) == 1 and "broken.png" in window.errors.errors[0]
    assert (window.state.image, window.state.fm, window.state.generation) == before


def test_a_broken_model_shows_an_error_and_keeps_the_model(window, qtbot, tmp_path):
    proto, weights = tmp_path / "bad.prototxt", tmp_path / "bad.caffemodel"
    proto.write_text("layer { name: 'x' type: ")
    weights.write_bytes(b"")
    model = window.state.model
    assert load_model(qtbot, window, proto, weights) == "failed"
    assert window.errors.errors and "bad.prototxt" in window.errors.errors[0]
    assert window.state.model is model


def test_a_classifier_is_converted_only_if_the_user_agrees(window, qtbot, lenet_files):
    proto, weights = lenet_files
    model = window.state.model
    window.confirm = lambda question: False
    assert load_model(qtbot, window, proto, weights) == "declined"
    assert window.state.model is model
    window.confirm = lambda question: "classifier" in question
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_model(proto, weights)
    assert window.state.model.dense.classifier is not None
    assert is_fully_convolutional(window.state.model.dense.net.param)
    assert [c.layer for c in window.state.model.conversions] == ["ip1", "ip2-alpha"]
    assert window.surgery.table.item(2, 2).text() == "->"
    assert window.errors.errors == []


def test_a_net_of_another_shape_gets_numbered_channels(window, qtbot, tmp_path, other_net):
    proto, weights = tmp_path / "other.prototxt", tmp_path / "other.caffemodel"
    model_io.write_net(other_net, proto, weights)
    window.confirm = lambda question: True
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_model(proto)
    assert window.channels.count() == 1 + 5
    assert window.state.fm.probs.shape[0] == 5
    window.files.channel_actions["class 2"].trigger()
    assert np.array_equal(window.plate.heat.image, window.state.fm.probs[2])


def test_recent_files_and_folders_are_remembered(window, qtbot, tmp_path, settings):
    other = save_png(generated_plate(seed=9), tmp_path / "again.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.files.open_image(other)
    assert settings.recent("images")[0] == str(other)
    assert settings.last_folder("images") == str(tmp_path)
    actions = window.files.recent_menus["images"].actions()
    assert actions[0].text() == f"again.png  ({tmp_path.name})"


def test_view_options_survive_a_restart(qtbot, plate_file, settings):
    first = open_window(qtbot, plate_file, settings)
    first.layer_controls.opacity.setValue(35)
    first.layer_controls.colormap.setCurrentText("viridis")
    first.close()
    second = open_window(qtbot, plate_file, settings)
    assert second.layer_controls.opacity.value() == 35
    assert second.layer_controls.colormap.currentText() == "viridis"
    assert second.plate.heat.opacity() == pytest.approx(0.35)
    assert settings.window_state()[1] is not None
    second.close()


def drop(window, paths: list[Path]) -> None:
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(p)) for p in paths])
    event = QtGui.QDropEvent(QtCore.QPointF(10, 10), QtCore.Qt.CopyAction, mime,
                             QtCore.Qt.LeftButton, QtCore.Qt.NoModifier)
    window.dropEvent(event)


def test_dropping_an_image_opens_it(window, qtbot, tmp_path):
    dropped = save_png(generated_plate(100, 280, seed=3), tmp_path / "dropped.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        drop(window, [dropped])
    assert window.state.image.path == dropped


def test_dropping_weights_finds_their_prototxt(window, qtbot, lenet_files):
    window.confirm = lambda question: True
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        drop(window, [lenet_files[1]])
    assert window.state.model.prototxt == lenet_files[0]


def test_export_overlay_png_is_what_the_view_blends(window, monkeypatch, tmp_path):
    out = tmp_path / "overlay.png"
    answer_saves(window, monkeypatch, out)
    assert window.files.export_overlay() == out
    saved = np.asarray(Image.open(out).convert("RGB"))
    state = window.state
    expected = render.overlay_best_class(state.image.pixels, state.fm, state.options.opacity)
    assert np.abs(saved.astype(int) - expected).max() <= 1


def test_export_overlay_of_a_channel_uses_its_colormap(window, monkeypatch, tmp_path):
    window.layer_controls.opacity.setValue(100)
    window.channels.set_channel("B")
    out = tmp_path / "b.png"
    answer_saves(window, monkeypatch, out)
    window.files.export_overlay()
    saved = np.asarray(Image.open(out).convert("RGB"))
    fm = window.state.fm
    i, j = 4, 10
    x, y = cell_centre(fm, i, j)
    expected = colored(fm.probs[1], "inferno", (0, 1))[i, j]
    assert np.abs(saved[int(y), int(x)].astype(int) - expected).max() <= 1


def test_export_maps_writes_the_map_format(window, qtbot, monkeypatch, tmp_path):
    out = tmp_path / "maps.npz"
    answer_saves(window, monkeypatch, out)
    with qtbot.waitSignal(window.saved, timeout=MAP_TIMEOUT):     # written in the background
        window.files.export_maps()
    with np.load(out) as data:
        assert set(data.files) == set(export.NPZ_KEYS)
        assert np.array_equal(data["probs"], window.state.fm.probs)
        assert list(data["labels"]) == window.state.fm.labels
        assert tuple(data["stride"]) == window.state.fm.geometry.stride


def test_export_surgered_model_writes_a_loadable_pair(window, monkeypatch, tmp_path):
    out = tmp_path / "fcn.prototxt"
    answer_saves(window, monkeypatch, out)
    window.files.export_model()
    net = load_net(out, out.with_suffix(".caffemodel"))
    assert is_fully_convolutional(net.param)
    for name, arrays in window.state.model.dense.net.weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(arrays, net.weights[name]))


def test_export_surgered_model_as_onnx_from_the_file_menu(window, monkeypatch, tmp_path):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "fcn.onnx"
    answer_saves(window, monkeypatch, out)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    surgered = next(a.menu() for a in menu.actions() if a.text() == "Export surgered m&odel")
    next(a for a in surgered.actions() if a.text() == "&ONNX...").trigger()
    model = onnx.load(out)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["labels"]) == window.state.model.dense.labels
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    data = window.state.model.dense.prepare(window.state.image.pixels, window.state.fm.scale)
    (probs,) = session.run([meta["probabilities"]], {model.graph.input[0].name: data})
    assert np.abs(probs[0] - window.state.fm.probs).max() < 1e-4


def make_lmdb(path: Path, labels: list[int]) -> None:
    """A Caffe LMDB of 28x28 Datum records, written with lmdb and caffe_pb2 directly."""
    rng = np.random.default_rng(0)
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, label in enumerate(labels):
            pixels = rng.integers(0, 255, (1, 28, 28), dtype=np.uint8)
            datum = caffe_pb2.Datum(channels=1, height=28, width=28, data=pixels.tobytes(),
                                    label=label)
            txn.put(f"{k:08d}".encode(), datum.SerializeToString())
    env.close()


@pytest.fixture
def dataset(tmp_path) -> Path:
    labels = [3] * 30 + [26] * 25 + [36] * 12   # D, 0 and background
    path = tmp_path / "test_lmdb"
    make_lmdb(path, labels)
    return path


def test_the_lmdb_browser_pages_filters_and_counts(window, qtbot, dataset):
    window.files.open_lmdb(dataset)
    browser = window.files.browser
    qtbot.addWidget(browser)
    with qtbot.waitSignal(browser.page_shown, timeout=MAP_TIMEOUT):
        pass
    filled = [c for c in browser.cells if c.picture.pixmap() and not c.picture.pixmap().isNull()]
    assert len(filled) == len(browser.cells)
    assert browser.page_count() == 2
    counts = {browser.counts.item(r, 0).text(): browser.counts.item(r, 1).text()
              for r in range(browser.counts.rowCount())}
    assert counts == {"D": "30", "0": "25", "background": "12"}
    with qtbot.waitSignal(browser.page_shown, timeout=MAP_TIMEOUT):
        qtbot.mouseClick(browser.next, QtCore.Qt.LeftButton)
    assert browser.page == 1
    filled = [c for c in browser.cells if c.caption.text()]
    assert len(filled) == 67 - len(browser.cells)
    with qtbot.waitSignal(browser.page_shown, timeout=MAP_TIMEOUT):
        browser.filter.setCurrentIndex(browser.filter.findData(26))
    captions = [c.caption.text() for c in browser.cells if c.caption.text()]
    assert len(captions) == 25 and set(captions) == {"<b>0</b>"}
    assert window.settings.recent("datasets")[0] == str(dataset)


def test_a_folder_that_is_no_lmdb_is_refused(window, tmp_path):
    assert not window.files.open_lmdb(tmp_path)
    assert "LMDB" in window.errors.errors[0]
    assert window.files.browser is None


def test_screenshot_is_saved_after_the_first_map(tmp_path):
    plate = save_png(generated_plate(), tmp_path / "plate.png")
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "view", str(plate),
                           "--channel", "A", "--scale", "0.9", "--screenshot", str(shot)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Image.open(shot) as image:
        assert image.size == (1280, 800)


def test_a_bad_channel_on_the_command_line_is_one_error_line(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--channel", "%", "--screenshot",
                           str(tmp_path / "x.png")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: unknown channel")


def test_a_model_loads_on_the_worker_and_the_old_one_stays_until_then(window, qtbot,
                                                                      monkeypatch, lenet_files):
    from viewer.app import jobs

    threads, opened = [], threading.Event()
    real_build = jobs.build_model

    def build(net, tag):
        threads.append(threading.current_thread())
        opened.wait(10)
        return real_build(net, tag)

    monkeypatch.setattr(jobs, "build_model", build)
    window.confirm = lambda question: True
    model = window.state.model
    assert window.files.open_model(*lenet_files)       # returns at once: nothing read yet
    assert window.state.model is model
    qtbot.waitUntil(lambda: bool(threads), timeout=MAP_TIMEOUT)
    assert threads[0] is not threading.main_thread()
    assert window.state.model is model and "loading the model" in window.busy_label.text()
    with qtbot.waitSignal(window.loader.loaded, timeout=MAP_TIMEOUT), \
            qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        opened.set()
    assert window.state.model is not model and window.state.model.prototxt == lenet_files[0]
    assert window.settings.recent("models")[0] == f"{lenet_files[0]}|{lenet_files[1]}"


def test_an_engine_that_fails_to_build_is_a_dialog_and_keeps_the_engine(window, qtbot,
                                                                        monkeypatch):
    from viewer.errors import EngineError
    from viewer.app import jobs

    def broken(net, tag, settings=None):
        raise EngineError(f"engine '{tag.engine}' is not installed here")

    monkeypatch.setattr(jobs, "build_model", broken)
    current = window.state.model.dense.engine_name
    other = next(name for name in window.files.engine_actions if name != current)
    with qtbot.waitSignal(window.loader.failed, timeout=MAP_TIMEOUT):
        window.files.engine_actions[other].trigger()
    assert window.errors.errors == [f"engine '{other}' is not installed here"]
    assert window.state.model.dense.engine_name == current
    assert window.files.engine_actions[current].isChecked()


def test_screenshot_is_written_atomically_as_png(window, tmp_path):
    from viewer.gui.app import save_screenshot

    out = tmp_path / "shot.png"
    out.write_bytes(b"an older screenshot")
    assert save_screenshot(window, out)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (1280, 800)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".shot")] == []


def test_screenshot_never_overwrites_the_image_shown(window, capsys):
    from viewer.gui.app import save_screenshot

    before = window.state.image.path.read_bytes()
    assert not save_screenshot(window, window.state.image.path)
    assert window.state.image.path.read_bytes() == before
    assert capsys.readouterr().err.startswith("error: ")


def test_the_lmdb_index_reports_progress_and_stops(dataset):
    import threading

    from viewer.caffe.lmdb_io import open_lmdb
    from viewer.gui.dataset_browser import index_lmdb

    reports = []
    with open_lmdb(dataset) as reader:
        index = index_lmdb(reader, lambda done, total: reports.append((done, total)), every=20)
        assert reports == [(20, 67), (40, 67), (60, 67)]
        assert len(index.keys) == 67 and index.counts == {3: 30, 26: 25, 36: 12}
        stop = threading.Event()
        stop.set()
        assert index_lmdb(reader, stop=stop, every=20) is None


def test_stopping_the_lmdb_browser_closes_the_lmdb(window, qtbot, dataset, monkeypatch):
    from viewer.gui import dataset_browser

    monkeypatch.setattr(dataset_browser, "PROGRESS_EVERY", 10)
    window.files.open_lmdb(dataset)
    browser = window.files.browser
    qtbot.addWidget(browser)
    browser.stop_indexing()             # before or while the worker reads the records
    qtbot.waitUntil(lambda: not browser.stop.isVisible(), timeout=MAP_TIMEOUT)
    assert browser.reader is None and browser.index is None
    assert browser.status.text().startswith("stopped reading test_lmdb")


def test_stop_pressed_after_the_last_record_was_read_still_stops(window, qtbot, dataset,
                                                                 monkeypatch):
    from viewer.gui import dataset_browser

    monkeypatch.setattr(dataset_browser, "PROGRESS_EVERY", 10**9)  # the worker never looks
    window.files.open_lmdb(dataset)
    browser = window.files.browser
    qtbot.addWidget(browser)
    browser.stop_indexing()
    qtbot.waitUntil(lambda: not browser.stop.isVisible(), timeout=MAP_TIMEOUT)
    assert browser.reader is None and browser.index is None
    assert browser.status.text().startswith("stopped reading test_lmdb")
