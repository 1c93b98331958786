"""Every engine computes the same numbers under the same blob names, whatever its conventions.

The numpy engine is the reference (Caffe's arithmetic written out); each other available
engine must match it within 1e-4 on probabilities and on the blobs a user looks at, at sizes
where Caffe's ceil-rounded pooling clips its last window, and on nets unlike LeNet.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import plate_like, random_biases
from viewer.net.weights import init_weights
from viewer import surgery
from viewer.caffe import model_io
from viewer.net import netgraph
from viewer.engines import available_engines, create_engine, engine_names
from viewer.engines.ops import softmax

TOLERANCE = 1e-4


def _engines_under_test() -> list[str]:
    """Every registered engine but the reference. Only Caffe may be absent here (it is built
    apart by `make caffe`, and NETSURGERY_REQUIRE_CAFFE makes it mandatory); another engine
    that does not import, or refuses a net below, fails its tests instead of skipping them."""
    optional = set() if os.environ.get("NETSURGERY_REQUIRE_CAFFE") else {"caffe"}
    here = available_engines()
    return [e for e in engine_names() if e != "numpy" and (e in here or e not in optional)]


OTHERS = _engines_under_test()
# Odd heights and widths make every ceil-rounded pooling clip its last window.
SIZES = [(28, 28), (29, 31), (33, 47), (41, 28), (64, 90)]

# Fully convolutional, so it runs at any size: a padded dilated convolution, an implicit split
# into two branches (one through a copying Dropout), leaky ReLU, LRN within channels, Scale,
# Power, Concat, a stride-2 grouped convolution, padded AVE and MAX pooling, 1x1 convolutions.
BRANCHY_NET = """
name: "Branchy"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 24 dim: 24 } } }
layer { name: "pre" type: "Power" bottom: "data" top: "pre"
        power_param { scale: 0.01 shift: -1.0 } }
layer { name: "conv1" type: "Convolution" bottom: "pre" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 2 dilation: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layer { name: "drop" type: "Dropout" bottom: "conv1" top: "kept" }
layer { name: "left" type: "Convolution" bottom: "conv1" top: "left"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "relu_l" type: "ReLU" bottom: "left" top: "left" }
layer { name: "norm" type: "LRN" bottom: "kept" top: "norm"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "gain" type: "Scale" bottom: "norm" top: "gain"
        scale_param { bias_term: true } }
layer { name: "cat" type: "Concat" bottom: "left" bottom: "gain" top: "cat" }
layer { name: "conv2" type: "Convolution" bottom: "cat" top: "conv2"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 group: 2 } }
layer { name: "pool_ave" type: "Pooling" bottom: "conv2" top: "pool_ave"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool_max" type: "Pooling" bottom: "pool_ave" top: "pool_max"
        pooling_param { pool: MAX kernel_size: 2 stride: 1 pad: 1 } }
