"""Caffe's shape arithmetic on a net that is not square anywhere, worked out by hand."""
from __future__ import annotations

import pytest

import numpy as np

from conftest import NONSQUARE_NET
from viewer.net.weights import check_input_size, check_weights
from viewer.caffe import model_io
from viewer.net import netgraph
from viewer.errors import ModelError
from viewer.caffe.model_io import CaffeNet
from viewer.net.geometry import Geometry, geometry_of
from viewer.net.netgraph import Kernel


@pytest.fixture(scope="module")
def nonsquare():
    return model_io.parse_prototxt(NONSQUARE_NET, "nonsquare.prototxt")[0]


def test_every_blob_of_the_non_square_net_has_caffes_shape(nonsquare):
    assert netgraph.infer_shapes(nonsquare) == {
        "data": (1, 2, 23, 30),
        "conv1": (1, 4, 25, 14),   # (23 + 2*2 - 3)/1 + 1, (30 + 2*1 - 5)//2 + 1
        "pool1": (1, 4, 13, 12),   # ceil((25 + 2 - 2)/2) + 1 = 14 clipped to 13; (14 - 3) + 1
        "conv2": (1, 6, 9, 11),    # dilated span 5x2: 13 - 5 + 1, 12 - 2 + 1
        "pool2": (1, 6, 4, 6),     # ceil((9 + 2 - 3)/3) + 1, ceil((11 - 2)/2) + 1
        "ip1": (1, 7), "ip2": (1, 5), "prob": (1, 5)}


def test_a_larger_input_changes_each_axis_on_its_own(nonsquare):
    shapes = netgraph.infer_shapes(nonsquare, {"data": (2, 2, 47, 41)})
    assert [shapes[b] for b in ("conv1", "pool1", "conv2", "pool2")] == [
        (2, 4, 49, 20), (2, 4, 25, 18), (2, 6, 21, 17), (2, 6, 8, 9)]


def test_windows_and_parameter_shapes_keep_height_before_width(nonsquare):
    layers = {l.name: l for l in nonsquare.layer}
    assert netgraph.conv_kernel(layers["conv1"].convolution_param) == \
        Kernel((3, 5), (1, 2), (2, 1), (1, 1))
    conv2 = netgraph.conv_kernel(layers["conv2"].convolution_param)
    assert (conv2, conv2.extent) == (Kernel((3, 2), (1, 1), (0, 0), (2, 1)), (5, 2))
    assert netgraph.pool_kernel(layers["pool1"].pooling_param, (1, 4, 25, 14)) == \
        Kernel((2, 3), (2, 1), (1, 0))
    assert netgraph.param_shapes(layers["conv1"], (1, 2, 23, 30)) == [(4, 2, 3, 5), (4,)]
    assert netgraph.param_shapes(layers["conv2"], (1, 4, 13, 12)) == [(6, 4, 3, 2), (6,)]
    assert netgraph.param_shapes(layers["ip1"], (1, 6, 4, 6)) == [(7, 144), (7,)]
    shapes = netgraph.infer_shapes(nonsquare)
    # ip1 reads all of pool2's 4x6 cells, 6 and 4 pixels apart: 3 * 6 and 5 * 4 more pixels
    assert geometry_of(CaffeNet(nonsquare), "pool2", shapes=shapes) == Geometry((6, 4), (-5, -1), (16, 13))
    assert geometry_of(CaffeNet(nonsquare), "ip1", shapes=shapes) == Geometry((6, 4), (-5, -1), (34, 33))


@pytest.mark.parametrize("size, k, s, pad, ceil, out", [
    (25, 2, 2, 1, True, 13),    # the last window would start in the pad: Caffe drops it
    (24, 2, 2, 1, True, 13),
    (9, 3, 3, 1, True, 4),
    (10, 3, 2, 0, True, 5),
    (10, 3, 2, 0, False, 4),
    (10, 3, 1, 1, True, 10),
])
def test_pooled_size_rounds_and_clips_like_caffe(size, k, s, pad, ceil, out):
    assert netgraph.pooled_size(size, k, s, pad, ceil) == out


def test_an_input_smaller_than_the_dilated_span_is_refused(nonsquare):
    # pool1 is 3 rows high at a 3-row input: conv2's 3-tap kernel fits, its 5-row span does not
    with pytest.raises(ModelError, match="smaller than the 5x2 kernel of 'conv2'"):
        netgraph.infer_shapes(nonsquare, {"data": (1, 2, 3, 30)})


