"""Net surgery: exact equivalence, the right kernel shapes, and refusal of truncation."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.net.weights import init_weights
from viewer import surgery
from viewer.caffe import model_io
from viewer.net import netgraph
from viewer.engines import create_engine
from viewer.errors import ModelError, SurgeryError


def test_lenet_inner_products_get_the_kernel_of_their_input(lenet, classes):
    result = surgery.make_fully_convolutional(lenet)
    shapes = [(c.layer, c.new_layer, c.old_shape, c.new_shape) for c in result.conversions]
    assert shapes == [("ip1", "ip1-conv", (500, 800), (500, 50, 4, 4)),
                      ("ip2-alpha", "ip2-alpha-conv", (classes, 500), (classes, 500, 1, 1))]
    np.testing.assert_array_equal(result.net.weights["ip1-conv"][0].reshape(500, 800),
                                  lenet.weights["ip1"][0])
    np.testing.assert_array_equal(result.net.weights["ip1-conv"][1], lenet.weights["ip1"][1])
    assert surgery.is_fully_convolutional(result.net.param)


def test_surgery_leaves_the_classifier_untouched(lenet):
    before = {k: [a.copy() for a in v] for k, v in lenet.weights.items()}
    text = model_io.prototxt_text(lenet.param)
    surgery.make_fully_convolutional(lenet)
    assert model_io.prototxt_text(lenet.param) == text
    for name, blobs in before.items():
        for a, b in zip(blobs, lenet.weights[name]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("engine", ["numpy", "opencv"])
def test_verification_is_exact_for_lenet(lenet, engine):
    fcn = surgery.make_fully_convolutional(lenet).net
    check = surgery.verify_equivalence(lenet, fcn, count=4, engine=engine)
    assert check.inputs == 8
    assert check.max_abs_diff < 1e-5
    assert check.passed


@pytest.mark.parametrize("engine", ["numpy", "opencv"])
def test_verification_is_exact_for_a_net_of_another_shape(other_net, engine):
    result = surgery.make_fully_convolutional(other_net)
    assert [c.new_shape for c in result.conversions] == [(30, 12, 4, 4), (5, 30, 1, 1)]
    assert "flat" not in [l.name for l in result.net.param.layer]
    check = surgery.verify_equivalence(other_net, result.net, count=4, engine=engine)
    assert check.max_abs_diff < (1e-5 if engine == "numpy" else surgery.TOLERANCE)


def test_verification_detects_a_wrong_transplant(lenet):
    fcn = surgery.make_fully_convolutional(lenet).net
    fcn.weights["ip1-conv"][0] = fcn.weights["ip1-conv"][0][:, :, ::-1, :].copy()
    assert not surgery.verify_equivalence(lenet, fcn, count=2, engine="numpy").passed


def test_transpose_inner_product_is_converted(lenet, classes):
    lenet.param.layer[-1].inner_product_param.transpose = True
    lenet.weights["ip2-alpha"][0] = lenet.weights["ip2-alpha"][0].T.copy()
    fcn = surgery.make_fully_convolutional(lenet).net
    assert fcn.weights["ip2-alpha-conv"][0].shape == (classes, 500, 1, 1)
    assert surgery.verify_equivalence(lenet, fcn, count=2, engine="numpy").max_abs_diff < 1e-5


def test_inner_product_on_another_axis_is_refused(lenet):
    lenet.param.layer[-1].inner_product_param.axis = 2
    with pytest.raises(ModelError, match="'ip2-alpha' uses axis 2"):
        surgery.make_fully_convolutional(lenet)


def test_net_without_inner_product_is_refused(lenet):
    fcn = surgery.make_fully_convolutional(lenet).net
    with pytest.raises(SurgeryError, match="no InnerProduct layer and no global pooling"):
        surgery.make_fully_convolutional(fcn)


# No padding anywhere, so every cell of the dense map is exactly the classifier on its crop.
GLOBAL_POOLING_NET = """
name: "GlobalPooled"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 14 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool1" top: "score"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "pool_g" type: "Pooling" bottom: "score" top: "pool_g"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "prob" type: "Softmax" bottom: "pool_g" top: "prob" }
"""


@pytest.mark.parametrize("engine", ["numpy", "blas", "onnx", "opencv"])
def test_global_pooling_becomes_the_classifier_sliding(engine):
    from conftest import random_biases

    param, _ = model_io.parse_prototxt(GLOBAL_POOLING_NET, "global.prototxt")
    classifier = random_biases(init_weights(param, seed=6), 6)
    assert not surgery.is_fully_convolutional(classifier.param)
    result = surgery.make_fully_convolutional(classifier)
    assert [c.as_dict() for c in result.conversions] == [
        {"layer": "pool_g", "new_layer": "pool_g", "type": "Pooling", "global_pooling": True,
         "kernel": [6, 5], "stride": [1, 1]}]
    assert surgery.is_fully_convolutional(result.net.param)
    assert surgery.verify_equivalence(classifier, result.net, count=2, engine=engine).passed
    image = np.random.default_rng(1).uniform(0, 255, (1, 2, 22, 20)).astype(np.float32)
    dense = create_engine(engine, result.net).forward(image, ["pool_g"])["pool_g"][0]
    assert dense.shape == (4, 5, 5)   # (22 - 14) / 2 + 1, (20 - 12) / 2 + 1
    crops = np.concatenate([image[:, :, 2 * i:2 * i + 14, 2 * j:2 * j + 12]
                            for i in range(5) for j in range(5)])
    alone = create_engine(engine, classifier).forward(crops, ["pool_g"])["pool_g"]
    np.testing.assert_allclose(dense.reshape(4, -1).T, alone[:, :, 0, 0], atol=1e-4, rtol=1e-5)


def _tutorial_target(lenet, kernel: int):
    """The tutorial's hand-written fully convolutional prototxt, with a chosen ip1 kernel."""
    text = model_io.prototxt_text(surgery.make_fully_convolutional(lenet).net.param)
    text = text.replace("kernel_size: 4", f"kernel_size: {kernel}")
    return model_io.parse_prototxt(text, "featuremap.prototxt")[0]


