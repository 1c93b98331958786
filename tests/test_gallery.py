"""The gallery (tests/gallery.py) end to end: surgery, the dense map on every engine, geometry.

Each net of the model zoo's kinds is made fully convolutional, checked against its classifier,
and mapped at a small size on every engine; the numpy engine is the reference, and real Caffe
is one of the engines where it is built (mandatory under NETSURGERY_REQUIRE_CAFFE).
"""
from __future__ import annotations

import numpy as np
import pytest

import gallery
from test_engines import OTHERS
from viewer import surgery
from viewer.errors import ImageError
from viewer.maps.featuremap import DenseClassifier
from viewer.net.geometry import Geometry

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def nets():
    return {name: gallery.load(name, seed=k) for k, name in enumerate(gallery.NAMES)}


@pytest.fixture(scope="module")
def references(nets):
    """Per net: a picture two strides larger than the window each way, and the numpy map."""
    maps = {}
    for k, name in enumerate(gallery.NAMES):
        window, stride = gallery.WINDOWS[name]
        picture = gallery.image(window + 2 * stride, window + 2 * stride + 1, seed=k)
        maps[name] = picture, DenseClassifier(nets[name], "numpy").run(picture, 1.0)
    return maps


@pytest.mark.parametrize("name", gallery.NAMES)
def test_surgery_of_each_gallery_net_is_exact(name, nets):
    net = nets[name]
    result = surgery.make_fully_convolutional(net)
    assert surgery.is_fully_convolutional(result.net.param)
    check = surgery.verify_equivalence(net, result.net, count=1, engine="onnx")
    assert check.passed, (name, check.max_abs_diff, check.tolerance)


@pytest.mark.parametrize("name", gallery.NAMES)
def test_the_map_has_three_rows_at_window_plus_two_strides(name, references):
    picture, reference = references[name]
    window, stride = gallery.WINDOWS[name]
    assert reference.geometry.stride == (stride, stride)
    assert reference.geometry.receptive_field == (window, window)
    rows, cols = reference.scores.shape[1:]
    assert rows == 3 and cols >= 3   # ceil-rounded pooling may add a column for the extra pixel
    assert np.isfinite(reference.scores).all() and reference.scores.std() > 0


@pytest.mark.parametrize("engine", OTHERS)
@pytest.mark.parametrize("name", gallery.NAMES)
def test_every_engine_maps_each_gallery_net_as_the_reference(name, engine, nets, references):
    picture, reference = references[name]
    fm = DenseClassifier(nets[name], engine).run(picture, 1.0)
    assert fm.engine == engine
    scale = max(1.0, float(np.abs(reference.scores).max()))
    assert np.abs(fm.scores - reference.scores).max() / scale < TOLERANCE, (name, engine)
    assert np.abs(fm.probs - reference.probs).max() < TOLERANCE, (name, engine)
    if reference.conv1 is not None:
        assert np.abs(fm.conv1 - reference.conv1).max() < TOLERANCE * max(
            1.0, float(np.abs(reference.conv1).max())), (name, engine)


def test_caffenet_window_is_its_input_and_its_padded_field_is_reported(nets):
    """The notebook's figure: CaffeNet on a 451x451 image at scale 1 gives 8x8 cells; each is
    a 227 px window at stride 32; the layers see 355 px, from 64 px before the window."""
    dense = DenseClassifier(nets["caffenet_style"], "onnx")
    assert dense.unit == Geometry((32, 32), (0, 0), (227, 227), padded_field=(355, 355),
                                  padded_offset=(-64, -64))
    fm = dense.run(gallery.image(451, 451), 1.0)
    assert fm.scores.shape == (10, 8, 8)
    assert fm.geometry.cell_window(7, 7) == (224.0, 224.0, 227.0, 227.0)
    assert fm.geometry.cells_inside(451, 451) == (range(0, 8), range(0, 8))
    assert dense.planner.smallest_scale((451, 451)) == pytest.approx(0.51)


def test_cifar10_quick_maps_a_64x64_image_and_refuses_one_below_its_input(nets):
    dense = DenseClassifier(nets["cifar10_quick"], "onnx")
    assert (dense.unit.receptive_field, dense.unit.padded_field) == ((32, 32), (67, 67))
    assert dense.run(gallery.image(64, 64), 1.0).scores.shape == (10, 5, 5)
    assert dense.run(gallery.image(32, 32), 1.0).scores.shape == (10, 1, 1)
    with pytest.raises(ImageError, match=r"31x31 pixels, smaller than the net's 32x32 window"):
        dense.run(gallery.image(31, 31), 1.0)


@pytest.mark.parametrize("engine", ["numpy", "blas"])
@pytest.mark.parametrize("name", ["resnet_bottleneck", "mobilenet_v2_block", "inception_block",
                                  "squeezenet_fire"])
def test_the_memory_estimate_covers_the_zoo_layers(name, engine, nets):
    """What the 2 GB guard trusts (`viewer.net.cost`) is at least what a pass allocates (numpy's
    arrays are traced by tracemalloc) on nets with BatchNorm, Eltwise, depthwise groups and
    Concat."""
    import tracemalloc

    from viewer.net import cost

    dense = DenseClassifier(nets[name], engine)
    data = dense.prepare(gallery.image(160, 170), 1.0)
    blobs = dense.wanted_blobs()
    estimate = dense.engine.peak_bytes(data.shape, blobs)
    tracemalloc.start()
    try:
        dense.engine.forward(data, blobs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= estimate, (name, engine, peak, estimate)
