"""numpy pictures to QImage/QPixmap for the panels (kernels, tiles, samples); the pictures
themselves are drawn without Qt (`viewer.app.pictures`)."""
from __future__ import annotations

import numpy as np
from PyQt5 import QtGui


def to_qimage(pixels: np.ndarray) -> QtGui.QImage:
    """A deep-copied QImage of an H x W gray or H x W x 3 RGB uint8 array."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        image = QtGui.QImage(pixels.data, w, h, pixels.strides[0], QtGui.QImage.Format_Grayscale8)
    else:
        image = QtGui.QImage(pixels.data, w, h, pixels.strides[0], QtGui.QImage.Format_RGB888)
    return image.copy()


def to_pixmap(pixels: np.ndarray) -> QtGui.QPixmap:
    return QtGui.QPixmap.fromImage(to_qimage(pixels))
