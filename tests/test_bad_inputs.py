"""Hostile files, huge images and broken models: a clear error each, nothing lost, nothing hung.

Every input is generated here at test time (see `bad_inputs.py`). A representative set goes
through the command line as a user would run it (exit code, one `error: ...` line, no
traceback); the rest goes through the same core functions the CLI and the GUI call.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image

from bad_inputs import (TINY_NET, as_v1, assert_one_line_error, encoded, gradient,
                        make_read_only, png_declaring, run_cli, write_net_pair)
from conftest import plate_like
from viewer.net.weights import init_weights, load_net
from viewer import surgery
from viewer.caffe import model_io
from viewer.files import paths, safe_write
from viewer.maps import preprocess
from viewer.net import cost, netgraph
from viewer.errors import DatasetError
from viewer.caffe.lmdb_io import make_datum, open_lmdb, write_lmdb
from viewer.errors import ImageError, ModelError, SurgeryError, ViewerError
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import MAX_PIXELS, load_image, scaled_size, to_gray
from viewer.caffe.proto import caffe_pb2


@pytest.fixture(scope="module")
def dense() -> DenseClassifier:
    """The bundled fully convolutional LeNet (28x28 window, stride 4) on OpenCV."""
    return DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "opencv")


@pytest.fixture
def plate_png(tmp_path) -> Path:
    path = tmp_path / "plate.png"
    Image.fromarray(plate_like(60, 120, seed=1)).save(path)
    return path


def fingerprint(*paths: Path) -> list[tuple[bytes, int]]:
    """Content hash and modification time: an input must keep both."""
    return [(hashlib.sha256(p.read_bytes()).digest(), p.stat().st_mtime_ns) for p in paths]


# ---- images: unreadable files ----------------------------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("notes.png", b"these are my notes, not a picture\n"),
    ("random.jpg", random.Random(1).randbytes(5000)),
    ("page.tif", b"<html><body>404 Not Found</body></html>"),
    ("script.gif", b"#!/bin/sh\necho hello\n"),
    ("vector.bmp", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
])
def test_a_non_image_with_an_image_extension_is_named(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=rf"{name} is not an image in a format this viewer reads"):
        load_image(path)


@pytest.mark.parametrize("fmt, keep", [("JPEG", 300), ("JPEG", 30), ("PNG", 200), ("PNG", 40),
                                       ("TIFF", 500), ("BMP", 100)])
def test_a_truncated_image_is_reported_as_damaged(tmp_path, fmt, keep):
    whole = encoded(Image.fromarray(plate_like(60, 120, seed=3)).convert("RGB"), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(whole[:keep])
    with pytest.raises(ImageError, match=r"cut\.\w+ is (damaged or truncated|not an image)"):
        load_image(path)


def test_truncated_jpeg_on_the_command_line(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(encoded(Image.fromarray(plate_like(60, 120)).convert("RGB"), "JPEG")[:400])
    result = run_cli("map", path, "--out", tmp_path / "out")
    assert_one_line_error(result, "photo.jpg is damaged or truncated", "download it again")
    assert not (tmp_path / "out").exists()


def test_a_zero_byte_file_is_called_empty(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    result = run_cli("read", path)
    assert_one_line_error(result, "empty.png is empty (0 bytes)")


def test_a_folder_named_like_an_image(tmp_path):
    (tmp_path / "album.jpg").mkdir()
    with pytest.raises(ImageError, match="album.jpg is a folder, not an image"):
        load_image(tmp_path / "album.jpg")


# ---- images: too small for the net at the chosen scale --------------------------------------

def test_a_1x1_image_loads_and_the_map_names_the_smallest_scale(tmp_path, dense):
    path = tmp_path / "dot.png"
    Image.new("L", (1, 1), 128).save(path)
    image = load_image(path)
    assert image.shape == (1, 1)
    with pytest.raises(ImageError, match=r"1x1 pixels, smaller than the net's 28x28 window; "
                                         r"the smallest scale that works is 27.5$"):
        dense.run(image, 1.0)
    assert dense.run(image, 27.5).probs.shape[1:] == (1, 1)
    with pytest.raises(ImageError):
        dense.run(image, 27.49)


def test_an_image_below_the_window_at_the_chosen_scale(dense):
    image = plate_like(60, 120)
    with pytest.raises(ImageError, match=r"at scale 0\.3 the image is 36x18 pixels.*"
                                         r"smallest scale that works is 0\.46"):
        dense.run(image, 0.3)
    assert dense.run(image, 0.46).probs.shape[1] == 1
    with pytest.raises(ImageError):
        dense.run(image, 0.45)


def test_too_small_on_the_command_line(plate_png, tmp_path):
    result = run_cli("map", plate_png, "--scale", "0.2", "--out", tmp_path / "out")
    assert_one_line_error(result, "smaller than the net's 28x28 window",
                          "the smallest scale that works is 0.46")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "abc"])
def test_a_scale_that_is_no_positive_number_is_refused_by_the_parser(plate_png, tmp_path, scale):
    result = run_cli("map", plate_png, f"--scale={scale}", "--out", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "argument --scale" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("scale, says", [
    (1e308, "scale 1e+308 makes the 120x60 image larger than any number of pixels"),
    *((s, "scale must be a positive number") for s in (float("inf"), float("nan"), 0.0, -2.0))])
def test_scales_beyond_float_range_are_image_errors_not_crashes(dense, scale, says):
    with pytest.raises(ImageError, match=re.escape(says)):
        dense.run(plate_like(60, 120), scale)


def test_a_huge_finite_scale_names_the_largest_that_fits(dense):
    with pytest.raises(ImageError, match=r"would be 1.2e\+22x6e\+21 pixels, far more than any "
                                         "pass can hold; the largest scale that fits is"):
        dense.run(plate_like(60, 120), 1e20)

# ---- images: every pixel format people have -------------------------------------------------

def _modes(g: np.ndarray) -> dict[str, tuple[Image.Image, str, np.ndarray, int]]:
    """name -> (image, format, expected gray, tolerance)."""
    rgb = Image.fromarray(np.dstack([g, g, g]))
    transparent = np.dstack([g, g, g, np.where(np.arange(g.shape[1]) < 20, 0, 255)
                             .astype(np.uint8)[None].repeat(g.shape[0], 0)])
    behind_white = np.where(np.arange(g.shape[1]) < 20, 255, g).astype(np.uint8)
    palette = Image.fromarray(g, "L").convert("P")
    palette.putpalette([v for i in range(256) for v in (i, i, i)])
    palette.putdata(g.ravel().tolist())
    return {
        "RGBA": (Image.fromarray(transparent, "RGBA"), "PNG", behind_white, 1),
        "LA": (Image.fromarray(np.dstack([g, np.full_like(g, 255)]), "LA"), "PNG", g, 1),
        "P": (palette, "PNG", g, 1),
        "P-GIF": (palette, "GIF", g, 1),
        "CMYK-TIFF": (rgb.convert("CMYK"), "TIFF", g, 1),
        "CMYK-JPEG": (rgb.convert("CMYK"), "JPEG", g, 12),
        "1-bit": (Image.fromarray(g > 127), "PNG", np.where(g > 127, 255, 0), 0),
        "16-bit PNG": (Image.fromarray(g.astype(np.uint16) * 257), "PNG", g, 0),
        "16-bit TIFF": (Image.fromarray(g.astype(np.uint16) * 257), "TIFF", g, 0),
        "float TIFF 0-1": (Image.fromarray(g.astype(np.float32) / 255), "TIFF", g, 1),
        "float TIFF 0-255": (Image.fromarray(g.astype(np.float32)), "TIFF", g, 1),
        "float TIFF HDR": (Image.fromarray(g.astype(np.float32) * 40 - 3000), "TIFF", g, 1),
        "32-bit TIFF": (Image.fromarray(g.astype(np.int32) * 1000), "TIFF", g, 1),
    }


@pytest.mark.parametrize("mode", list(_modes(gradient())))
def test_every_pixel_mode_loads_as_the_gray_it_shows(tmp_path, mode):
    g = gradient()
    image, fmt, expected, tolerance = _modes(g)[mode]
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, fmt)
    loaded = to_gray(load_image(path))
    assert loaded.dtype == np.uint8 and loaded.shape == g.shape
    assert np.abs(loaded.astype(int) - expected.astype(int)).max() <= tolerance


def test_a_float_tiff_with_nan_and_infinity_loads_without_warnings(tmp_path):
    pixels = gradient().astype(np.float32) / 255
    pixels[0, :5] = [np.nan, np.inf, -np.inf, np.nan, 0.5]
    Image.fromarray(pixels).save(tmp_path / "hdr.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_image(tmp_path / "hdr.tif")
    assert list(loaded[0, :5]) == [0, 0, 0, 0, 128]
    assert np.abs(loaded[1:].astype(int) - gradient()[1:]).max() <= 1


def test_an_exif_rotated_photo_is_shown_upright(tmp_path):
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :10] = 255                       # a white mark at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6                             # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "phone.jpg", "JPEG", quality=95, exif=exif)
    upright = to_gray(load_image(tmp_path / "phone.jpg"))
    assert upright.shape == (60, 40)
    assert upright[:10, -10:].mean() > 200 and upright[:10, :10].mean() < 50


def test_an_animated_gif_shows_its_first_frame(tmp_path):
    frames = [Image.new("L", (30, 20), v) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "blink.gif", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(tmp_path / "blink.gif").n_frames == 3
    loaded = to_gray(load_image(tmp_path / "blink.gif"))
    assert loaded.shape == (20, 30) and abs(int(loaded.mean()) - 10) <= 1


# ---- images: bombs and sizes that would not fit in memory -----------------------------------

def test_a_decompression_bomb_is_refused_on_the_command_line(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_declaring(60_000, 60_000))
    assert (tmp_path / "bomb.png").stat().st_size < 100
    result = run_cli("map", tmp_path / "bomb.png", "--out", tmp_path / "out")
    assert_one_line_error(result, "bomb.png is refused as a possible decompression bomb",
                          "3600 megapixels", f"{MAX_PIXELS // 1_000_000} megapixels")


def test_an_image_over_our_pixel_limit_is_refused_before_decoding(tmp_path):
    side = math.isqrt(MAX_PIXELS) + 100          # above our limit, below Pillow's bomb limit
    (tmp_path / "huge.png").write_bytes(png_declaring(side, side))
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")       # no DecompressionBombWarning leaks out
            with pytest.raises(ImageError, match=rf"huge.png is {side}x{side} pixels, more "
                                                 rf"than the 120 megapixels"):
                load_image(tmp_path / "huge.png")
        assert tracemalloc.get_traced_memory()[1] < 5_000_000
    finally:
        tracemalloc.stop()


def test_a_scale_that_needs_too_much_memory_is_refused_before_allocating(dense, monkeypatch):
    image = plate_like(60, 120)

    def no_resize(*args, **kwargs):
        raise AssertionError("the image was resized before the memory check")

    monkeypatch.setattr(preprocess, "rescale", no_resize)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError) as err:
            dense.run(image, 400.0)      # 48000x24000 pixels: conv1 alone would be 92 GB
        assert tracemalloc.get_traced_memory()[1] < 5_000_000
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert "at scale 400 the 120x60 image becomes 48000x24000 pixels" in message
    assert "GB on the 'opencv' engine and " in message and "GB on the 'blas' engine" in message
    assert f"more than the {cost.MEMORY_LIMIT / 2**30:g} GB limit" in message
    largest = float(message.rsplit("the largest scale that fits is ", 1)[1])
    limit = cost.MEMORY_LIMIT

    def least(scale: float) -> float:
        """The smaller estimate of the two engines a pass may run on."""
        return min(dense.planner.forward_bytes(*scaled_size((60, 120), scale), engine=engine)
                   for engine in dense.planner.memory_engines())

    assert least(largest) <= limit < least(largest + 0.01)
    # the opencv engine alone stops well below: the scale named is the lean engine's
    assert dense.planner.forward_bytes(*scaled_size((60, 120), largest)) > limit


def test_the_largest_scale_that_fits_is_exact_and_works(dense, monkeypatch):
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 3_000_000)
    image = plate_like(60, 120)
    with pytest.raises(ImageError, match="the largest scale that fits is") as err:
        dense.run(image, 3.0)
    largest = float(str(err.value).rsplit(" ", 1)[1])
    assert dense.run(image, largest).probs.shape[0] == len(dense.labels)
    with pytest.raises(ImageError, match=f"the largest scale that fits is {largest:g}"):
        dense.run(image, largest + 0.01)


def test_no_scale_fits_an_absurdly_thin_image(dense):
    with pytest.raises(ImageError, match="no scale fits, crop the image"):
        dense.run(np.zeros((1, 200_000), np.uint8), 28)


def test_a_phone_photo_too_large_even_for_blas_names_the_scale_blas_can_do(tmp_path):
    """At scale 1 a 12 MP photo falls back to the lean engine; at scale 2 neither fits."""
    Image.new("L", (4000, 3000), 200).save(tmp_path / "photo.png")
    result = run_cli("map", tmp_path / "photo.png", "--scale", "2", "--engine", "onnx",
                     "--out", tmp_path / "out")
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "onnx")
    largest = dense.planner.max_scale((3000, 4000), pictures=True)   # map draws a full-size overlay
    lean = dense.planner.lean_engine

    def need(scale: float, engine=None) -> float:
        size = scaled_size((3000, 4000), scale)
        return dense.planner.forward_bytes(*size, engine=engine) + dense.planner.picture_bytes((3000, 4000), *size)

    limit = cost.MEMORY_LIMIT
    assert need(largest, lean) <= limit < need(largest + 0.01, lean)
    assert need(largest) > limit   # not onnx's
    assert largest >= 1
    assert_one_line_error(result, "the 4000x3000 image becomes 8000x6000 pixels",
                          "GB on the 'onnx' engine and ", "GB on the 'blas' engine",
                          f"GB limit; the largest scale that fits is {largest:g}")
    assert not (tmp_path / "out").exists()


# ---- images: paths -----------------------------------------------------------------------

def test_unicode_and_spaces_in_every_path(tmp_path):
    folder = tmp_path / "Plátes 2024 – ünï 空"
    folder.mkdir()
    image = folder / "my plate (1).png"
    Image.fromarray(plate_like(60, 120)).save(image)
    result = run_cli("map", image, "--out", folder / "out put", "--json")
    assert result.returncode == 0, result.stderr
    assert (folder / "out put" / "featuremap.npz").exists()
    missing = run_cli("read", folder / "nïcht da.png")
    assert_one_line_error(missing, "nïcht da.png does not exist")


def test_unicode_paths_under_the_c_locale(tmp_path):
    image = tmp_path / "čšž plate.png"
    Image.fromarray(plate_like(60, 120)).save(image)
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PYTHONIOENCODING", None)
    result = run_cli("read", image, "--scale", "1", env=env)
    assert result.returncode == 0, result.stderr


# ---- models: broken files ----------------------------------------------------------------

def test_a_truncated_caffemodel_on_the_command_line(tmp_path, plate_png):
    proto, weights = write_net_pair(tmp_path)
    cut = tmp_path / "half.caffemodel"
    cut.write_bytes(weights.read_bytes()[:len(weights.read_bytes()) // 2])
    result = run_cli("map", plate_png, "--prototxt", proto, "--weights", cut, "--out",
                     tmp_path / "out")
    assert_one_line_error(result, "half.caffemodel", "truncated")


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_as_a_caffemodel(tmp_path, seed):
    proto, _ = write_net_pair(tmp_path)
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(random.Random(seed).randbytes(random.Random(seed).randint(1, 20000)))
    with pytest.raises(ModelError, match="junk.caffemodel"):
        load_net(proto, junk)


def test_an_empty_caffemodel(tmp_path):
    proto, _ = write_net_pair(tmp_path)
    (tmp_path / "empty.caffemodel").touch()
    with pytest.raises(ModelError, match=r"empty.caffemodel is empty \(0 bytes\)"):
        load_net(proto, tmp_path / "empty.caffemodel")


def test_a_prototxt_syntax_error_names_the_line(tmp_path, plate_png):
    proto, weights = write_net_pair(tmp_path)
    lines = proto.read_text().splitlines()
    at = next(k for k, line in enumerate(lines) if "kernel_size: 3" in line)
    lines[at] = lines[at].replace("kernel_size: 3", "kernel_size 3 }}")
    proto.write_text("\n".join(lines))
    result = run_cli("map", plate_png, "--prototxt", proto, "--weights", weights,
                     "--out", tmp_path / "out")
    assert_one_line_error(result, f"tiny.prototxt line {at + 1}", "(in layer 'conv1')")


def test_unbalanced_braces_nested_deeply(tmp_path):
    (tmp_path / "deep.prototxt").write_text("layer { " * 5000)
    with pytest.raises(ModelError, match="deep.prototxt"):
        model_io.read_prototxt(tmp_path / "deep.prototxt")


def test_an_unknown_layer_type_is_named(tmp_path, plate_png):
    proto, weights = write_net_pair(tmp_path)
    proto.write_text(proto.read_text().replace('type: "ReLU"', 'type: "Deconvolution"'))
    result = run_cli("map", plate_png, "--prototxt", proto, "--weights", weights,
                     "--out", tmp_path / "out")
    assert_one_line_error(result, "unsupported layer type in 'relu1' (Deconvolution)")


def test_prototxt_and_caffemodel_that_disagree_name_the_layer_and_both_shapes(tmp_path):
    proto, weights = write_net_pair(tmp_path)
    proto.write_text(proto.read_text().replace("num_output: 5", "num_output: 7"))
    result = run_cli("surgery", "--prototxt", proto, "--weights", weights, "--out",
                     tmp_path / "out")
    assert_one_line_error(result, "layer 'ip1'", "(7, 100)", "(5, 100)")


@pytest.mark.parametrize("proto_arg, weights_arg, message", [
    ("caffemodel", "caffemodel", "a .caffemodel given as --prototxt?"),
    ("prototxt", "prototxt", "a .prototxt given as --weights?"),
    ("caffemodel", "prototxt", "a .caffemodel given as --prototxt?"),
])
def test_swapped_model_files(tmp_path, plate_png, proto_arg, weights_arg, message):
    files = dict(zip(("prototxt", "caffemodel"), write_net_pair(tmp_path)))
    with pytest.raises(ModelError, match=re_escape(message)):
        load_net(files[proto_arg], files[weights_arg])


def test_swapped_model_files_on_the_command_line(tmp_path, plate_png):
    proto, weights = write_net_pair(tmp_path)
    result = run_cli("map", plate_png, "--prototxt", weights, "--weights", proto,
                     "--out", tmp_path / "out")
    assert_one_line_error(result, "tiny.caffemodel is not a text prototxt")


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


# ---- models: structures the viewer refuses or converts --------------------------------------

def test_a_net_without_inner_product_has_nothing_to_convert(tmp_path):
    result = run_cli("surgery", "--prototxt", paths.FCN_PROTOTXT, "--weights",
                     paths.FCN_WEIGHTS, "--out", tmp_path / "out")
    assert_one_line_error(result, "has no InnerProduct layer and no global pooling: "
                                  "nothing to convert")
    assert not list((tmp_path / "out").glob("*.caffemodel"))


def test_an_already_convolutional_net_maps_directly(tmp_path, plate_png):
    net = load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
    dense = DenseClassifier(net, "numpy")
    assert dense.classifier is None and dense.net is net
    result = run_cli("map", plate_png, "--prototxt", paths.FCN_PROTOTXT, "--weights",
                     paths.FCN_WEIGHTS, "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr


def test_a_v1_layers_model_is_upgraded_and_converts_exactly(tmp_path, plate_png):
    param, _ = model_io.parse_prototxt(TINY_NET)
    net = init_weights(param, seed=4)
    old = as_v1(net)
    (tmp_path / "old.prototxt").write_text(text_format.MessageToString(model_io.structure_of(old)))
    (tmp_path / "old.caffemodel").write_bytes(old.SerializeToString())
    assert "layers {" in (tmp_path / "old.prototxt").read_text()
    assert "type: CONVOLUTION" in (tmp_path / "old.prototxt").read_text()
    loaded = load_net(tmp_path / "old.prototxt", tmp_path / "old.caffemodel")
    assert [l.type for l in loaded.param.layer] == ["Convolution", "ReLU", "Pooling",
                                                    "InnerProduct", "Softmax"]
    for name, blobs in net.weights.items():
        np.testing.assert_array_equal(loaded.weights[name][0], blobs[0])
    result = run_cli("surgery", "--prototxt", tmp_path / "old.prototxt", "--weights",
                     tmp_path / "old.caffemodel", "--out", tmp_path / "out", "--engine", "numpy")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_a_v1_layer_type_without_an_upgrade_is_refused_by_name():
    text = ('input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8\n'
            'layers { name: "norm" type: MVN bottom: "data" top: "n" }')
    with pytest.raises(ModelError, match="old-format layer 'norm' has type MVN"):
        model_io.parse_prototxt(text, "old.prototxt")


def test_inner_product_with_transpose_converts_exactly(tmp_path):
    text = TINY_NET.replace("num_output: 5 }", "num_output: 5 transpose: true }")
    param, _ = model_io.parse_prototxt(text)
    net = init_weights(param, seed=5)
    assert net.weights["ip1"][0].shape == (100, 5)
    fcn = surgery.make_fully_convolutional(net).net
    assert fcn.weights["ip1-conv"][0].shape == (5, 4, 5, 5)
    for engine in ("numpy", "opencv"):
        assert surgery.verify_equivalence(net, fcn, count=4, engine=engine).max_abs_diff < 1e-4


def test_inner_product_on_another_axis_is_refused_by_name(tmp_path):
    text = TINY_NET.replace("num_output: 5 }", "num_output: 5 axis: 2 }")
    result_proto = tmp_path / "axis.prototxt"
    result_proto.write_text(text)
    proto, weights = write_net_pair(tmp_path)
    result = run_cli("surgery", "--prototxt", result_proto, "--weights", weights,
                     "--out", tmp_path / "out")
    assert_one_line_error(result, "InnerProduct layer 'ip1' uses axis 2")


@pytest.mark.parametrize("change, message", [
    (("kernel_size: 3", "kernel_size: 0"), r"'conv1' \(Convolution\) has kernel size 0x0"),
    (("kernel_size: 3", "kernel_size: 3 stride: 0"), r"'conv1' \(Convolution\) has stride"),
    (("kernel_size: 3", "kernel_size: 3 group: 3"), r"'conv1'.* do not split into 3 groups"),
    (("kernel_size: 3", "kernel_size: 3 dilation: 0"), "has dilation 0x0"),
    (("kernel_size: 3", "kernel_size: 3 kernel_size: 3 kernel_size: 3"),
     "'conv1' gives 3 values for kernel_size"),
    (("stride: 2", "stride: 0"), r"'pool1' \(Pooling\) has stride 0x0"),
    (("stride: 2", "stride: 2 pad: 2"), "'pool1' pads by 2x2"),
    (("pool: MAX", "pool: STOCHASTIC"), "'pool1' uses STOCHASTIC"),
    (('bottom: "pool1" top: "ip1"', 'top: "ip1"'), r"'ip1' \(InnerProduct\) has no bottom"),
    (('bottom: "conv1" top: "pool1"', 'bottom: "conv9" top: "pool1"'),
     "'pool1' reads blob 'conv9'"),
    (("dim: 12 dim: 12", "dim: 1000000 dim: 1000000"), "too large"),
    (("dim: 12 dim: 12", "dim: 0 dim: 12"), "empty or negative shape"),
    (("dim: 12 dim: 12", "dim: 2 dim: 2"), "input 2x2 is smaller than the 3x3 kernel of 'conv1'"),
])
def test_broken_layer_parameters_are_named(change, message):
    param, _ = model_io.parse_prototxt(TINY_NET.replace(*change), "t.prototxt")
    with pytest.raises(ModelError, match=message):
        netgraph.infer_shapes(param)


def test_a_flatten_or_concat_with_bad_axes_is_named():
    base = TINY_NET.replace('bottom: "pool1" top: "ip1"', 'bottom: "flat" top: "ip1"')
    flat = base.replace('layer { name: "ip1"', 'layer { name: "flat" type: "Flatten" '
                        'bottom: "pool1" top: "flat" flatten_param { axis: 7 } }\nlayer { name: "ip1"')
    with pytest.raises(ModelError, match=r"'flat' \(Flatten\) has axis 7, outside the 4 axes"):
        netgraph.infer_shapes(model_io.parse_prototxt(flat)[0])
    cat = base.replace('layer { name: "ip1"', 'layer { name: "flat" type: "Concat" '
                       'bottom: "pool1" bottom: "data" top: "flat" }\nlayer { name: "ip1"')
    with pytest.raises(ModelError, match=r"Concat 'flat' joins pool1 \(1, 4, 5, 5\) and data"):
        netgraph.infer_shapes(model_io.parse_prototxt(cat)[0])


def test_nan_or_infinite_weights_are_refused(tmp_path):
    param, _ = model_io.parse_prototxt(TINY_NET)
    net = init_weights(param, seed=1)
    net.weights["conv1"][0][0, 0, 1, 1] = np.nan
    net.weights["ip1"][1][2] = np.inf
    model_io.write_net(net, tmp_path / "nan.prototxt", tmp_path / "nan.caffemodel")
    with pytest.raises(ModelError, match="layer 'conv1' blob 0 holds 1 NaN or infinite value"):
        load_net(tmp_path / "nan.prototxt", tmp_path / "nan.caffemodel")


def test_weights_that_overflow_float32_are_an_error_not_a_nan_map():
    net = init_weights(model_io.parse_prototxt(TINY_NET)[0], seed=1)
    net.weights["conv1"][0][:] = 3e38                  # finite, but the first sum overflows
    dense = DenseClassifier(surgery.make_fully_convolutional(net).net, "numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelError, match="overflow to infinity or NaN at scale 1"):
            dense.run(np.full((20, 20), 200, np.uint8), 1.0)

def test_a_declared_10_to_the_12_element_blob_is_never_allocated(tmp_path):
    proto, _ = write_net_pair(tmp_path)
    huge = caffe_pb2.NetParameter()
    layer = huge.layer.add(name="ip1", type="InnerProduct")
    layer.blobs.add().shape.dim.extend([1_000_000, 1_000_000])
    (tmp_path / "huge.caffemodel").write_bytes(huge.SerializeToString())
    assert (tmp_path / "huge.caffemodel").stat().st_size < 100
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match=r"declares 1000000000000 elements"):
            load_net(proto, tmp_path / "huge.caffemodel")
        assert tracemalloc.get_traced_memory()[1] < 5_000_000
    finally:
        tracemalloc.stop()
    declared = TINY_NET.replace("dim: 12 dim: 12", "dim: 1000000 dim: 1000000")
    with pytest.raises(ModelError, match=r"input 'data' would hold 1000000000000 elements"):
        netgraph.input_shapes(model_io.parse_prototxt(declared)[0])


def test_an_absurd_declared_input_is_not_allocated_by_the_surgery_check():
    """Global pooling keeps the weights small whatever the input, so a prototxt can declare a
    20000x20000 window; checking the surgery on 16 of them would take 42 GB."""
    text = """
    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 1 dim: 20000 dim: 20000 } } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
            convolution_param { num_output: 1 kernel_size: 3 } }
    layer { name: "pool" type: "Pooling" bottom: "conv1" top: "pool"
            pooling_param { pool: AVE global_pooling: true } }
    layer { name: "ip1" type: "InnerProduct" bottom: "pool" top: "ip1"
            inner_product_param { num_output: 5 } }"""
    net = init_weights(model_io.parse_prototxt(text, "big.prototxt")[0])
    fcn = surgery.make_fully_convolutional(net).net
    tracemalloc.start()
    try:
        with pytest.raises(SurgeryError, match=r"declares an input of \(1, 1, 20000, 20000\).*"
                                               r"would need 41.7 GB"):
            surgery.verify_equivalence(net, fcn, count=8, engine="numpy")
        assert tracemalloc.get_traced_memory()[1] < 5_000_000
    finally:
        tracemalloc.stop()

def test_an_absurd_net_on_the_command_line(tmp_path, plate_png):
    proto, weights = write_net_pair(tmp_path)
    proto.write_text(proto.read_text().replace("num_output: 4", "num_output: 4000000000"))
    result = run_cli("surgery", "--prototxt", proto, "--weights", weights,
                     "--out", tmp_path / "out")
    assert_one_line_error(result, "output of layer 'conv1' would hold", "too large")


# ---- LMDB ----------------------------------------------------------------------------------

@pytest.fixture
def small_lmdb(tmp_path) -> Path:
    path = tmp_path / "train_lmdb"
    write_lmdb(path, [(np.full((28, 28), 10 * k, np.uint8), k) for k in range(6)])
    return path


def test_a_folder_that_is_not_an_lmdb(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="photos is not an LMDB folder"):
        open_lmdb(tmp_path / "photos")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "data.mdb").write_bytes(random.Random(0).randbytes(20000))
    with pytest.raises(DatasetError, match="fake is not an LMDB folder"):
        open_lmdb(tmp_path / "fake")
    result = run_cli("dataset", "show", tmp_path / "photos", "--out", tmp_path / "sheet.png")
    assert_one_line_error(result, "photos is not an LMDB folder")


def test_a_read_only_lmdb_is_read_and_left_untouched(small_lmdb, tmp_path):
    copy = tmp_path / "ro_lmdb"
    shutil.copytree(small_lmdb, copy)
    (copy / "lock.mdb").unlink()         # as copied from a read-only medium: no lock file
    undo = make_read_only(copy)
    if undo is None:
        pytest.skip("this machine offers no way to make a folder read-only")
    try:
        before = sorted(os.listdir(copy)), fingerprint(copy / "data.mdb")
        with open_lmdb(copy) as reader:
            assert [r.label for r in reader] == list(range(6))
            assert reader.get(3).image[0, 0, 0] == 30
        assert (sorted(os.listdir(copy)), fingerprint(copy / "data.mdb")) == before
    finally:
        undo()


def test_an_lmdb_is_read_while_another_process_holds_a_write_transaction(small_lmdb):
    writer = subprocess.Popen([sys.executable, "-c", f"""
