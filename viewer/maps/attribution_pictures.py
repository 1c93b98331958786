"""Pictures of an `Explanation` without Qt, drawn once for the viewer's panel and the CLI's PNGs.

Signed methods are drawn red where the pixel raised the cell's score and blue where it
lowered it, unsigned ones (gradcam) in red only; each picture is scaled by its own largest
magnitude, and opacity follows the magnitude, so the plate shows through where nothing was
attributed. Outside the cell's window the plate is dimmed: the answer is about that window.
"""
from __future__ import annotations

import cv2
import numpy as np

from viewer.maps.attribution import Explanation

POSITIVE = np.array([220, 30, 30], np.float32)
NEGATIVE = np.array([30, 80, 230], np.float32)
DIM = 0.35             # brightness of the plate outside the cell's window
ZOOM = 4               # the row's tiles: the window at 4x


def cell_window(explanation: Explanation) -> tuple[int, int, int, int]:
    """The cell's classifier window in input pixels: y0, y1, x0, x1, clipped to the input."""
    g, (i, j) = explanation.geometry, explanation.cell
    height, width = explanation.input.shape[1:]
    top, left = g.offset[0] + i * g.stride[0], g.offset[1] + j * g.stride[1]
    return (max(0, top), min(height, top + g.receptive_field[0]),
            max(0, left), min(width, left + g.receptive_field[1]))


def input_gray(explanation: Explanation) -> np.ndarray:
    """The input as the net saw it, stretched to uint8 gray (its channels averaged)."""
    plane = explanation.input.mean(axis=0)
    low, high = float(plane.min()), float(plane.max())
    return ((plane - low) / ((high - low) or 1.0) * 255).astype(np.uint8)


def colored(values: np.ndarray, base: np.ndarray) -> np.ndarray:
    """An H x W attribution over the gray `base` as uint8 RGB: red positive, blue negative,
    as opaque as the magnitude over the largest one."""
    peak = float(np.abs(values).max()) or 1.0
    strength = np.clip(np.abs(values) / peak, 0, 1)[..., None].astype(np.float32)
    color = np.where(values[..., None] >= 0, POSITIVE, NEGATIVE)
    out = (1 - strength) * base[..., None].astype(np.float32) + strength * color
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay(explanation: Explanation, method: str) -> np.ndarray:
    """The whole input with the method's map over it, the plate dimmed outside the cell's
    window and the window outlined."""
    y0, y1, x0, x1 = cell_window(explanation)
    base = input_gray(explanation)
    out = (base[..., None].repeat(3, axis=2) * DIM).astype(np.uint8)
    inside = colored(explanation.picture(method)[y0:y1, x0:x1], base[y0:y1, x0:x1])
    out[y0:y1, x0:x1] = inside
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 210, 0), 1)
    return out


def around_window(picture: np.ndarray, explanation: Explanation, margin: float = 1.0
                  ) -> np.ndarray:
    """The part of an input-sized picture around the cell's window: `margin` windows on each
    side, so the plate's neighbouring letters show."""
    y0, y1, x0, x1 = cell_window(explanation)
    dy, dx = round((y1 - y0) * margin), round((x1 - x0) * margin)
    return picture[max(0, y0 - dy):y1 + dy, max(0, x0 - dx):x1 + dx]


def method_tile(explanation: Explanation, method: str, zoom: int = ZOOM) -> np.ndarray:
    """The cell's window only, with the method's map, enlarged `zoom` times."""
    y0, y1, x0, x1 = cell_window(explanation)
    tile = colored(explanation.picture(method)[y0:y1, x0:x1],
                   input_gray(explanation)[y0:y1, x0:x1])
    return cv2.resize(tile, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)


def method_row(explanation: Explanation, gap: int = 4, zoom: int = ZOOM) -> np.ndarray:
    """The window once per method, left to right in the explanation's order, named below."""
    tiles = [method_tile(explanation, m, zoom) for m in explanation.maps]
    height, label = max(t.shape[0] for t in tiles), 14
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    sheet = np.full((height + label, width, 3), 255, np.uint8)
    x = 0
    for method, tile in zip(explanation.maps, tiles):
        sheet[:tile.shape[0], x:x + tile.shape[1]] = tile
        cv2.putText(sheet, method.replace("gradient_x_input", "grad x in")[:12],
                    (x + 1, height + label - 3), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
        x += tile.shape[1] + gap
    return sheet
