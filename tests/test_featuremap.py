"""Dense maps: equivalence with the classifier per window, geometry, and preprocessing."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conftest import plate_like
from viewer.net.weights import init_weights
from viewer.maps import featuremap
from viewer.net import cost, netgraph
from viewer.engines import create_engine
from viewer.engines.ops import softmax
from viewer.errors import ImageError, ModelError
from viewer.maps.featuremap import DenseClassifier, FeatureMap
from viewer.maps.labels import character_channels, character_confidence
from viewer.maps.planning import size_text
from viewer.net.geometry import Geometry, geometry_of
from viewer.maps.images import load_image, rescale, scaled_size, to_gray
from viewer.surgery.convolutional import make_fully_convolutional


@pytest.mark.parametrize("engine", ["opencv", "numpy"])
def test_probs_equal_the_classifier_on_every_inside_window(lenet, engine):
    image = plate_like(57, 89, seed=1)
    fm = DenseClassifier(lenet, engine).run(image, 1.0)
    classifier = create_engine("numpy", lenet)
    rows, cols = fm.geometry.cells_inside(*image.shape)
    assert (len(rows), len(cols)) == (8, 16)
    crops = np.stack([image[4 * i:4 * i + 28, 4 * j:4 * j + 28] for i in rows for j in cols])
    scores = classifier.forward(crops[:, None].astype(np.float32), ["ip2-alpha"])["ip2-alpha"]
    expected = softmax(scores, axis=1).reshape(len(rows), len(cols), -1).transpose(2, 0, 1)
    np.testing.assert_allclose(fm.probs[:, :len(rows), :len(cols)], expected, atol=1e-5)
    np.testing.assert_allclose(fm.probs.sum(axis=0), 1.0, atol=1e-5)


def test_lenet_geometry_comes_from_its_layers(lenet):
    dense = DenseClassifier(lenet, "numpy")
    assert dense.unit == Geometry(stride=(4, 4), offset=(0, 0), receptive_field=(28, 28))
    conv1 = geometry_of(dense.net, "conv1")
    assert (conv1.stride, conv1.receptive_field) == ((1, 1), (5, 5))


def test_branches_widen_the_field_whichever_input_comes_first():
    """An Eltwise or Concat cell sees the union of its branches' windows: in ZOO_LAYERS_NET
    `sum` adds conv1 (3x3, pad 1) and conv_b (two 3x3, pad 1 each), listed in that order."""
    from test_engines import ZOO_LAYERS_NET
    from viewer.caffe import model_io

    param, _ = model_io.parse_prototxt(ZOO_LAYERS_NET, "zoo_layers.prototxt")
    net = init_weights(param)
    assert geometry_of(net, "conv1") == Geometry((1, 1), (-1, -1), (3, 3))
    assert geometry_of(net, "sum") == Geometry((1, 1), (-2, -2), (5, 5))
    assert geometry_of(net, "score") == Geometry((2, 2), (-2, -2), (7, 7))


def test_map_shape_of_the_tutorial_workload(lenet, classes):
    fm = DenseClassifier(lenet, "opencv").run(np.zeros((322, 800), np.uint8), 0.9)
    assert fm.probs.shape == (classes, 67, 174)
    assert fm.conv1.shape == (20, 286, 716)
    assert fm.geometry.scale == pytest.approx((290 / 322, 720 / 800))


def test_cell_windows_map_back_to_original_pixels():
    geo = Geometry((4, 4), (0, 0), (28, 28), scale=(0.5, 0.5))
    assert geo.cell_window(2, 3) == (24.0, 16.0, 56.0, 56.0)
    x, y, w, h = geo.heatmap_rect(10, 20)
    assert (x, y, w, h) == (24.0, 24.0, 160.0, 80.0)
    assert geo.cell_at(24.0 + 8 * 3 + 1, 24.0 + 8 * 2 + 1) == (2, 3)


@pytest.mark.parametrize("net, blob, size, spot", [
    ("other_net", "fc2-conv", (90, 100), (30, 47)),
    ("nonsquare_net", "ip2-conv", (80, 70), (37, 30)),
])
def test_a_bright_spot_moves_exactly_the_cells_whose_windows_hold_it(net, blob, size, spot,
                                                                     request):
    """Geometry checked against the net itself, padding and ceil pooling included: with these
    weights every cell whose window holds the spot moves, and no other cell."""
    classifier = request.getfixturevalue(net)
    fcn = make_fully_convolutional(classifier).net
    engine = create_engine("numpy", fcn)
    geo = geometry_of(fcn, blob)
    (_, channels, _, _), = netgraph.input_shapes(classifier.param).values()
    base = np.full((1, channels, *size), 100, np.float32)
    bright = base.copy()
    bright[:, :, spot[0], spot[1]] = 255
    moved = np.abs(engine.forward(bright, [blob])[blob][0]
                   - engine.forward(base, [blob])[blob][0]).max(axis=0) > 1e-4
    holds = np.zeros_like(moved)
    for i, j in np.ndindex(*holds.shape):
        x, y, w, h = geo.cell_window(i, j)
        holds[i, j] = x <= spot[1] < x + w and y <= spot[0] < y + h
    assert 0 < holds.sum() < holds.size / 2
    np.testing.assert_array_equal(moved, holds)


def test_non_square_geometry_of_the_non_square_net(nonsquare_net):
    """Strides 1x2, 2x1, 1x1, 3x2 compose to 6x4; pads 2x1 at jump 1 and 1x0 at 2x2, 1x0
    at 2x2 shift the first window to (-5, -1); spans 3x5, 2x3, 5x2, 3x2, 4x6 make 34x33."""
    fcn = make_fully_convolutional(nonsquare_net).net
    assert geometry_of(fcn, "ip2-conv") == Geometry((6, 4), (-5, -1), (34, 33))
    assert geometry_of(fcn, "conv2") == Geometry((2, 2), (-3, -1), (12, 11))


def test_cell_windows_scale_each_axis_by_its_own_factor():
    geo = Geometry((6, 4), (-5, -1), (34, 33), scale=(0.5, 0.25))
    assert geo.cell_window(2, 3) == (44.0, 14.0, 132.0, 68.0)
    assert geo.heatmap_rect(10, 20) == (54.0, 18.0, 320.0, 120.0)
    assert geo.cell_at(102.5, 42.5) == (2, 3)
    assert geo.cell_at(101.5, 53.5) == (2, 2)
    assert geo.cell_at(117.5, 54.5) == (3, 3)


def test_small_image_error_names_the_smallest_scale(lenet):
    dense = DenseClassifier(lenet, "numpy")
    with pytest.raises(ImageError, match="smallest scale that works is 0.69$"):
        dense.prepare(np.zeros((40, 200), np.uint8), 0.5)
    assert dense.prepare(np.zeros((40, 200), np.uint8), 0.69).shape == (1, 1, 28, 138)
    with pytest.raises(ImageError):  # 40 x 0.68 rounds to 27 rows, one short of the window
        dense.prepare(np.zeros((40, 200), np.uint8), 0.68)


def test_gray_conversion_uses_rgb_order(tmp_path):
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "red.png")
    image = load_image(tmp_path / "red.png")
    assert image.shape == (4, 4, 3) and tuple(image[0, 0]) == (255, 0, 0)
    assert to_gray(image)[0, 0] == 76  # 0.299 * 255: red read as red, not as blue (29)


def test_rgba_is_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert to_gray(load_image(tmp_path / "clear.png"))[0, 0] == 255


def test_sixteen_bit_gray_is_scaled_to_eight_bits(tmp_path):
    data = np.full((4, 4), 32768, np.uint16)
    Image.fromarray(data).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image.shape == (4, 4)
    assert image[0, 0] == 128


def test_grayscale_stays_single_channel(tmp_path):
    Image.new("L", (5, 3), 42).save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.shape == (3, 5) and image[0, 0] == 42


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((2, 6, 3), np.uint8)
    pixels[:, 0] = 255
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    image = load_image(tmp_path / "rotated.jpg")
    assert image.shape == (6, 2, 3)
    assert image[0, :, 0].mean() > 200 and image[-1, :, 0].mean() < 50


def test_rescale_uses_area_when_shrinking():
    stripes = np.tile(np.array([0, 255], np.uint8), (8, 4))
    assert np.all(np.abs(rescale(stripes, 0.5).astype(int) - 128) <= 1)
    assert rescale(stripes, 2.0).shape == (16, 16)


# ---- a pass too large for the chosen engine runs on the lean one ------------------------------

# Small enough that a 600x800 pass is over onnxruntime's estimate (288 MB) but within the blas
# engine's (109 MB), so the fallback is tested without allocating gigabytes.
SMALL_LIMIT = 128 * 2**20


@pytest.fixture
def onnx_dense(lenet) -> DenseClassifier:
    return DenseClassifier(lenet, "onnx")


def test_a_pass_over_the_limit_on_onnx_runs_on_blas_with_the_same_probabilities(
        onnx_dense, monkeypatch):
    image = plate_like(600, 800, seed=4)
    onnx_need = onnx_dense.planner.forward_bytes(600, 800)
    blas_need = onnx_dense.planner.forward_bytes(600, 800, engine=onnx_dense.planner.lean_engine)
    assert blas_need <= SMALL_LIMIT < onnx_need
    monkeypatch.setattr(cost, "MEMORY_LIMIT", SMALL_LIMIT)
    fm = onnx_dense.run(image, 1.0)
    assert fm.engine == "blas" and onnx_dense.engine_name == "onnx"
    assert fm.engine_note == (f"the 800x600 input needs {size_text(onnx_need)} on 'onnx'; "
                              f"using 'blas' ({size_text(blas_need)})")
    assert fm.engine_note.startswith("the 800x600 input needs 288 MB on 'onnx'")
    monkeypatch.undo()                        # the real limit: onnx itself fits this size
    exact = onnx_dense.run(image, 1.0)
    assert exact.engine == "onnx" and exact.engine_note == ""
    assert fm.probs.shape == exact.probs.shape == (exact.probs.shape[0], 144, 194)
    np.testing.assert_allclose(fm.probs, exact.probs, atol=1e-4)
    np.testing.assert_allclose(fm.conv1, exact.conv1, rtol=1e-4, atol=1e-3)


def test_the_lean_engine_is_made_on_first_need_and_kept(onnx_dense, monkeypatch):
    made = []

    def counting(name, net):
        made.append(name)
        return create_engine(name, net)

    monkeypatch.setattr(featuremap, "create_engine", counting)
    monkeypatch.setattr(cost, "MEMORY_LIMIT", SMALL_LIMIT)
    assert onnx_dense.run(plate_like(60, 120), 1.0).engine == "onnx"
    assert made == []                         # a pass onnx fits makes no second engine
    image = plate_like(600, 800)
    first, second = onnx_dense.run(image, 1.0), onnx_dense.run(image, 1.0)
    assert first.engine == second.engine == "blas" and made == ["blas"]
    assert onnx_dense.planner.lean_engine.net is onnx_dense.net


def test_when_neither_engine_fits_the_refusal_names_the_lean_engines_largest_scale(
        onnx_dense, monkeypatch):
    monkeypatch.setattr(cost, "MEMORY_LIMIT", SMALL_LIMIT)
    image = plate_like(600, 800)
    with pytest.raises(ImageError) as err:
        onnx_dense.run(image, 2.0)
    message = str(err.value)
    assert "at scale 2 the 800x600 image becomes 1600x1200 pixels" in message
    assert (f"would need {size_text(onnx_dense.planner.forward_bytes(1200, 1600))} on the 'onnx' engine "
            f"and {size_text(onnx_dense.planner.forward_bytes(1200, 1600, engine=onnx_dense.planner.lean_engine))}"
            " on the 'blas' engine, more than the 0.125 GB limit") in message
    largest = float(message.rsplit("the largest scale that fits is ", 1)[1])

    def fits(scale: float, engine) -> bool:
        size = scaled_size((600, 800), scale)
        return onnx_dense.planner.forward_bytes(*size, engine=engine) <= SMALL_LIMIT

    # counted up in hundredths, independently of max_scale's bisection
    caps = {}
    for engine in onnx_dense.planner.memory_engines():
        hundredths = round(onnx_dense.planner.smallest_scale((600, 800)) * 100)
        while fits((hundredths + 1) / 100, engine):
            hundredths += 1
        caps[engine.name] = hundredths / 100
    assert caps == {"onnx": 0.67, "blas": 1.15}
    assert largest == onnx_dense.planner.max_scale((600, 800)) == caps["blas"]
    assert onnx_dense.planner.fits((600, 800), largest) and onnx_dense.planner.fits((600, 800), 0.68)
    assert not onnx_dense.planner.fits((600, 800), largest + 0.01)    # neither engine: too large
    assert onnx_dense.run(image, largest).engine == "blas"
    with pytest.raises(ImageError, match=f"the largest scale that fits is {largest:g}$"):
        onnx_dense.run(image, largest + 0.01)


# ---- geometry, labels and sizes with exact values ------------------------------------------

def test_a_padded_geometry_gives_its_layers_field_and_an_unpadded_one_itself():
    window = Geometry((32, 32), (0, 0), (227, 227), (0.5, 0.25), padded_field=(355, 355),
                      padded_offset=(-64, -64))
    assert window.padded() == Geometry((32, 32), (-64, -64), (355, 355), (0.5, 0.25))
    plain = Geometry((4, 2), (1, 3), (28, 20), (2.0, 1.0))
    assert plain.padded() == plain


def test_cells_inside_skip_windows_that_start_in_the_padding_or_end_past_the_image():
    geo = Geometry((6, 4), (-5, -1), (34, 33))
    # rows: -5 + 6i >= 0 and -5 + 6i + 34 <= 80; columns: -1 + 4j >= 0 and -1 + 4j + 33 <= 70
    assert geo.cells_inside(80, 70) == (range(1, 9), range(1, 10))
    assert geo.cells_inside(20, 20) == (range(1, 0), range(1, 0))
    assert Geometry((4, 4), (0, 0), (28, 28)).cells_inside(20, 40) == (range(0, 0), range(0, 4))
    assert Geometry((4, 4), (2, 3), (10, 10)).cells_inside(20, 21) == (range(0, 3), range(0, 3))


def test_classifier_window_of_a_padded_net_keeps_the_layers_field_apart():
    """conv1 3x3 pad 1, then a 2x2 InnerProduct over a 4x4 input: the classifier's window is
    the 4x4 input, its layers see a pixel further on each side."""
    from viewer.caffe import model_io
    from viewer.net.geometry import classifier_window

    param, _ = model_io.parse_prototxt(PADDED_NET, "padded.prototxt")
    fcn = make_fully_convolutional(init_weights(param)).net
    assert classifier_window(fcn, "ip-conv") == Geometry(
        (2, 2), (0, 0), (4, 4), padded_field=(6, 6), padded_offset=(-1, -1))


# A padded convolution and a pooling on a 4x4 input: 2x2 cells of 2 channels.
CONV_POOL = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv1" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""
PADDED_NET = CONV_POOL + ('layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" '
                          'inner_product_param { num_output: 3 } }')


def test_character_confidence_is_one_minus_background_or_the_best_character():
    probs = np.array([[[0.1, 0.5]], [[0.3, 0.2]], [[0.6, 0.3]]], np.float32)   # 3 x 1 x 2
    geo = Geometry((4, 4), (0, 0), (28, 28))
    with_background = FeatureMap(probs, probs, None, ["A", "B", "background"], geo, (28, 32),
                                 1.0, 0.0)
    assert character_channels(with_background.labels).tolist() == [0, 1]
    np.testing.assert_allclose(character_confidence(with_background.probs, with_background.labels), [[0.4, 0.7]])
    only_characters = FeatureMap(probs, probs, None, ["A", "B", "C"], geo, (28, 32), 1.0, 0.0)
    np.testing.assert_allclose(character_confidence(only_characters.probs, only_characters.labels), [[0.6, 0.5]])
    best, prob = only_characters.best()
    assert best.tolist() == [[2, 0]] and prob.shape == (1, 2)
    np.testing.assert_allclose(prob, [[0.6, 0.5]])


def test_sizes_read_in_megabytes_below_a_gigabyte_and_in_gigabytes_from_there():
    assert size_text(288 * 2**20) == "288 MB"
    assert size_text(2**30 - 2**19) == "1024 MB"
    assert size_text(2**30) == "1.0 GB"
    assert size_text(7.24 * 2**30) == "7.2 GB"
    assert size_text(float("inf")) == "over 8 GB"


# ---- the dense classifier's checks and messages --------------------------------------------

def test_a_flatten_after_the_last_convolution_is_named():
    from viewer.caffe import model_io
    from viewer.errors import ModelError

    param, _ = model_io.parse_prototxt(FLATTENED_NET, "flat.prototxt")
    with pytest.raises(ModelError) as err:
        DenseClassifier(init_weights(param), "numpy")
    assert str(err.value) == ("the net's scores 'flat' are 1x8, not a map of classes x height "
                              "x width: remove the Flatten (or other reshaping layer) after the "
                              "last convolution")


FLATTENED_NET = CONV_POOL + 'layer { name: "flat" type: "Flatten" bottom: "pool" top: "flat" }'


def test_settings_must_fit_the_nets_channels_and_name_its_classes(lenet, classes):
    from viewer.maps.labels import labels_for
    from viewer.maps.preprocess import ModelSettings, Transformer
    from viewer.errors import PreprocessError

    with pytest.raises(PreprocessError) as err:
        DenseClassifier(lenet, "numpy", settings=ModelSettings(Transformer.default_for(3)))
    assert str(err.value) == (f"the preprocessing is for 3-channel input; {lenet.source} has 1 "
                              "channels")
    names = tuple(f"class {k}" for k in range(classes))
    gray = Transformer.default_for(1)
    assert DenseClassifier(lenet, "numpy", settings=ModelSettings(gray, names)).labels == \
        list(names)
    assert DenseClassifier(lenet, "numpy", settings=ModelSettings(gray, names[1:])).labels == \
        labels_for(classes)


def test_check_scale_needs_the_whole_window_on_each_axis(nonsquare_net):
    """The non-square net's window is 23 rows by 30 columns."""
    dense = DenseClassifier(nonsquare_net, "numpy")
    plan = dense.planner.check_scale((46, 60, 3), 0.5)
    assert (plan.height, plan.width, plan.engine, plan.note) == (23, 30, dense.engine, "")
    # 29 * 1.02 = 29.58 rounds to 30; 22 * 1.02 = 22.44 rounds to 22, 22 * 1.03 to 23
    for shape, scaled, smallest in [((23, 29), "29x23", 1.02), ((22, 30), "30x22", 1.03)]:
        with pytest.raises(ImageError) as err:
            dense.planner.check_scale(shape, 1.0)
        assert str(err.value) == (f"at scale 1 the image is {scaled} pixels, smaller than the "
                                  f"net's 30x23 window; the smallest scale that works is "
                                  f"{smallest}")
    for shape in [(0, 5), (5, 0)]:
        with pytest.raises(ImageError) as err:
            dense.planner.check_scale(shape, 1.0)
        assert str(err.value) == f"the image is empty ({shape[1]}x{shape[0]} pixels)"