def test_transplant_into_a_correct_user_prototxt(lenet):
    result = surgery.transplant(lenet, _tutorial_target(lenet, 4), "featuremap.prototxt")
    assert [c.new_layer for c in result.conversions] == ["ip1-conv", "ip2-alpha-conv"]
    check = surgery.verify_equivalence(lenet, result.net, count=2, engine="numpy")
    assert check.max_abs_diff < 1e-5


def test_transplant_refuses_the_tutorials_1x1_kernel(lenet):
    with pytest.raises(SurgeryError) as err:
        surgery.transplant(lenet, _tutorial_target(lenet, 1), "featuremap.prototxt")
    message = str(err.value)
    assert "'ip1-conv' has a 1x1 kernel" in message
    assert "the kernel must be 4x4, not 1x1" in message


def test_transplant_names_a_missing_target_layer(lenet):
    target = _tutorial_target(lenet, 4)
    target.layer[-1].name = "scores"
    with pytest.raises(SurgeryError, match="no layer 'ip2-alpha-conv'"):
        surgery.transplant(lenet, target)


def test_fully_convolutional_output_at_each_cell_is_the_classifier(other_net):
    """Beyond 1x1 outputs: the dense map of a larger input equals the classifier per window.

    That holds when the classifier sees no padding and its pooling windows fit exactly: a
    padded or ceil-overhanging classifier sees zeros where the dense pass sees neighbouring
    pixels. So the other net is reshaped here to fit a 36x36 input exactly.
    """
    text = model_io.prototxt_text(other_net.param).replace("dim: 32", "dim: 36")
    param, _ = model_io.parse_prototxt(text)
    param.input_dim[:] = [1, 3, 36, 36]
    param.layer[0].convolution_param.ClearField("pad")
    param.layer[2].pooling_param.kernel_size = 2
    param.layer[5].pooling_param.ClearField("pad")
    classifier = init_weights(param, seed=11)
    fcn = surgery.make_fully_convolutional(classifier).net
    rng = np.random.default_rng(5)
    image = rng.uniform(0, 255, (1, 3, 52, 60)).astype(np.float32)
    dense = create_engine("numpy", fcn).forward(image, ["fc2-conv"])["fc2-conv"][0]
    from viewer.net.geometry import geometry_of

    geo = geometry_of(fcn, "fc2-conv")
    assert (geo.stride, geo.offset, geo.receptive_field) == ((8, 8), (0, 0), (36, 36))
    rows, cols = geo.cells_inside(52, 60)
    assert (rows, cols) == (range(3), range(4))
    engine = create_engine("numpy", classifier)
    for i in rows:
        for j in cols:
            crop = image[:, :, 8 * i:8 * i + 36, 8 * j:8 * j + 36]
            expected = engine.forward(crop, ["fc2"])["fc2"][0]
            np.testing.assert_allclose(dense[:, i, j], expected, rtol=1e-5, atol=1e-5)