import lmdb, sys
env = lmdb.open({str(small_lmdb)!r}, map_size=1 << 26)
txn = env.begin(write=True)
txn.put(b"00000099", b"not yet committed")
print("writing", flush=True)
sys.stdin.readline()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        with open_lmdb(small_lmdb) as reader:
            assert len(reader) == 6
            assert [r.label for r in reader] == list(range(6))
    finally:
        writer.communicate("\n", timeout=30)


def test_records_that_are_not_datum_name_their_key(tmp_path):
    path = tmp_path / "mixed_lmdb"
    env = lmdb.open(str(path), map_size=1 << 24)
    ok, jpeg = cv2.imencode(".jpg", np.full((10, 12, 3), (40, 120, 200), np.uint8))
    with env.begin(write=True) as txn:
        txn.put(b"00000000", make_datum(np.full((4, 4), 7, np.uint8), 1).SerializeToString())
        txn.put(b"00000001", b"plain text is not a protobuf message")
        txn.put(b"00000002", caffe_pb2.Datum(channels=1, height=4, width=4,
                                             data=b"\x00" * 5).SerializeToString())
        txn.put(b"00000003", caffe_pb2.Datum(channels=3, height=10, width=12, encoded=True,
                                             data=jpeg.tobytes(), label=4).SerializeToString())
        txn.put(b"00000004", caffe_pb2.Datum(channels=3, encoded=True,
                                             data=b"GIF89a broken").SerializeToString())
        txn.put(b"00000005", caffe_pb2.NetParameter(name="x" * 20).SerializeToString())
    env.close()
    with open_lmdb(path) as reader:
        assert reader.get(0).image.shape == (1, 4, 4)
        with pytest.raises(DatasetError, match="record '00000001' of .* is not a Caffe Datum"):
            reader.get(1)
        with pytest.raises(DatasetError, match="'00000002'.* 5 bytes, expected 1\\*4\\*4"):
            reader.get(2)
        jpeg_record = reader.get(3)
        assert jpeg_record.label == 4 and jpeg_record.shape == (3, 10, 12)
        assert np.abs(jpeg_record.image[:, 5, 6].astype(int) - [40, 120, 200]).max() < 6
        with pytest.raises(DatasetError, match="'00000004'.* no PNG/JPEG image"):
            reader.get(4)
        with pytest.raises(DatasetError, match="'00000005'.* is not a Caffe Datum"):
            reader.get(5)
        with pytest.raises(DatasetError, match="'00000001'"):
            list(reader)