def test_smallest_and_min_scales_of_a_non_square_window(nonsquare_net):
    dense = DenseClassifier(nonsquare_net, "numpy")
    assert dense.planner.min_scale((46, 300)) == 0.5                 # 23 / 46 rows, 30 / 300 columns
    assert dense.planner.min_scale((230, 60)) == 0.5                 # 23 / 230 rows, 30 / 60 columns
    # 23 x 30 when rounded: 0.45 * 50 = 22.5 rounds to 22 (half to even), 0.46 * 50 to 23
    assert dense.planner.smallest_scale((50, 1000)) == 0.46
    assert dense.planner.smallest_scale((1000, 64)) == 0.47          # 0.46 * 64 = 29.44, 0.47 -> 30
    assert dense.planner.smallest_scale((23_000, 30_000)) == 0.01    # never below one hundredth


def test_a_run_warms_up_once_and_returns_the_extra_blobs_at_the_actual_scale(lenet, monkeypatch):
    dense = DenseClassifier(lenet, "numpy")
    calls, forward = [], dense.engine.forward

    def counted(data, blobs):
        calls.append((data.shape, list(blobs)))
        return forward(data, blobs)

    monkeypatch.setattr(dense.engine, "forward", counted)
    fm = dense.run(plate_like(40, 90), 0.75, extra_blobs=("pool1", "conv1"), warm=True)
    assert calls == [((1, 1, 30, 68), ["ip2-alpha-conv", "conv1", "pool1"])] * 2
    assert fm.geometry == replace(dense.unit, scale=(30 / 40, 68 / 90))    # 67.5 -> 68
    assert sorted(fm.blobs) == ["conv1", "pool1"] and fm.blobs["pool1"].shape == (20, 13, 32)
    # rows 30 -> 26 -> 13 -> 9 -> 5 (Caffe's pooling rounds up) -> 2
    assert fm.conv1.shape == (20, 26, 64) and fm.scores.shape == fm.probs.shape == (
        len(fm.labels), 2, 11)
    assert (fm.image_shape, fm.scale, fm.engine, fm.engine_note) == ((40, 90), 0.75, "numpy", "")
    calls.clear()
    dense.run(plate_like(40, 90), 1.0)
    assert calls == [((1, 1, 40, 90), ["ip2-alpha-conv", "conv1"])]


