"""The work the window hands to its worker threads: plain functions over core calls, no widgets.

Each job gets everything it needs as arguments (never the window), so a job that finishes after
the user has moved on cannot touch the new state; the window drops its stale result by tag.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

from viewer.featuremap import DenseClassifier, FeatureMap
from viewer.gui.session import LoadedModel
from viewer.gui.surgery_panel import SurgeryCheck
from viewer.sliding import compare_with_windows
from viewer.surgery import verify_equivalence


@dataclass(frozen=True)
class MapTag:
    """Which request a result answers: the window's generation (image and model) and scale."""

    generation: int
    scale: float


@dataclass
class MapResult:
    """A dense map, the plate read from it, or why there is no reading."""

    fm: FeatureMap
    reading: Any = None
    note: str = ""


def reading_module() -> ModuleType | None:
    """`viewer.reading` (read_plate, auto_scale) when it is installed in this tree."""
    try:
        return importlib.import_module("viewer.reading")
    except ImportError:
        return None


def compute_map(dense: DenseClassifier, image: np.ndarray, scale: float,
                blobs: tuple[str, ...]) -> MapResult:
    """The dense pass plus the plate reading; a reading failure never loses the map."""
    fm = dense.run(image, scale, extra_blobs=blobs)
    reading = reading_module()
    if reading is None:
        return MapResult(fm, note="Plate reading is not available in this version.")
    try:
        return MapResult(fm, reading.read_plate(fm))
    except ValueError as err:
        return MapResult(fm, note=f"Could not read the plate: {err}")


def auto_map(dense: DenseClassifier, image: np.ndarray) -> MapResult:
    """The map at the scale where the plate reads best (`reading.auto_read`)."""
    reading = reading_module()
    if reading is None:
        raise RuntimeError("viewer.reading is missing")
    plate, fm = reading.auto_read(dense, image)
    return MapResult(fm, plate)


def check_surgery(model: LoadedModel, image: np.ndarray, scale: float,
                  cancelled: Callable[[], bool] | None = None) -> SurgeryCheck:
    """Equivalence and timing on a private engine, so the map worker's engine is never shared.

    `cancelled` lets a closing window end the (seconds-long) per-window timing early.
    """
    twin = DenseClassifier(model.dense.net, model.dense.engine_name)
    verification = verify_equivalence(model.classifier, model.dense.net,
                                      engine=model.dense.engine_name) if model.classifier else None
    comparison = compare_with_windows(twin, image, scale, classifier=model.classifier,
                                      cancelled=cancelled)
    return SurgeryCheck(verification, comparison, scale)
