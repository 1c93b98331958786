"""A general OCR as a peer of the plate reader: rapidocr (PaddleOCR's PP-OCR models in ONNX).

    pip install -e '.[bench]'      # rapidocr 3.10.0; onnxruntime is already a dependency

`bench.read_plates --peer rapidocr` and `bench.read_photos --peer rapidocr` read the same
crops and photos with it in the same run and score its text with the same rules
(`viewer.plates.scoring`). An OCR returns lines of text, not plates, so its lines are turned
into what the plate reader reports by one fixed rule, the same for crops and photos:

- a line's text is its letters and digits, upper-cased (`G.WAGEN` is `GWAGEN`);
- a crop's reading is its longest such line (a country band's `GB` is a line of its own);
  where the detector finds no line in a crop (it misses most of the small dev crops), the
  whole crop is recognised as one line, as a user holding a crop would do;
- in a photo, a line of `MIN_PLATE_LETTERS`-`MAX_PLATE_LETTERS` characters is a plate,
  the OCR's most confident one the best; the others are what it reports besides.

Its models ship inside its wheel: no network at run time.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.plates.locate import MAX_PLATE_LETTERS, MIN_PLATE_LETTERS, Box

PEERS = ("rapidocr",)


def rapidocr_available() -> bool:
    return importlib.util.find_spec("rapidocr") is not None


@dataclass(frozen=True)
class Line:
    """One line the OCR read: its letters and digits, confidence and upright box."""

    text: str
    score: float
    box: Box


def plate_text(raw: str) -> str:
    """The letters and digits of an OCR line, upper-cased: how a plate is written."""
    return "".join(c for c in raw.upper() if c.isascii() and c.isalnum())


def box_of(quad) -> Box:
    """The upright (x, y, w, h) box around an OCR line's four corners."""
    points = np.asarray(quad, float).reshape(-1, 2)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def crop_text(lines: list[Line]) -> str:
    """A crop's reading: its longest line, the more confident one of equal length."""
    if not lines:
        return ""
    return max(lines, key=lambda line: (len(line.text), line.score)).text


def photo_plates(lines: list[Line]) -> list[Line]:
    """The lines of a plate's length, most confident first."""
    plates = [line for line in lines if MIN_PLATE_LETTERS <= len(line.text) <= MAX_PLATE_LETTERS]
    return sorted(plates, key=lambda line: -line.score)


class RapidOcr:
    """rapidocr 3.10 with its bundled detector, direction classifier and recogniser."""

    name = "rapidocr"

    def __init__(self) -> None:
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        from rapidocr import RapidOCR

        self._ocr = RapidOCR()
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def lines(self, path: Path) -> list[Line]:
        """Every line the OCR reads in an image file, as plate text with its box."""
        out = self._ocr(str(path))
        if getattr(out, "boxes", None) is None or out.txts is None:   # no line detected
            return []
        found = [Line(plate_text(t), float(s), box_of(b))
                 for t, s, b in zip(out.txts, out.scores, out.boxes)]
        return [line for line in found if line.text]

    def crop_lines(self, path: Path) -> list[Line]:
        """The lines of a crop; the whole crop as one line when the detector finds none."""
        found = self.lines(path)
        if found:
            return found
        out = self._ocr(str(path), use_det=False, use_cls=False)
        text = plate_text("".join(out.txts or ()))
        score = float(min(out.scores)) if out.scores else 0.0
        return [Line(text, score, (0.0, 0.0, 0.0, 0.0))] if text else []


def make_peer(name: str) -> RapidOcr:
    """The peer called `name`; SystemExit with one line when its package is missing."""
    if name == "rapidocr" and not rapidocr_available():
        raise SystemExit("error: rapidocr is not installed: pip install -e '.[bench]'")
    return RapidOcr()
