"""Labelled 28x28 training windows cut from synthetic plates: centred characters and background.

A *character* window (label 0..35) is centred on one character within `max_jitter` of a
reference width, with the character `char_height` pixels tall, so its neighbours show, cut, at
the window edges. A *background* window (label 36) holds no centred character: its centre is at
least `min_shift` reference widths away from every character centre horizontally (or a third of
a character height vertically), or the plate is drawn at a scale far from the character range.
Background windows aim at what real plates carry: gaps, separators, stamps, the EU band or coat
of arms, frame edges, half characters, dealer print and plain texture.

The reference width of a character is max(box width, half the character height), so narrow
glyphs like I and 1 get the same tolerance as the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from viewer.dataset.fonts import DEFAULT_FACES
from viewer.dataset.plates import Box, Plate, random_plate, twin_characters
from viewer.maps.labels import BACKGROUND, CHARACTERS
from viewer.plates.alphabet import CHAR_HEIGHT, DIGITS, LETTERS, WINDOW_SIZE
from viewer.plates.formats import DRAWN_FORMATS


@dataclass(frozen=True)
class WindowSpec:
    """What a window is and how the two classes are drawn."""

    size: int = WINDOW_SIZE
    char_height: tuple[float, float] = CHAR_HEIGHT  # character height in window pixels
    max_jitter: float = 1 / 8        # centred: |dx| < max_jitter * reference width
    max_jitter_y: float = 1 / 10     # centred: |dy| < max_jitter_y * character height
    min_shift: float = 1 / 4         # background: |dx| >= min_shift * reference width ...
    min_shift_y: float = 1 / 3       # ... or |dy| >= min_shift_y * character height
    background_fraction: float = 0.43
    off_scale_fraction: float = 0.08  # share of plates drawn too small or too large (background)
    tiny_char_height: tuple[float, float] = (7.0, 12.5)
    huge_char_height: tuple[float, float] = (38.0, 56.0)
    faces: str = DEFAULT_FACES       # the plates' face set (`fonts.FACE_SETS`)


# Background kinds and how often each is tried (kinds a plate lacks are skipped).
BACKGROUND_KINDS: dict[str, float] = {
    "gap": 0.20, "half": 0.24, "separator": 0.08, "stamp": 0.08, "band": 0.06, "emblem": 0.06,
    "edge": 0.14, "vertical": 0.06, "dealer": 0.03, "plain": 0.05,
}


@dataclass
class TrainingSample:
    """One training sample: a labelled window cut from a plate, and where it came from."""

    image: np.ndarray             # uint8, size x size
    label: int                    # 0..35 a character, 36 background
    kind: str                     # "char", a BACKGROUND_KINDS key, or "scale"
    centre: tuple[float, float]   # window centre in plate pixels
    char_height: float            # character height on the plate, in pixels
    boxes: list[Box] = field(default_factory=list)  # plate character boxes, window coordinates


def reference_width(box: Box, char_height: float) -> float:
    """The width that jitter and shifts are measured in for this character."""
    return max(float(box[2]), 0.5 * char_height)


def box_centre(box: Box) -> tuple[float, float]:
    """Centre of a box in continuous pixel coordinates (pixel i spans [i, i+1))."""
    x, y, w, h = box
    return x + w / 2, y + h / 2


def centred_character(boxes: list[Box], char_height: float, cx: float, cy: float,
                      spec: WindowSpec = WindowSpec()) -> int | None:
    """Index of the box a window centred at (cx, cy) counts as centred on, or None.

    "Centred" here is the background rule's complement: closer than `min_shift` reference
    widths horizontally and `min_shift_y` heights vertically, at a character height in the
    window's range (or in the gap between the ranges and the off-scale ones).
    """
    lo = spec.tiny_char_height[1]
    hi = spec.huge_char_height[0]
    if not lo < char_height < hi:
        return None
    for i, b in enumerate(boxes):
        bx, by = box_centre(b)
        if (abs(cx - bx) < spec.min_shift * reference_width(b, char_height)
                and abs(cy - by) < spec.min_shift_y * char_height):
            return i
    return None


def _padded(plate: Plate, size: int) -> np.ndarray:
    """The plate image with `size` pixels of its edges replicated around it, so that a window
    reaching past the plate is still `size` x `size`."""
    return cv2.copyMakeBorder(plate.image, size, size, size, size, cv2.BORDER_REPLICATE)


def _crop(padded: np.ndarray, cx: float, cy: float, size: int) -> np.ndarray:
    x0 = int(round(cx - size / 2)) + size
    y0 = int(round(cy - size / 2)) + size
    x0 = min(max(x0, 0), padded.shape[1] - size)
    y0 = min(max(y0, 0), padded.shape[0] - size)
    return padded[y0:y0 + size, x0:x0 + size].copy()


def _window_boxes(boxes: list[Box], cx: float, cy: float, size: int) -> list[Box]:
    ox, oy = int(round(cx - size / 2)), int(round(cy - size / 2))
    return [(x - ox, y - oy, w, h) for x, y, w, h in boxes]


def _sample(plate: Plate, padded: np.ndarray, size: int, cx: float, cy: float, label: int,
            kind: str) -> TrainingSample:
    """The sample centred at (cx, cy) on `plate`, cut from its `_padded` image: every kind of
    window is cut, and its boxes placed, the same way."""
    return TrainingSample(_crop(padded, cx, cy, size), label, kind, (cx, cy),
                          plate.char_height_px, _window_boxes(plate.boxes, cx, cy, size))


def _text_row(plate: Plate) -> float:
    return float(np.median([box_centre(b)[1] for b in plate.boxes]))


def _propose(kind: str, plate: Plate, rng: np.random.Generator,
             spec: WindowSpec) -> tuple[float, float] | None:
    """A candidate background centre of `kind` on `plate`, or None if the plate has none."""
    h = plate.char_height_px
    boxes = plate.boxes
    row = _text_row(plate)
    jy = lambda: row + rng.uniform(-0.12, 0.12) * h  # noqa: E731
    marks = {m.kind: [] for m in plate.marks}
    for m in plate.marks:
        marks[m.kind].append(m.box)
    if kind == "gap":
        if len(boxes) < 2:
            return None
        i = int(rng.integers(len(boxes) - 1))
        a, b = boxes[i], boxes[i + 1]
        return (a[0] + a[2] + b[0]) / 2 + rng.uniform(-0.06, 0.06) * h, jy()
    if kind == "half":
        b = boxes[int(rng.integers(len(boxes)))]
        bx, by = box_centre(b)
        shift = rng.uniform(spec.min_shift, 0.75) * reference_width(b, h)
        return bx + shift * rng.choice([-1.0, 1.0]), by + rng.uniform(-0.1, 0.1) * h
    if kind == "vertical":
        b = boxes[int(rng.integers(len(boxes)))]
        bx, by = box_centre(b)
        dy = rng.uniform(max(spec.min_shift_y, 0.4), 0.8) * h * rng.choice([-1.0, 1.0])
        return bx + rng.uniform(-0.1, 0.1) * h, by + dy
    if kind == "edge":
        x, y, w, hh = plate.plate_box
        side = rng.random()
        if side < 0.3:   # the plate's left or right edge at text height
            ex = x if rng.random() < 0.5 else x + w
            return ex + rng.uniform(-0.3, 0.3) * h, jy()
        if side < 0.6:   # beyond the first or last character
            if rng.random() < 0.5:
                last = boxes[-1]
                return last[0] + last[2] + rng.uniform(0.2, 0.9) * h, jy()
            first = boxes[0]
            return first[0] - rng.uniform(0.2, 0.9) * h, jy()
        ey = y if rng.random() < 0.5 else y + hh  # top or bottom frame edge
        return rng.uniform(x, x + w), ey + rng.uniform(-0.2, 0.2) * h
    if kind == "plain":
        H, W = plate.image.shape
        return rng.uniform(0, W), rng.uniform(0, H)
    if kind in marks:
        mx, my, mw, mh = marks[kind][int(rng.integers(len(marks[kind])))]
        return (mx + mw / 2 + rng.uniform(-0.1, 0.1) * h,
                my + mh / 2 + rng.uniform(-0.1, 0.1) * h)
    return None


def _pick_kind(rng: np.random.Generator, available: set[str]) -> str:
    kinds = [k for k in BACKGROUND_KINDS if k in available]
    p = np.array([BACKGROUND_KINDS[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def _char_windows(plate: Plate, rng: np.random.Generator, indices: list[int],
                  spec: WindowSpec) -> list[TrainingSample]:
    """Windows centred (with jitter) on the characters `indices` of `plate`."""
    size, h = spec.size, plate.char_height_px
    padded = _padded(plate, size)
    out: list[TrainingSample] = []
    for i in indices:
        b = plate.boxes[i]
        bx, by = box_centre(b)
        jx = spec.max_jitter * reference_width(b, h)
        cx = bx + rng.uniform(-jx, jx) * 0.999
        cy = by + rng.uniform(-1, 1) * spec.max_jitter_y * h * 0.999
        label = CHARACTERS.index(plate.chars[i])
        out.append(_sample(plate, padded, size, cx, cy, label, "char"))
    return out


def sample_windows(plate: Plate, rng: np.random.Generator, n_chars: int, n_background: int,
                   spec: WindowSpec = WindowSpec()) -> list[TrainingSample]:
    """Cut `n_chars` centred-character windows and `n_background` background windows.

    Character windows go round the plate's characters in a random order. A background proposal
    that lands on a centred character is drawn again; after 20 misses the plate yields fewer.
    """
    size, h = spec.size, plate.char_height_px
    order = [int(i) for i in rng.permutation(len(plate.boxes))] if plate.boxes else []
    out = _char_windows(plate, rng, [order[k % len(order)] for k in range(n_chars if order
                                                                          else 0)], spec)
    padded = _padded(plate, size)
    available = {"gap", "half", "vertical", "edge", "plain"} | {m.kind for m in plate.marks}
    if not plate.boxes:
        available = {"plain"}
    for _ in range(n_background):
        for _attempt in range(20):
            kind = _pick_kind(rng, available)
            c = _propose(kind, plate, rng, spec)
            if c is not None and centred_character(plate.boxes, h, *c, spec) is None:
                out.append(_sample(plate, padded, size, c[0], c[1], BACKGROUND, kind))
                break
    return out


def class_keep_probability() -> np.ndarray:
    """Per class, the chance to keep a character window so that A-Z and 0-9 come out equally
    often, given how often `DRAWN_FORMATS` place letters, digits and either."""
    n_letters, n_digits = len(LETTERS), len(DIGITS)
    expected = np.zeros(len(CHARACTERS))
    for fmt in DRAWN_FORMATS:
        expected[:n_letters] += fmt.count("L") / n_letters
        expected[n_letters:] += fmt.count("D") / n_digits
        expected += fmt.count("X") / len(CHARACTERS)
    return expected.min() / expected


_KEEP = class_keep_probability()


def _stochastic_round(x: float, rng: np.random.Generator) -> int:
    return int(np.floor(x + rng.random()))


def windows_from_random_plate(rng: np.random.Generator, spec: WindowSpec = WindowSpec()
                              ) -> list[TrainingSample]:
    """Draw one random augmented plate and cut its windows, about `background_fraction` of
    them background. An off-scale plate (too small or too large) gives background only."""
    f = spec.background_fraction
    if rng.random() < spec.off_scale_fraction:
        rng_h = spec.tiny_char_height if rng.random() < 0.6 else spec.huge_char_height
        plate = random_plate(rng, rng.uniform(*rng_h), faces=spec.faces)
        n = _stochastic_round(len(plate.boxes) * 0.6, rng) + 1
        size = spec.size
        padded = _padded(plate, size)
        row = _text_row(plate)
        x0 = plate.boxes[0][0]
        x1 = plate.boxes[-1][0] + plate.boxes[-1][2]
        out = []
        for _ in range(n):
            cx = rng.uniform(x0, x1)
            cy = row + rng.uniform(-0.3, 0.3) * plate.char_height_px
            out.append(_sample(plate, padded, size, cx, cy, BACKGROUND, "scale"))
        return out
    plate = random_plate(rng, rng.uniform(*spec.char_height), faces=spec.faces)
    twins = twin_characters(plate.style)
    keep = [i for i, ch in enumerate(plate.chars)
            if rng.random() < _KEEP[CHARACTERS.index(ch)] and ch not in twins]
    n_bg = _stochastic_round(len(keep) * f / (1 - f) * (1 - spec.off_scale_fraction * 1.3), rng)
    return sample_windows(plate, rng, 0, n_bg, spec) + _char_windows(plate, rng, keep, spec)


def generate_windows(count: int, rng: np.random.Generator,
                     spec: WindowSpec = WindowSpec()) -> Iterator[TrainingSample]:
    """Yield exactly `count` windows from a stream of random plates, shuffled within blocks of
    a few hundred so that windows of one plate do not come in a row."""
    buf: list[TrainingSample] = []
    made = 0
    block = 512
    while made < count:
        while len(buf) < block and made + len(buf) < count:
            buf.extend(windows_from_random_plate(rng, spec))
        take = min(len(buf), count - made)
        idx = rng.permutation(len(buf))
        chosen = [buf[i] for i in idx[:take]]
        buf = []
        for w in chosen:
            yield w
        made += take


__all__ = ["WindowSpec", "TrainingSample", "BACKGROUND_KINDS", "reference_width",
           "box_centre", "centred_character", "sample_windows", "windows_from_random_plate",
           "generate_windows"]