def test_surgered_net_accepts_any_input_size(lenet, classes):
    fcn = surgery.make_fully_convolutional(lenet).net
    shapes = netgraph.infer_shapes(fcn.param, {"data": (1, 1, 290, 720)})
    assert shapes["ip2-alpha-conv"] == (1, classes, 67, 174)


@pytest.mark.parametrize("engine", ["numpy", "opencv"])
def test_a_non_square_net_gets_the_non_square_kernel_of_its_input(nonsquare_net, engine):
    """ip1 reads a 6x4x6 blob: its convolution is 4 high and 6 wide, the weights the same
    numbers in (channel, row, column) order, and the scores those of the classifier."""
    result = surgery.make_fully_convolutional(nonsquare_net)
    assert [(c.old_shape, c.new_shape) for c in result.conversions] == [
        ((7, 144), (7, 6, 4, 6)), ((5, 7), (5, 7, 1, 1))]
    p = {l.name: l for l in result.net.param.layer}["ip1-conv"].convolution_param
    assert (p.kernel_h, p.kernel_w, list(p.kernel_size)) == (4, 6, [])
    np.testing.assert_array_equal(result.net.weights["ip1-conv"][0],
                                  nonsquare_net.weights["ip1"][0].reshape(7, 6, 4, 6))
    shapes = netgraph.infer_shapes(result.net.param, {"data": (1, 2, 47, 41)})
    assert shapes["ip2-conv"] == (1, 5, 5, 4)
    check = surgery.verify_equivalence(nonsquare_net, result.net, count=3, engine=engine)
    assert check.largest > 1.0
    assert check.max_abs_diff < (1e-5 if engine == "numpy" else surgery.TOLERANCE)


def test_conversions_read_as_one_line_and_as_json(nonsquare_net):
    ip1, ip2 = surgery.make_fully_convolutional(nonsquare_net).conversions
    assert surgery.conversion_text(ip1) == "ip1 7x144 -> ip1-conv 7x6x4x6"
    assert ip2.as_dict() == {"layer": "ip2", "new_layer": "ip2-conv", "type": "InnerProduct",
                             "old_shape": [5, 7], "new_shape": [5, 7, 1, 1]}
    pooling = surgery.Conversion("pool5", "pool5", (), (6, 13), kind="Pooling")
    assert surgery.conversion_text(pooling) == "pool5 global -> pool5 6x13 kernel, stride 1"
    assert pooling.as_dict() == {"layer": "pool5", "new_layer": "pool5", "type": "Pooling",
                                 "global_pooling": True, "kernel": [6, 13], "stride": [1, 1]}


def test_check_windows_are_noise_then_dark_glyphs_on_light_ground():
    windows = surgery.probe_windows((1, 2, 23, 30), 3, seed=4)
    assert windows.shape == (6, 2, 23, 30) and windows.dtype == np.float32
    noise, glyphs = windows[:3], windows[3:]
    assert noise.min() >= 0 and noise.max() <= 255 and 110 < noise.mean() < 145
    for glyph in glyphs:
        assert np.array_equal(glyph[0], glyph[1])                   # one gray picture
        assert 170 <= np.median(glyph) <= 250 and glyph.min() < 120  # light ground, a dark stroke
    np.testing.assert_array_equal(windows, surgery.probe_windows((1, 2, 23, 30), 3, seed=4))
    assert not np.array_equal(windows, surgery.probe_windows((1, 2, 23, 30), 3, seed=5))


def test_transplant_names_a_non_square_kernel_the_wrong_way_round(nonsquare_net):
    text = model_io.prototxt_text(surgery.make_fully_convolutional(nonsquare_net).net.param)
    target = model_io.parse_prototxt(text.replace("kernel_h: 4\n    kernel_w: 6",
                                                  "kernel_h: 6\n    kernel_w: 4"))[0]
    with pytest.raises(SurgeryError) as err:
        surgery.transplant(nonsquare_net, target, "mine.prototxt")
    assert str(err.value) == (
        "mine.prototxt: layer 'ip1-conv' has a 6x4 kernel, but 'ip1' reads a 6x4x6 blob, so the "
        "kernel must be 4x6, not 6x4 (a smaller kernel would silently drop weights)")


def _nonsquare_target(net, old: str = "", new: str = ""):
    """The non-square net's fully convolutional prototxt, with one piece of text changed."""
    text = model_io.prototxt_text(surgery.make_fully_convolutional(net).net.param)
    assert old in text
    return model_io.parse_prototxt(text.replace(old, new), "mine.prototxt")[0]


IP1_CONV = "num_output: 7\n    kernel_h: 4\n    kernel_w: 6"
SLIDING = ("mine.prototxt: layer 'ip1-conv' must have stride 1, no pad and no dilation to equal an "
           "InnerProduct")


