"""The small gray pictures of the panels as numpy arrays (conv1 tiles, samples, previews).

Plain numpy and OpenCV, so a worker thread draws them and the GUI thread only wraps them in
pixmaps (`viewer.gui.pixmaps`).
"""
from __future__ import annotations

import cv2
import numpy as np

TILE_HEIGHT = 40           # conv1 tiles drawn without a panel to fit
GAP = 4                    # pixels between a kernel and its output in a tile


def normalized(values: np.ndarray) -> np.ndarray:
    """Stretch any real array to uint8 0-255 over its own range (flat arrays become mid-gray)."""
    values = np.asarray(values, np.float32)
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.full(values.shape, 128, np.uint8)
    return ((values - low) / (high - low) * 255.0 + 0.5).astype(np.uint8)


def enlarged(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so each pixel of a 5x5 kernel stays a visible square."""
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def fitted(pixels: np.ndarray, height: int) -> np.ndarray:
    """Resize to `height` keeping the aspect ratio (area averaging when shrinking)."""
    h, w = pixels.shape[:2]
    width = max(1, round(w * height / h))
    method = cv2.INTER_AREA if height < h else cv2.INTER_NEAREST
    return cv2.resize(pixels, (width, height), interpolation=method)


def filter_picture(kernel: np.ndarray, output: np.ndarray, height: int = TILE_HEIGHT) -> np.ndarray:
    """One gray picture: the kernel (mean over input channels) enlarged, a gap, the output.

    Plain numpy, so the map worker draws these (~30 ms for 20 filters at scale 0.9) and the
    GUI thread only wraps them in pixmaps.
    """
    k = normalized(kernel.mean(axis=0))
    factor = max(1, height // k.shape[0])
    k = enlarged(k, factor)
    k = np.pad(k, ((0, height - k.shape[0]), (0, GAP)), constant_values=255)
    # Shrink first, then stretch to 0-255: half the work of stretching the full-size output.
    return np.hstack([k, normalized(fitted(np.asarray(output, np.float32), height))])


def conv1_pictures(kernels: np.ndarray, outputs: np.ndarray, height: int) -> list[np.ndarray]:
    """The conv1 panel's tiles, `height` pixels tall, drawn on a worker after the heatmap is
    on screen (~10-20 ms for 20 filters at scale 0.9, which used to delay the heatmap or
    block the GUI thread)."""
    return [filter_picture(kernel, output, height) for kernel, output in zip(kernels, outputs)]