layer { name: "conv3" type: "Convolution" bottom: "pool_max" top: "conv3"
        convolution_param { num_output: 10 kernel_size: 2 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "score" type: "Convolution" bottom: "conv3" top: "score"
        convolution_param { num_output: 5 kernel_size: 1 } }
"""


def _scale_weights(net: model_io.CaffeNet) -> model_io.CaffeNet:
    """init_weights leaves Scale factors random around 0: make them gains around 1."""
    gain = net.weights.get("gain")
    if gain:
        gain[0] = (1.0 + gain[0]).astype(np.float32)
    return net


@pytest.fixture(scope="module")
def lenet_fcn() -> model_io.CaffeNet:
    from viewer.files import paths

    param, _ = model_io.read_prototxt(paths.CLASSIFIER_PROTOTXT)
    classifier = random_biases(init_weights(param, seed=11), 11)
    return surgery.make_fully_convolutional(classifier).net


@pytest.fixture(scope="module")
def branchy() -> model_io.CaffeNet:
    param, _ = model_io.parse_prototxt(BRANCHY_NET, "branchy.prototxt")
    return _scale_weights(random_biases(init_weights(param, seed=5), 5))


@pytest.fixture(scope="module")
def reference_lenet(lenet_fcn):
    return create_engine("numpy", lenet_fcn)


def _plate_input(height: int, width: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    image = plate_like(height, width, seed).astype(np.float32)
    return np.repeat(image[None, None], channels, axis=1)


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}"
    scale = max(1.0, float(np.abs(expected).max()))
    worst = float(np.abs(actual - expected).max()) / scale
    assert worst < TOLERANCE, f"{what}: max |diff| {worst:.3g} (relative to {scale:.3g})"


def test_the_fast_engines_are_registered():
    assert {"numpy", "blas"} <= set(available_engines())


@pytest.mark.parametrize("engine", OTHERS)
@pytest.mark.parametrize("size", SIZES)
def test_lenet_probabilities_and_blobs_match_the_reference(engine, size, lenet_fcn,
                                                           reference_lenet):
    data = _plate_input(*size, seed=size[0])
    blobs = ["ip2-alpha-conv", "conv1", "pool1", "pool2", "ip1-conv"]
    expected = reference_lenet.forward(data, blobs)
    actual = create_engine(engine, lenet_fcn).forward(data, blobs)
    assert list(actual) == blobs
    for blob in blobs[1:]:
        _assert_close(actual[blob], expected[blob], f"{engine} {blob} at {size}")
    _assert_close(softmax(actual["ip2-alpha-conv"]), softmax(expected["ip2-alpha-conv"]),
                  f"{engine} probabilities at {size}")


@pytest.mark.parametrize("engine", OTHERS)
def test_in_place_blobs_are_returned_after_the_in_place_layer(engine, lenet_fcn, reference_lenet):
    data = _plate_input(45, 61)
    out = create_engine(engine, lenet_fcn).forward(data, ["ip1-conv"])
    assert out["ip1-conv"].min() >= 0.0, "ip1-conv must be the ReLU's output"
    assert (out["ip1-conv"] == 0).any()
    _assert_close(out["ip1-conv"], reference_lenet.forward(data, ["ip1-conv"])["ip1-conv"],
                  f"{engine} ip1-conv")


@pytest.mark.parametrize("engine", OTHERS)
def test_asking_for_fewer_blobs_does_not_change_the_scores(engine, lenet_fcn):
    data = _plate_input(37, 53)
    eng = create_engine(engine, lenet_fcn)
    alone = eng.forward(data, ["ip2-alpha-conv"])["ip2-alpha-conv"]
    together = eng.forward(data, ["conv1", "ip1-conv", "ip2-alpha-conv"])["ip2-alpha-conv"]
    _assert_close(alone, together, f"{engine} scores with and without intermediate blobs")


@pytest.mark.parametrize("engine", ["numpy", *OTHERS])
def test_input_is_returned_and_never_modified(engine, lenet_fcn):
    data = _plate_input(30, 30)
    before = data.copy()
    out = create_engine(engine, lenet_fcn).forward(data, ["data", "ip2-alpha-conv"])
    np.testing.assert_array_equal(out["data"], before)
    np.testing.assert_array_equal(data, before)


@pytest.mark.parametrize("engine", ["numpy", *OTHERS])
def test_unknown_blob_is_refused(engine, lenet_fcn):
    with pytest.raises(KeyError, match="no blob named 'ip3'"):
        create_engine(engine, lenet_fcn).forward(_plate_input(28, 28), ["ip3"])


@pytest.mark.parametrize("engine", OTHERS)
def test_one_engine_serves_many_sizes_in_turn(engine, lenet_fcn, reference_lenet):
    eng = create_engine(engine, lenet_fcn)
    for size in [(60, 100), (28, 28), (75, 33), (60, 100)]:
        data = _plate_input(*size, seed=3)
        _assert_close(eng.forward(data, ["ip2-alpha-conv"])["ip2-alpha-conv"],
                      reference_lenet.forward(data, ["ip2-alpha-conv"])["ip2-alpha-conv"],
                      f"{engine} after a size change to {size}")


@pytest.mark.parametrize("engine", OTHERS)
@pytest.mark.parametrize("size", [(24, 24), (27, 35), (40, 29)])
def test_a_net_of_another_shape_matches_the_reference(engine, size, branchy):
    blobs = [b for b in netgraph.producers(branchy.param) if b != "data"]
    data = _plate_input(*size, channels=2, seed=size[1])
    expected = create_engine("numpy", branchy).forward(data, blobs)
    actual = create_engine(engine, branchy).forward(data, blobs)
    for blob in blobs:
        _assert_close(actual[blob], expected[blob], f"{engine} {blob} at {size}")
    _assert_close(softmax(actual["score"]), softmax(expected["score"]),
                  f"{engine} probabilities at {size}")
    alone = create_engine(engine, branchy).forward(data, ["score"])["score"]
    _assert_close(alone, expected["score"], f"{engine} score alone at {size}")


@pytest.mark.parametrize("engine", OTHERS)
def test_batched_classifier_of_another_shape_matches_the_reference(engine, other_net):
    data = np.random.default_rng(2).uniform(0, 255, (3, 3, 32, 32)).astype(np.float32)
    blobs = ["conv_a", "pool_a", "norm_b", "flat", "fc1", "prob"]
    expected = create_engine("numpy", other_net).forward(data, blobs)
    actual = create_engine(engine, other_net).forward(data, blobs)
    for blob in blobs:
        _assert_close(actual[blob], expected[blob], f"{engine} {blob}")


@pytest.mark.parametrize("engine", OTHERS)
def test_batched_lenet_windows_equal_the_dense_pass(engine, lenet_fcn):
    """The per-window classifier and the dense pass agree cell by cell (the bench's check)."""
    dense = create_engine(engine, lenet_fcn)
    image = _plate_input(36, 44, seed=9)
    scores = dense.forward(image, ["ip2-alpha-conv"])["ip2-alpha-conv"][0]
    windows = np.stack([image[0, :, 4 * i:4 * i + 28, 4 * j:4 * j + 28]
                        for i in range(scores.shape[1]) for j in range(scores.shape[2])])
    per_window = dense.forward(windows, ["ip2-alpha-conv"])["ip2-alpha-conv"]
    expected = per_window[:, :, 0, 0].T.reshape(scores.shape)
    _assert_close(scores, expected, f"{engine} dense vs per-window")


POOLED_NET = """
name: "Pooled"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 20 dim: 20 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 7 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 9 kernel_size: 2 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool2" top: "score"
        convolution_param { num_output: 4 kernel_size: 1 } }
"""


@pytest.mark.parametrize("band_bytes", [1, 1 << 30])
@pytest.mark.parametrize("size", [(20, 20), (37, 23), (64, 51)])
def test_blas_pools_in_bands_of_rows_exactly(band_bytes, size, monkeypatch):
    """Convolutions feeding a pooling run band by band (overlapping windows, pads, AVE, MAX),
    down to one pooled row per band, and agree with the reference."""
    from viewer.engines import blas_kernels
    from viewer.engines.blas_engine import BlasEngine

    monkeypatch.setattr(blas_kernels, "MIN_BAND", 1)
    param, _ = model_io.parse_prototxt(POOLED_NET, "pooled.prototxt")
    net = random_biases(init_weights(param, seed=4), 4)
    data = _plate_input(*size, seed=size[0])
    expected = create_engine("numpy", net).forward(data, ["score"])["score"]
    engine = BlasEngine(net, band_bytes=band_bytes)
    assert engine.plan(["score"])[0].pool is not None
    _assert_close(engine.forward(data, ["score"])["score"], expected, f"blas at {size}")


# The layers of the model zoo, fully convolutional: BatchNorm (stored statistics with a moving-
# average factor, and one whose factor is 0), Scale with bias, PReLU per channel and shared,
# Eltwise SUM with coefficients, PROD and a three-input MAX, Sigmoid, TanH, ELU, AbsVal, BNLL.
ZOO_LAYERS_NET = """
name: "ZooLayers"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 16 dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv_a" type: "Convolution" bottom: "conv1" top: "conv_a"
        convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "sig" type: "Sigmoid" bottom: "conv_a" top: "sig" }
layer { name: "conv_b" type: "Convolution" bottom: "conv1" top: "conv_b"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "tanh" type: "TanH" bottom: "conv_b" top: "conv_b" }
layer { name: "sum" type: "Eltwise" bottom: "conv1" bottom: "conv_b" top: "sum"
        eltwise_param { operation: SUM coeff: 0.5 coeff: -1.5 } }
layer { name: "prod" type: "Eltwise" bottom: "sig" bottom: "conv_b" top: "prod"
        eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "conv1" bottom: "sig" bottom: "conv_b" top: "max"
        eltwise_param { operation: MAX } }
layer { name: "cat" type: "Concat" bottom: "sum" bottom: "prod" bottom: "max" top: "cat" }
layer { name: "elu" type: "ELU" bottom: "cat" top: "elu" elu_param { alpha: 0.7 } }
layer { name: "conv2" type: "Convolution" bottom: "elu" top: "conv2"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 } }
layer { name: "abs" type: "AbsVal" bottom: "conv2" top: "abs" }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "bn2"
        batch_norm_param { eps: 0.01 } }
layer { name: "bnll" type: "BNLL" bottom: "bn2" top: "bnll" }
layer { name: "both" type: "Eltwise" bottom: "abs" bottom: "bnll" top: "both" }
layer { name: "prelu2" type: "PReLU" bottom: "both" top: "both"
        prelu_param { channel_shared: true } }
layer { name: "score" type: "Convolution" bottom: "both" top: "score"
        convolution_param { num_output: 5 kernel_size: 1 } }
"""


@pytest.fixture(scope="module")
def zoo_layers() -> model_io.CaffeNet:
    """ZOO_LAYERS_NET with random statistics: bn1's factor is 2.5, bn2's is 0 (so its stored
    statistics count as 0, as in Caffe), slopes and gains random."""
    param, _ = model_io.parse_prototxt(ZOO_LAYERS_NET, "zoo_layers.prototxt")
    net = random_biases(init_weights(param, seed=8), 8)
    rng = np.random.default_rng(8)
    for name, factor in (("bn1", 2.5), ("bn2", 0.0)):
        mean, var, _ = net.weights[name]
        net.weights[name] = [rng.normal(0, 1, mean.shape).astype(np.float32),
                             rng.uniform(0.5, 2, var.shape).astype(np.float32),
                             np.array([factor], np.float32)]
    net.weights["sc1"][0] = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    net.weights["prelu1"] = [rng.uniform(-0.5, 0.5, 6).astype(np.float32)]
    net.weights["prelu2"] = [np.array(0.3, np.float32)]
    return net


def test_zoo_layers_compute_caffes_formulas(zoo_layers):
    """The reference engine against the formulas of Caffe's layer sources, blob by blob."""
    data = _plate_input(16, 16, channels=3, seed=1) / 255.0
    blobs = ["conv1", "conv_a", "sig", "conv_b", "sum", "prod", "max", "elu", "conv2", "abs",
             "bn2", "bnll", "both"]
    out = create_engine("numpy", zoo_layers).forward(data, blobs)
    w = zoo_layers.weights
    conv1 = create_engine("numpy", _cut(zoo_layers, "conv1")).forward(data, ["conv1"])["conv1"]
    mean, var, factor = w["bn1"]
    chan = (1, -1, 1, 1)
    x = (conv1 - (mean / factor).reshape(chan)) / np.sqrt((var / factor) + 1e-5).reshape(chan)
    x = x * w["sc1"][0].reshape(chan) + w["sc1"][1].reshape(chan)
    x = np.where(x > 0, x, x * w["prelu1"][0].reshape(chan))
    _assert_close(out["conv1"], x.astype(np.float32), "BatchNorm, Scale, PReLU")
    sig, tanh = 1 / (1 + np.exp(-out["conv_a"].astype(np.float64))), out["conv_b"]
    _assert_close(out["sig"], sig.astype(np.float32), "Sigmoid")
    _assert_close(out["sum"], 0.5 * x - 1.5 * tanh, "Eltwise SUM with coefficients")
    _assert_close(out["prod"], out["sig"] * tanh, "Eltwise PROD")
    _assert_close(out["max"], np.maximum(np.maximum(out["conv1"], out["sig"]), tanh), "MAX")
    assert np.abs(tanh).max() <= 1 and (out["elu"].min() >= -0.7)
    cat = np.concatenate([out["sum"], out["prod"], out["max"]], axis=1)
    _assert_close(out["elu"], np.where(cat > 0, cat, 0.7 * (np.exp(cat) - 1)), "ELU")
    _assert_close(out["abs"], np.abs(out["conv2"]), "AbsVal")
    _assert_close(out["bn2"], out["conv2"] / np.sqrt(np.float32(0.01)), "BatchNorm, factor 0")
    _assert_close(out["bnll"], np.log1p(np.exp(out["bn2"].astype(np.float64))), "BNLL")
    both = create_engine("numpy", zoo_layers).forward(data, ["score"])
    assert both["score"].shape == (1, 5, 7, 7)


def _cut(net: model_io.CaffeNet, last: str) -> model_io.CaffeNet:
    """The net up to the layer `last` (its input and that one layer)."""
    param = model_io.structure_of(net.param)
    keep = [l for l in param.layer if l.name in ("data", last)]
    del param.layer[:]
    param.layer.extend(keep)
    return model_io.CaffeNet(param, {last: net.weights[last]})


@pytest.mark.parametrize("engine", OTHERS)
@pytest.mark.parametrize("size", [(16, 16), (23, 30)])
def test_zoo_layers_match_the_reference(engine, size, zoo_layers):
    blobs = [b for b in netgraph.producers(zoo_layers.param) if b != "data"]
    data = _plate_input(*size, channels=3, seed=size[1]) / 64.0
    expected = create_engine("numpy", zoo_layers).forward(data, blobs)
    actual = create_engine(engine, zoo_layers).forward(data, blobs)
    for blob in blobs:
        _assert_close(actual[blob], expected[blob], f"{engine} {blob} at {size}")


@pytest.mark.parametrize("text, message", [
    ('layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" top: "e" '
     'eltwise_param { operation: MAX coeff: 1 coeff: 2 } }', "only SUM takes them"),
    ('layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" top: "e" '
     'eltwise_param { coeff: 1 } }', "1 coefficients for 2 inputs"),
    ('layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 3 } } '
     'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "c" top: "e" }',
     "must have the same shape"),
    ('layer { name: "b" type: "BatchNorm" bottom: "data" top: "b" '
     'batch_norm_param { use_global_stats: false } }', "stored statistics only"),
    ('layer { name: "s" type: "Scale" bottom: "data" bottom: "data" top: "s" }',
     "learned factors only"),
    ('layer { name: "x" type: "Swish" bottom: "data" top: "x" }', r"'x' \(Swish\)"),
])
def test_zoo_layers_that_cannot_run_are_named(text, message):
    from viewer.errors import ModelError

    head = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } } ')
    param, _ = model_io.parse_prototxt(head + text, "bad.prototxt")
    with pytest.raises(ModelError, match=message):
        netgraph.infer_shapes(param)


