"""The work the viewer hands to its worker threads: the kinds of job, and plain functions over
core calls for each, with no widgets.

Each job gets everything it needs as arguments (never the state), so a job that finishes after
the user has moved on cannot touch the new state; the controller drops its stale result by tag.
"""
from __future__ import annotations

import importlib
import math
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from viewer.plates import locate
from viewer.maps.attribution import METHODS, Explainer, Explanation
from viewer.maps.featuremap import DenseClassifier, FeatureMap
from viewer.app import session
from viewer.app.session import LoadedModel
from viewer.maps.labels import is_plate_model
from viewer.caffe.model_io import CaffeNet
from viewer.maps.preprocess import ModelSettings
from viewer.maps.sliding import WindowComparison, compare_with_windows
from viewer.surgery.verify import Verification


RUNNERS_UP = 5           # classes offered to explain a cell's class against
OPENING_SIDE = 640       # pixels: the longer side of a new image for a model without a reader
TIMING_BUDGET_S = 1.5    # the per-window side of the surgery timing; the rest is extrapolated


class JobKind(str, Enum):
    """What a worker is asked to do. A worker keeps the latest request of each kind, and the
    controller has one handler per kind (a str, so the workers' Qt signals carry it)."""

    MAP = "map"
    AUTO = "auto"
    MODEL = "model"
    SURGERY = "surgery"
    BLOB = "blob"
    FINE = "fine"
    PLATES = "plates"
    TILES = "tiles"
    SAVE = "save"
    EXPLAIN = "explain"

    def __str__(self) -> str:
        return self.value

    @property
    def doing(self) -> str:
        """What the busy indicator and "cancelled: ..." call this kind of work."""
        return DOING[self]


DOING = {JobKind.MAP: "computing the map", JobKind.AUTO: "choosing the scale",
         JobKind.MODEL: "loading the model", JobKind.SURGERY: "timing the surgery",
         JobKind.BLOB: "computing the blob", JobKind.FINE: "computing the fine map",
         JobKind.PLATES: "finding plates", JobKind.TILES: "drawing the conv1 tiles",
         JobKind.SAVE: "saving", JobKind.EXPLAIN: "explaining the cell"}


@dataclass(frozen=True)
class MapTag:
    """Which request a result answers: the window's generation (image and model) and scale,
    and when it was asked for (perf_counter), so latency can be measured from the request."""

    generation: int
    scale: float
    asked: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class PlatesTag:
    """Which plate search a result answers: the window's generation, and whether the user
    asked for a region (then the best plate found there is chosen and zoomed to)."""

    generation: int
    region: bool


@dataclass(frozen=True)
class ModelTag:
    """Which model request a result answers (the window keeps only the newest one)."""

    number: int
    prototxt: Path
    weights: Path | None
    engine: str
    remember: bool = True       # a file the user opened (recent files), not an engine switch


@dataclass
class NetRead:
    """The first step of opening a model: the net as read, before the user is asked about
    surgery and the engine is built."""

    net: CaffeNet
    needs_surgery: bool


class JobCancelled(Exception):
    """A job noticed between two passes that its result is no longer wanted."""


class StoppableDense:
    """A DenseClassifier whose `run` refuses to start once `cancelled()` says so, and whose
    maps carry `extra_blobs` (the Blobs tab's pick, so it shows the map the search chose).

    The core's searches (`reading.auto_read` reads some 15 scales) take a DenseClassifier;
    handing them this stand-in lets a cancelled search end after the pass in progress.
    """

    def __init__(self, dense: DenseClassifier, cancelled: Callable[[], bool],
                 extra_blobs: tuple[str, ...] = ()) -> None:
        self._dense, self._cancelled, self._extra = dense, cancelled, extra_blobs

    def run(self, image: np.ndarray, scale: float = 1.0, **kwargs) -> FeatureMap:
        if self._cancelled():
            raise JobCancelled("cancelled between two passes")
        kwargs["extra_blobs"] = tuple(kwargs.get("extra_blobs", ())) + self._extra
        return self._dense.run(image, scale, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dense, name)


@dataclass
class MapResult:
    """A dense map, the plate read from it, or why there is no reading."""

    fm: FeatureMap
    reading: Any = None
    note: str = ""


@dataclass
class SurgeryCheck:
    """The slow worker's answer: equivalence (when the classifier is known) and timing."""

    verification: Verification | None
    comparison: WindowComparison
    scale: float


def reading_module() -> ModuleType | None:
    """`viewer.plates.reading` (read_plate, auto_scale) when it is installed in this tree."""
    try:
        return importlib.import_module("viewer.plates.reading")
    except ImportError:
        return None


def plate_reader(labels: list[str]) -> ModuleType | None:
    """The plate reader, for a model with the plate labels only: other classifiers get no
    reading, automatic scale or letter strip."""
    return reading_module() if is_plate_model(labels) else None


def opening_scale(dense: DenseClassifier, image_shape: tuple[int, ...]) -> float:
    """The scale a new image opens at when no plate reader chooses one: 1, or less so that
    the longer side is at most OPENING_SIDE pixels (a 12 MP photo at scale 1 takes many
    seconds a pass, and a model opened on it next would map it there too), never below the
    net's smallest scale."""
    fit = math.floor(OPENING_SIDE / max(image_shape[:2]) * 100) / 100
    return max(dense.planner.smallest_scale(image_shape[:2]), min(1.0, fit))


Region = tuple[int, int, int, int]


def region_pixels(image: np.ndarray, region: Region | None) -> np.ndarray:
    """The pixels a map of `region` (x, y, w, h; None: all) is made of."""
    if region is None:
        return image
    x, y, w, h = region
    return image[y:y + h, x:x + w]


