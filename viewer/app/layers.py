"""Which map goes over the plate, where, and on what levels: decided once for the view and export.

A `MapLayer` is napari's layer in small: data, the transform from the core's geometry
(`heatmap_rect`), and the levels it is drawn on. Channel picks, raw scores and conv1 filters
all reduce to one of these, so the screen and the exported PNG cannot disagree. How a layer
is coloured is the widgets' (`viewer.gui.layers`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.maps import render
from viewer.maps.featuremap import DenseClassifier, FeatureMap
from viewer.net.geometry import Geometry, geometry_of
from viewer.maps.labels import is_plate_model

Rect = tuple[float, float, float, float]


@dataclass
class MapLayer:
    """One drawable map: a single channel (`values`) or a picture with its alpha (`rgba`)."""

    title: str
    geometry: Geometry
    rect: Rect
    mode: str                       # "best", "prob", "raw" or "filter K": levels reset per mode
    levels: tuple[float, float]
    values: np.ndarray | None = None
    rgba: np.ndarray | None = None


def conv1_geometry(dense: DenseClassifier, fm: FeatureMap) -> Geometry:
    """conv1 has its own stride and window (1 and 5 for LeNet), at the map's actual scale."""
    g = geometry_of(dense.net, dense.first_conv, fm.geometry.scale)
    return g.shifted(*fm.region[:2]) if fm.region is not None else g


def layer_for(fm: FeatureMap, dense: DenseClassifier, channel: str | None,
              filter_index: int | None, raw: bool) -> MapLayer:
    """The layer for a conv1 filter, else a class channel, else the best class.

    A filter's levels are its own output's range (the range of all filters washed out one
    that lies near 0-1), and each filter is a mode of its own, so picking another one resets
    them while a scale change keeps the user's adjustment.
    """
    if filter_index is not None and fm.conv1 is not None:
        g = conv1_geometry(dense, fm)
        values = fm.conv1[filter_index]
        low, high = float(values.min()), float(values.max())
        return MapLayer(filter_name(dense, filter_index) + " output", g,
                        g.heatmap_rect(*values.shape), f"filter {filter_index}",
                        (low, high if high > low else low + 1.0), values=values)
    g = fm.geometry
    rect = g.heatmap_rect(*fm.probs.shape[1:])
    if channel is None:
        return MapLayer(best_title(fm.labels), g, rect, "best", (0, 255),
                        rgba=render.best_class_rgba(fm))
    k = fm.labels.index(channel)
    if raw:
        return MapLayer(f"raw score of {channel}", g, rect, "raw",
                        (float(fm.scores.min()), float(fm.scores.max())), values=fm.scores[k])
    return MapLayer(f"P({channel})", g, rect, "prob", (0.0, 1.0), values=fm.probs[k])


def best_title(labels: list[str]) -> str:
    """What the best-class layer shows (see `render.best_class_rgba`)."""
    if is_plate_model(labels):
        return "best character (hue), as opaque as 1 - P(background)"
    return "best class (hue), as opaque as its probability"


def filter_name(dense: DenseClassifier, index: int) -> str:
    """How the viewer names a conv1 filter (Channel box, status summary)."""
    return f"{dense.first_conv} filter #{index}"