@pytest.mark.parametrize("engine", OTHERS)
def test_the_non_square_net_matches_the_reference_as_classifier_and_dense(engine,
                                                                          nonsquare_net):
    """Height and width differ in every kernel, stride, pad and blob: a swap shows."""
    data = np.random.default_rng(6).uniform(0, 255, (2, 2, 23, 30)).astype(np.float32)
    blobs = ["conv1", "pool1", "conv2", "pool2", "ip1", "ip2"]
    expected = create_engine("numpy", nonsquare_net).forward(data, blobs)
    actual = create_engine(engine, nonsquare_net).forward(data, blobs)
    for blob in blobs:
        _assert_close(actual[blob], expected[blob], f"{engine} {blob}")
    fcn = surgery.make_fully_convolutional(nonsquare_net).net
    reference, dense = create_engine("numpy", fcn), create_engine(engine, fcn)
    for size in [(47, 41), (30, 61)]:
        image = _plate_input(*size, channels=2, seed=size[1])
        want = reference.forward(image, ["pool2", "ip2-conv"])
        got = dense.forward(image, ["pool2", "ip2-conv"])
        for blob in want:
            _assert_close(got[blob], want[blob], f"{engine} {blob} at {size}")


# Channels in whole blocks of 16 past the first convolution, so onnxruntime runs it in its
# NCHWc layout (ORT_ENABLE_ALL), with a grouped convolution, BatchNorm, Scale and pooling.
BLOCKED_NET = """
name: "Blocked"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 20 dim: 20 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 32 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 64 kernel_size: 3 pad: 1 group: 2 bias_term: false } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "conv2" }
layer { name: "sc2" type: "Scale" bottom: "conv2" top: "conv2" scale_param { bias_term: true } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool2" top: "score"
        convolution_param { num_output: 16 kernel_size: 1 } }
"""