def test_shapes_and_counts_in_messages_stay_short():
    assert model_io.shape_text((1, 3, 28, 28)) == "1x3x28x28"
    exactly_60 = (10 ** 28, 10 ** 29)                     # 29 + 1 + 30 characters
    assert model_io.shape_text(exactly_60) == f"{10 ** 28}x{10 ** 29}"
    assert model_io.shape_text((10 ** 29, 10 ** 29)) == f"2-D, dimensions up to {10 ** 29}"
    assert model_io.count_text(10 ** 18 - 1) == "9" * 18
    assert model_io.count_text(10 ** 18) == "over 10^18"
    assert model_io.count_text(3 * 10 ** 40) == "over 10^40"


def _layers(text: str, shape=(1, 3, 8, 8)):
    dims = " ".join(f"dim: {d}" for d in shape)
    head = f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}'
    return model_io.parse_prototxt(head + text, "checks.prototxt")[0]


CONV = ('layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
        'convolution_param { num_output: 3 kernel_size: 3 pad: 1 } } ')
FC = 'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 4 } } '


@pytest.mark.parametrize("text, message", [
    ('layer { name: "e" type: "Eltwise" bottom: "data" top: "e" }',
     "Eltwise 'e' has 1 input; it needs at least 2"),
    (CONV + 'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "c" top: "e" }', None),
    ('layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" top: "e" '
     'eltwise_param { operation: PROD coeff: 1 coeff: 2 } }',
     "Eltwise 'e' gives coefficients to a PROD; only SUM takes them"),
    ('layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" bottom: "data" top: "e" '
     'eltwise_param { coeff: 1 coeff: 2 } }',
     "Eltwise 'e' has 2 coefficients for 3 inputs; give one per input"),
    ('layer { name: "b" type: "BatchNorm" bottom: "data" top: "b" '
     'batch_norm_param { use_global_stats: false } }',
     "BatchNorm 'b' sets use_global_stats: false; this viewer normalises with the stored "
     "statistics only (remove the setting)"),
    ('layer { name: "n" type: "LRN" bottom: "data" top: "n" lrn_param { local_size: 4 } }',
     "LRN 'n': local_size 4 must be odd (Caffe's LRN sums over 1, 3, 5, ... neighbours)"),
    (FC + 'layer { name: "n" type: "LRN" bottom: "fc" top: "n" lrn_param { local_size: 3 } }',
     "LRN 'n' needs a 4-D input, got 1x4"),
    (FC + 'layer { name: "b" type: "BatchNorm" bottom: "fc" top: "b" }', None),
])
def test_layer_checks_name_the_layer_and_the_rule(text, message):
    param = _layers(text)
    if message is None:                                   # allowed: shapes follow the input
        netgraph.infer_shapes(param)
        return
    with pytest.raises(ModelError) as err:
        netgraph.infer_shapes(param)
    assert str(err.value) == message


def test_eltwise_inputs_of_different_shapes_are_named():
    param = _layers(CONV.replace("pad: 1", "pad: 0") +
                    'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "c" top: "e" }')
    with pytest.raises(ModelError) as err:
        netgraph.infer_shapes(param)
    assert str(err.value) == ("Eltwise 'e' combines data (1, 3, 8, 8) and c (1, 3, 6, 6); its "
                              "inputs must have the same shape")


def _layer(name: str, kind: str, bottom: str = "data", top: str | None = None,
           params: str = "") -> str:
    """One layer of a test prototxt; `bottom` and `top` list blob names separated by spaces."""
    blobs = [f'bottom: "{b}"' for b in bottom.split()] + \
        [f'top: "{t}"' for t in (name if top is None else top).split()]
    return f'layer {{ name: "{name}" type: "{kind}" {" ".join(blobs)} {params} }} '


def _conv(name: str, params: str, bottom: str = "data") -> str:
    return _layer(name, "Convolution", bottom, params=f"convolution_param {{ {params} }}")


def _pool(params: str, bottom: str = "data") -> str:
    return _layer("p", "Pooling", bottom, params=f"pooling_param {{ {params} }}")


FLAT = _layer("f", "Flatten", params="flatten_param { axis: 0 }")      # (192,)
TOO_SMALL = "is smaller than the pooling window of 'p'"


