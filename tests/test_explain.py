"""Why a cell says what it says: the backward pass against real Caffe, the methods, `explain`.

The judge of the backward is pycaffe: the fully convolutional net (our surgery) written with
`force_backward: true`, the score blob's diff set to one at the cell and class, `net.backward()`
from the score's layer, and the input blob's diff read. Ours computes only the cell's crop
and pastes it back; the two must agree over the whole image, at the edges too.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

import gallery
from conftest import plate_like
from viewer import surgery
from viewer.caffe.model_io import caffemodel_bytes, parse_prototxt, prototxt_text
from viewer.cli import main as cli_main
from viewer.engines import numpy_backward
from viewer.engines.base import deploy_net
from viewer.errors import ExplainError
from viewer.files import paths
from viewer.maps.attribution import Explainer, cell_crop
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.net import netgraph
from viewer.net.weights import init_weights, load_net

os.environ.setdefault("GLOG_minloglevel", "2")
if os.environ.get("NETSURGERY_REQUIRE_CAFFE"):
    import caffe  # noqa: F401
else:
    pytest.importorskip("caffe")
from viewer.engines.caffe_engine import import_caffe  # noqa: E402

TOLERANCE = 1e-4


class CaffeBackward:
    """Real Caffe's data diff of one cell's class score, on a net with force_backward."""

    def __init__(self, net, data: np.ndarray) -> None:
        deploy = deploy_net(net)
        deploy.param.force_backward = True
        caffe = import_caffe()
        with tempfile.TemporaryDirectory() as folder:
            proto, weights = f"{folder}/net.prototxt", f"{folder}/net.caffemodel"
            with open(proto, "w") as f:
                f.write(prototxt_text(deploy.param))
            with open(weights, "wb") as f:
                f.write(caffemodel_bytes(deploy))
            self.net = caffe.Net(proto, weights, caffe.TEST)
        self.input = next(iter(netgraph.input_shapes(net.param)))
        self.blob = netgraph.score_blob(net.param)
        self.start = netgraph.producers(net.param)[self.blob].name
        self.net.blobs[self.input].reshape(*data.shape)
        self.net.reshape()
        self.net.blobs[self.input].data[...] = data
        self.net.forward()

    def gradient(self, channel: int, cell: tuple[int, int]) -> np.ndarray:
        top = self.net.blobs[self.blob]
        top.diff[...] = 0
        top.diff[0, channel, cell[0], cell[1]] = 1
        self.net.backward(start=self.start)
        return self.net.blobs[self.input].diff[0].copy()


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def _cells(rows: int, cols: int) -> list[tuple[int, int]]:
    """The corners and an odd cell inside."""
    return sorted({(0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows // 2, cols // 2 | 1)})


def test_plate_lenet_cell_gradient_equals_caffe_at_edges_and_odd_cells():
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "numpy")
    data = dense.prepare(plate_like(41, 67, seed=3), 1.0)
    explainer = Explainer(dense)
    real = CaffeBackward(dense.net, data)
    rows, cols = real.net.blobs[real.blob].data.shape[2:]
    assert (rows, cols) == (5, 11)
    for k, cell in enumerate(_cells(rows, cols)):
        channel = (7 * k + 3) % len(dense.labels)
        ours = explainer.explain(data, cell, channel, ["gradient"]).maps["gradient"]
        theirs = real.gradient(channel, cell)
        assert np.abs(theirs).max() > 0
        assert _relative(ours, theirs) < TOLERANCE, (cell, channel)


@pytest.fixture(scope="module")
def gallery_nets():
    return {name: gallery.load(name, seed=k) for k, name in enumerate(gallery.NAMES)}


@pytest.mark.parametrize("name", gallery.NAMES)
def test_every_gallery_net_cell_gradient_equals_caffe(name, gallery_nets):
    dense = DenseClassifier(gallery_nets[name], "numpy")
    window, stride = gallery.WINDOWS[name]
    picture = gallery.image(window + stride, window + 2 * stride + 3, seed=5)
    data = dense.prepare(picture, 1.0)
    real = CaffeBackward(dense.net, data)
    rows, cols = real.net.blobs[real.blob].data.shape[2:]
    explainer = Explainer(dense)
    for k, cell in enumerate(_cells(rows, cols)):
        channel = (3 * k + 1) % len(dense.labels)
        ours = explainer.explain(data, cell, channel, ["gradient"]).maps["gradient"]
        assert _relative(ours, real.gradient(channel, cell)) < TOLERANCE, (name, cell)


def test_a_cell_reads_only_its_padded_field():
    """CaffeNet's field is 355 px from 64 px before its 227 px window, on the stride grid."""
    field = DenseClassifier(gallery.load("caffenet_style"), "numpy")
    crop = cell_crop(Explainer(field).field, (3, 0), (451, 451))
    assert (crop.y0, crop.y1, crop.x0, crop.x1, crop.cell) == (32, 387, 0, 291, (2, 0))
    crop = cell_crop(Explainer(field).field, (7, 7), (451, 451))
    assert (crop.y0, crop.y1, crop.x0, crop.x1, crop.cell) == (160, 451, 160, 451, (2, 2))
