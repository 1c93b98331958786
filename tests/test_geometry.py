"""net/geometry: the one Geometry of a blob's cells, for flat classifier outputs and with a scale.

The composition along layers is tested in test_netgraph.py (padding, branches, non-square
nets) and the drawing helpers in test_featuremap.py; here, what those leave out.
"""
from __future__ import annotations

import pytest

from viewer.net import netgraph
from viewer.net.geometry import Geometry, classifier_window, geometry_of


def test_a_classifiers_flat_scores_are_one_cell_of_its_whole_window(lenet):
    blob = netgraph.score_blob(lenet.param)
    assert netgraph.infer_shapes(lenet.param)[blob] == (1, len(lenet.weights[blob][1]))
    # one cell: the declared 28x28 input is the window, at offset 0, whatever the stride
    assert classifier_window(lenet, blob) == Geometry((4, 4), (0, 0), (28, 28))


def test_a_geometry_keeps_the_scale_it_is_asked_for(lenet):
    plain = geometry_of(lenet, "pool2")
    scaled = geometry_of(lenet, "pool2", scale=(0.5, 0.25))
    assert scaled.scale == (0.5, 0.25)
    assert (scaled.stride, scaled.offset, scaled.receptive_field) == \
        (plain.stride, plain.offset, plain.receptive_field) == ((4, 4), (0, 0), (16, 16))
    # cell (1, 2) starts 4 px further per cell in the scaled image: 8 px across, 4 down,
    # so 32 and 8 original pixels at scales 0.25 and 0.5
    assert scaled.cell_window(1, 2) == pytest.approx((32.0, 8.0, 64.0, 32.0))


def test_a_dense_net_declared_larger_than_its_window_still_has_the_classifiers_window(lenet):
    """A fully convolutional net declared at 36x40 holds 3x4 cells at stride 4: each is the
    classifier's 28x28 window, not the declared input."""
    from viewer.caffe.model_io import CaffeNet
    from viewer.surgery import make_fully_convolutional

    fcn = make_fully_convolutional(lenet).net
    param = fcn.param.__class__()
    param.CopyFrom(fcn.param)
    dims = next(l for l in param.layer if l.type == "Input").input_param.shape[0].dim
    dims[2], dims[3] = 36, 40
    declared = CaffeNet(param, fcn.weights)
    blob = netgraph.score_blob(param)
    assert netgraph.infer_shapes(param)[blob][2:] == (3, 4)
    assert classifier_window(declared, blob) == Geometry((4, 4), (0, 0), (28, 28))