@pytest.mark.parametrize("shape, text, message", [
    ((1, 3, 8, 8), FC + _conv("c", "num_output: 2 kernel_size: 1", "fc"),
     "Convolution 'c' needs a 4-D input, got (1, 4)"),
    ((1, 3, 8, 8), FC + _pool("kernel_size: 1", "fc"), "Pooling 'p' needs a 4-D input, got (1, 4)"),
    ((1, 3, 4, 9), _conv("c", "num_output: 2 kernel_size: 5"),
     "input 4x9 is smaller than the 5x5 kernel of 'c'"),
    ((1, 3, 8, 8), _conv("c", "num_output: 2"),
     "layer 'c' (Convolution) has kernel size 0x0; it must be at least 1"),
    ((1, 3, 8, 8), _conv("c", "num_output: 2 kernel_h: 3"),
     "layer 'c' (Convolution) has kernel size 3x0; it must be at least 1"),
    ((1, 3, 8, 8), _conv("c", "num_output: 2 kernel_size: 3 stride_h: 0 stride_w: 2"),
     "layer 'c' (Convolution) has stride 0x2; it must be at least 1"),
    ((1, 3, 8, 8), _conv("c", "num_output: 2 kernel_size: 3 dilation: 1 dilation: 0"),
     "layer 'c' (Convolution) has dilation 1x0; it must be at least 1"),
    ((1, 3, 8, 8), _conv("c", "num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3"),
     "Convolution 'c' gives 3 values for kernel_size; only 2-D convolutions run here"),
    ((1, 3, 8, 8), _conv("c", "num_output: 4 kernel_size: 3 group: 2"),
     "Convolution 'c': 3 input channels and num_output 4 do not split into 2 groups"),
    ((1, 3, 8, 8), _pool("pool: STOCHASTIC kernel_size: 2"),
     "Pooling 'p' uses STOCHASTIC pooling, which this viewer does not run; use MAX or AVE"),
    ((1, 3, 8, 8), _pool("kernel_size: 2 stride: 0"),
     "layer 'p' (Pooling) has stride 0x0; it must be at least 1"),
    ((1, 3, 8, 8), _pool("kernel_h: 2 kernel_w: 4 pad_h: 2 pad_w: 0"),
     "Pooling 'p' pads by 2x0, not less than its 2x4 kernel"),
    ((1, 3, 8, 8), _pool("kernel_h: 4 kernel_w: 2 pad_h: 0 pad_w: 2"),
     "Pooling 'p' pads by 0x2, not less than its 4x2 kernel"),
    # ceil rounding gives these windows one cell although they are larger than the input
    ((1, 3, 2, 9), _pool("kernel_h: 3 kernel_w: 2 stride: 2"), f"input 2x9 {TOO_SMALL}"),
    ((1, 3, 9, 2), _pool("kernel_h: 2 kernel_w: 3 stride: 2"), f"input 9x2 {TOO_SMALL}"),
    ((1, 3, 1, 8), _pool("kernel_h: 4 kernel_w: 2 pad_h: 1 stride: 2"), f"input 1x8 {TOO_SMALL}"),
    ((1, 3, 8, 1), _pool("kernel_h: 2 kernel_w: 4 pad_w: 1 stride: 2"), f"input 8x1 {TOO_SMALL}"),
    ((1, 3, 8, 8), FC.replace("num_output: 4", "num_output: 4 axis: 2"),
     "InnerProduct layer 'fc' uses axis 2; only axis 1 (one vector per image) can be made "
     "convolutional"),
    ((1, 3, 8, 8), _layer("f", "Flatten", params="flatten_param { axis: 4 }"),
     "layer 'f' (Flatten) has axis 4, outside the 4 axes of its input"),
    ((1, 3, 8, 8), _layer("f", "Flatten", params="flatten_param { end_axis: -5 }"),
     "layer 'f' (Flatten) has end_axis -5, outside the 4 axes of its input"),
    ((1, 3, 8, 8), _layer("f", "Flatten", params="flatten_param { axis: 2 end_axis: 1 }"),
     "Flatten 'f' has end_axis 1 before axis 2"),
    ((1, 3, 8, 8), _layer("j", "Concat", "data data", params="concat_param { axis: 4 }"),
     "layer 'j' (Concat) has axis 4, outside the 4 axes of its input"),
    ((1, 3, 8, 8), _conv("c1", "num_output: 2 kernel_size: 3 pad: 1") +
     _conv("c3", "num_output: 2 kernel_size: 3") + _layer("j", "Concat", "data c1 c3"),
     "Concat 'j' joins data (1, 3, 8, 8) and c3 (1, 2, 6, 6), which differ outside axis 1"),
    ((1, 3, 8, 8), FC + _layer("j", "Concat", "data fc"),
     "Concat 'j' joins data (1, 3, 8, 8) and fc (1, 4), which differ outside axis 1"),
    ((1, 3, 8, 8), CONV + _layer("s", "Scale", "data c"),
     "Scale 's' takes its factors from a second input 'c'; this viewer runs Scale with learned "
     "factors only"),
    ((1, 3, 8, 8), _layer("s", "Scale", params="scale_param { axis: 4 }"),
     "layer 's' (Scale) has axis 4, outside the 4 axes of its input"),
    ((1, 3, 8, 8), _layer("s", "Softmax", params="softmax_param { axis: 4 }"),
     "layer 's' (Softmax) has axis 4, outside the 4 axes of its input"),
    ((1, 3, 8, 8), FLAT + _layer("b", "BatchNorm", "f"),
     "BatchNorm 'b' needs an input with a channel axis, got (192,)"),
    ((1, 3, 8, 8), _layer("r", "ReLU", top=""), "layer 'r' (ReLU) has no top blob"),
    ((1, 3, 8, 8), _layer("r", "ReLU", bottom=""), "layer 'r' (ReLU) has no bottom blob"),
    ((1, 3, 8, 8), _layer("r", "ReLU", "nope"),
     "layer 'r' reads blob 'nope', which no earlier layer produces"),
    ((1, 3, 8, 8), CONV + _layer("r", "ReLU", "c", "data"),
     "layer 'r' (ReLU) writes blob 'data', which the net's input already produced; Caffe "
     "allows that only in place (top k = bottom k), otherwise the net has a cycle"),
    ((1, 3, 8, 8), CONV + _layer("r", "ReLU", "data", "c"),
     "layer 'r' (ReLU) writes blob 'c', which layer 'c' already produced; Caffe allows that "
     "only in place (top k = bottom k), otherwise the net has a cycle"),
    ((1, 3, 8, 8), _conv("c", "num_output: 1073741824 kernel_size: 1"),  # 2^30 x 64 cells
     "output of layer 'c' would hold 68719476736 elements (1x1073741824x8x8): too large"),
    ((1, 0, 8, 8), CONV, "input 'data' has an empty or negative shape 1x0x8x8"),
])
def test_a_bad_layer_is_refused_with_its_exact_message(shape, text, message):
    with pytest.raises(ModelError) as err:
        netgraph.infer_shapes(_layers(text, shape))
    assert str(err.value) == message


