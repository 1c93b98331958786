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


# conv (one 3x3 filter of ones, bias -b) -> ReLU -> a 4x4 convolution to two classes, +w and -w:
# class 0's gradient is +1 per covering active unit, class 1's the opposite.
TINY = """
name: "Tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 1 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "score" type: "Convolution" bottom: "conv" top: "score"
        convolution_param { num_output: 2 kernel_size: 4 } }
"""


@pytest.fixture
def tiny():
    param, _ = parse_prototxt(TINY, "tiny.prototxt")
    net = init_weights(param, seed=0)
    net.weights["conv"] = [np.ones((1, 1, 3, 3), np.float32), np.array([-4.5], np.float32)]
    net.weights["score"] = [np.stack([np.ones((1, 4, 4)), -np.ones((1, 4, 4))]).astype(
        np.float32), np.zeros(2, np.float32)]
    return DenseClassifier(net, "numpy")


def _tiny_input() -> np.ndarray:
    """A bright 3x3 square at the top left of a dark 6x6 input: only the ReLUs reading it fire."""
    data = np.zeros((1, 1, 6, 6), np.float32)
    data[0, 0, :3, :3] = 1.0
    return data


def test_gradient_guided_and_deconv_signs_and_positions(tiny):
    explainer = Explainer(tiny)
    data = _tiny_input()
    up = explainer.explain(data, (0, 0), 0, ["gradient", "guided", "deconv"]).maps
    down = explainer.explain(data, (0, 0), 1, ["gradient", "guided", "deconv"]).maps
    # Conv units (0,0), (0,1), (1,0) see 9, 6, 6 lit pixels, over the bias 4.5; (1,1) sees 4.
    # A pixel's gradient is how many of those three cover it.
    assert up["gradient"][0, 0, 0] == 1 and up["gradient"][0, 1, 1] == 3
    assert up["gradient"][0, 2, 2] == 3 and up["gradient"][0, 0, 3] == 1
    assert up["gradient"][0, 3, 3] == 0 and up["gradient"][0, 5, 5] == 0
    np.testing.assert_array_equal(down["gradient"], -up["gradient"])
    np.testing.assert_array_equal(up["guided"], up["gradient"])     # all positive: the same
    assert not down["guided"].any()               # a negative gradient never passes guided
    assert not down["deconv"].any()
    # deconv ignores the input's sign: all 16 ReLUs pass, pixel (2,2) is under 9 of them.
    assert up["deconv"][0, 2, 2] == 9 and up["deconv"][0, 5, 5] == 1


def test_gradient_x_input_logprob_and_versus(tiny):
    explainer = Explainer(tiny)
    data = _tiny_input()
    maps = explainer.explain(data, (0, 0), 0, ["gradient", "gradient_x_input"]).maps
    np.testing.assert_array_equal(maps["gradient_x_input"], maps["gradient"] * data[0])
    versus = explainer.explain(data, (0, 0), 0, ["gradient"], versus=1)
    np.testing.assert_allclose(versus.maps["gradient"], 2 * maps["gradient"])
    # d log p0 = (1 - p0) d s0 - p1 d s1 = p1 (d s0 - d s1) with two classes.
    scores = tiny.engine.forward(data, ["score"])["score"][0, :, 0, 0]
    p1 = np.exp(scores[1]) / np.exp(scores).sum()
    logprob = explainer.explain(data, (0, 0), 0, ["gradient"], target="logprob")
    np.testing.assert_allclose(logprob.maps["gradient"], p1 * versus.maps["gradient"],
                               rtol=1e-5, atol=1e-7)
    assert versus.score == pytest.approx(scores[0] - scores[1])


@pytest.fixture(scope="module")
def plate():
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "numpy")
    return dense, dense.prepare(load_image(paths.SAMPLE_PLATE), 0.255)


def test_every_method_stays_in_the_cells_field_on_the_sample_plate(plate):
    dense, data = plate
    explainer = Explainer(dense)
    result = explainer.explain(data, (7, 12), dense.labels.index("R"),
                               ["gradient", "gradcam", "occlusion", "integrated"])
    assert result.window == (28, 56, 48, 76)      # LeNet: 28 px at stride 4, no padding
    assert result.label == "R" and result.score > 20
    for method, values in result.maps.items():
        assert values.shape == data.shape[1:], method
        outside = values.copy()
        outside[:, 28:56, 48:76] = 0
        assert not outside.any(), method
        assert np.abs(values).max() > 0, method
    assert result.maps["gradcam"].min() >= 0
    # Integrated gradients add up to the score's change from the grey input (completeness).
    grey = np.broadcast_to(explainer.fill[None, :, None, None], data.shape).copy()
    base = dense.engine.forward(grey, [dense.score_blob])[dense.score_blob][
        0, result.channel, 7, 12]
    total = result.maps["integrated"].sum()
    assert total == pytest.approx(result.score - base, rel=0.05)