def test_the_same_lmdb_opened_twice_in_one_process(small_lmdb):
    """The dataset browser re-opening a folder it shows, or training beside it: LMDB allows
    one environment per file and process, so the readers share it."""
    first = open_lmdb(small_lmdb)
    with open_lmdb(small_lmdb) as second:
        assert len(second) == 6
    assert [r.label for r in first] == list(range(6))     # closing one keeps the other
    first.close()
    first.close()                                           # a second close is harmless
    with open_lmdb(small_lmdb) as again:
        assert len(again) == 6


# ---- outputs -------------------------------------------------------------------------------

@pytest.fixture
def read_only_dir(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / "kept.txt").write_text("keep me")
    undo = make_read_only(folder)
    if undo is None:
        pytest.skip("this machine offers no way to make a folder read-only")
    yield folder
    undo()


def test_outputs_never_overwrite_an_input(tmp_path):
    image = tmp_path / "heatmap_best.png"       # the name `map` writes its overlay to
    Image.fromarray(plate_like(60, 120)).save(image)
    before = fingerprint(image)
    result = run_cli("map", image, "--out", tmp_path)
    assert_one_line_error(result, "refusing to overwrite the input file", "heatmap_best.png")
    assert fingerprint(image) == before
    assert not (tmp_path / "featuremap.npz").exists()   # refused before anything was written