@pytest.mark.parametrize("text, message", [
    ('layer { name: "in" type: "Input" top: "a" top: "b" '
     'input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }',
     "net declares 2 inputs ('a', 'b'); this viewer feeds one image, so it needs a net with "
     "one input"),
    ('layer { name: "in" type: "Input" top: "data" }', "Input layer 'in' has no shape"),
    ('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }',
     "net declares no input (no Input layer and no 'input:' field): give the deploy prototxt, "
     "not the train/test one"),
    ('input: "a" input: "b" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8 '
     'input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8',
     "net declares 2 inputs ('a', 'b'); this viewer feeds one image, so it needs a net with "
     "one input"),
    ('input: "data" input_dim: 1 input_dim: 1 input_dim: 28',
     "net declares 1 inputs but 3 input_dim values; Caffe needs 4 per input"),
    ('input: "data" input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28 input_dim: 5',
     "net declares 1 inputs but 5 input_dim values; Caffe needs 4 per input"),
    ('input: "a" input: "b" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }',
     "net declares 2 inputs but 1 input shapes"),
    ('input: "data" input_shape { dim: 1 dim: 2 dim: 32768 dim: 32769 }',
     "input 'data' would hold 2147549184 elements (1x2x32768x32769): too large"),
    ('input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8 ' +
     _layer("w", "Warp") + _layer("a", "Foo"),
     "unsupported layer type in 'a' (Foo), 'w' (Warp); this viewer runs "
     f"{', '.join(sorted(netgraph.RUNNABLE))}"),
])
def test_a_bad_input_declaration_is_refused_with_its_exact_message(text, message):
    param = model_io.parse_prototxt(text, "inputs.prototxt")[0]
    with pytest.raises(ModelError) as err:
        netgraph.infer_shapes(param)
    assert str(err.value) == message