def placed(fm: FeatureMap, region: Region | None, image_shape: tuple[int, ...]) -> FeatureMap:
    """A map of a crop, placed in the image it was cut from: its cells' windows, the layer
    over the plate and the hovered cell are in the image's pixels."""
    if region is None:
        return fm
    return replace(fm, geometry=fm.geometry.shifted(region[0], region[1]),
                   image_shape=tuple(image_shape[:2]), region=tuple(region))


def map_of(dense: DenseClassifier, image: np.ndarray, scale: float, blobs: tuple[str, ...],
           region: Region | None = None) -> FeatureMap:
    """The dense pass over `region` of `image` (None: all of it), placed in the image."""
    fm = dense.run(region_pixels(image, region), scale, extra_blobs=blobs)
    return placed(fm, region, image.shape)


def compute_map(dense: DenseClassifier, image: np.ndarray, scale: float,
                blobs: tuple[str, ...], region: Region | None = None) -> MapResult:
    """The dense pass (of `region` only, when given: a plate's neighbourhood) plus, for a
    plate model, the plate reading; a reading failure never loses the map."""
    fm = map_of(dense, image, scale, blobs, region)
    if not is_plate_model(fm.labels):
        return MapResult(fm)
    reading = reading_module()
    if reading is None:
        return MapResult(fm, note="Plate reading is not available in this version.")
    try:
        return MapResult(fm, reading.read_plate(fm))
    except ValueError as err:
        return MapResult(fm, note=f"Could not read the plate: {err}")


def auto_map(dense: DenseClassifier, image: np.ndarray,
             cancelled: Callable[[], bool] = lambda: False,
             blobs: tuple[str, ...] = ()) -> MapResult:
    """The map at the scale where the plate reads best (`reading.auto_read`)."""
    reading = reading_module()
    if reading is None:
        raise RuntimeError("viewer.plates.reading is missing")
    plate, fm = reading.auto_read(StoppableDense(dense, cancelled, blobs), image)
    return MapResult(fm, plate)


def find_plates(dense: DenseClassifier, image: np.ndarray, region: tuple[int, int, int, int],
                cancelled: Callable[[], bool] = lambda: False,
                progress: Callable[[int, int], None] | None = None) -> locate.PhotoReading:
    """The plates in a region of the image: `locate.read_region`, the call of `read`, ending
    between two passes once `cancelled()` says so. The pyramid's maps are not kept (some 50 MB
    for a 12-megapixel photo): the window shows maps at the plates' own scales."""
    found = locate.read_region(StoppableDense(dense, cancelled), image, region, progress)
    return locate.PhotoReading(found.plates)


def read_model(prototxt: Path, weights: Path | None) -> NetRead:
    """Parse and check the files (the slow part for a large caffemodel)."""
    net = session.read_net(prototxt, weights)
    return NetRead(net, session.needs_surgery(net))


def build_model(net: CaffeNet, tag: ModelTag,
                settings: ModelSettings | None = None) -> LoadedModel:
    """Surgery in memory when needed, and the engine (onnxruntime or Caffe take ~0.2-0.5 s);
    `settings` default to what is stored beside the net (`session.build_model`)."""
    return session.build_model(net, tag.prototxt, tag.weights, tag.engine, settings)


def check_surgery(model: LoadedModel, image: np.ndarray, scale: float,
                  cancelled: Callable[[], bool] | None = None) -> SurgeryCheck:
    """Equivalence and timing on a private engine, so the map worker's engine is never shared.

    The check made when the model loaded is kept; the per-window side is timed for at most
    TIMING_BUDGET_S and extrapolated, so the timing is bounded on a zoo net and a photo.
    `cancelled` lets Cancel or a closing window end it between two batches.
    """
    dense = model.dense
    twin = DenseClassifier(dense.net, dense.engine_name, settings=dense.settings)
    verification = model.verification or (session.verify_model(model.classifier, dense)
                                          if model.classifier else None)
    comparison = compare_with_windows(twin, image, scale, classifier=model.classifier,
                                      cancelled=cancelled, budget_s=TIMING_BUDGET_S)
    return SurgeryCheck(verification, comparison, scale)


@dataclass(frozen=True)
class ExplainRequest:
    """What "Why <class> here" answers: the cell under an original-image point (so it follows
    each new map, coarse or fine, to the native map's cell there), a class label (None: the
    cell's best) and an optional class to explain it against ("why H and not W")."""

    point: tuple[float, float]
    label: str | None = None
    versus: str | None = None


def explain_cell(dense: DenseClassifier, pixels: np.ndarray, scale: float,
                 request: ExplainRequest) -> Explanation:
    """Every method for the native map's cell under `request.point` at `scale`."""
    explainer = Explainer(dense)
    data = explainer.dense.prepare(pixels, scale)
    actual = (data.shape[2] / pixels.shape[0], data.shape[3] / pixels.shape[1])
    geometry = replace(explainer.dense.unit, scale=actual)
    cell = geometry.cell_at(*request.point)
    rows, cols = explainer.map_size(data)
    cell = (min(max(cell[0], 0), rows - 1), min(max(cell[1], 0), cols - 1))
    ranking = explainer.ranking(data, cell)
    channel = ranking[0] if request.label is None else explainer.channel_of(request.label)
    versus = None if request.versus is None else explainer.channel_of(request.versus)
    explanation = explainer.explain(data, cell, channel, METHODS, versus=versus,
                                    geometry=geometry)
    explanation.ranking = [explainer.dense.labels[k] for k in ranking[:RUNNERS_UP + 1]]
    return explanation