def test_occlusion_is_one_batch_of_144_patches_on_every_engine(plate):
    dense, data = plate
    explainer = Explainer(dense)
    crop = cell_crop(explainer.field, (7, 12), data.shape[2:])
    batch, places = explainer.occlusion_batch(crop.take(data), crop)
    assert len(places) == 144 and batch.shape == (145, 1, 28, 28)
    assert places[0] == (0, 0) and places[-1] == (22, 22)
    channel = dense.labels.index("R")
    ours = explainer.explain(data, (7, 12), channel, ["occlusion"])
    scale = np.abs(ours.maps["occlusion"]).max()
    for engine in ("onnx", "opencv", "caffe"):
        other = Explainer(DenseClassifier(dense.net, engine)).explain(data, (7, 12), channel,
                                                                      ["occlusion"])
        assert np.abs(ours.maps["occlusion"] - other.maps["occlusion"]).max() / scale \
            < TOLERANCE, engine
    full = dense.engine.forward(data, [dense.score_blob])[dense.score_blob]
    assert ours.score == pytest.approx(float(full[0, channel, 7, 12]), abs=1e-4)


def test_gradcam_defaults_to_the_last_convolution_before_surgery(plate):
    from viewer.maps.attribution import default_layer

    assert default_layer(plate[0]) == "conv2"
    assert default_layer(DenseClassifier(gallery.load("caffenet_style"), "numpy")) == "conv5"


def test_explain_writes_the_npz_and_pictures(tmp_path):
    out = tmp_path / "why"
    assert cli_main(["explain", str(paths.SAMPLE_PLATE), "--letter", "1", "--scale", "0.255",
                     "--method", "gradient", "--method", "occlusion", "--out", str(out)]) == 0
    listed = tmp_path / "listed"                        # --method a b: the same methods
    assert cli_main(["explain", str(paths.SAMPLE_PLATE), "--letter", "1", "--scale", "0.255",
                     "--method", "gradient", "occlusion", "--out", str(listed)]) == 0
    assert sorted(p.name for p in listed.iterdir()) == sorted(p.name for p in out.iterdir())
    saved = np.load(out / "explain.npz")
    assert str(saved["class"]) == "R" and list(saved["cell"]) == [7, 12]
    assert list(saved["stride"]) == [4, 4] and list(saved["receptive_field"]) == [28, 28]
    assert saved["gradient"].shape == saved["input"].shape == saved["occlusion"].shape
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "numpy")
    again = Explainer(dense).explain(saved["input"][None], (7, 12), dense.labels.index("R"))
    np.testing.assert_allclose(saved["gradient"], again.maps["gradient"], atol=1e-6)
    assert sorted(p.name for p in out.iterdir()) == [
        "explain.npz", "explain_gradient.png", "explain_occlusion.png", "explain_row.png"]


@pytest.mark.parametrize("flags, message", [
    (["--cell", "9,99"], "error: viewer/resources/sample_plate.png: cell 9,99 is outside the map"),
    (["--cell", "1,1", "--method", "lime"], "error: unknown method 'lime'"),
    (["--cell", "1,1", "--class", "Q7"], "unknown class 'Q7'"),
    (["--cell", "1,1", "--layer", "conv9", "--method", "gradcam"], "unknown layer 'conv9'"),
    (["--letter", "12"], "letter 12 is not on the plate"),
])
def test_explain_refuses_bad_input_in_one_line_writing_nothing(flags, message, tmp_path,
                                                                capsys):
    out = tmp_path / "why"
    assert cli_main(["explain", "viewer/resources/sample_plate.png", "--scale", "0.255",
                     *flags, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_a_layer_without_backward_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.delitem(numpy_backward.LAYER_GRADS, "Power")
    with pytest.raises(ExplainError, match=r"layer 'scale' \(Power\) has no backward"):
        numpy_backward.Backward(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS))
    assert cli_main(["explain", str(paths.SAMPLE_PLATE), "--cell", "7,12", "--scale", "0.255",
                     "--out", str(tmp_path / "why")]) == 2
    assert "layer 'scale' (Power) has no backward" in capsys.readouterr().err
    assert not (tmp_path / "why" / "explain.npz").exists()


def test_explain_over_many_images_writes_a_folder_and_a_json_line_each(tmp_path, capsys):
    import json
    import shutil

    for name in ("one.png", "two.png"):
        shutil.copy(paths.SAMPLE_PLATE, tmp_path / name)
    out = tmp_path / "why"
    assert cli_main(["explain", str(tmp_path / "one.png"), str(tmp_path / "two.png"),
                     "--cell", "7,12", "--scale", "0.255", "--method", "gradient",
                     "--format", "jsonl", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["class"] for r in rows] == ["R", "R"] and rows[0]["cell"] == [7, 12]
    assert rows[0]["score"] == pytest.approx(rows[1]["score"])
    assert (out / "one" / "explain.npz").exists() and (out / "two" / "explain_row.png").exists()