@pytest.mark.parametrize("size", [(20, 20), (27, 33)])
def test_onnx_in_its_blocked_layout_matches_the_reference(size):
    from viewer.engines.onnx_engine import OnnxEngine

    param, _ = model_io.parse_prototxt(BLOCKED_NET, "blocked.prototxt")
    net = random_biases(init_weights(param, seed=12), 12)
    rng = np.random.default_rng(12)
    net.weights["bn2"] = [rng.normal(0, 1, 64).astype(np.float32),
                          rng.uniform(0.5, 2, 64).astype(np.float32), np.ones(1, np.float32)]
    engine = OnnxEngine(net)
    assert engine.blocked and not OnnxEngine(
        init_weights(model_io.parse_prototxt(ZOO_LAYERS_NET, "z")[0])).blocked
    data = _plate_input(*size, channels=3, seed=size[1]) / 64.0
    blobs = ["conv1", "conv2", "pool2", "score"]
    expected = create_engine("numpy", net).forward(data, blobs)
    actual = engine.forward(data, blobs)
    for blob in blobs:
        _assert_close(actual[blob], expected[blob], f"onnx blocked {blob} at {size}")


@pytest.mark.parametrize("engine", OTHERS)
@pytest.mark.parametrize("lrn", ["local_size: 5 alpha: 0.0001 beta: 0.75",
                                 "local_size: 3 alpha: 0.5 beta: 0.6 k: 2",
                                 "local_size: 5 alpha: 0.3 beta: 0.8 norm_region: WITHIN_CHANNEL"])