def test_scores_that_overflow_are_named(lenet):
    lenet.weights["ip1"][0] *= np.float32(1e3)
    lenet.weights["ip2-alpha"][0] *= np.float32(1e38)
    dense = DenseClassifier(lenet, "numpy")
    with pytest.raises(ModelError) as err:
        dense.run(plate_like(28, 28), 1.0)
    assert str(err.value) == (f"{dense.net.source}: the scores overflow to infinity or NaN at "
                              "scale 1; the weights or Power/Scale parameters are too large for "
                              "float32")


def test_memory_estimates_are_kept_and_infinite_past_the_largest_blob(lenet, monkeypatch):
    dense = DenseClassifier(lenet, "numpy")
    asked = []
    estimate = dense.engine.peak_bytes
    monkeypatch.setattr(dense.engine, "peak_bytes", lambda *args: asked.append(args[0]) or
                        estimate(*args))
    first = dense.planner.forward_bytes(40, 90)
    assert dense.planner.forward_bytes(40, 90) == first and asked == [(1, 1, 40, 90)]
    dense.planner.forward_bytes(40, 90, ("pool1",))
    assert len(asked) == 2
    assert dense.planner.forward_bytes(10**6, 10**6) == float("inf")
    assert dense.planner.picture_bytes((40, 90), 30, 68) == cost.picture_bytes((40, 90), 20 * 30 * 68)


