"""Reading plate images as people have them: any mode, EXIF-rotated, 8 or 16 bit.

Images are loaded with Pillow, so channels come in RGB order; the gray conversion uses RGB
weights (the tutorial's `COLOR_BGR2GRAY` on an RGB array swapped red and blue).
"""
from __future__ import annotations

import errno
import math
import os
import re
import struct
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from viewer.errors import ImageError, too_long
from viewer.files.safe_read import NotRegularFile, open_regular

# Pillow's own bomb guard stays on; this is the pixel count we accept before decoding.
MAX_PIXELS = 120_000_000


def _deep_to_gray8(img: Image.Image) -> np.ndarray:
    """8-bit gray from 16-bit, 32-bit integer or float pixels.

    16-bit images use their full 0-65535 range. Other images keep 0-255 data as it is and
    0-1 floats are scaled by 255; anything else (negative, HDR, 32-bit counts) is stretched
    from its darkest to its brightest finite pixel. NaN and infinity become black.
    """
    arr = np.asarray(img, dtype=np.float64)
    finite = np.isfinite(arr)
    low, high = (arr[finite].min(), arr[finite].max()) if finite.any() else (0.0, 0.0)
    if img.mode.startswith("I;16"):
        low, top = 0.0, 65535.0
    elif img.mode == "F" and low >= 0 and high <= 1.0:
        low, top = 0.0, 1.0
    elif low >= 0 and high <= 255:
        low, top = 0.0, 255.0
    else:
        top = high - low if high > low else 1.0
    # Every branch puts the finite pixels in [low, low + top] and the others at low (black),
    # so the levels need no clipping: 0 to 255.5, truncated to 0-255.
    arr = np.where(finite, arr, low)
    return ((arr - low) / top * 255.0 + 0.5).astype(np.uint8)


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """An H x W x 3 (or H x W for gray) uint8 array from any Pillow mode."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):   # I;16, I;16B, I;16L, I;16N
        return _deep_to_gray8(img)
    # an alpha channel, or a transparent colour (PNG's tRNS: palette, gray or RGB images)
    if img.mode in ("LA", "RGBA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB"))


_quiet_lock = threading.Lock()
_quiet_users = 0
_saved_stderr: int | None = None


@contextmanager
def decoders_quiet() -> Iterator[None]:
    """Send what C decoders print on file descriptor 2 to /dev/null meanwhile: libtiff writes
    "More samples per pixel than can be decoded: 2048" there, a stray line beside our one
    clear error. Nested and concurrent users share one redirection (the first saves stderr,
    the last puts it back), so threads decoding at once cannot lose it."""
    global _quiet_users, _saved_stderr
    with _quiet_lock:
        if _quiet_users == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
                _saved_stderr = saved
            except (OSError, ValueError):        # no descriptor 2: nothing to quiet
                _saved_stderr = None
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0 and _saved_stderr is not None:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Load an image as uint8 RGB (H x W x 3) or gray (H x W), upright per its EXIF tag."""
    path = Path(path)
    try:
        with open_regular(path) as fh, warnings.catch_warnings(), decoders_quiet():
            if os.fstat(fh.fileno()).st_size == 0:
                raise ImageError(f"{path} is empty (0 bytes): copy or save the image again")
            # Pillow warns on stderr about damaged tags, truncated reads and large images;
            # the image either decodes or gets one clear ImageError (MAX_PIXELS below).
            warnings.simplefilter("ignore")
            with Image.open(fh) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageError(_too_many_pixels(path, img.width, img.height))
                img.seek(0)
                upright = ImageOps.exif_transpose(img)
                return _to_rgb8(upright)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image") from None
    except NotRegularFile as err:
        raise ImageError(f"{path} cannot be read as an image: {err.strerror}") from None
    except PermissionError:
        raise ImageError(f"{path} cannot be read: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image in a format this viewer reads "
                         "(PNG, JPEG, TIFF, BMP, GIF, WebP...)") from None
    except Image.DecompressionBombError as err:
        declared = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(declared.group(1)) // 1_000_000} megapixels" if declared else "its size"
        raise ImageError(f"{path} is refused as a possible decompression bomb: it declares "
                         f"{size}, more than the {MAX_PIXELS // 1_000_000} megapixels this "
                         "viewer opens") from None
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            raise ImageError(f"{path} is damaged or truncated ({err}): save or download it "
                             "again") from None
        raise ImageError(too_long(path, named=False)) from None
    except MemoryError:
        raise ImageError(f"{path} is too large to decode in the memory available") from None
    except (SyntaxError, ValueError, EOFError, struct.error) as err:
        raise ImageError(f"{path} is damaged or truncated ({err}): save or download it "
                         "again") from None
    except Exception as err:   # noqa: BLE001 - any decoder's failure is this file's error
        # Pillow's plugins fail in their own ways: RuntimeError from a damaged AVIF (served
        # under a .jpg name), NotImplementedError from a DDS of an unknown pixel format.
        raise ImageError(f"{path} cannot be decoded ({type(err).__name__}: {err}): save it "
                         "again as PNG or JPEG") from None


def _too_many_pixels(path: Path, width: int, height: int) -> str:
    return (f"{path} is {width}x{height} pixels, more than the {MAX_PIXELS // 1_000_000} "
            "megapixels this viewer opens: shrink it first")


def scaled_size(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(height, width) of an image of `shape` after `rescale(..., scale)`, without resizing."""
    h, w = shape[:2]
    if not 0 < scale < math.inf:
        raise ImageError(f"scale must be a positive number, got {scale}")
    if not math.isfinite(max(h, w) * scale):
        raise ImageError(f"scale {scale:g} makes the {w}x{h} image larger than any number "
                         "of pixels: choose a scale near 1")
    return max(1, round(h * scale)), max(1, round(w * scale))


def to_gray(image: np.ndarray) -> np.ndarray:
    """Gray uint8 from an RGB or gray array (ITU-R 601 weights, as training used)."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def rescale(gray: np.ndarray, scale: float) -> np.ndarray:
    """Resize by `scale`: area interpolation when shrinking (no aliasing), linear otherwise."""
    h, w = gray.shape[:2]
    new_h, new_w = scaled_size(gray.shape, scale)
    size = (new_w, new_h)
    if size == (w, h):
        return gray
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, size, interpolation=method)
