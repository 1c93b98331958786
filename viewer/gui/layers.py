"""A map layer in colour: through a pyqtgraph colormap, and blended over the plate for export.

The layer itself (which map, where, on what levels) is decided without Qt (`viewer.app.layers`);
this adds the colormap, so the screen and the exported PNG use the same one.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np
import pyqtgraph as pg

from viewer.app.layers import MapLayer
from viewer.maps import render
from viewer.maps.featuremap import FeatureMap
from viewer.plates.locate import FoundPlate

PLATE_RGB, CHOSEN_RGB = (255, 200, 0), (255, 80, 40)    # the plates overlay's pens


def colored(values: np.ndarray, colormap: str, levels: tuple[float, float]) -> np.ndarray:
    """A single channel through a colormap on fixed levels, as uint8 RGB."""
    low, high = levels
    unit = np.clip((values - low) / ((high - low) or 1.0), 0.0, 1.0)
    return pg.colormap.get(colormap).map(unit, mode="byte")[..., :3].astype(np.uint8)


def overlay_picture(image: np.ndarray, fm: FeatureMap, layer: MapLayer, colormap: str,
                    levels: tuple[float, float], opacity: float,
                    plates: Sequence[FoundPlate] = (), chosen: int | None = None) -> np.ndarray:
    """The plate with `layer` blended over it at `opacity`, in original pixels (for PNG
    export), with the found `plates` boxed and labelled as on screen (`chosen` in red)."""
    cells = layer.rgba if layer.rgba is not None else colored(layer.values, colormap, levels)
    picture = render.blend(image, cells, dataclasses.replace(fm, geometry=layer.geometry),
                           opacity)
    for k, plate in enumerate(plates):
        x, y, w, h = (round(v) for v in plate.box)
        color, width = (CHOSEN_RGB, 3) if k == chosen else (PLATE_RGB, 2)
        cv2.rectangle(picture, (x, y), (x + w, y + h), color, width)
        cv2.putText(picture, plate.text, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    PLATE_RGB, 1, cv2.LINE_AA)
    return picture