def test_lrn_matches_the_reference_for_any_window_power_and_constant(engine, lrn):
    """The onnx engine writes LRN as a banded 1x1 convolution and square roots for beta 0.75:
    other settings take the general path."""
    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 7 dim: 9 dim: 11 } } } '
            'layer { name: "norm" type: "LRN" bottom: "data" top: "norm" '
            f'lrn_param {{ {lrn} }} }}')
    net = init_weights(model_io.parse_prototxt(text, "lrn.prototxt")[0])
    data = np.random.default_rng(3).normal(0, 20, (1, 7, 9, 11)).astype(np.float32)
    if engine == "opencv" and "k: 2" in lrn:
        from viewer.errors import EngineError

        with pytest.raises(EngineError, match="OpenCV computes LRN 'norm' with k 1 instead"):
            create_engine(engine, net)
        return
    _assert_close(create_engine(engine, net).forward(data, ["norm"])["norm"],
                  create_engine("numpy", net).forward(data, ["norm"])["norm"], f"{engine} {lrn}")


# ---- what the OpenCV engine hands over in another form --------------------------------------

# Caffe stores a `transpose: true` InnerProduct's weights as inputs x outputs (here 27 x 6);
# the OpenCV engine gives OpenCV the usual outputs x inputs, which it reads.
TRANSPOSED_NET = """
name: "Transposed"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 2 dim: 5 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_h: 3 kernel_w: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 6 transpose: true } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip" top: "ip2"
        inner_product_param { num_output: 4 } }
"""


