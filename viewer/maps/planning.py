"""Memory planning of a dense pass: which engine runs it, at which sizes and scales, and why not.

A pass is checked before anything is resized or allocated. The chosen engine's own estimate
(`Engine.peak_bytes`) decides whether it fits in `cost.MEMORY_LIMIT`; if not, the memory-lean
engine may take it (slower, but a map instead of a refusal); if neither fits, the refusal
names the largest scale that would. `DenseClassifier.planner` is one of these.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

from viewer.caffe.model_io import MAX_BLOB_ELEMENTS
from viewer.engines import Engine
from viewer.errors import BlobTooLarge, ImageError
from viewer.maps.images import scaled_size
from viewer.net import cost

# The engine a pass falls back to when the chosen engine's estimate is over the memory limit.
# It holds fused intermediates only as bands: a 4000x3000 photo at scale 1 needs 1.4 GB on it
# against 7.2 GB on onnxruntime, for about twice the time, and the same probabilities.
LEAN_ENGINE = "blas"


# A scaled image beyond this many pixels is refused before its memory is even estimated (the
# estimate of a 1e200 scale overflows a float).
ABSURD_PIXELS = 1e13


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


class PassPlanner:
    """The memory side of one dense classifier: its engines' estimates, cached, and the scales
    that fit.

    `engine` is the chosen engine, `make_lean` builds the lean one on first need, `window` is
    the net's (height, width) window in input pixels, and `wanted_blobs(extra)` names the blobs
    a pass keeps.
    """

    def __init__(self, engine: Engine, make_lean: Callable[[], Engine], window: tuple[int, int],
                 channels: int, conv1_channels: int,
                 wanted_blobs: Callable[[tuple[str, ...]], list[str]]) -> None:
        self.engine, self.window, self.channels = engine, window, channels
        self._make_lean, self._wanted = make_lean, wanted_blobs
        self._conv1_channels = conv1_channels
        self._lean: Engine | None = None
        self._lean_lock = threading.Lock()   # the GUI thread and the map worker both ask
        # Estimates by (engine, height, width, blobs): the scale sweep of `read` asks for the
        # same sizes again and again, and working one out took 17% of a batch's time.
        self._bytes: dict[tuple, float] = {}

    @property
    def lean_engine(self) -> Engine:
        """The memory-lean engine on the same net, made on first need and kept (the chosen
        engine itself when that is already LEAN_ENGINE)."""
        with self._lean_lock:
            if self._lean is None:
                self._lean = self.engine if self.engine.name == LEAN_ENGINE else \
                    self._make_lean()
            return self._lean

    def memory_engines(self) -> list[Engine]:
        """The engines a pass may run on, in order of preference: the chosen one, then the
        lean one when it differs."""
        lean = self.lean_engine
        return [self.engine] if lean is self.engine else [self.engine, lean]

    def min_scale(self, image_shape: tuple[int, int]) -> float:
        """The smallest scale at which the image still holds one window."""
        return max(r / s for r, s in zip(self.window, image_shape))

    def smallest_scale(self, image_shape: tuple[int, int]) -> float:
        """The smallest scale, in steps of 0.01, at which the scaled image (as `rescale`
        rounds it) holds the net's window."""
        rh, rw = self.window
        lowest = max((r - 0.5) / size for r, size in zip((rh, rw), image_shape[:2]))
        hundredths = max(1, math.floor(lowest * 100) - 1)
        while True:
            height, width = scaled_size(image_shape, hundredths / 100)
            if height >= rh and width >= rw:
                return hundredths / 100
            hundredths += 1

    def forward_bytes(self, height: int, width: int, extra_blobs: tuple[str, ...] = (),
                      engine: Engine | None = None) -> float:
        """Memory a pass over a height x width input needs on `engine` (default: the chosen
        one), from its `peak_bytes`. Infinite when a blob would exceed the element limit.
        Nothing is allocated."""
        engine = engine or self.engine
        blobs = self._wanted(extra_blobs)
        key = (engine, height, width, tuple(blobs))
        if key not in self._bytes:
            try:
                need = float(engine.peak_bytes((1, self.channels, height, width), blobs))
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
        engine or, failing that, on the lean one (where `check_scale` then sends it); 0 if
        none does. With `pictures`, the pictures `map` draws afterwards must fit beside it."""
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
        if float(height) * float(width) > ABSURD_PIXELS:   # no estimate to make: say so briefly
            largest = self.max_scale(image_shape, extra_blobs, pictures)
            raise ImageError(
                f"at scale {scale:g} the {image_shape[1]}x{image_shape[0]} image would be "
                f"{float(width):.3g}x{float(height):.3g} pixels, far more than any pass can "
                "hold; " + (f"the largest scale that fits is {largest:g}" if largest else
                            "no scale fits, crop the image"))
        rh, rw = self.window
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
