"""Properties that must hold for every net and image, checked on random ones with Hypothesis.

- Model files: any net with any weights survives prototxt/caffemodel writing and reading
  bit for bit, also through the pre-2015 V1 format.
- Surgery: for random conv/pool stacks with one or two InnerProducts, the fully
  convolutional net computes the classifier's scores (numpy and OpenCV engines).
- Geometry: for random image sizes and scales, `Geometry.cells_inside` is exactly the set of
  map cells whose window lies inside the scaled image, `cell_window` maps those inside the
  original image, and a pixel changes no cell whose window does not contain it.

Example counts are bounded (a few seconds per property) so the suite stays fast; set
PROPERTY_EXAMPLES=500 for a longer local search.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bad_inputs import as_v1
from viewer.net.weights import init_weights, load_net
from viewer import surgery
from viewer.caffe import model_io
from viewer.maps import featuremap
from viewer.net import netgraph
from viewer.engines import create_engine
from viewer.errors import ImageError, ModelError
from viewer.net.geometry import Geometry, geometry_of
from viewer.maps.images import scaled_size
from viewer.caffe.proto import caffe_pb2

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "25"))
FEW = settings(max_examples=EXAMPLES, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ---- random nets ---------------------------------------------------------------------------

@st.composite
def conv_pool_stacks(draw, classifier: bool = True, linear: bool = False) -> str:
    """A random deploy prototxt: input, pixel scaling, 1-3 conv(+ReLU)(+pool) stages, then
    (for a classifier) an optional Flatten and one or two InnerProducts, maybe a Softmax.

    Sizes are drawn so every layer has a valid output. A `linear` stack has no ReLU and only
    AVE pooling, so every pixel a cell reads moves it.
    """
    channels = draw(st.sampled_from([1, 1, 2, 3]))
    h, w = draw(st.integers(6, 36)), draw(st.integers(6, 36))
    lines = [f'name: "random"',
             f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ '
             f'dim: 1 dim: {channels} dim: {h} dim: {w} }} }} }}',
             'layer { name: "scale" type: "Power" bottom: "data" top: "scaled" '
             'power_param { scale: 0.00390625 } }']
    top, c = "scaled", channels
    for k in range(draw(st.integers(1, 3))):
        kernel = draw(st.integers(1, max(1, min(5, h, w))))
        dilation = draw(st.sampled_from([1, 1, 1, 2])) if kernel > 1 else 1
        extent = dilation * (kernel - 1) + 1
        pad = draw(st.integers(0, min(2, kernel - 1)))
        if extent > min(h, w) + 2 * pad:
            dilation, extent = 1, kernel
        stride = draw(st.sampled_from([1, 1, 2]))
        group = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
        out = group * draw(st.integers(1, 4))
        lines.append(f'layer {{ name: "conv{k}" type: "Convolution" bottom: "{top}" '
                     f'top: "conv{k}" convolution_param {{ num_output: {out} kernel_size: '
                     f'{kernel} stride: {stride} pad: {pad} dilation: {dilation} '
                     f'group: {group} }} }}')
        h, w = (h + 2 * pad - extent) // stride + 1, (w + 2 * pad - extent) // stride + 1
        top, c = f"conv{k}", out
        if not linear and draw(st.booleans()):
            lines.append(f'layer {{ name: "relu{k}" type: "ReLU" bottom: "{top}" '
                         f'top: "{top}" }}')
        if min(h, w) >= 2 and draw(st.booleans()):
            pk = draw(st.integers(2, min(3, h, w)))
            ps = draw(st.integers(1, 2))
            pp = draw(st.integers(0, pk - 1))
            kind = draw(st.sampled_from(["AVE"] if linear else ["MAX", "AVE"]))
            lines.append(f'layer {{ name: "pool{k}" type: "Pooling" bottom: "{top}" '
                         f'top: "pool{k}" pooling_param {{ pool: {kind} kernel_size: {pk} '
                         f'stride: {ps} pad: {pp} }} }}')
            h = netgraph.pooled_size(h, pk, ps, pp, True)
            w = netgraph.pooled_size(w, pk, ps, pp, True)
            top = f"pool{k}"
    if not classifier:
        return "\n".join(lines)
    if draw(st.booleans()):
        lines.append(f'layer {{ name: "flat" type: "Flatten" bottom: "{top}" top: "flat" }}')
        top = "flat"
    for k in range(draw(st.integers(1, 2))):
        transpose = " transpose: true" if draw(st.booleans()) else ""
        lines.append(f'layer {{ name: "ip{k}" type: "InnerProduct" bottom: "{top}" '
                     f'top: "ip{k}" inner_product_param {{ num_output: '
                     f'{draw(st.integers(1, 12))}{transpose} }} }}')
        top = f"ip{k}"
        if draw(st.booleans()):
            lines.append(f'layer {{ name: "relu_ip{k}" type: "ReLU" bottom: "{top}" '
                         f'top: "{top}" }}')
    if draw(st.booleans()):
        lines.append(f'layer {{ name: "prob" type: "Softmax" bottom: "{top}" top: "prob" }}')
    return "\n".join(lines)


def build(text: str, seed: int) -> model_io.CaffeNet:
    """The net of `text` with Xavier weights and random biases (so a lost bias shows)."""
    param, _ = model_io.parse_prototxt(text, "random.prototxt")
    try:
        netgraph.infer_shapes(param)
    except ModelError:
        assume(False)
    net = init_weights(param, seed)
    rng = np.random.default_rng(seed)
    for blobs in net.weights.values():
        for k in range(1, len(blobs)):
            blobs[k] = rng.normal(0, 0.1, blobs[k].shape).astype(np.float32)
    return net


# ---- model files ---------------------------------------------------------------------------

@FEW
@given(conv_pool_stacks(), st.integers(0, 2**32 - 1))
def test_prototxt_and_caffemodel_round_trip_exactly(text, seed):
    net = build(text, seed)
    with tempfile.TemporaryDirectory() as tmp:
        proto, weights = Path(tmp) / "n.prototxt", Path(tmp) / "n.caffemodel"
        model_io.write_net(net, proto, weights)
        back = load_net(proto, weights)
    assert back.param == net.param
    assert model_io.parse_prototxt(model_io.prototxt_text(net.param))[0] == net.param
    assert set(back.weights) == set(net.weights)
    for name, blobs in net.weights.items():
        for a, b in zip(blobs, back.weights[name], strict=True):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)


@FEW
@given(conv_pool_stacks(), st.integers(0, 2**32 - 1))
def test_legacy_and_v1_files_read_as_the_modern_net(text, seed):
    net = build(text, seed)
    old = as_v1(net)
    upgraded = model_io.parse_caffemodel(old.SerializeToString(), "old.caffemodel")
    modern = [l for l in net.param.layer if l.type != "Input"]
    assert list(model_io.structure_of(upgraded).layer) == modern   # every parameter, too
    weights = model_io.weights_of(upgraded, "old.caffemodel")
    for name, blobs in net.weights.items():
        for a, b in zip(blobs, weights[name], strict=True):
            np.testing.assert_array_equal(a, b)


# ---- surgery -------------------------------------------------------------------------------

def _assert_surgery_exact(text: str, seed: int, engine: str) -> None:
    net = build(text, seed)
    result = surgery.make_fully_convolutional(net)
    assert surgery.is_fully_convolutional(result.net.param)
    check = surgery.verify_equivalence(net, result.net, count=2, engine=engine, seed=seed)
    assert check.max_abs_diff < 1e-4 * max(1.0, check.largest), (text, check)
    assert check.passed


@FEW
@given(conv_pool_stacks(), st.integers(0, 2**32 - 1))
def test_surgery_is_exact_for_random_nets_numpy(text, seed):
    _assert_surgery_exact(text, seed, "numpy")


@FEW
@given(conv_pool_stacks(), st.integers(0, 2**32 - 1))
def test_surgery_is_exact_for_random_nets_opencv(text, seed):
    _assert_surgery_exact(text, seed, "opencv")


# ---- geometry ------------------------------------------------------------------------------

@st.composite
def geometries(draw) -> Geometry:
    stride = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    offset = (draw(st.integers(-6, 0)), draw(st.integers(-6, 0)))
    field = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return Geometry(stride, offset, field)


@settings(max_examples=8 * EXAMPLES, deadline=None, database=None)
@given(geometries(), st.integers(1, 400), st.integers(1, 400), st.floats(0.05, 4.0))
def test_cells_inside_are_exactly_the_cells_whose_window_is_in_the_image(unit, height, width,
                                                                         scale):
    sh, sw = scaled_size((height, width), scale)
    g = Geometry(unit.stride, unit.offset, unit.receptive_field, (sh / height, sw / width))
    rows, cols = g.cells_inside(sh, sw)
    for size, o, r, s, inside in ((sh, g.offset[0], g.receptive_field[0], g.stride[0], rows),
                                  (sw, g.offset[1], g.receptive_field[1], g.stride[1], cols)):
        for i in range(-2, (size + 10) // s + 2):
            fits = o + i * s >= 0 and o + i * s + r <= size
            assert (i in inside) == fits
    for i in {*rows[:1], *rows[-1:]}:        # the extreme cells bound all the others
        for j in {*cols[:1], *cols[-1:]}:
            x, y, w, h = g.cell_window(i, j)
            assert -1e-9 <= x and x + w <= width + 1e-9
            assert -1e-9 <= y and y + h <= height + 1e-9


@FEW
@given(conv_pool_stacks(classifier=False, linear=True), st.integers(0, 2**32 - 1),
       st.integers(20, 70), st.integers(20, 70), st.floats(0.5, 2.0), st.data())
def test_a_pixel_changes_only_the_cells_whose_window_holds_it(text, seed, height, width,
                                                              scale, data):
    """The pixel poked is the first one a random inside cell reads (the top-left corner of its
    window, read through every layer's first tap): that cell must move, and no cell whose
    window does not hold the pixel may."""
    net = build(text, seed)
    dense = featuremap.DenseClassifier(net, "numpy")
    image = np.random.default_rng(seed).integers(0, 256, (height, width)).astype(np.uint8)
    try:
        base = dense.prepare(image, scale)
    except ImageError:
        assume(False)
    engine = create_engine("numpy", dense.net)
    blob = dense.score_blob
    before = engine.forward(base, [blob])[blob][0]
    g = dense.unit.padded()    # a padded net's layers see beyond the classifier's window
    rows, cols = g.cells_inside(*base.shape[2:])
    assume(len(rows) and len(cols))
    cell = data.draw(st.sampled_from(rows)), data.draw(st.sampled_from(cols))
    y, x = (g.offset[a] + cell[a] * g.stride[a] for a in range(2))
    poked = base.copy()
    poked[:, :, y, x] += 200.0
    changed = np.abs(engine.forward(poked, [blob])[blob][0] - before).max(axis=0) > 1e-6
    assert changed[cell], (cell, y, x, g)
    for i, j in zip(*np.nonzero(changed)):
        top, left = g.offset[0] + i * g.stride[0], g.offset[1] + j * g.stride[1]
        assert top <= y < top + g.receptive_field[0], (i, j, y, g)
        assert left <= x < left + g.receptive_field[1], (i, j, x, g)


@FEW
@given(conv_pool_stacks(classifier=False), st.integers(20, 90), st.integers(20, 90),
       st.floats(0.3, 2.5))
def test_the_map_has_a_cell_for_every_window_inside_the_scaled_image(text, height, width,
                                                                     scale):
    net = build(text, 0)
    param = net.param
    (name, shape), = netgraph.input_shapes(param).items()
    sh, sw = scaled_size((height, width), scale)
    try:
        shapes = netgraph.infer_shapes(param, {name: (1, shape[1], sh, sw)})
    except ModelError:
        assume(False)
    blob = netgraph.score_blob(param)
    g = geometry_of(net, blob, shapes=netgraph.infer_shapes(param))
    rows, cols = g.cells_inside(sh, sw)
    out_h, out_w = shapes[blob][2:]
    assert rows.stop <= out_h and cols.stop <= out_w
    if g.offset == (0, 0):
        assert rows.start == 0 and cols.start == 0
