"""The input scale: its bounds for an image and a net, its steps, and how it is written.

The state keeps the exact scale of the map on screen (the automatic one is 0.25478...) within
these bounds; the scale control shows the same numbers and only rounds them for display.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from viewer.net import cost

SCALE_MIN, SCALE_MAX, SCALE_STEP = 0.2, 3.0, 0.05
SCALE_FLOOR = 0.05  # below 0.2 only when the image is so large that its letters need it
SCALE_DECIMALS = 3


def scale_text(scale: float) -> str:
    """The one way a scale is written (spin box, Reads strip, status bar, Surgery tab)."""
    return f"{scale:.{SCALE_DECIMALS}f}"


def scale_limit_text(limit: float, image_shape: tuple[int, int], engines: Sequence[str]) -> str:
    """Why the scale stops below SCALE_MAX: the pass would not fit `cost.MEMORY_LIMIT` on any
    of `engines` (the chosen one and the lean fallback, `PassPlanner.memory_engines`)."""
    height, width = image_shape
    budget = f"the {cost.MEMORY_LIMIT / 2**30:g} GB memory limit"
    on = " or ".join(f"'{name}'" for name in engines)
    if limit <= 0:
        return (f"No scale fits: even the smallest pass over this {width}x{height} image on "
                f"{on} needs more than {budget}; crop the image")
    if limit >= SCALE_MAX:
        return ""
    return (f"At most {limit:g}: above it the dense pass over this {width}x{height} image on "
            f"{on} would need more than {budget}")


@dataclass(frozen=True)
class ScaleRange:
    """The scales a map can be asked at: `smallest` exactly (a map's own scale may be the
    image's very smallest), `low` to `high` in the control's hundredths, and why `high` is
    below SCALE_MAX when it is."""

    smallest: float = SCALE_MIN
    low: float = SCALE_MIN
    high: float = SCALE_MAX
    reason: str = ""

    def clamp(self, scale: float) -> float:
        return min(max(scale, self.smallest), self.high)


def scale_range(minimum: float, limit: float = SCALE_MAX, reason: str = "") -> ScaleRange:
    """Scales from where the image still holds one window of the net up to `limit`.

    `minimum` comes from `PassPlanner.min_scale`: a large photo whose letters fit the
    window only below the usual 0.2 gets its own smallest scale. `limit` comes from
    `max_scale`, the largest scale whose pass fits in memory, so a 12 MP photo does not open
    on a map that would be refused. A limit of 0 (nothing fits) leaves a single scale, whose
    map then explains the problem.
    """
    low = max(SCALE_FLOOR, math.ceil(minimum * 100) / 100.0)
    high = max(SCALE_MAX, low)  # a tiny image's range, undone by the next image's minimum
    if 0 < limit < high:    # round first: 1.15 * 100 is 114.99999999999999
        high = max(low, math.floor(round(limit * 100, 6)) / 100.0)
    elif limit <= 0:
        high = low
    return ScaleRange(max(SCALE_FLOOR, minimum), low, high, reason)


def stepped(scale: float, direction: int) -> float:
    """One step of the + and - keys from `scale`, on the hundredths."""
    return round(scale + direction * SCALE_STEP, 2)
