"""A plate's ground: what tells a row of letters on a plate from a row of strokes in a texture.

The net answers "is a character centred here?", and a grille, a fence, a tree or a stack of
tiles answers yes in rows of T, I, S or 3 at one pitch. What they lack is a plate's ground:
letters are thin strokes of ink on a light plate (or light strokes on a coloured one), so
within the box of the letters the ink is the smaller part. A texture of strokes is as dark
as it is light or darker, and grey.

The box is the letters' (`locate.letters_box`): a character's height tall, the row's
width. Ink is every pixel darker than halfway between the box's 10th and 90th percentiles
of brightness.
"""
from __future__ import annotations

import cv2
import numpy as np

MAX_INK = 0.5            # a plate's letters cover at most this share of their box ...
COLOURED = 60.0          # ... unless the darker part is a coloured ground (chroma, 0-255)
MIN_CONTRAST = 8.0       # grey levels between ink and ground below which nothing is said


def _region(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The pixels of an (x, y, w, h) box, clipped to the image."""
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    return image[y0:y1, x0:x1]


def ink_share(image: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float]:
    """The share of the box's pixels that are ink (darker than halfway between its 10th and
    90th percentile), and the mean chroma (max - min of R, G, B; 0 for a gray image) of
    those pixels: unlike saturation it stays low in the noise of dark JPEG pixels."""
    region = _region(image, box)
    if region.size == 0:
        return 0.0, 0.0
    gray = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.ndim == 3 else region
    low, high = np.percentile(gray, (10, 90))
    if high - low < MIN_CONTRAST:
        return 0.0, 0.0
    dark = gray < (low + high) / 2
    if region.ndim != 3 or not dark.any():
        return float(dark.mean()), 0.0
    pixels = region[dark].astype(np.int16)
    chroma = pixels.max(axis=1) - pixels.min(axis=1)
    return float(dark.mean()), float(chroma.mean())


def has_plate_ground(image: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """Letters on a plate: dark strokes on a lighter ground, or light ones on a coloured
    ground; a gray row as dark as it is light is a texture."""
    ink, chroma = ink_share(image, box)
    return ink <= MAX_INK or chroma >= COLOURED
