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
