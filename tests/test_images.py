"""Loading and resizing images: every pixel mode to the exact gray levels it shows, each
failure to its message, and the interpolation `rescale` picks."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from PIL import Image

from bad_inputs import png_declaring
from viewer.maps import images
from viewer.errors import ImageError
from viewer.maps.images import load_image, rescale, scaled_size
from viewer.files.safe_read import NotRegularFile


def saved(tmp_path, image: Image.Image, fmt: str) -> np.ndarray:
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, fmt)
    return load_image(path)


# ---- deep pixels: 16-bit, 32-bit and float to 8-bit gray ------------------------------------

def deep(values: list[float], mode: str) -> Image.Image:
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": np.int32, "F": np.float32}[mode]
    image = Image.fromarray(np.array([values], dtype))
    assert image.mode == mode
    return image


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_levels_divide_by_257_rounding_halves_up(tmp_path, mode):
    # 33025 = 128.5 * 257, half way between levels 128 and 129
    loaded = saved(tmp_path, deep([0, 257, 33024, 33025, 65535], mode), "TIFF")
    assert loaded.dtype == np.uint8 and loaded.tolist() == [[0, 1, 128, 129, 255]]


@pytest.mark.parametrize("values, mode, gray", [
    ([0, 100, 200], "I", [0, 100, 200]),             # 0-255 data is kept, even if it is dark
    ([10, 100, 255], "I", [10, 100, 255]),           # up to 255 included
    ([10, 100, 256], "I", [0, 93, 255]),             # one over: stretched from 10 to 256
    ([-5, 0, 5], "I", [0, 128, 255]),                # negative: stretched
    ([0, 0.5, 1.5], "F", [0, 1, 2]),                 # floats over 1 are 0-255 levels
    ([0, 0.25, 1.0], "F", [0, 64, 255]),             # 0-1 floats are scaled by 255
    ([0.7, 0.9], "F", [178, 229]),   # 178.4999970 and 229.4999939 in double precision
    ([-7, -7], "F", [0, 0]),                         # flat: black, no division by zero
])
def test_deep_pixels_keep_or_stretch_their_range(tmp_path, values, mode, gray):
    assert saved(tmp_path, deep(values, mode), "TIFF").tolist() == [gray]


@pytest.mark.parametrize("fill", [-3000.0, 1000.0])
def test_nan_and_infinity_are_black_whatever_the_range(tmp_path, fill):
    pixels = [fill, fill + 10_000, np.nan, np.inf, -np.inf]
    assert saved(tmp_path, deep(pixels, "F"), "TIFF").tolist() == [[0, 255, 0, 0, 0]]


def test_a_float_image_with_no_finite_pixel_is_black(tmp_path):
    assert saved(tmp_path, deep([np.nan, np.inf], "F"), "TIFF").tolist() == [[0, 0]]


# ---- 8-bit modes: gray stays H x W, colour and alpha become RGB on white --------------------

def test_one_bit_images_are_gray_zero_or_255(tmp_path):
    loaded = saved(tmp_path, Image.fromarray(np.array([[True, False]])), "PNG")
    assert loaded.shape == (1, 2) and loaded.tolist() == [[255, 0]]


@pytest.mark.parametrize("mode, fmt", [("LA", "PNG"), ("RGBA", "PNG"), ("PA", "TIFF")])
def test_transparent_pixels_show_the_white_behind_them(tmp_path, mode, fmt):
    image = Image.new(mode, (2, 1))
    image.putpixel((0, 0), (40, 255) if mode == "LA" else (40, 40, 40, 255) if mode == "RGBA"
                   else (1, 255))
    if mode == "PA":
        image.putpalette([0, 0, 0, 40, 40, 40])
    loaded = saved(tmp_path, image, fmt)
    assert loaded.shape == (1, 2, 3)
    assert loaded.tolist() == [[[40, 40, 40], [255, 255, 255]]]


def test_a_palette_with_a_transparent_index_shows_white_there(tmp_path):
    image = Image.new("P", (3, 1))
    image.putpalette([0, 0, 0, 200, 10, 10])
    image.putdata([0, 1, 0])
    image.save(tmp_path / "clear.png", transparency=0)
    assert load_image(tmp_path / "clear.png").tolist() == [
        [[255, 255, 255], [200, 10, 10], [255, 255, 255]]]
    image.save(tmp_path / "opaque.png")
    assert load_image(tmp_path / "opaque.png").tolist() == [
        [[0, 0, 0], [200, 10, 10], [0, 0, 0]]]


@pytest.mark.parametrize("mode, shown", [("RGB", [200, 10, 10]), ("L", [99] * 3)])
def test_a_transparent_colour_of_a_gray_or_rgb_png_shows_white(tmp_path, mode, shown):
    image = Image.new(mode, (2, 1))
    image.putpixel((1, 0), tuple(shown) if mode == "RGB" else shown[0])
    image.save(tmp_path / "keyed.png", transparency=(0, 0, 0) if mode == "RGB" else 0)
    assert load_image(tmp_path / "keyed.png").tolist() == [[[255, 255, 255], shown]]


# ---- failures: one message each ------------------------------------------------------------

def test_an_empty_file_is_called_empty(tmp_path):
    (tmp_path / "empty.png").touch()
    with pytest.raises(ImageError, match=r"empty.png is empty \(0 bytes\): copy or save the "
                                         r"image again$"):
        load_image(tmp_path / "empty.png")


def test_a_one_byte_file_is_no_image(tmp_path):
    (tmp_path / "one.png").write_bytes(b"\x89")
    with pytest.raises(ImageError, match=r"one.png is not an image in a format this viewer "
                                         r"reads \(PNG, JPEG, TIFF, BMP, GIF, WebP\.\.\.\)$"):
        load_image(tmp_path / "one.png")


def test_a_missing_file_and_a_fifo_are_named(tmp_path):
    with pytest.raises(ImageError, match=r"gone.png does not exist$"):
        load_image(tmp_path / "gone.png")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageError, match=r"pipe.png cannot be read as an image: it is a FIFO "
                                         r"\(named pipe\), not a regular file$"):
        load_image(tmp_path / "pipe.png")


@pytest.mark.parametrize("error, says", [
    (PermissionError(errno.EACCES, "Permission denied"), "cannot be read: permission denied$"),
    (MemoryError(), "is too large to decode in the memory available$"),
    (OSError("broken data stream"), r"is damaged or truncated \(broken data stream\): save or "
                                     r"download it again$"),
])
def test_errors_while_reading_become_one_message(tmp_path, monkeypatch, error, says):
    """Root reads any file and memory is plentiful here: these failures are staged."""
    Image.new("L", (2, 2)).save(tmp_path / "photo.png")

    def fail(*args):
        raise error

    monkeypatch.setattr(images, "_to_rgb8", fail)
    with pytest.raises(ImageError, match=rf"photo.png {says}"):
        load_image(tmp_path / "photo.png")


def test_a_decompression_bomb_is_refused_with_the_size_it_declares(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_declaring(60_000, 60_000))
    with pytest.raises(ImageError, match=r"bomb.png is refused as a possible decompression "
                                         r"bomb: it declares 3600 megapixels, more than the "
                                         r"120 megapixels this viewer opens$"):
        load_image(tmp_path / "bomb.png")


def test_a_bomb_whose_error_gives_no_pixel_count_is_refused_all_the_same(tmp_path, monkeypatch):
    (tmp_path / "bomb.png").write_bytes(png_declaring(60_000, 60_000))

    def bomb(*args):
        raise Image.DecompressionBombError("too large")

    monkeypatch.setattr(images.Image, "open", bomb)
    with pytest.raises(ImageError, match=r"bomb.png is refused as a possible decompression "
                                         r"bomb: it declares its size, more than the 120 "):
        load_image(tmp_path / "bomb.png")


def test_the_pixel_limit_is_inclusive(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 12)
    Image.new("L", (4, 3), 9).save(tmp_path / "twelve.png")
    assert load_image(tmp_path / "twelve.png").shape == (3, 4)
    Image.new("L", (13, 1), 9).save(tmp_path / "thirteen.png")
    with pytest.raises(ImageError, match=r"thirteen.png is 13x1 pixels, more than the 0 "
                                         r"megapixels this viewer opens: shrink it first$"):
        load_image(tmp_path / "thirteen.png")


# ---- sizes and resizing ---------------------------------------------------------------------

def test_scaled_size_takes_height_and_width_of_a_colour_shape():
    assert scaled_size((40, 60, 3), 0.5) == (20, 30)
    assert scaled_size((40, 60), 0.001) == (1, 1)


def test_rescale_shrinks_by_area_and_enlarges_linearly():
    one_in_four = np.tile(np.array([0, 0, 0, 255], np.uint8), (4, 2))   # 4 x 8
    assert rescale(one_in_four, 0.25).tolist() == [[64, 64]]             # the mean of 4 x 4
    ramp = np.array([[0, 60, 120]], np.uint8)
    # 1 x 3 -> 2 x 4, the new columns sampling the ramp at 0.625 and 1.375 steps (37.5, 82.5
    # in OpenCV's fixed point); INTER_AREA would give 40 and 80
    assert rescale(ramp, 1.5).tolist() == [[0, 37, 82, 120]] * 2
    colour = np.dstack([one_in_four, one_in_four, 255 - one_in_four])
    assert rescale(colour, 0.25).tolist() == [[[64, 64, 191], [64, 64, 191]]]
