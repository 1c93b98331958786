"""The window on real Caffe: pycaffe built by `make caffe` releases the GIL during a pass
(scripts/pycaffe-release-gil.patch), so the GUI thread keeps running while a worker waits."""
from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")      # before libcaffe loads, as the engine does
if os.environ.get("NETSURGERY_REQUIRE_CAFFE"):     # set by CI once `make caffe` succeeded
    import caffe
else:
    caffe = pytest.importorskip("caffe")

from gui_helpers import MAP_TIMEOUT, generated_plate, open_window, settings  # noqa: E402,F401
from viewer.files import paths  # noqa: E402
from viewer.maps.export import save_png  # noqa: E402
from viewer.maps.featuremap import DenseClassifier  # noqa: E402
from viewer.gui import app  # noqa: E402
from viewer.gui.latency import LatencyProbe  # noqa: E402
from viewer.maps.images import load_image  # noqa: E402
from viewer.net.weights import load_net  # noqa: E402


def test_pycaffe_says_its_forward_releases_the_gil():
    assert getattr(caffe._caffe, "forward_releases_gil", False), \
        "pycaffe was built without scripts/pycaffe-release-gil.patch: run make caffe"


def test_another_thread_runs_during_a_caffe_pass():
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "caffe")
    image = load_image(paths.SAMPLE_PLATE)
    dense.run(image, 1.5)
    ticks, inside, stop = [], threading.Event(), threading.Event()

    def ticker():
        while not stop.is_set():
            if inside.is_set():
                ticks.append(1)
            stop.wait(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    run = dense.engine._net._forward       # the pass itself, nothing around it
    layers = len(dense.engine._net.layers)
    inside.set()
    run(0, layers - 1)
    inside.clear()
    stop.set()
    thread.join()
    assert len(ticks) >= 10                 # a GIL held for the pass leaves it at 0 or 1


def test_the_window_on_caffe_answers_while_it_maps(qtbot, tmp_path, settings):  # noqa: F811
    plate = save_png(generated_plate(300, 800), tmp_path / "large.png")
    window = open_window(qtbot, plate, settings, scale=1.0, auto_check=False)
    with qtbot.waitSignal(window.loader.loaded, timeout=MAP_TIMEOUT):
        window.files.switch_engine("caffe")
    qtbot.waitUntil(lambda: not window.maps.is_busy(), timeout=MAP_TIMEOUT)
    probe = LatencyProbe(window)
    with qtbot.waitSignal(probe.repainted, timeout=MAP_TIMEOUT):
        window.scale.set_scale(2.0, emit=True)
    forward = window.state.fm.forward_ms
    assert window.state.model.dense.engine_name == "caffe" and forward > 200
    assert probe.figures.worst_block_ms < forward / 2, (probe.figures, forward)
    window.close()