def test_the_largest_allowed_input_and_the_last_axis_from_the_end_are_accepted():
    param = model_io.parse_prototxt(
        'input: "data" input_shape { dim: 1 dim: 2 dim: 32768 dim: 32768 }', "big")[0]
    assert netgraph.input_shapes(param) == {"data": (1, 2, 32768, 32768)}   # 2^31 elements
    softmax = _layer("s", "Softmax", params="softmax_param { axis: -4 }")
    assert netgraph.infer_shapes(_layers(softmax))["s"] == (1, 3, 8, 8)


def test_shapes_through_every_kind_of_layer():
    text = (_conv("whole", "num_output: 2 kernel_size: 8") +
            _layer("g", "Pooling", params="pooling_param { pool: AVE global_pooling: true }") +
            _layer("one", "Pooling", params="pooling_param { kernel_size: 8 }") +
            _layer("flat", "Flatten") +
            _layer("mid", "Flatten", params="flatten_param { axis: 1 end_axis: 2 }") +
            _layer("same", "Flatten", params="flatten_param { axis: 2 end_axis: 2 }") +
            FLAT + _layer("r", "ReLU", "f") +
            _conv("c1", "num_output: 2 kernel_size: 3 pad: 1") +
            _conv("c2", "num_output: 5 kernel_size: 3 pad: 1") +
            _layer("j", "Concat", "data c1 c2") +
            _layer("last", "Concat", "data data data", params="concat_param { axis: -3 }") +
            _layer("split", "Split", top="s1 s2") + _layer("scale", "Scale"))
    shapes = netgraph.infer_shapes(_layers(text, (1, 3, 8, 8)))
    assert shapes == {
        "data": (1, 3, 8, 8), "whole": (1, 2, 1, 1), "g": (1, 3, 1, 1), "one": (1, 3, 1, 1),
        "flat": (1, 192), "mid": (1, 24, 8), "same": (1, 3, 8, 8), "f": (192,), "r": (192,),
        "c1": (1, 2, 8, 8), "c2": (1, 5, 8, 8), "j": (1, 10, 8, 8), "last": (1, 9, 8, 8),
        "s1": (1, 3, 8, 8), "s2": (1, 3, 8, 8), "scale": (1, 3, 8, 8)}
    # a padded window that fits: 3 rows in 2 + 2 * 1 padded rows; the same across
    pad_rows = _pool("kernel_size: 3 pad_h: 1 pad_w: 0 stride: 2")
    assert netgraph.infer_shapes(_layers(pad_rows, (1, 3, 2, 8)))["p"] == (1, 3, 2, 4)
    pad_cols = _pool("kernel_size: 3 pad_h: 0 pad_w: 1 stride: 2")
    assert netgraph.infer_shapes(_layers(pad_cols, (1, 3, 8, 2)))["p"] == (1, 3, 4, 2)


def _first(text: str, shape=(1, 3, 8, 8)):
    """The layer after the input of a one-layer test net."""
    return _layers(text, shape).layer[1]


def test_pooling_windows_global_padded_and_dilated():
    glob = _first(_pool("global_pooling: true")).pooling_param
    assert netgraph.pool_kernel(glob, (1, 3, 5, 7)) == Kernel((5, 7), (1, 1), (0, 0))
    padded = _first(_pool("kernel_size: 3 pad: 1 dilation: 2")).pooling_param
    assert netgraph.pool_kernel(padded, (1, 3, 8, 8)) == Kernel((3, 3), (1, 1), (1, 1), (2, 2))