def test_the_lean_engine_of_the_lean_engine_is_itself(lenet):
    dense = DenseClassifier(lenet, "blas")
    assert dense.planner.lean_engine is dense.engine and dense.planner.memory_engines() == [dense.engine]
    assert dense.wanted_blobs(("conv1", "pool1", "ip2-alpha-conv")) == [
        "ip2-alpha-conv", "conv1", "pool1"]


def test_at_stride_keeps_the_classifier_engine_and_settings(lenet):
    dense = DenseClassifier(lenet, "numpy")
    fine = dense.at_stride(2)
    assert (fine.stride, fine.engine_name, fine.classifier) == (2, "numpy", lenet)
    assert fine.settings is dense.settings and fine.unit.stride == (2, 2)
    native = fine.at_stride(None)
    assert (native.stride, native.unit) == (4, dense.unit)


def test_the_largest_scale_leaves_room_for_the_pictures_when_asked(lenet, monkeypatch):
    """Counted up in hundredths, independently of max_scale's bisection."""
    dense = DenseClassifier(lenet, "blas")                   # its own lean engine
    shape = (300, 400)
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 96 * 2**20)

    def largest(pictures: bool) -> float:
        def fits(scale: float) -> bool:
            size = scaled_size(shape, scale)
            drawn = dense.planner.picture_bytes(shape, *size) if pictures else 0
            return dense.planner.forward_bytes(*size) + drawn <= cost.MEMORY_LIMIT

        hundredths = round(dense.planner.smallest_scale(shape) * 100)
        while fits((hundredths + 1) / 100):
            hundredths += 1
        return hundredths / 100

    with_pictures, without = largest(True), largest(False)
    assert with_pictures < without
    assert dense.planner.max_scale(shape, pictures=True) == with_pictures
    assert dense.planner.max_scale(shape) == without


