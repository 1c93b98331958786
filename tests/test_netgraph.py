"""Caffe's shape arithmetic on a net that is not square anywhere, worked out by hand."""
from __future__ import annotations

import pytest

from conftest import NONSQUARE_NET
from viewer import model_io, netgraph
from viewer.errors import ModelError
from viewer.netgraph import Field, Window


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
    assert netgraph.conv_window(layers["conv1"].convolution_param) == \
        Window((3, 5), (1, 2), (2, 1), (1, 1))
    conv2 = netgraph.conv_window(layers["conv2"].convolution_param)
    assert (conv2, conv2.extent) == (Window((3, 2), (1, 1), (0, 0), (2, 1)), (5, 2))
    assert netgraph.pool_window(layers["pool1"].pooling_param, (1, 4, 25, 14)) == \
        Window((2, 3), (2, 1), (1, 0))
    assert netgraph.param_shapes(layers["conv1"], (1, 2, 23, 30)) == [(4, 2, 3, 5), (4,)]
    assert netgraph.param_shapes(layers["conv2"], (1, 4, 13, 12)) == [(6, 4, 3, 2), (6,)]
    assert netgraph.param_shapes(layers["ip1"], (1, 6, 4, 6)) == [(7, 144), (7,)]
    shapes = netgraph.infer_shapes(nonsquare)
    # ip1 reads all of pool2's 4x6 cells, 6 and 4 pixels apart: 3 * 6 and 5 * 4 more pixels
    assert netgraph.field_of(nonsquare, "pool2", shapes) == Field((6, 4), (-5, -1), (16, 13))
    assert netgraph.field_of(nonsquare, "ip1", shapes) == Field((6, 4), (-5, -1), (34, 33))


@pytest.mark.parametrize("size, k, s, pad, ceil, out", [
    (25, 2, 2, 1, True, 13),    # the last window would start in the pad: Caffe drops it
    (24, 2, 2, 1, True, 13),
    (9, 3, 3, 1, True, 4),
    (10, 3, 2, 0, True, 5),
    (10, 3, 2, 0, False, 4),
])
def test_pooled_size_rounds_and_clips_like_caffe(size, k, s, pad, ceil, out):
    assert netgraph.pooled_size(size, k, s, pad, ceil) == out


def test_an_input_smaller_than_the_dilated_span_is_refused(nonsquare):
    # pool1 is 3 rows high at a 3-row input: conv2's 3-tap kernel fits, its 5-row span does not
    with pytest.raises(ModelError, match="smaller than the 5x2 kernel of 'conv2'"):
        netgraph.infer_shapes(nonsquare, {"data": (1, 2, 3, 30)})


def test_shapes_and_counts_in_messages_stay_short():
    assert netgraph.shape_text((1, 3, 28, 28)) == "1x3x28x28"
    exactly_60 = (10 ** 28, 10 ** 29)                     # 29 + 1 + 30 characters
    assert netgraph.shape_text(exactly_60) == f"{10 ** 28}x{10 ** 29}"
    assert netgraph.shape_text((10 ** 29, 10 ** 29)) == f"2-D, dimensions up to {10 ** 29}"
    assert netgraph.count_text(10 ** 18 - 1) == "9" * 18
    assert netgraph.count_text(10 ** 18) == "over 10^18"
    assert netgraph.count_text(3 * 10 ** 40) == "over 10^40"


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