def test_an_output_linked_to_an_input_is_refused(tmp_path):
    (tmp_path / "model.caffemodel").write_bytes(b"precious")
    (tmp_path / "link.caffemodel").symlink_to(tmp_path / "model.caffemodel")
    with pytest.raises(ViewerError, match="refusing to overwrite the input file"):
        safe_write.write_bytes_atomic(tmp_path / "link.caffemodel", b"new",
                                      inputs=(tmp_path / "model.caffemodel",))
    assert (tmp_path / "model.caffemodel").read_bytes() == b"precious"


def test_map_and_surgery_leave_their_inputs_byte_for_byte(tmp_path, plate_png):
    proto, weights = write_net_pair(tmp_path)
    before = fingerprint(plate_png, proto, weights)
    assert run_cli("map", plate_png, "--prototxt", proto, "--weights", weights,
                   "--out", tmp_path).returncode == 0
    assert run_cli("surgery", "--prototxt", proto, "--weights", weights,
                   "--out", tmp_path).returncode == 0
    assert fingerprint(plate_png, proto, weights) == before


def test_writing_to_a_read_only_folder(read_only_dir, plate_png):
    result = run_cli("map", plate_png, "--out", read_only_dir)
    assert_one_line_error(result, f"output folder {read_only_dir} is not writable")
    with pytest.raises(ViewerError, match="is not writable"):
        safe_write.write_text_atomic(read_only_dir / "kept.txt", "changed")
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["kept.txt"]
    assert (read_only_dir / "kept.txt").read_text() == "keep me"