def test_a_pass_that_needs_exactly_the_limit_fits(lenet, monkeypatch):
    dense = DenseClassifier(lenet, "blas")
    image = plate_like(300, 400)
    height, width = scaled_size(image.shape, 1.5)
    monkeypatch.setattr(cost, "MEMORY_LIMIT", dense.planner.forward_bytes(height, width))
    assert dense.planner.max_scale(image.shape) == 1.5
    assert dense.prepare(image, 1.5).shape == (1, 1, height, width)
    with pytest.raises(ImageError, match=r"the dense pass would need 91 MB on the 'blas' "):
        dense.prepare(image, 1.5, extra_blobs=("conv2",))   # kept for the caller: more memory


def test_fits_asks_the_chosen_engine_then_the_lean_one(onnx_dense, monkeypatch):
    shape = (600, 800)
    onnx_need = onnx_dense.planner.forward_bytes(600, 800)
    blas_need = onnx_dense.planner.forward_bytes(600, 800, engine=onnx_dense.planner.lean_engine)
    assert blas_need < onnx_need
    monkeypatch.setattr(cost, "MEMORY_LIMIT", onnx_need)
    assert onnx_dense.planner.fits(shape, 1.0)
    monkeypatch.setattr(cost, "MEMORY_LIMIT", blas_need)           # only on the lean engine
    assert onnx_dense.planner.fits(shape, 1.0) and not onnx_dense.planner.fits(shape, 1.01)
    assert not onnx_dense.planner.fits(shape, 1.0, extra_blobs=("conv2",))
    monkeypatch.setattr(cost, "MEMORY_LIMIT", blas_need - 1)
    assert not onnx_dense.planner.fits(shape, 1.0)