def test_transplant_reports_each_conversion_and_names_the_target(nonsquare_net):
    result = surgery.transplant(nonsquare_net, _nonsquare_target(nonsquare_net), "mine.prototxt")
    assert result.conversions == [
        surgery.Conversion("ip1", "ip1-conv", (7, 144), (7, 6, 4, 6)),
        surgery.Conversion("ip2", "ip2-conv", (5, 7), (5, 7, 1, 1))]
    assert result.net.source == "mine.prototxt"
    np.testing.assert_array_equal(result.net.weights["ip1-conv"][0],
                                  nonsquare_net.weights["ip1"][0].reshape(7, 6, 4, 6))
    np.testing.assert_array_equal(result.net.weights["conv2"][1],
                                  nonsquare_net.weights["conv2"][1])


@pytest.mark.parametrize("old, new, message", [
    ('type: "Convolution"\n  bottom: "pool2"', 'type: "Pooling"\n  bottom: "pool2"',
     "mine.prototxt: layer 'ip1-conv' should be a Convolution to receive the weights of 'ip1', "
     "but it is Pooling"),
    (IP1_CONV, IP1_CONV.replace("7", "8"),
     "mine.prototxt: layer 'ip1-conv' has num_output 8, but 'ip1' has 7"),
    (IP1_CONV, IP1_CONV + "\n    stride_h: 2\n    stride_w: 1", SLIDING),
    (IP1_CONV, IP1_CONV + "\n    pad_w: 1\n    pad_h: 0", SLIDING),
    (IP1_CONV, IP1_CONV + "\n    dilation: 2", SLIDING),
    ("num_output: 4", "num_output: 3",
     "mine.prototxt does not fit the classifier: layer 'conv1': shape mismatch, the prototxt "
     "implies weights of shape (3, 2, 3, 5), but the weights of nonsquare.prototxt holds "
     "(4, 2, 3, 5)"),
])
def test_transplant_refuses_a_target_that_does_not_equal_the_classifier(nonsquare_net, old, new,
                                                                       message):
    nonsquare_net.source = "nonsquare.prototxt"
    with pytest.raises(SurgeryError) as err:
        surgery.transplant(nonsquare_net, _nonsquare_target(nonsquare_net, old, new),
                           "mine.prototxt")
    assert str(err.value) == message


def test_transplant_names_what_the_target_lacks(lenet):
    with pytest.raises(SurgeryError) as err:
        surgery.transplant(lenet, lenet.param)
    assert str(err.value) == ("target prototxt still has InnerProduct layers (ip1, ip2-alpha): it "
                              "is not fully convolutional")
    target = _tutorial_target(lenet, 4)
    target.layer[-1].name = "scores"
    with pytest.raises(SurgeryError) as err:
        surgery.transplant(lenet, target)
    assert str(err.value) == ("the target prototxt has no layer 'ip2-alpha-conv' to receive the "
                              "weights of 'ip2-alpha' (its convolutions: conv1, conv2, ip1-conv, "
                              "scores)")


def _classifier(text: str, seed: int = 2):
    param, _ = model_io.parse_prototxt(text)
    net = init_weights(param, seed=seed)
    net.source = "small.prototxt"
    return net


SMALL = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 3 bias_term: false
                              weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def test_an_inner_product_keeps_its_settings_as_a_convolution():
    result = surgery.make_fully_convolutional(_classifier(SMALL))
    conv = result.net.param.layer[1]
    p = conv.convolution_param
    assert (conv.name, list(p.kernel_size), p.HasField("bias_term"), p.bias_term) == (
        "fc-conv", [6], True, False)
    assert (p.weight_filler.type, p.weight_filler.std) == ("gaussian", 0.5)
    assert len(result.net.weights["fc-conv"]) == 1
    assert (result.net.param.name, result.net.source) == (
        "net-fullconv", "small.prototxt (fully convolutional)")
    named = _classifier('name: "Tiny"\n' + SMALL.replace(
        "weight_filler", 'bias_filler { type: "constant" value: 0.25 } weight_filler'))
    assert surgery.make_fully_convolutional(named).net.param.name == "Tiny-fullconv"
    assert surgery.make_fully_convolutional(
        named).net.param.layer[1].convolution_param.bias_filler.value == 0.25


