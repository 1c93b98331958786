"""Saving what a dense pass produced: `featuremap.npz`, overlay PNGs, filter grids.

One format for the CLI's `map` and the GUI's export, written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from viewer.errors import ViewerError
from viewer.featuremap import FeatureMap
from viewer.safe_write import write_atomic, write_bytes_atomic

NPZ_KEYS = ("probs", "scores", "conv1", "labels", "scale", "stride", "offset",
            "receptive_field", "image_shape")


def save_npz(fm: FeatureMap, path: str | os.PathLike, inputs: tuple = ()) -> Path:
    """Write the maps and their geometry as a compressed `.npz`, streamed to the file (the
    maps of a 12 MP photo take a gigabyte even compressed)."""
    conv1 = fm.conv1 if fm.conv1 is not None else np.zeros((0, 0, 0), np.float32)
    return write_atomic(path, lambda fh: np.savez_compressed(
        fh, probs=fm.probs, scores=fm.scores, conv1=conv1, labels=np.array(fm.labels),
        scale=np.float64(fm.scale), stride=np.array(fm.geometry.stride),
        offset=np.array(fm.geometry.offset), receptive_field=np.array(fm.geometry.receptive_field),
        image_shape=np.array(fm.image_shape)), inputs)


def save_png(image: np.ndarray, path: str | os.PathLike, inputs: tuple = ()) -> Path:
    """Write an RGB or gray uint8 array as PNG."""
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ViewerError(f"cannot encode {path} as PNG")
    return write_bytes_atomic(path, encoded.tobytes(), inputs)
