"""Filter rarefaction: a pure net -> net transform whose fine map equals the classifier per cell."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.net.weights import init_weights
from viewer import surgery
from viewer.caffe import model_io
from viewer.net import netgraph
from viewer.surgery import rarefaction
from viewer.engines import create_engine
from viewer.errors import SurgeryError
from viewer.net.geometry import geometry_of

# Odd strides and padding: a stride-3 padded convolution, then a padded AVE pooling (dilated
# by 3 once rarefied) and a padded stride-3 MAX pooling (dilated by 3), a 2x2 classifier head.
ODD_NET = """
name: "OddNet"
input: "image" input_dim: 1 input_dim: 2 input_dim: 23 input_dim: 23
layer { name: "conv_a" type: "Convolution" bottom: "image" top: "conv_a"
        convolution_param { num_output: 6 kernel_size: 5 stride: 3 pad: 1 } }
layer { name: "relu_a" type: "ReLU" bottom: "conv_a" top: "conv_a" }
layer { name: "smooth" type: "Pooling" bottom: "conv_a" top: "smooth"
        pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "pool_b" type: "Pooling" bottom: "smooth" top: "pool_b"
        pooling_param { pool: MAX kernel_size: 3 stride: 3 pad: 1 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool_b" top: "fc"
        inner_product_param { num_output: 4 } }
"""


@pytest.fixture
def odd_net() -> model_io.CaffeNet:
    param, _ = model_io.parse_prototxt(ODD_NET, "odd.prototxt")
    return init_weights(param, seed=5)


def fcn_of(net: model_io.CaffeNet) -> model_io.CaffeNet:
    return surgery.make_fully_convolutional(net).net


def test_lenet_at_stride_1_dilates_every_kernel_after_a_removed_stride(lenet):
    fcn = fcn_of(lenet)
    before = model_io.prototxt_text(fcn.param)
    fine = rarefaction.rarefy(fcn, 1)
    assert [c.describe() for c in fine.changes] == [
        "pool1 (Pooling): stride 2 -> 1",
        "conv2 (Convolution): dilation 1 -> 2",
        "pool2 (Pooling): stride 2 -> 1, dilation 1 -> 2",
        "ip1-conv (Convolution): dilation 1 -> 4"]
    assert model_io.prototxt_text(fcn.param) == before   # a pure function
    native, finer = geometry_of(fcn, "ip2-alpha-conv"), geometry_of(fine.net, "ip2-alpha-conv")
    assert (finer.stride, finer.offset, finer.receptive_field) == \
        ((1, 1), native.offset, native.receptive_field)


def test_an_intermediate_stride_keeps_the_first_pooling(lenet):
    fine = rarefaction.rarefy(fcn_of(lenet), 2)
    assert [c.describe() for c in fine.changes] == [
        "pool2 (Pooling): stride 2 -> 1", "ip1-conv (Convolution): dilation 1 -> 2"]
    assert geometry_of(fine.net, "ip2-alpha-conv").stride == (2, 2)


def test_lenet_stride_1_cell_is_the_classifier_on_its_window(lenet):
    """Cell (i, j) of the stride-1 map is the classifier on the 28x28 window at (i, j)."""
    fcn = fcn_of(lenet)
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (1, 1, 37, 45)).astype(np.float32)
    fine = create_engine("numpy", rarefaction.rarefy(fcn, 1).net)
    dense = fine.forward(image, ["ip2-alpha-conv"])["ip2-alpha-conv"][0]
    assert dense.shape[1:] == (37 - 27, 45 - 27)
    windows = np.concatenate([image[:, :, i:i + 28, j:j + 28]
                              for i in range(dense.shape[1]) for j in range(dense.shape[2])])
    expected = create_engine("numpy", lenet).forward(windows, ["ip2-alpha"])["ip2-alpha"]
    got = dense.reshape(dense.shape[0], -1).T
    np.testing.assert_allclose(got, expected, atol=1e-4)
    native = create_engine("numpy", fcn).forward(image, ["ip2-alpha-conv"])["ip2-alpha-conv"][0]
    coarse = dense[:, ::4, ::4]
    np.testing.assert_allclose(coarse, native[:, :coarse.shape[1], :coarse.shape[2]], atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_the_other_net_rarefied_equals_its_native_map(other_net, stride):
    """Padding, AVE pooling with ceil rounding, a grouped stride-2 convolution, LRN."""
    fcn = fcn_of(other_net)
    data = np.random.default_rng(2).uniform(0, 255, (1, 3, 61, 70)).astype(np.float32)
    fine = rarefaction.rarefy(fcn, stride)
    check = rarefaction.verify_rarefaction(fcn, fine, data, "numpy")
    assert check.passed, check.max_abs_diff
    assert geometry_of(fine.net, "fc2-conv").stride == (stride, stride)


@pytest.mark.parametrize("stride", [1, 3])
def test_odd_strides_and_a_dilated_average_pooling(odd_net, stride):
    fcn = fcn_of(odd_net)
    fine = rarefaction.rarefy(fcn, stride)
    assert rarefaction.native_stride(fcn) == (9, 9)
    data = np.random.default_rng(3).uniform(0, 255, (1, 2, 50, 47)).astype(np.float32)
    check = rarefaction.verify_rarefaction(fcn, fine, data, "numpy")
    assert check.passed, check.max_abs_diff
    if stride == 1:
        assert "smooth (Pooling): dilation 1 -> 3, pad 1 -> 3" in \
            [c.describe() for c in fine.changes]


def test_a_stride_that_does_not_divide_is_refused_with_the_choices(lenet):
    with pytest.raises(SurgeryError, match="stride 3 does not divide the net's native "
                                           "stride 4; choose one of 1, 2, 4"):
        rarefaction.rarefy(fcn_of(lenet), 3)


def test_a_layer_without_dilation_cannot_be_rarefied(other_net):
    fcn = fcn_of(other_net)
    for layer in fcn.param.layer:
        if layer.type == "LRN":
            layer.lrn_param.norm_region = layer.lrn_param.WITHIN_CHANNEL
    with pytest.raises(rarefaction.RarefactionError, match="LRN 'norm_b' normalises within"):
        rarefaction.rarefy(fcn, 1)
    assert netgraph.infer_shapes(rarefaction.rarefy(fcn, 4).net.param)  # before: no dilation