@pytest.mark.parametrize("text, message", [
    (SMALL.replace("dim: 6 dim: 6", "dim: 6"),
     "InnerProduct 'fc' reads a 3-D blob (1, 1, 6); only 2-D and 4-D inputs can become "
     "convolutions"),
    (SMALL.replace('top: "prob"', 'top: "prob" softmax_param { axis: -1 }'),
     "Softmax 'prob' uses axis -1; a dense map needs the class axis 1"),
])
def test_surgery_refuses_what_no_convolution_can_equal(text, message):
    with pytest.raises(SurgeryError) as err:
        surgery.make_fully_convolutional(_classifier(text))
    assert str(err.value) == message


def test_a_fully_convolutional_net_is_named_with_nothing_to_convert(lenet):
    fcn = surgery.make_fully_convolutional(lenet).net
    with pytest.raises(SurgeryError) as err:
        surgery.make_fully_convolutional(fcn)
    assert str(err.value) == (f"{fcn.source} has no InnerProduct layer and no global pooling: "
                              "nothing to convert (it is already fully convolutional)")


def test_a_square_global_pooling_gets_one_kernel_size():
    text = GLOBAL_POOLING_NET.replace("dim: 14 dim: 12", "dim: 12 dim: 12")
    classifier = _classifier(text)
    result = surgery.fix_global_pooling(classifier)
    p = {l.name: l for l in result.net.param.layer}["pool_g"].pooling_param
    assert (p.kernel_size, p.kernel_h, p.kernel_w, p.HasField("global_pooling")) == (5, 0, 0, False)
    assert result.conversions == [surgery.Conversion("pool_g", "pool_g", (), (5, 5), "Pooling")]
    assert result.net.source == "small.prototxt"
    assert surgery.make_fully_convolutional(classifier).net.source == \
        "small.prototxt (fully convolutional)"


def test_the_check_runs_8_windows_of_each_kind_from_seed_0_by_default(nonsquare_net):
    fcn = surgery.make_fully_convolutional(nonsquare_net).net
    default = surgery.verify_equivalence(nonsquare_net, fcn, engine="numpy")
    assert default == surgery.verify_equivalence(nonsquare_net, fcn, 8, "numpy", seed=0)
    assert (default.inputs, default.engine) == (16, "numpy")
    other = surgery.verify_equivalence(nonsquare_net, fcn, 1, "numpy", seed=3)
    assert other.inputs == 2 and other.largest != surgery.verify_equivalence(
        nonsquare_net, fcn, 1, "numpy", seed=0).largest
    with pytest.raises(SurgeryError) as err:
        surgery.verify_equivalence(nonsquare_net, fcn, 0, "numpy")
    assert str(err.value) == "the equivalence check needs at least 1 window of each kind, got 0"


def test_the_check_windows_are_preprocessed_as_the_maps_will_be(nonsquare_net):
    from viewer.maps.preprocess import Transformer

    rng = np.random.default_rng(3)
    colour = rng.uniform(0, 255, (2, 3, 4, 5)).astype(np.float32)
    got = surgery.prepared_windows(colour, Transformer(3, (2, 1, 0), mean=(10.0, 20.0, 30.0)))
    np.testing.assert_allclose(got, colour[:, ::-1] - np.float32([10, 20, 30])[:, None, None])
    two = rng.uniform(0, 255, (2, 2, 4, 5)).astype(np.float32)       # the first channel is gray
    got = surgery.prepared_windows(two, Transformer(2, mean=(5.0, 5.0), input_scale=0.5))
    np.testing.assert_allclose(got, (two[:, [0, 0]] - 5) * 0.5)
    fcn = surgery.make_fully_convolutional(nonsquare_net).net
    check = surgery.verify_equivalence(nonsquare_net, fcn, 2, "numpy",
                                       transformer=Transformer(2, input_scale=0.01))
    assert check.passed and check.largest < surgery.verify_equivalence(
        nonsquare_net, fcn, 2, "numpy").largest


def test_a_check_that_would_not_fit_in_memory_is_refused_before_it_runs():
    from viewer.net import cost

    classifier = _classifier(GLOBAL_POOLING_NET.replace("dim: 14 dim: 12", "dim: 9000 dim: 7000"))
    fcn = surgery.make_fully_convolutional(classifier).net
    shape = (1, 2, 9000, 7000)
    # the windows (2 x 3 of them, float32) and one forward pass at that size
    need = 2 * 3 * 4 * 2 * 9000 * 7000 + cost.generic_peak_bytes(classifier, shape)
    with pytest.raises(SurgeryError) as err:
        surgery.verify_equivalence(classifier, fcn, 3, "numpy")
    assert str(err.value) == (
        f"small.prototxt declares an input of {shape}; checking the surgery on 6 such windows "
        f"would need {need / 2 ** 30:.1f} GB, more than the 2 GB limit: declare the "
        "classifier's real window size")