@pytest.mark.parametrize("text, bottom, shapes", [
    (_conv("c", "num_output: 2 kernel_h: 3 kernel_w: 1 bias_term: false"), (1, 3, 8, 8),
     [(2, 3, 3, 1)]),
    (FC.replace("num_output: 4", "num_output: 4 transpose: true bias_term: false"), (1, 3, 8, 8),
     [(192, 4)]),
    (_layer("s", "Scale", params="scale_param { bias_term: true }"), (1, 3, 8, 5),
     [(3,), (3,)]),
    (_layer("s", "Scale", params="scale_param { num_axes: -1 }"), (1, 3, 8, 5), [(3, 8, 5)]),
    (_layer("s", "Scale", params="scale_param { axis: 2 num_axes: 0 }"), (1, 3, 8, 5), [()]),
    (_layer("s", "Scale", params="scale_param { axis: -2 num_axes: 2 }"), (1, 3, 8, 5),
     [(8, 5)]),
    (_layer("b", "BatchNorm"), (1, 3, 8, 5), [(3,), (3,), (1,)]),
    (_layer("r", "PReLU"), (1, 3, 8, 5), [(3,)]),
    (_layer("r", "PReLU"), (1, 4), [(4,)]),
    (_layer("r", "PReLU"), (5,), [(1,)]),
    (_layer("r", "PReLU", params="prelu_param { channel_shared: true }"), (1, 3, 8, 5), [()]),
    (_layer("r", "ReLU"), (1, 3, 8, 5), []),
])
def test_parameter_shapes_of_each_learnable_layer(text, bottom, shapes):
    assert netgraph.param_shapes(_first(text), bottom) == shapes


@pytest.mark.parametrize("text, message", [
    (_conv("c", "num_output: 4 kernel_size: 3 group: 2"),
     "layer 'c': 3 channels do not split into 2 groups"),
    (_layer("s", "Scale", params="scale_param { axis: 3 num_axes: 2 }"),
     "Scale 's' spans 2 axes from axis 3, beyond its 4-D input"),
    (_layer("s", "Scale", params="scale_param { axis: -5 }"),
     "layer 's' (Scale) has axis -5, outside the 4 axes of its input"),
])
def test_parameter_shapes_that_cannot_be_are_refused(text, message):
    with pytest.raises(ModelError) as err:
        netgraph.param_shapes(_first(text), (1, 3, 8, 8))
    assert str(err.value) == message


def test_test_phase_rules_decide_which_layers_run():
    relu = 'layer {{ name: "{}" type: "ReLU" bottom: "data" top: "data" {} }} '
    text = "".join(relu.format(name, rule) for name, rule in [
        ("any_stage", 'include { stage: "deploy" }'), ("train_only", "include { phase: TRAIN }"),
        ("test_only", "include { phase: TEST }"), ("not_train", "exclude { phase: TRAIN }"),
        ("not_test", "exclude { phase: TEST }"), ("not_a_stage", 'exclude { stage: "x" }')])
    names = [l.name for l in netgraph.deploy_layers(_layers(text))]
    assert names == ["data", "any_stage", "test_only", "not_train", "not_a_stage"]


def test_creators_producers_and_the_score_blob():
    text = (CONV + _layer("relu", "ReLU", "c", "c") + _layer("split", "Split", "c", "s1 s2") +
            _layer("prob", "Softmax", "s2"))
    param = _layers(text)
    assert {b: l.name for b, l in netgraph.creators(param).items()} == {
        "data": "data", "c": "c", "s1": "split", "s2": "split", "prob": "prob"}
    assert {b: l.name for b, l in netgraph.producers(param).items()} == {
        "data": "data", "c": "relu", "s1": "split", "s2": "split", "prob": "prob"}
    assert netgraph.score_blob(param) == "s2"                # the input of the final Softmax
    assert netgraph.score_blob(_layers(text.replace('"Softmax"', '"Sigmoid"'))) == "prob"
    assert netgraph.score_blob(_layers(CONV + _layer("r", "ReLU", "c", "c"))) == "c"
    with pytest.raises(ModelError) as err:
        netgraph.score_blob(_layers(""))
    assert str(err.value) == "net has no layers after its input"


def test_an_input_size_that_the_inner_product_weights_do_not_fit_is_refused(nonsquare_net):
    check_input_size(nonsquare_net, "data", (1, 2, 23, 30))
    check_input_size(nonsquare_net, "data", (3, 2, 24, 30))  # pool2 still 4x6
    with pytest.raises(ModelError) as err:
        check_input_size(nonsquare_net, "data", (1, 2, 47, 41))
    assert str(err.value) == (
        "at input 47x41 layer 'ip1' would need weights [(7, 432), (7,)], but it has "
        "[(7, 144), (7,)]: this net runs only at its declared input size (make it fully "
        "convolutional with `surgery` to run it on larger images)")    # pool2 6x8x9 = 432
    nonsquare_net.weights.pop("conv1")                # a net whose weights were never checked
    with pytest.raises(ModelError) as err:
        check_input_size(nonsquare_net, "data", (1, 2, 23, 30))
    assert str(err.value).startswith(
        "at input 23x30 layer 'conv1' would need weights [(4, 2, 3, 5), (4,)], but it has []:")