def test_the_native_stride_of_a_non_square_net_is_its_row_stride(nonsquare_net, lenet):
    from viewer.maps.finemap import FineMethod

    assert DenseClassifier(nonsquare_net, "numpy").method == FineMethod(6, "native")
    assert DenseClassifier(lenet, "numpy").stride == 4


def test_the_smallest_scale_is_found_when_the_window_is_reached_exactly_at_a_hundredth(lenet):
    # 55 rows at 0.5 are 27.5, which rounds to 28 (half to even): the 28-row window at 0.50
    assert DenseClassifier(lenet, "numpy").planner.smallest_scale((55, 1000)) == 0.5


def test_when_not_even_the_smallest_scale_fits_the_refusal_says_to_crop(lenet, monkeypatch):
    dense = DenseClassifier(lenet, "blas")
    monkeypatch.setattr(cost, "MEMORY_LIMIT", dense.planner.forward_bytes(28, 28) - 1)
    assert dense.planner.max_scale((300, 400)) == 0.0
    with pytest.raises(ImageError, match=r"more than the [0-9.e-]+ GB limit; no scale fits, "
                                         r"crop the image$"):
        dense.planner.check_scale((300, 400), 1.0)


def test_a_net_without_a_convolution_maps_without_conv1():
    from viewer.caffe import model_io

    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } } '
            'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
            'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }')
    dense = DenseClassifier(init_weights(model_io.parse_prototxt(text, "p")[0]),
                            "numpy")
    assert dense.first_conv is None and dense.wanted_blobs() == ["pool"]
    fm = dense.run(np.full((4, 6), 9, np.uint8), 1.0)
    assert fm.conv1 is None and fm.scores.shape == (1, 2, 3)
    assert dense.planner.picture_bytes((4, 6), 4, 6) == cost.picture_bytes((4, 6), 0)
