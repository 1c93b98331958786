"""Fine maps on every engine: rarefaction where the engine runs it, shift-and-stitch elsewhere."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import plate_like
from test_rarefaction import ODD_NET
from viewer.net.weights import init_weights
from viewer import surgery
from viewer.caffe import model_io
from viewer.net import cost
from viewer.surgery import rarefaction
from viewer.cli import main as cli_main
from viewer.engines import available_engines, create_engine
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.finemap import RAREFACTION, RAREFYING, SHIFT_AND_STITCH, StitchedEngine, stitch

ENGINES = available_engines()


@pytest.mark.parametrize("engine", ENGINES)
def test_lenet_stride_1_on_every_engine_is_the_classifier_per_window(lenet, engine):
    image = plate_like(31, 40, seed=4)
    dense = DenseClassifier(lenet, engine)
    fine = dense.at_stride(1)
    assert fine.method.method == (RAREFACTION if engine in RAREFYING else SHIFT_AND_STITCH)
    fm = fine.run(image, 1.0)
    assert fm.geometry.stride == (1, 1) and fm.scores.shape[1:] == (31 - 27, 40 - 27)
    data = dense.prepare(image, 1.0)
    windows = np.concatenate([data[:, :, i:i + 28, j:j + 28]
                              for i in range(fm.scores.shape[1])
                              for j in range(fm.scores.shape[2])])
    expected = create_engine("numpy", lenet).forward(windows, ["ip2-alpha"])["ip2-alpha"]
    np.testing.assert_allclose(fm.scores.reshape(fm.scores.shape[0], -1).T, expected,
                               atol=1e-4)
    native = dense.run(image, 1.0).scores
    coarse = fm.scores[:, ::4, ::4]
    np.testing.assert_allclose(coarse, native[:, :coarse.shape[1], :coarse.shape[2]],
                               atol=1e-4)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("text, channels", [("other", 3), (ODD_NET, 2)])
def test_nets_of_other_shapes_give_their_native_map_on_the_fine_grid(other_net, engine, text,
                                                                     channels):
    net = other_net if text == "other" else init_weights(
        model_io.parse_prototxt(text, "odd.prototxt")[0], seed=5)
    fcn = surgery.make_fully_convolutional(net).net
    data = np.random.default_rng(6).uniform(0, 255, (1, channels, 58, 64)).astype(np.float32)
    reference = rarefaction.rarefy(fcn, 1)
    blob = fcn.param.layer[-1].bottom[0] if fcn.param.layer[-1].type == "Softmax" else \
        fcn.param.layer[-1].top[0]
    expected = create_engine("numpy", reference.net).forward(data, [blob])[blob]
    fine = DenseClassifier(fcn, engine, stride=1)
    got = fine.engine.forward(data, [blob])[blob]
    assert got.shape == expected.shape
    rows, cols = fine.unit.padded().cells_inside(58, 64)   # cells that see no padding
    np.testing.assert_allclose(got[..., rows.start:rows.stop, cols.start:cols.stop],
                               expected[..., rows.start:rows.stop, cols.start:cols.stop],
                               atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_stitch_interleaves_the_shifted_maps():
    outs = {(a, b): np.full((1, 1, 3 - a, 2), 10 * a + b, np.float32)
            for a in range(2) for b in range(2)}
    fine = stitch(outs, (2, 2))
    assert fine.shape == (1, 1, 5, 4)
    assert fine[0, 0].tolist() == [[0, 1, 0, 1], [10, 11, 10, 11], [0, 1, 0, 1],
                                   [10, 11, 10, 11], [0, 1, 0, 1]]


def test_the_memory_estimate_covers_the_fine_pass(lenet):
    """The issue's workload: the fine ip1-conv blob alone is 500x263x693 floats, 364 MB."""
    dense = DenseClassifier(lenet, "numpy")     # holds every blob: the generic estimate
    fine = dense.at_stride(1)
    native_need, fine_need = dense.planner.forward_bytes(290, 720), fine.planner.forward_bytes(290, 720)
    assert fine_need > 4 * 500 * 263 * 693 and fine_need > 5 * native_need
    assert fine.planner.max_scale((322, 800)) < dense.planner.max_scale((322, 800))
    stitched = StitchedEngine(create_engine("numpy", dense.net), 1, (4, 4))
    assert stitched.peak_bytes((1, 1, 290, 720), ["ip2-alpha-conv"]) > \
        create_engine("numpy", dense.net).peak_bytes((1, 1, 290, 720),
                           ["ip2-alpha-conv"])


def test_map_stride_1_writes_the_fine_grid(tmp_path, lenet_files, capsys):
    proto, weights = lenet_files
    image = tmp_path / "plate.png"
    import cv2

    cv2.imwrite(str(image), plate_like(40, 52))
    code = cli_main(["map", str(image), "--prototxt", str(proto), "--weights", str(weights),
                     "--engine", "blas", "--stride", "1", "--out", str(tmp_path / "out")])
    assert code == 0
    saved = np.load(tmp_path / "out" / "featuremap.npz")
    assert saved["stride"].tolist() == [1, 1] and saved["probs"].shape[1:] == (13, 25)
    code = cli_main(["map", str(image), "--prototxt", str(proto), "--weights", str(weights),
                     "--stride", "3", "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith(
        "stride 3 does not divide the net's native stride 4; choose one of 1, 2, 4")


def test_a_fine_classifier_keeps_the_preprocessing(lenet):
    dense = DenseClassifier(lenet, "blas")
    fine = dense.at_stride(2)
    assert fine.settings is dense.settings and fine.unit.stride == (2, 2)
    assert fine.at_stride(None).unit.stride == (4, 4)