@pytest.mark.parametrize("change, source, message", [
    (lambda w: w.pop("conv1"), None, "nonsquare.prototxt has no weights for layer 'conv1'"),
    (lambda w: w.pop("conv1"), "w.caffemodel", "w.caffemodel has no weights for layer 'conv1'"),
    (lambda w: w["ip1"].pop(), "w.caffemodel", "layer 'ip1' needs 2 blobs, w.caffemodel has 1"),
    (lambda w: w["ip1"].__setitem__(0, w["ip1"][0].reshape(1, 1, 7, 144)), "w.caffemodel",
     "layer 'ip1': shape mismatch, the prototxt implies weights of shape (7, 144), but "
     "w.caffemodel holds (1, 1, 7, 144)"),
])
def test_weights_that_do_not_fit_name_the_layer_and_the_file(nonsquare_net, change, source,
                                                             message):
    weights = {name: list(blobs) for name, blobs in nonsquare_net.weights.items()}
    change(weights)
    net = CaffeNet(nonsquare_net.param, weights, source="nonsquare.prototxt")
    with pytest.raises(ModelError) as err:
        check_weights(net, source)
    assert str(err.value) == message


def test_legacy_blobs_fit_only_as_the_needed_shape_after_leading_ones(nonsquare_net):
    weights = {name: list(blobs) for name, blobs in nonsquare_net.weights.items()}
    weights["ip1"][0] = np.zeros((1, 1, 7, 100), np.float32)
    net = CaffeNet(nonsquare_net.param, weights, source="nonsquare.prototxt")
    with pytest.raises(ModelError) as err:
        check_weights(net, "old.caffemodel", {("ip1", 0)})
    assert str(err.value) == ("layer 'ip1': shape mismatch, the prototxt implies weights of "
                              "shape (7, 144), but old.caffemodel holds legacy (1, 1, 7, 100)")


def test_receptive_fields_through_flatten_global_pooling_and_joined_branches(nonsquare):
    shapes = netgraph.infer_shapes(nonsquare)
    # ip2 reads a 1x1 blob: its cells see what ip1's see
    assert geometry_of(CaffeNet(nonsquare), "ip2", shapes=shapes) == Geometry((6, 4), (-5, -1), (34, 33))
    text = (CONV + _layer("f", "Flatten", "c") +
            _layer("g", "Pooling", params="pooling_param { global_pooling: true }") +
            _layer("j", "Concat", "data c"))
    param = _layers(text, (1, 3, 5, 7))
    shapes = netgraph.infer_shapes(param)
    assert geometry_of(CaffeNet(param), "f", shapes=shapes) == Geometry((1, 1), (-1, -1), (3, 3))
    assert geometry_of(CaffeNet(param), "g", shapes=shapes) == Geometry((1, 1), (0, 0), (5, 7))
    assert geometry_of(CaffeNet(param), "j", shapes=shapes) == Geometry((1, 1), (-1, -1), (3, 3))
    with pytest.raises(ModelError) as err:
        geometry_of(CaffeNet(param), "nothing", shapes=shapes)
    assert str(err.value) == "net has no blob named 'nothing'"


def test_branches_with_different_strides_or_an_unknown_input_have_no_field():
    param = _layers(_conv("a", "num_output: 2 kernel_h: 5 kernel_w: 2") +
                    _conv("b", "num_output: 2 kernel_h: 1 kernel_w: 2 stride_h: 2 stride_w: 1") +
                    _layer("j", "Concat", "a b"), (1, 3, 8, 5))
    shapes = netgraph.infer_shapes(param)
    assert shapes["j"] == (1, 4, 4, 4)
    with pytest.raises(ModelError) as err:
        geometry_of(CaffeNet(param), "j", shapes=shapes)
    assert str(err.value) == ("layer 'j' (Concat) joins branches with strides 1x1, 2x1; their "
                              "cells do not line up")
    with pytest.raises(ModelError) as err:
        geometry_of(CaffeNet(_layers(_layer("r", "ReLU", "nope"))), "r", shapes={})
    assert str(err.value) == "cannot follow the geometry into layer 'r'"
