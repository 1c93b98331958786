"""Pictures of dense maps without Qt: class-colored overlays and filter grids for PNG export."""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from viewer.featuremap import FeatureMap
from viewer.labels import BACKGROUND_NAME


def class_colors(count: int) -> np.ndarray:
    """`count` distinct, evenly spread hues as uint8 RGB, one per class."""
    hues = [(k * 0.618033988749895) % 1.0 for k in range(count)]
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 1.0)] for h in hues],
                    np.uint8)


def best_class_rgb(fm: FeatureMap) -> np.ndarray:
    """h x w x 3 map: the best class's color, with its probability as brightness.

    A background class is black, so only the characters light up over the plate.
    """
    best, conf = fm.best()
    colors = class_colors(len(fm.labels))
    if BACKGROUND_NAME in fm.labels:
        colors[fm.labels.index(BACKGROUND_NAME)] = 0
    return (colors[best] * conf[..., None]).astype(np.uint8)


def place_on_image(fm: FeatureMap, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stretch an h x w (x 3) cell array over the original image per the geometry.

    Returns the array in image pixels and a mask of the pixels it covers.
    """
    height, width = fm.image_shape
    x, y, w, h = fm.geometry.heatmap_rect(*cells.shape[:2])
    # Affine map from cell index space to image pixels; nearest keeps cells as blocks.
    matrix = np.array([[w / cells.shape[1], 0, x], [0, h / cells.shape[0], y]], np.float32)
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    inverse = cv2.invertAffineTransform(matrix)
    placed = cv2.warpAffine(cells, inverse, (width, height), flags=flags)
    mask = cv2.warpAffine(np.ones(cells.shape[:2], np.uint8), inverse, (width, height),
                          flags=flags)
    return placed, mask.astype(bool)


def overlay_best_class(image: np.ndarray, fm: FeatureMap, opacity: float = 0.6) -> np.ndarray:
    """The plate (RGB) with the best-class map blended over it."""
    base = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    placed, mask = place_on_image(fm, best_class_rgb(fm))
    out = base.astype(np.float32)
    out[mask] = (1 - opacity) * out[mask] + opacity * placed[mask]
    return out.astype(np.uint8)


def tile_channels(maps: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile K x h x w channels into one gray uint8 image, each channel normalised alone."""
    count, h, w = maps.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    sheet = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), 255, np.uint8)
    for k in range(count):
        m = maps[k]
        span = float(m.max() - m.min()) or 1.0
        r, c = divmod(k, columns)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = \
            ((m - m.min()) / span * 255).astype(np.uint8)
    return sheet