def test_creating_an_output_folder_inside_a_read_only_one(read_only_dir, plate_png):
    result = run_cli("map", plate_png, "--out", read_only_dir / "maps")
    assert_one_line_error(result, "cannot create the output folder", "maps")


def test_a_screenshot_into_a_read_only_folder_fails_before_the_window_opens(read_only_dir):
    result = run_cli("view", "--screenshot", read_only_dir / "shot.png",
                     env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert_one_line_error(result, f"output folder {read_only_dir} is not writable")


def test_a_screenshot_never_replaces_the_image_it_shows(plate_png):
    before = fingerprint(plate_png)
    result = run_cli("view", plate_png, "--screenshot", plate_png,
                     env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert_one_line_error(result, "refusing to overwrite the input file")
    assert fingerprint(plate_png) == before


def test_a_dataset_into_a_read_only_folder(read_only_dir):
    result = run_cli("dataset", "make", "--out", read_only_dir / "plates", "--count", "10")
    if "font" in result.stderr:
        pytest.skip("the plate fonts are not installed here")
    assert_one_line_error(result, "cannot create the output folder", "plates")

@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs")
def test_a_system_folder_no_one_may_write():
    with pytest.raises(ViewerError, match="/sys/kernel/netsurgery-out"):
        safe_write.prepare_output_folder("/sys/kernel/netsurgery-out")


def test_an_existing_file_as_the_output_folder(tmp_path, plate_png):
    (tmp_path / "out").write_text("not a folder")
    result = run_cli("map", plate_png, "--out", tmp_path / "out")
    assert_one_line_error(result, "output folder", "is an existing file")


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError(28, "No space left on device")],
                         ids=["interrupted", "disk full"])