@pytest.mark.parametrize("engine", OTHERS)
def test_a_transposed_inner_product_matches_the_reference_and_stays_transposed(engine):
    param, _ = model_io.parse_prototxt(TRANSPOSED_NET, "transposed.prototxt")
    net = random_biases(init_weights(param, seed=6), 6)
    stored = net.weights["ip"][0].copy()
    assert stored.shape == (27, 6)
    data = np.random.default_rng(6).normal(0, 1, (2, 2, 5, 4)).astype(np.float32)
    expected = create_engine("numpy", net).forward(data, ["ip", "ip2"])
    actual = create_engine(engine, net).forward(data, ["ip", "ip2"])
    for blob in ("ip", "ip2"):
        _assert_close(actual[blob], expected[blob], f"{engine} {blob}")
    assert net.param.layer[2].inner_product_param.transpose       # the caller's net as it was
    np.testing.assert_array_equal(net.weights["ip"][0], stored)


@pytest.mark.parametrize("engine", OTHERS)
@pytest.mark.parametrize("slope", [np.array(0.25, np.float32),      # shared, as Caffe saves it
                                   np.array([0.25, -2.0], np.float32)])
def test_a_net_whose_only_weights_are_prelu_slopes(engine, slope):
    """OpenCV cannot make a 0-axis blob: its engine hands over a 1-element one."""
    shared = "true" if slope.ndim == 0 else "false"
    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } } '
            'layer { name: "prelu" type: "PReLU" bottom: "data" top: "out" '
            f'prelu_param {{ channel_shared: {shared} }} }} '
            'layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "out" top: "sum" '
            'eltwise_param { coeff: 2 coeff: 2 } }')
    net = init_weights(model_io.parse_prototxt(text, "prelu.prototxt")[0])
    net.weights["prelu"] = [slope]
    data = np.linspace(-4, 4, 18, dtype=np.float32).reshape(1, 2, 3, 3)
    out = create_engine(engine, net).forward(data, ["out", "sum"])
    prelu = np.where(data > 0, data, slope.reshape(-1, 1, 1) * data)
    _assert_close(out["out"], prelu, f"{engine} PReLU")
    _assert_close(out["sum"], 2 * data + 2 * prelu, f"{engine} Eltwise SUM with coefficients 2")
    assert net.weights["prelu"][0].ndim == slope.ndim


