"""numpy arrays to QImage/QPixmap for the small pictures in panels (kernels, tiles, samples)."""
from __future__ import annotations

import cv2
import numpy as np
from PyQt5 import QtGui


def normalized(values: np.ndarray) -> np.ndarray:
    """Stretch any real array to uint8 0-255 over its own range (flat arrays become mid-gray)."""
    values = np.asarray(values, np.float32)
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.full(values.shape, 128, np.uint8)
    return ((values - low) / (high - low) * 255.0 + 0.5).astype(np.uint8)


def to_qimage(pixels: np.ndarray) -> QtGui.QImage:
    """A deep-copied QImage of an H x W gray or H x W x 3 RGB uint8 array."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        image = QtGui.QImage(pixels.data, w, h, pixels.strides[0], QtGui.QImage.Format_Grayscale8)
    else:
        image = QtGui.QImage(pixels.data, w, h, pixels.strides[0], QtGui.QImage.Format_RGB888)
    return image.copy()


def enlarged(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so each pixel of a 5x5 kernel stays a visible square."""
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def fitted(pixels: np.ndarray, height: int) -> np.ndarray:
    """Resize to `height` keeping the aspect ratio (area averaging when shrinking)."""
    h, w = pixels.shape[:2]
    width = max(1, round(w * height / h))
    method = cv2.INTER_AREA if height < h else cv2.INTER_NEAREST
    return cv2.resize(pixels, (width, height), interpolation=method)


def to_pixmap(pixels: np.ndarray) -> QtGui.QPixmap:
    return QtGui.QPixmap.fromImage(to_qimage(pixels))
