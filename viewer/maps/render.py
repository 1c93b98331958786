"""Pictures of dense maps without Qt: class-colored overlays and filter grids for PNG export."""
from __future__ import annotations

import colorcet
import cv2
import numpy as np

from viewer.net import cost
from viewer.maps.featuremap import FeatureMap
from viewer.maps.labels import character_channels, character_confidence
from viewer.maps.labels import is_plate_model


def class_colors(count: int) -> np.ndarray:
    """`count` colours as uint8 RGB, one per class, from colorcet's Glasbey palette: each
    next colour is as far as it can be from all before it (the golden-ratio hues it replaces
    gave K and 5 the same yellow, 8 and A the same red). Past 256 classes the colours repeat."""
    palette = [[int(code[i:i + 2], 16) for i in (1, 3, 5)] for code in colorcet.glasbey]
    return np.array([palette[k % len(palette)] for k in range(count)], np.uint8)


def best_cells(fm: FeatureMap) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the class the best-class picture shows and how opaque it is.

    For a plate model that is the best character, as opaque as 1 - P(background), so
    background cells are transparent and the plate shows through unchanged. Any other
    classifier gets its best class, as opaque as that class's probability.
    """
    if is_plate_model(fm.labels):
        chars = character_channels(fm.labels)
        return chars[fm.probs[chars].argmax(axis=0)], character_confidence(fm.probs, fm.labels)
    return fm.best()


def best_class_legend(fm: FeatureMap, sure: float = 0.5) -> list[tuple[str, np.ndarray]]:
    """The classes the best-class picture shows clearly (some cell at least `sure`
    opaque), left to right by their first such cell, each with its colour."""
    best, alpha = best_cells(fm)
    rows, cols = np.nonzero(alpha >= sure)
    first: dict[int, int] = {}
    for j, k in sorted(zip(cols.tolist(), best[rows, cols].tolist())):
        first.setdefault(k, j)
    colors = class_colors(len(fm.labels))
    return [(fm.labels[k], colors[k]) for k in sorted(first, key=first.get)]


def best_class_rgba(fm: FeatureMap) -> np.ndarray:
    """h x w x 4 map: each cell in its best class's colour, as opaque as `best_cells` says."""
    best, alpha = best_cells(fm)
    rgba = np.empty(best.shape + (4,), np.uint8)
    rgba[..., :3] = class_colors(len(fm.labels))[best]
    rgba[..., 3] = np.clip(np.rint(255 * alpha), 0, 255).astype(np.uint8)
    return rgba


def blend(base: np.ndarray, cells: np.ndarray, fm: FeatureMap, opacity: float) -> np.ndarray:
    """`cells` (RGB, or RGBA with its own alpha) placed per the geometry over the gray or RGB
    `base` at `opacity`, as uint8 RGB. Worked out in bands of rows (`cost.BAND_PIXELS`): a
    120 MP overlay then costs its own 3 bytes a pixel, not the 40 that float32 copies of the
    whole image took (4.8 GB past the memory guard)."""
    height, width = fm.image_shape
    out = np.empty((height, width, 3), np.uint8)
    step = max(1, cost.BAND_PIXELS // max(width, 1))
    for top in range(0, height, step):
        rows = slice(top, min(height, top + step))
        placed, mask = place_on_image(fm, cells, rows)
        out[rows] = _blend_band(base[rows], placed, mask, opacity)
    return out


def _blend_band(base: np.ndarray, placed: np.ndarray, mask: np.ndarray,
                opacity: float) -> np.ndarray:
    out = (base if base.ndim == 3 else np.repeat(base[..., None], 3, axis=2)).astype(np.float32)
    alpha = np.where(mask, np.float32(opacity), np.float32(0))[..., None]
    if placed.shape[-1] == 4:
        alpha = alpha * placed[..., 3:].astype(np.float32) / 255.0
    out = (1 - alpha) * out + alpha * placed[..., :3]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def place_on_image(fm: FeatureMap, cells: np.ndarray,
                   rows: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stretch an h x w (x 3) cell array over the original image per the geometry.

    Returns the array in image pixels (only `rows` of them, if given) and a mask of the
    pixels it covers.
    """
    height, width = fm.image_shape
    top, bottom = (0, height) if rows is None else (rows.start, rows.stop)
    x, y, w, h = fm.geometry.heatmap_rect(*cells.shape[:2])
    cw, ch = w / cells.shape[1], h / cells.shape[0]
    # Affine map from cell index space to image pixels, centre to centre (cell j's block
    # spans x + j*cw .. x + (j+1)*cw, pixel p's centre is p + 0.5), so that nearest-neighbour
    # sampling keeps cells as the blocks the viewer draws.
    matrix = np.array([[cw, 0, x + cw / 2 - 0.5], [0, ch, y + ch / 2 - 0.5 - top]], np.float64)
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    inverse = cv2.invertAffineTransform(matrix)
    placed = cv2.warpAffine(cells, inverse, (width, bottom - top), flags=flags)
    mask = cv2.warpAffine(np.ones(cells.shape[:2], np.uint8), inverse, (width, bottom - top),
                          flags=flags)
    return placed, mask.astype(bool)


def overlay_best_class(image: np.ndarray, fm: FeatureMap, opacity: float = 0.6) -> np.ndarray:
    """The plate (RGB) with the best-character map blended over it."""
    return blend(image, best_class_rgba(fm), fm, opacity)


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