def test_opencv_failures_are_engine_errors_naming_the_input(lenet_fcn, monkeypatch):
    import cv2

    from viewer.errors import EngineError

    engine = create_engine("opencv", lenet_fcn)
    with pytest.raises(EngineError) as err:   # 10 rows, 9 columns: too small for the net
        engine.forward(np.zeros((1, 1, 10, 9), np.float32), ["ip2-alpha-conv"])
    assert str(err.value).startswith("OpenCV failed on a 9x10 input: ")
    assert "\n" not in str(err.value) and len(str(err.value)) > len("OpenCV failed on a 9x10 "
                                                                    "input: ")

    class Failing:
        """OpenCV's net as far as the engine uses it, failing as OpenCV 4.14 does."""
        def ignore(self, *args):
            pass

        setPreferableBackend = setPreferableTarget = enableFusion = setInput = ignore

        def forward(self, names):
            raise cv2.error("OpenCV(4.14.0) net_impl.cpp:1193: error: (-2:Unspecified error)\n"
                            "> (expected: 'total(os[i]) > 0'), where\n>     '0' is 0\n  \n")

    monkeypatch.setattr(cv2.dnn, "readNetFromCaffe", lambda proto, model: Failing())
    with pytest.raises(EngineError) as err:
        create_engine("opencv", lenet_fcn).forward(np.zeros((1, 1, 30, 29), np.float32),
                                                   ["ip2-alpha-conv"])
    assert str(err.value) == "OpenCV failed on a 29x30 input: >     '0' is 0"

    def refuse(proto, model):
        raise cv2.error("  Can't create layer \"x\" of type \"Swish\"  \n")

    monkeypatch.setattr(cv2.dnn, "readNetFromCaffe", refuse)
    with pytest.raises(EngineError) as err:
        create_engine("opencv", lenet_fcn)
    assert str(err.value) == (f"OpenCV cannot load {lenet_fcn.source}: Can't create layer "
                              '"x" of type "Swish"')
    monkeypatch.delattr(cv2.dnn, "readNetFromCaffe")
    with pytest.raises(EngineError) as err:
        create_engine("opencv", lenet_fcn)
    assert str(err.value) == (f"OpenCV {cv2.__version__} has no Caffe importer; install "
                              "opencv-python-headless<5")


@pytest.mark.parametrize("engine", OTHERS)
@pytest.mark.parametrize("flatten, shape", [("", (2, 60)), ("axis: 2", (2, 3, 20)),
                                            ("axis: -3 end_axis: -2", (2, 12, 5)),
                                            ("axis: 0 end_axis: 1", (6, 4, 5))])
