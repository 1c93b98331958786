"""A map layer in colour: through a pyqtgraph colormap, and blended over the plate for export.

The layer itself (which map, where, on what levels) is decided without Qt (`viewer.app.layers`);
this adds the colormap, so the screen and the exported PNG use the same one.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg

from viewer.app.layers import MapLayer
from viewer.maps import render
from viewer.maps.featuremap import FeatureMap


def colored(values: np.ndarray, colormap: str, levels: tuple[float, float]) -> np.ndarray:
    """A single channel through a colormap on fixed levels, as uint8 RGB."""
    low, high = levels
    unit = np.clip((values - low) / ((high - low) or 1.0), 0.0, 1.0)
    return pg.colormap.get(colormap).map(unit, mode="byte")[..., :3].astype(np.uint8)


def overlay_picture(image: np.ndarray, fm: FeatureMap, layer: MapLayer, colormap: str,
                    levels: tuple[float, float], opacity: float) -> np.ndarray:
    """The plate with `layer` blended over it at `opacity`, in original pixels (for PNG export)."""
    cells = layer.rgba if layer.rgba is not None else colored(layer.values, colormap, levels)
    return render.blend(image, cells, dataclasses.replace(fm, geometry=layer.geometry), opacity)
