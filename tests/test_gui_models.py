"""The window adapts to the model: a 1000-class colour net gets no plate parts, names from the
synset_words.txt beside it, a searchable channel picker, and Model > Preprocessing."""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5 import QtCore, QtWidgets

from gui_helpers import (MAP_TIMEOUT, Recorder, default_args, open_window,  # noqa: F401
                         plate_file, settings)
from viewer.net.weights import init_weights
from viewer.caffe import model_io
from viewer.maps.export import save_png
from viewer.app import jobs, session
from viewer.cli.view import initial_model
from viewer.gui.main_window import MainWindow
from viewer.gui.preprocess_dialog import PreprocessDialog
from viewer.maps.preprocess import Transformer

# 1000 classes over a 64x64 colour window: ImageNet's outputs on a net small enough to be fast.
THOUSAND = """
name: "Thousand"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 64 dim: 64 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 8 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
        inner_product_param { num_output: 1000 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""
TABBY = 281


@pytest.fixture
def thousand_window(qtbot, tmp_path, settings):
    """A window on a colour picture with the 1000-class net and its synset_words.txt."""
    param, _ = model_io.parse_prototxt(THOUSAND, "thousand.prototxt")
    proto, weights = tmp_path / "thousand.prototxt", tmp_path / "thousand.caffemodel"
    model_io.write_net(init_weights(param, seed=2), proto, weights)
    names = [f"n{k:08d} thing number {k}" for k in range(1000)]
    names[TABBY] = "n02123045 tabby, tabby cat"
    (tmp_path / "synset_words.txt").write_text("\n".join(names) + "\n")
    rng = np.random.default_rng(1)
    picture = save_png(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), tmp_path / "cat.png")
    model = initial_model(default_args(prototxt=proto, weights=weights))
    window = MainWindow(model, session.read_image(picture), settings, auto_check=False)
    qtbot.addWidget(window)
    window.errors = window.show_error = Recorder()
    window.resize(1280, 800)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.show()
    yield window
    window.close()


def test_another_model_gets_best_class_and_no_plate_parts(thousand_window):
    w = thousand_window
    assert w.state.model.dense.labels[TABBY] == "tabby, tabby cat"
    assert w.state.model.dense.transformer == Transformer(3, (2, 1, 0))
    assert not w.letters.isVisible() and not w.scale.auto.isEnabled()
    assert w.state.result.reading is None and w.state.fm.scale == 1.0
    assert w.state.layer.title == "best class (hue), as opaque as its probability"
    best, prob = w.state.fm.best()
    np.testing.assert_array_equal(w.state.layer.rgba[..., 3], np.rint(255 * prob).astype(np.uint8))


def test_a_new_image_opens_at_scale_1_or_with_its_longer_side_at_640(thousand_window):
    dense = thousand_window.state.model.dense
    assert jobs.opening_scale(dense, (300, 451, 3)) == 1.0
    assert jobs.opening_scale(dense, (3000, 4000)) == 0.16      # 640x480 pixels
    assert jobs.opening_scale(dense, (40, 50)) == dense.planner.smallest_scale((40, 50)) == 1.59


def test_the_readout_names_the_top_classes(thousand_window):
    w = thousand_window
    w.state.hover_cell(0, 0)
    order = np.argsort(w.state.fm.probs[:, 0, 0])[::-1][:5]
    names = [w.state.model.dense.labels[k] for k in order]
    assert names[0] in w.readout.top.text()
    assert all(name.startswith("thing number") or name == "tabby, tabby cat" for name in names)


def test_typing_part_of_a_name_finds_the_class(thousand_window, qtbot):
    picker = thousand_window.channels
    picker.lineEdit().clear()
    qtbot.keyClicks(picker.lineEdit(), "tabby")
    search = picker.completer()
    assert search.completionCount() == 1
    assert search.currentCompletion() == "tabby, tabby cat"
    picker.lineEdit().setText(search.currentCompletion())
    qtbot.keyClick(picker.lineEdit(), QtCore.Qt.Key_Return)     # a channel redraws at once
    assert thousand_window.state.channel == "tabby, tabby cat"
    assert thousand_window.state.layer.title == "P(tabby, tabby cat)"


def test_the_preprocessing_dialog_shows_the_input_and_refuses_bad_values(thousand_window, qtbot):
    w = thousand_window
    dialog = PreprocessDialog(w.state.model.dense.transformer, w.state.image.pixels, 1.0, w)
    qtbot.addWidget(dialog)
    assert (dialog.swap.text(), dialog.raw.text(), dialog.mean.text()) == ("2,1,0", "255", "")
    assert "channel 0 (B)" in dialog.caption.text() and "128x96 pixels" in dialog.caption.text()
    assert dialog.picture.pixmap().width() > 3 * dialog.picture.pixmap().height()
    dialog.mean.setText("1,2")
    assert not dialog.ok.isEnabled() and "--mean has 2 value(s)" in dialog.caption.text()
    dialog.mean.setText("104,117,123")
    dialog.input_scale.setText("0")
    assert not dialog.ok.isEnabled() and "--input-scale" in dialog.caption.text()
    dialog.input_scale.setText("0.5")
    assert dialog.ok.isEnabled()
    chosen = dialog.transformer()
    assert chosen == Transformer(3, (2, 1, 0), 255.0, (104, 117, 123), 0.5)
    before = w.state.fm
    with qtbot.waitSignal(w.map_shown, timeout=MAP_TIMEOUT):
        w.controller.set_transformer(chosen)
    assert w.state.fm is not before
    expected = w.state.model.dense.prepare(w.state.image.pixels, 1.0)
    pixels = w.state.image.pixels
    b, g, r = (pixels[0, 0, 2], pixels[0, 0, 1], pixels[0, 0, 0])
    np.testing.assert_allclose(expected[0, :, 0, 0], (np.array([b, g, r]) - [104, 117, 123]) / 2)


def test_the_plate_model_keeps_its_plate_parts(qtbot, plate_file, settings):
    w = open_window(qtbot, plate_file, settings, scale=1.0)
    assert w.letters.isVisible() and w.scale.auto.isEnabled()
    assert w.state.layer.title == "best character (hue), as opaque as 1 - P(background)"
    assert w.state.model.dense.transformer == Transformer(1)
    w.close()


def test_a_labels_file_of_the_wrong_length_is_a_warning(qtbot, plate_file, settings, tmp_path):
    from gui_helpers import load_model
    from bad_inputs import write_net_pair

    proto, weights = write_net_pair(tmp_path)
    (tmp_path / "labels.txt").write_text("only\ntwo\n")
    w = open_window(qtbot, plate_file, settings, scale=1.0)
    w.confirm = lambda question: True
    assert load_model(qtbot, w, proto, weights) == "loaded"
    assert w.errors.errors == [f"{tmp_path / 'labels.txt'} has 2 names but the net has 5 "
                               "classes; classes are numbered instead"]
    assert w.state.model.dense.labels == [f"class {k}" for k in range(5)]
    w.close()


def test_the_model_menu_opens_the_dialog(thousand_window, monkeypatch):
    opened = []
    monkeypatch.setattr(QtWidgets.QDialog, "exec_", lambda dialog: opened.append(dialog) or 0)
    menu = next(a.menu() for a in thousand_window.menuBar().actions() if a.text() == "&Model")
    next(a for a in menu.actions() if a.text() == "&Preprocessing...").trigger()
    assert isinstance(opened[0], PreprocessDialog)
    assert opened[0].swap.text() == "2,1,0"


def plate_model_actions(window) -> dict[str, QtWidgets.QAction]:
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Model")
    sub = next(a.menu() for a in menu.actions() if a.text() == "Plate &model")
    return {a.text(): a for a in sub.actions()}


def test_model_plate_model_switches_between_the_bundled_nets(qtbot, plate_file, settings):
    """The viewer opens LeNet; Model > Plate model loads BNNet's surgered twin on the worker,
    reads the plate with it, and the check follows the model shown (none for another net)."""
    from viewer.files import paths

    w = open_window(qtbot, plate_file, settings, scale=1.0)
    actions = plate_model_actions(w)
    lenet, bnnet = (actions[paths.PLATE_MODELS[n].title] for n in ("lenet", "bnnet"))
    assert lenet.isChecked() and not bnnet.isChecked() and bnnet.isEnabled()
    with qtbot.waitSignal(w.loader.loaded, timeout=MAP_TIMEOUT):
        bnnet.trigger()
    qtbot.waitUntil(lambda: w.state.model.prototxt == paths.PLATE_MODELS["bnnet"].fcn_prototxt,
                    timeout=MAP_TIMEOUT)
    assert bnnet.isChecked() and not lenet.isChecked()
    assert w.state.model.dense.labels == w.state.model.dense.labels[:36] + ["background"]
    assert any(layer.name == "conv1_bn" for layer in w.state.model.dense.net.param.layer)
    assert w.errors.errors == []
    lenet.trigger()                                     # back, and a second pick is no reload
    qtbot.waitUntil(lambda: w.state.model.prototxt == paths.FCN_PROTOTXT, timeout=MAP_TIMEOUT)
    assert lenet.isChecked() and not bnnet.isChecked()
    w.close()