def test_flatten_merges_the_axes_it_names(engine, flatten, shape):
    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } } '
            'layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" } '
            f'layer {{ name: "flat" type: "Flatten" bottom: "relu" top: "flat" '
            f'flatten_param {{ {flatten} }} }}')
    net = init_weights(model_io.parse_prototxt(text, "flatten.prototxt")[0])
    data = np.random.default_rng(4).normal(0, 1, (2, 3, 4, 5)).astype(np.float32)
    out = create_engine(engine, net).forward(data, ["flat"])["flat"]
    _assert_close(out, np.maximum(data, 0).reshape(shape), f"{engine} Flatten {flatten}")


@pytest.mark.parametrize("engine", ["blas", "onnx"])               # finemap.RAREFYING
@pytest.mark.parametrize("pool, stride", [("AVE", 1), ("MAX", 1), ("AVE", 2)])
def test_dilated_pooling_of_a_rarefied_net_matches_the_reference(engine, pool, stride):
    """Rarefied nets pool with dilated windows: non-square dilation, kernel and pad."""
    from viewer.errors import EngineError

    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 2 dim: 13 dim: 11 } } } '
            'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
            f'pooling_param {{ pool: {pool} kernel_h: 3 kernel_w: 2 stride: {stride} '
            'pad_h: 3 pad_w: 1 dilation: 3 dilation: 2 } }')
    net = init_weights(model_io.parse_prototxt(text, "dilated.prototxt")[0])
    data = np.random.default_rng(7).normal(0, 1, (1, 2, 13, 11)).astype(np.float32)
    if engine == "onnx" and (pool, stride) == ("AVE", 2):
        with pytest.raises(EngineError, match=r"^the onnx engine runs a dilated AVE pooling "
                                              r"\('pool'\) only at stride 1$"):
            create_engine(engine, net).forward(data, ["pool"])
        return
    expected = create_engine("numpy", net).forward(data, ["pool"])["pool"]
    _assert_close(create_engine(engine, net).forward(data, ["pool"])["pool"], expected,
                  f"{engine} dilated {pool} at stride {stride}")


@pytest.mark.parametrize("engine", OTHERS)
def test_global_pooling_and_an_explicit_split_match_the_reference(engine):
    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 3 dim: 7 dim: 5 } } } '
            'layer { name: "split" type: "Split" bottom: "data" top: "a" top: "b" } '
            'layer { name: "gmax" type: "Pooling" bottom: "a" top: "gmax" '
            'pooling_param { pool: MAX global_pooling: true } } '
            'layer { name: "gave" type: "Pooling" bottom: "b" top: "gave" '
            'pooling_param { pool: AVE global_pooling: true } }')
    net = init_weights(model_io.parse_prototxt(text, "global.prototxt")[0])
    data = np.random.default_rng(9).normal(0, 1, (1, 3, 7, 5)).astype(np.float32)
    out = create_engine(engine, net).forward(data, ["b", "gmax", "gave"])
    _assert_close(out["b"], data, f"{engine} Split")
    _assert_close(out["gmax"], data.max(axis=(2, 3), keepdims=True), f"{engine} global MAX")
    _assert_close(out["gave"], data.mean(axis=(2, 3), keepdims=True), f"{engine} global AVE")



@pytest.mark.parametrize("engine", OTHERS)
def test_power_and_a_relu_written_over_the_input_match_the_reference(engine):
    """Power with every term (shift, scale, power 2), and a ReLU in place on the input blob."""
    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 2 dim: 3 dim: 4 } } } '
            'layer { name: "relu" type: "ReLU" bottom: "data" top: "data" } '
            'layer { name: "sq" type: "Power" bottom: "data" top: "sq" '
            'power_param { power: 2 scale: 0.5 shift: 1 } }')
    net = init_weights(model_io.parse_prototxt(text, "power.prototxt")[0])
    data = np.linspace(-3, 3, 24, dtype=np.float32).reshape(1, 2, 3, 4)
    out = create_engine(engine, net).forward(data, ["sq"])["sq"]
    _assert_close(out, (0.5 * np.maximum(data, 0) + 1) ** 2, f"{engine} Power")