def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch, failure):
    target = tmp_path / "featuremap.npz"
    target.write_bytes(b"old results")

    def fail(fd):
        raise failure

    monkeypatch.setattr(safe_write.os, "fsync", fail)
    expected = ViewerError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        safe_write.write_bytes_atomic(target, b"new results " * 1000)
    assert target.read_bytes() == b"old results"
    assert [p.name for p in tmp_path.iterdir()] == ["featuremap.npz"]   # no temporary left


def test_an_interrupted_model_export_keeps_both_old_files(tmp_path, monkeypatch):
    proto, weights = write_net_pair(tmp_path, stem="out")
    before = fingerprint(proto, weights)
    replace = os.replace

    def interrupted(src, dst):
        if str(dst).endswith(".caffemodel"):
            raise KeyboardInterrupt
        return replace(src, dst)

    param, _ = model_io.parse_prototxt(TINY_NET)
    monkeypatch.setattr(safe_write.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model_io.write_net(init_weights(param, seed=9), proto, weights)
    assert fingerprint(weights) == before[1:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.caffemodel", "out.prototxt"]


# ---- the command line's contract ---------------------------------------------------------

def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    (tmp_path / "empty.png").touch()
    result = run_cli("--debug", "read", tmp_path / "empty.png")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "ImageError" in result.stderr
    assert result.stderr.rstrip().endswith("empty.png is empty (0 bytes): copy or save the "
                                           "image again")


def test_a_bug_is_one_line_with_exit_code_1_and_a_hint(monkeypatch, capsys):
    from viewer import cli
    from viewer.maps import images

    def broken(path):
        raise RuntimeError("boom")

    monkeypatch.setattr(images, "load_image", broken)
    assert cli.main(["read", "x.png"]) == 1
    err = capsys.readouterr().err
    assert err == "error: internal error: RuntimeError: boom (run with --debug for the traceback)\n"


def test_read_refuses_a_model_whose_classes_are_not_plate_characters(tmp_path, plate_png):
    proto, weights = write_net_pair(tmp_path)
    result = run_cli("read", plate_png, "--prototxt", proto, "--weights", weights)
    assert_one_line_error(result, "this model's classes are not the plate labels",
                          "use `map`")
    assert result.stdout == ""
