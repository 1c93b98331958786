"""Dense class maps: the fully convolutional pass over a preprocessed image, and softmax.

Each map carries its `viewer.net.geometry.Geometry`: where its cells look in the image.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from viewer.net import cost, netgraph
from viewer.net.geometry import Geometry, classifier_window
from viewer.engines import DEFAULT_ENGINE, Engine, create_engine
from viewer.engines.numpy_engine import softmax
from viewer.errors import BlobTooLarge, ImageError, ModelError, PreprocessError
from viewer.maps.finemap import NATIVE, FineMethod, create_fine_engine
from viewer.maps.images import scaled_size
from viewer.maps.labels import BACKGROUND_NAME, labels_for
from viewer.caffe.model_io import MAX_BLOB_ELEMENTS, CaffeNet, shape_text
from viewer.maps.preprocess import ModelSettings, Transformer
from viewer.surgery.convolutional import is_fully_convolutional, make_fully_convolutional

# The engine a pass falls back to when the chosen engine's estimate is over the memory limit.
# It holds fused intermediates only as bands: a 4000x3000 photo at scale 1 needs 1.4 GB on it
# against 7.2 GB on onnxruntime, for about twice the time, and the same probabilities.
LEAN_ENGINE = "blas"


@dataclass
class FeatureMap:
    """A dense pass over one image at one scale: everything the viewer and the CLI show."""

    scores: np.ndarray          # C x h x w raw class scores
    probs: np.ndarray           # C x h x w softmax over classes at each cell
    conv1: np.ndarray | None    # K x h1 x w1 outputs of the first convolution
    labels: list[str]
    geometry: Geometry
    image_shape: tuple[int, int]
    scale: float
    forward_ms: float
    blobs: dict[str, np.ndarray] = field(default_factory=dict)
    engine: str = ""            # the engine that computed it: the chosen one, or LEAN_ENGINE
    engine_note: str = ""       # why it is not the chosen engine, "" when it is

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """Per cell: the most probable class and its probability."""
        return self.probs.argmax(axis=0), self.probs.max(axis=0)


def character_channels(labels: list[str]) -> np.ndarray:
    """Indices of the channels that are characters (all but a background channel)."""
    return np.array([k for k, name in enumerate(labels) if name != BACKGROUND_NAME])


def character_confidence(fm: FeatureMap) -> np.ndarray:
    """Per cell, how sure the net is that a character is centred there: 1 - P(background),
    or the best probability for a net without a background class. The reader looks for its
    peaks; the best-character picture uses it as its opacity."""
    chars = character_channels(fm.labels)
    if len(chars) < len(fm.labels):
        return 1.0 - fm.probs[fm.labels.index(BACKGROUND_NAME)]
    return fm.probs[chars].max(axis=0)


@dataclass(frozen=True)
class PassPlan:
    """A pass checked before anything is allocated: the scaled input size and the engine that
    will run it, with `note` saying why when that is the lean fallback, not the chosen one."""

    height: int
    width: int
    engine: Engine
    note: str = ""


def size_text(nbytes: float) -> str:
    """Bytes as a person reads them in a message: "7.2 GB", "288 MB"."""
    if not math.isfinite(nbytes):
        return f"over {4 * MAX_BLOB_ELEMENTS / 2**30:g} GB"
    return f"{nbytes / 2**30:.1f} GB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MB"


def _check_score_map(blob: str, shape: tuple[int, ...]) -> None:
    """A dense map needs scores laid out N x classes x H x W (a Flatten after the last
    convolution of a fully convolutional net would leave one long vector)."""
    if len(shape) != 4:
        raise ModelError(f"the net's scores '{blob}' are {shape_text(shape)}, not a "
                         "map of classes x height x width: remove the Flatten (or other "
                         "reshaping layer) after the last convolution")


class DenseClassifier:
    """A fully convolutional net on an engine, ready to map images at any scale.

    Given a classifier, it performs the surgery in memory first, so any Caffe classifier can
    be pointed at a whole image. `settings` hold its preprocessing and class names (default:
    Caffe's classify.py preprocessing and numbered classes, or the plate characters).
    """

    def __init__(self, net: CaffeNet, engine: str | None = None,
                 stride: int | None = None, settings: ModelSettings | None = None) -> None:
        self.classifier = None if is_fully_convolutional(net.param) else net
        self.net = net if self.classifier is None else make_fully_convolutional(net).net
        self.score_blob = netgraph.score_blob(self.net.param)
        shapes = netgraph.infer_shapes(self.net.param)
        _check_score_map(self.score_blob, shapes[self.score_blob])
        native = classifier_window(self.net, self.score_blob, shapes)
        # A map every `stride` pixels (default: the net's own stride), see viewer.maps.finemap.
        self.native_stride = native.stride
        self.stride = stride or native.stride[0]
        self.unit = replace(native, stride=(self.stride, self.stride)) if stride else native
        self.engine, self.method = self._engine(engine or DEFAULT_ENGINE)
        self.first_conv = next((l.top[0] for l in netgraph.deploy_layers(self.net.param)
                                if l.type == "Convolution"), None)
        self._conv1_channels = shapes[self.first_conv][1] if self.first_conv else 0
        self.channels = shapes[self.engine.input_name][1]
        self.settings = settings or ModelSettings(Transformer.default_for(self.channels))
        if self.settings.transformer.channels != self.channels:
            raise PreprocessError(f"the preprocessing is for {self.settings.transformer.channels}"
                                  f"-channel input; {net.source} has {self.channels} channels")
        classes = shapes[self.score_blob][1]
        self.labels = list(self.settings.labels) if len(self.settings.labels) == classes \
            else labels_for(classes)
        self._lean: Engine | None = None
        self._lean_lock = threading.Lock()   # the GUI thread and the map worker both ask
        # Estimates by (engine, height, width, blobs): the scale sweep of `read` asks for the
        # same sizes again and again, and working one out took 17% of a batch's time.
        self._bytes: dict[tuple, float] = {}

    def _engine(self, name: str) -> tuple[Engine, FineMethod]:
        """The named engine on this net, computing the map at `self.stride`."""
        if self.unit.stride == self.native_stride:
            return create_engine(name, self.net), FineMethod(self.stride, NATIVE)
        return create_fine_engine(name, self.net, self.stride)

    def at_stride(self, stride: int | None) -> "DenseClassifier":
        """The same net, engine and preprocessing mapping every `stride` pixels (None: the
        native stride)."""
        return DenseClassifier(self.classifier or self.net, self.engine_name, stride,
                               self.settings)

    @property
    def engine_name(self) -> str:
        """The chosen engine; a pass too large for it may run on `lean_engine` instead."""
        return self.engine.name

    @property
    def lean_engine(self) -> Engine:
        """The memory-lean engine on the same net, made on first need and kept (the chosen
        engine itself when that is already LEAN_ENGINE)."""
        with self._lean_lock:
            if self._lean is None:
                self._lean = self.engine if self.engine.name == LEAN_ENGINE else \
                    self._engine(LEAN_ENGINE)[0]
            return self._lean

    def memory_engines(self) -> list[Engine]:
        """The engines a pass may run on, in order of preference: the chosen one, then the
        lean one when it differs."""
        lean = self.lean_engine
        return [self.engine] if lean is self.engine else [self.engine, lean]

    def min_scale(self, image_shape: tuple[int, int]) -> float:
        """The smallest scale at which the image still holds one receptive field."""
        return max(r / s for r, s in zip(self.unit.receptive_field, image_shape))

    def smallest_scale(self, image_shape: tuple[int, int]) -> float:
        """The smallest scale, in steps of 0.01, at which the scaled image (as `rescale`
        rounds it) holds the net's window."""
        rh, rw = self.unit.receptive_field
        lowest = max((r - 0.5) / size for r, size in zip((rh, rw), image_shape[:2]))
        hundredths = max(1, math.floor(lowest * 100) - 1)
        while True:
            height, width = scaled_size(image_shape, hundredths / 100)
            if height >= rh and width >= rw:
                return hundredths / 100
            hundredths += 1

    def wanted_blobs(self, extra_blobs: tuple[str, ...] = ()) -> list[str]:
        """The blobs a pass returns: the scores, the first convolution, and `extra_blobs`."""
        return list(dict.fromkeys([self.score_blob, *([self.first_conv] if self.first_conv
                                                      else []), *extra_blobs]))

    def forward_bytes(self, height: int, width: int, extra_blobs: tuple[str, ...] = (),
                      engine: Engine | None = None) -> float:
        """Memory a pass over a height x width input needs on `engine` (default: the chosen
        one), from `viewer.net.cost`.

        Infinite when a blob would exceed MAX_BLOB_ELEMENTS. Nothing is allocated.
        """
        engine = engine or self.engine
        blobs = self.wanted_blobs(extra_blobs)
        key = (engine, height, width, tuple(blobs))
        if key not in self._bytes:
            try:
                need = float(cost.forward_bytes(engine, (1, self.channels, height, width), blobs))
            except BlobTooLarge:
                need = math.inf
            self._bytes[key] = need
        return self._bytes[key]

    def picture_bytes(self, image_shape: tuple[int, ...], height: int, width: int) -> float:
        """Memory of the pictures `map` draws after a pass at height x width (the full-size
        overlay, the conv1 tiles), from `cost.picture_bytes`."""
        return float(cost.picture_bytes(image_shape, self._conv1_channels * height * width))

    def max_scale(self, image_shape: tuple[int, ...], extra_blobs: tuple[str, ...] = (),
                  pictures: bool = False) -> float:
        """The largest scale (to 0.01) whose pass fits in `cost.MEMORY_LIMIT` on the chosen
        engine or, failing that, on the lean one (where `run` then goes); 0 if none does.
        With `pictures`, the pictures `map` draws afterwards must fit beside it."""
        return max(self._max_scale_on(engine, image_shape, extra_blobs, pictures)
                   for engine in self.memory_engines())

    def fits(self, image_shape: tuple[int, ...], scale: float,
             extra_blobs: tuple[str, ...] = ()) -> bool:
        """Whether a pass at `scale` fits in `cost.MEMORY_LIMIT` on the chosen engine or the
        lean one: one estimate where `max_scale` searches with dozens."""
        return any(self._fits_on(engine, image_shape, scale, extra_blobs)
                   for engine in self.memory_engines())

    def _fits_on(self, engine: Engine, image_shape: tuple[int, ...], scale: float,
                 extra_blobs: tuple[str, ...], pictures: bool = False) -> bool:
        size = scaled_size(image_shape, scale)
        drawn = self.picture_bytes(image_shape, *size) if pictures else 0
        return self.forward_bytes(*size, extra_blobs, engine) + drawn <= cost.MEMORY_LIMIT

    def _max_scale_on(self, engine: Engine, image_shape: tuple[int, ...],
                      extra_blobs: tuple[str, ...], pictures: bool = False) -> float:
        """`max_scale` for one engine: a doubling and bisection search over the estimate."""
        def fits(scale: float) -> bool:
            return self._fits_on(engine, image_shape, scale, extra_blobs, pictures)

        smallest = self.smallest_scale(image_shape)
        if not fits(smallest):
            return 0.0
        low, high = smallest, smallest * 2
        while fits(high):
            low, high = high, high * 2
        while high - low > 0.005:
            middle = (low + high) / 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        hundredths = max(math.floor(low * 100), round(smallest * 100))
        while fits((hundredths + 1) / 100):
            hundredths += 1
        return hundredths / 100

    def check_scale(self, image_shape: tuple[int, ...], scale: float,
                    extra_blobs: tuple[str, ...] = (), pictures: bool = False) -> PassPlan:
        """The scaled size and the engine for the pass, or an ImageError naming the scales
        that work.

        Refuses an image smaller than the net's window at `scale`, and a pass that would need
        more than `cost.MEMORY_LIMIT` on the chosen engine and on the lean one, before
        anything is resized or allocated. A pass only the lean engine fits runs there: slower,
        but a map instead of a refusal. With `pictures`, the pictures `map` draws afterwards
        (`picture_bytes`) count too.
        """
        if min(image_shape[:2]) < 1:
            raise ImageError(f"the image is empty ({image_shape[1]}x{image_shape[0]} pixels)")
        height, width = scaled_size(image_shape, scale)
        rh, rw = self.unit.receptive_field
        if height < rh or width < rw:
            raise ImageError(
                f"at scale {scale:g} the image is {width}x{height} pixels, smaller "
                f"than the net's {rw}x{rh} window; the smallest scale that works is "
                f"{self.smallest_scale(image_shape[:2]):g}")
        drawn = self.picture_bytes(image_shape, height, width) if pictures else 0
        needed = self.forward_bytes(height, width, extra_blobs) + drawn
        if needed <= cost.MEMORY_LIMIT:
            return PassPlan(height, width, self.engine)
        needs = {self.engine.name: needed}
        lean = self.lean_engine
        if lean is not self.engine:
            needs[lean.name] = self.forward_bytes(height, width, extra_blobs, lean) + drawn
            if needs[lean.name] <= cost.MEMORY_LIMIT:
                return PassPlan(height, width, lean, (
                    f"the {width}x{height} input needs {size_text(needed)} on "
                    f"'{self.engine.name}'; using '{lean.name}' ({size_text(needs[lean.name])})"))
        largest = self.max_scale(image_shape, extra_blobs, pictures)
        advice = (f"the largest scale that fits is {largest:g}" if largest else
                  "no scale fits, crop the image")
        sizes = " and ".join(f"{size_text(need)} on the '{name}' engine"
                             for name, need in needs.items())
        raise ImageError(
            f"at scale {scale:g} the {image_shape[1]}x{image_shape[0]} image becomes "
            f"{width}x{height} pixels and the dense pass would need {sizes}, more than the "
            f"{cost.MEMORY_LIMIT / 2**30:g} GB limit; {advice}")

    def prepare(self, image: np.ndarray, scale: float,
                extra_blobs: tuple[str, ...] = ()) -> np.ndarray:
        """The net's N x C x H x W float32 input: `image` rescaled, then `transformer`'s steps.

        Checked first by `check_scale`, so a request that cannot work allocates nothing.
        """
        self.check_scale(image.shape, scale, extra_blobs)
        return self._input(image, scale)

    @property
    def transformer(self) -> Transformer:
        """How pixels become this net's input (`settings.transformer`)."""
        return self.settings.transformer

    def _input(self, image: np.ndarray, scale: float) -> np.ndarray:
        return self.settings.transformer.prepare(image, scale)

    def run(self, image: np.ndarray, scale: float = 1.0, extra_blobs: tuple[str, ...] = (),
            warm: bool = False, pictures: bool = False) -> FeatureMap:
        """Map `image` (RGB or gray uint8) at `scale`; `warm` runs once untimed first.

        The pass runs on the engine `check_scale` picks (given `pictures`); the map names it.
        """
        plan = self.check_scale(image.shape, scale, extra_blobs, pictures)
        data = self._input(image, scale)
        wanted = self.wanted_blobs(extra_blobs)
        with np.errstate(all="ignore"):  # an overflow shows in the scores, refused below
            if warm:
                plan.engine.forward(data, wanted)
            start = time.perf_counter()
            out = plan.engine.forward(data, wanted)
            elapsed = (time.perf_counter() - start) * 1000.0
        scores = out[self.score_blob][0]
        if not np.isfinite(scores).all():
            raise ModelError(f"{self.net.source}: the scores overflow to infinity or NaN at "
                             f"scale {scale:g}; the weights or Power/Scale parameters are too "
                             "large for float32")
        actual = (data.shape[2] / image.shape[0], data.shape[3] / image.shape[1])
        geometry = replace(self.unit, scale=actual)
        return FeatureMap(
            scores=scores, probs=softmax(scores, axis=0), labels=self.labels,
            conv1=out[self.first_conv][0] if self.first_conv else None, geometry=geometry,
            image_shape=tuple(image.shape[:2]), scale=scale, forward_ms=elapsed,
            blobs={b: out[b][0] for b in extra_blobs}, engine=plan.engine.name,
            engine_note=plan.note)
