"""Reading a plate from dense maps: character positions, their classes and confidences.

A character shows as a column of cells where the net is sure it sees *some* character (low
background probability). Peaks of that confidence along the plate, at least a character
apart and on one text line, are the letters. `--scale auto` tries scales and keeps the one
whose *weakest* letter is strongest: a sum of confidences rewards scales that invent letters.

Plates write letters and digits in runs (`BA-123XY`, `1AB 2345`), and plate faces draw O and
0 alike, so an O or 0 is read as whatever kind its neighbours in the same group are.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.dataset.windows import WindowSpec
from viewer.featuremap import (DenseClassifier, FeatureMap, character_channels,
                               character_confidence)

# How much of the window height a training character fills: sets the box and the scale search.
CHAR_FILL = float(np.mean(WindowSpec().char_height)) / WindowSpec().size
GLYPH_ASPECT = 0.6          # box width / height of a typical plate character
MIN_CONFIDENCE = 0.5        # a peak weaker than this is not a letter
MIN_GAP = 0.3          # letters are at least this many windows apart
TOP_K = 3
MIN_LETTERS = 2             # a reading with fewer letters does not compete in the scale search
GROUP_GAP = 1.3             # a gap this many usual pitches wide separates groups of letters
TWINS = {"O": "0", "0": "O"}  # one glyph in plate faces: the neighbours decide which it is


@dataclass(frozen=True)
class Letter:
    """One read character: its label, probability, runners-up and box in original pixels."""

    label: str
    prob: float
    top: list[tuple[str, float]]
    box: tuple[float, float, float, float]
    cell: tuple[int, int]

    def as_dict(self) -> dict:
        return {"label": self.label, "prob": round(self.prob, 4),
                "top": [[label, round(p, 4)] for label, p in self.top],
                "box": [round(v, 1) for v in self.box]}


@dataclass
class PlateReading:
    """The text read from one map, letter by letter from left to right."""

    letters: list[Letter] = field(default_factory=list)
    scale: float = 1.0

    @property
    def text(self) -> str:
        return "".join(letter.label for letter in self.letters)

    @property
    def weakest(self) -> float:
        """The lowest letter probability: what the scale search maximises."""
        return min((letter.prob for letter in self.letters), default=0.0)

    def as_dict(self) -> dict:
        return {"text": self.text, "scale": self.scale,
                "letters": [letter.as_dict() for letter in self.letters]}


def _column_peaks(score: np.ndarray, min_gap: int, threshold: float) -> list[int]:
    """Greedy non-maximum suppression along the plate: strongest columns first."""
    taken: list[int] = []
    for j in np.argsort(-score, kind="stable"):
        if score[j] < threshold:
            break
        if all(abs(int(j) - t) >= min_gap for t in taken):
            taken.append(int(j))
    return sorted(taken)


def _letter_at(fm: FeatureMap, i: int, j: int, chars: np.ndarray) -> Letter:
    probs = fm.probs[chars, i, j]
    order = np.argsort(-probs)[:TOP_K]
    top = [(fm.labels[chars[k]], float(probs[k])) for k in order]
    x, y, w, h = fm.geometry.cell_window(i, j)
    char_h = h * CHAR_FILL
    char_w = char_h * GLYPH_ASPECT
    box = (x + (w - char_w) / 2, y + (h - char_h) / 2, char_w, char_h)
    return Letter(top[0][0], top[0][1], top, box, (i, j))


def _kind(label: str) -> str:
    return "digit" if label.isdigit() else "letter"


def _groups(letters: list[Letter]) -> list[list[int]]:
    """Indices of the letters split where the gap is much wider than the usual pitch (a
    separator, a coat of arms or a stamp between the groups of a plate)."""
    if len(letters) < 3:
        return [list(range(len(letters)))]
    centres = np.array([letter.box[0] + letter.box[2] / 2 for letter in letters])
    gaps = np.diff(centres)
    cuts = np.nonzero(gaps > GROUP_GAP * np.median(gaps))[0] + 1
    return [g.tolist() for g in np.split(np.arange(len(letters)), cuts)]


def _neighbour_kind(letters: list[Letter], group: list[int], k: int) -> str | None:
    """The kind (letter or digit) that letter k's neighbours in its group agree on: one on
    each side, or the two on its inner side at a group's end. Only confident letters that
    are not themselves O or 0 count."""
    at = group.index(k)
    near = group[max(0, at - 1):at] + group[at + 1:at + 2]
    if len(near) == 1:
        near = group[max(0, at - 2):at] + group[at + 1:at + 3]
    kinds = {_kind(letters[i].label) for i in near
             if letters[i].label not in TWINS and letters[i].prob >= MIN_CONFIDENCE}
    return kinds.pop() if len(kinds) == 1 else None


def resolve_twins(letters: list[Letter], probs: np.ndarray, labels: list[str]) -> list[Letter]:
    """Read each O or 0 as the kind its group's neighbours are, with the pair's probability.

    Plate faces draw O and 0 alike (on real plates the net is sure of the wrong one), and
    plates write letters and digits in runs (`RK-026AJ`, `OY 09 FEU` stays undecided), so
    the run decides. `probs` is the map's C x H x W probabilities, `labels` its channels.
    """
    out = list(letters)
    for group in _groups(letters):
        for k in group:
            letter = letters[k]
            if letter.label not in TWINS:
                continue
            want = _neighbour_kind(letters, group, k)
            if want is None or want == _kind(letter.label):
                continue
            i, j = letter.cell
            pair = float(sum(probs[labels.index(t), i, j] for t in TWINS))
            out[k] = Letter(TWINS[letter.label], pair, letter.top, letter.box, letter.cell)
    return out


def read_plate(fm: FeatureMap, threshold: float = MIN_CONFIDENCE) -> PlateReading:
    """Find the letters along the plate in one dense map."""
    conf = character_confidence(fm)
    rows = conf.argmax(axis=0)
    best = conf.max(axis=0)
    stride = fm.geometry.stride[1]
    window = fm.geometry.receptive_field[1]
    peaks = _column_peaks(best, max(1, round(MIN_GAP * window / stride)), threshold)
    if not peaks:
        return PlateReading([], fm.scale)
    line = np.median(rows[peaks])
    tolerance = 0.5 * fm.geometry.receptive_field[0] / fm.geometry.stride[0]
    chars = character_channels(fm.labels)
    letters = [_letter_at(fm, int(rows[j]), j, chars) for j in peaks
               if abs(rows[j] - line) <= tolerance]
    return PlateReading(resolve_twins(letters, fm.probs, fm.labels), fm.scale)


def candidate_scales(dense: DenseClassifier, image_shape: tuple[int, int],
                     steps: int = 32) -> np.ndarray:
    """Scales from the smallest the image allows to where a character of a fifth of the
    image height would fill the window, spaced geometrically (about 7% apart on a crop)."""
    low = max(dense.min_scale(image_shape), 0.05)
    high = max(low, min(4.0, dense.unit.receptive_field[0] * CHAR_FILL / (0.2 * image_shape[0])))
    return np.geomspace(low, high, steps) if high > low else np.array([low])


def auto_read(dense: DenseClassifier, image: np.ndarray) -> tuple[PlateReading, FeatureMap]:
    """Read at the scale whose weakest letter is strongest, over one geometric sweep.

    A single dense sweep measured better on generated plates than a coarse sweep refined
    around its best scale, which tended to drift to scales that drop or invent a letter.
    When no scale reads anything, the result is at the candidate scale nearest 1, not at
    the tiny first scale of the sweep.
    """
    scales = candidate_scales(dense, image.shape[:2])
    nearest_one = int(np.argmin(np.abs(np.log(scales))))
    best: tuple[float, PlateReading, FeatureMap] | None = None
    fallback: tuple[PlateReading, FeatureMap] | None = None
    for index, scale in enumerate(scales):
        fm = dense.run(image, float(scale))
        reading = read_plate(fm)
        score = reading.weakest if len(reading.letters) >= MIN_LETTERS else 0.0
        if best is None or score > best[0]:
            best = (score, reading, fm)
        if index == nearest_one:
            fallback = (reading, fm)
    return fallback if best[0] == 0.0 else (best[1], best[2])
