"""Reading plate images as people have them: any mode, EXIF-rotated, 8 or 16 bit.

Images are loaded with Pillow, so channels come in RGB order; the gray conversion uses RGB
weights (the tutorial's `COLOR_BGR2GRAY` on an RGB array swapped red and blue).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from viewer.errors import ImageError

# Pillow's own bomb guard stays on; this is the pixel count we accept before decoding.
MAX_PIXELS = 120_000_000


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """An H x W x 3 (or H x W for gray) uint8 array from any Pillow mode."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"))
    if img.mode in ("LA", "RGBA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Load an image as uint8 RGB (H x W x 3) or gray (H x W), upright per its EXIF tag."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{path} is {img.width}x{img.height} pixels, more than the "
                                 f"{MAX_PIXELS // 1_000_000} megapixels this viewer opens")
            img.seek(0)
            upright = ImageOps.exif_transpose(img)
            return _to_rgb8(upright)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image Pillow can read") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path} is refused as a decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path} is damaged or truncated: {err}") from None


def to_gray(image: np.ndarray) -> np.ndarray:
    """Gray uint8 from an RGB or gray array (ITU-R 601 weights, as training used)."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def rescale(gray: np.ndarray, scale: float) -> np.ndarray:
    """Resize by `scale`: area interpolation when shrinking (no aliasing), linear otherwise."""
    if scale <= 0:
        raise ImageError(f"scale must be positive, got {scale}")
    h, w = gray.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return gray
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, size, interpolation=method)
