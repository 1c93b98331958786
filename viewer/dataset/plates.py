"""Synthetic licence plates with known text and per-character boxes, clean or photo-like.

A plate is laid out in units of the character height `h` (the ink height of a capital, in
pixels of the returned image):

    | holder | border | band or emblem | side | C C - C C C C C | side | border | holder |

with `margin_ratio * h` of plate ground above and below the text and `surround_ratio * h` of
plate holder around the plate. Characters sit `spacing_ratio * h` apart (ink to ink); a group
separator in the text (` `, `-`, `:` or `*` for the two stacked round stamps of SK/CZ/DE plates)
takes its own slot. Everything is drawn at a few times the final resolution and reduced with
area averaging, so a clean render is anti-aliased like a scan and its boxes are exact to a pixel.

`render_plate` is the small API (image and character boxes); `synthesize_plate` returns a
`Plate` with everything a window sampler needs (boxes of separators, stamps, band, border).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from viewer.errors import DatasetError
from viewer.dataset.fonts import DEFAULT_FACES, FontFace, faces_of, find_fonts
from viewer.maps.labels import CHARACTERS
from viewer.plates.alphabet import DIGITS, LETTERS
from viewer.plates.formats import DRAWN_FORMATS, SEPARATORS

Box = tuple[int, int, int, int]  # x, y, w, h in pixels of the plate image

REF_CAP_PX = 96  # glyphs are cached at this capital height, then scaled
TWIN_OVERLAP = 0.97  # ink overlap above which two glyphs of a face count as one shape

# Width of each separator slot, in character heights (the spacing is added on both sides).
SEPARATOR_SLOT = {" ": 0.30, "-": 0.30, ":": 0.14, "*": 0.42}


@dataclass(frozen=True)
class PlateStyle:
    """How a plate looks. Sizes are ratios of the character height so one style fits all scales.

    layout: "SK" (coat of arms above the letters SK, no band, as on Slovak plates until 2004),
    "EU" (dark band at the left with a ring of stars and `country`), or "plain".
    """

    layout: str = "SK"
    country: str = "SK"
    font: int = 0                    # index into fonts.faces_of(faces)
    char_width_ratio: float = 0.56   # ink width of "H" / character height
    stroke_ratio: float | None = 0.13  # stem width / character height; None keeps the font's
    spacing_ratio: float = 0.11      # ink-to-ink gap between neighbours / character height
    margin_ratio: float = 0.22       # plate ground above and below the text / character height
    side_ratio: float = 0.22         # ground before the first and after the last character
    ink: int = 30                    # grey level of the characters
    ground: int = 215                # grey level of the plate
    inverted: bool = False           # light characters on a dark plate
    border: bool = True              # thin dark rim just inside the plate edge
    surround_ratio: float = 0.30     # plate holder visible around the plate / character height
    surround: int = 45               # grey level of the holder
    dealer_text: bool = False        # small print on the holder below the plate
    faces: str = DEFAULT_FACES       # the face set `font` indexes (`fonts.FACE_SETS`)
    narrow_wm: bool = False          # W and M squeezed to FE-Schrift's width (`NARROW_WM`)


@dataclass(frozen=True)
class PhotoAugment:
    """Ranges of the photo effects that `synthesize_plate(augment=...)` draws from."""

    max_rotation_deg: float = 4.0
    max_shear: float = 0.10          # italic-like slant from a camera off to the side
    max_perspective: float = 0.05    # corner jitter / image height
    blur: tuple[float, float] = (0.0, 0.04)       # Gaussian sigma / character height
    resolution_loss: float = 0.35    # probability of a down-and-up resize (upscaled crops)
    light: float = 0.35              # strength of the uneven light gradient and spot
    shadow: float = 0.15             # probability of a soft-edged shadow
    contrast: tuple[float, float] = (0.55, 1.1)
    noise: tuple[float, float] = (0.0, 9.0)       # Gaussian noise sigma in grey levels
    jpeg: float = 0.5                # probability of JPEG compression
    jpeg_quality: tuple[int, int] = (25, 92)


@dataclass(frozen=True)
class Mark:
    """Something drawn on a plate that is not a character: where background windows look."""

    kind: str  # "separator", "stamp", "band", "emblem", "edge", "dealer"
    box: Box


@dataclass
class Plate:
    """A rendered plate: the image and where everything on it is."""

    image: np.ndarray        # uint8, H x W, grey
    text: str                # as asked for, separators included
    boxes: list[Box]         # one ink box per character of `chars`, left to right
    char_height_px: float    # capital height in pixels of `image`
    style: PlateStyle
    plate_box: Box           # the plate itself, without the holder around it
    marks: list[Mark] = field(default_factory=list)

    @property
    def chars(self) -> str:
        """The characters of `text` that have boxes (separators left out)."""
        return "".join(c for c in self.text if c not in SEPARATORS)


# ----------------------------------------------------------------------------------- glyphs

@dataclass(frozen=True)
class _Glyph:
    mask: np.ndarray  # float32 coverage 0..1, cropped to the ink
    top: float        # ink top below the capital top, in cached pixels (negative: overshoot)


@dataclass(frozen=True)
class _GlyphSet:
    glyphs: dict[str, _Glyph]
    cap: float        # capital height in cached pixels (after any weight change)
    h_width: float    # ink width of "H" in cached pixels


def _render_raw_glyphs(path: str) -> tuple[dict[str, tuple[np.ndarray, int]], int]:
    """Draw A-Z, 0-9 at a size where H is REF_CAP_PX tall; return (mask, ink top) and cap top."""
    probe = ImageFont.truetype(path, 200)
    canvas = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(canvas).text((100, 300), "H", font=probe, fill=255, anchor="ls")
    ys = np.nonzero(np.asarray(canvas).max(axis=1))[0]
    size = 200 * REF_CAP_PX / (ys[-1] - ys[0] + 1)
    font = ImageFont.truetype(path, max(8, round(size)))
    pad, base = REF_CAP_PX, 2 * REF_CAP_PX
    out: dict[str, tuple[np.ndarray, int]] = {}
    cap_top = None
    for ch in CHARACTERS:
        img = Image.new("L", (3 * REF_CAP_PX, 3 * REF_CAP_PX), 0)
        ImageDraw.Draw(img).text((pad, base), ch, font=font, fill=255, anchor="ls")
        arr = np.asarray(img)
        rows = np.nonzero(arr.max(axis=1))[0]
        cols = np.nonzero(arr.max(axis=0))[0]
        if rows.size == 0:
            raise DatasetError(f"font {path} has no glyph for {ch!r}: remove it or reinstall it")
        out[ch] = (arr[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], int(rows[0]))
        if ch == "H":
            cap_top = int(rows[0])
    assert cap_top is not None
    return out, cap_top


@lru_cache(maxsize=None)
def _raw_glyphs(path: str):
    return _render_raw_glyphs(path)


@lru_cache(maxsize=None)
def _glyph_set(path: str, grow_px: int) -> _GlyphSet:
    """The glyphs of one font, thickened (grow_px > 0) or thinned (< 0) by morphology."""
    raw, _ = _raw_glyphs(path)
    shaped: dict[str, tuple[np.ndarray, int]] = {}
    for ch, (mask, top) in raw.items():
        m = mask
        if grow_px:
            r = abs(grow_px)
            m = np.pad(m, r + 1)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            m = cv2.dilate(m, kernel) if grow_px > 0 else cv2.erode(m, kernel)
            rows = np.nonzero(m.max(axis=1) > 8)[0]
            cols = np.nonzero(m.max(axis=0) > 8)[0]
            top = top - (r + 1) + int(rows[0])
            m = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        shaped[ch] = (m, top)
    h_mask, h_top = shaped["H"]
    glyphs = {ch: _Glyph(m.astype(np.float32) / 255.0, float(top - h_top))
              for ch, (m, top) in shaped.items()}
    return _GlyphSet(glyphs, cap=float(h_mask.shape[0]), h_width=float(h_mask.shape[1]))


def font_stem_ratio(face: FontFace) -> float:
    """Stem width / capital height of a font, measured on its "I"."""
    raw, _ = _raw_glyphs(str(face.path))
    mask = raw["I"][0]
    return float((mask[mask.shape[0] // 2] > 127).sum()) / REF_CAP_PX


def _ink_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two glyph masks' ink, centred on each other."""
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    inks = []
    for m in (a, b):
        canvas = np.zeros((h, w), bool)
        y, x = (h - m.shape[0]) // 2, (w - m.shape[1]) // 2
        canvas[y:y + m.shape[0], x:x + m.shape[1]] = m > 127
        inks.append(canvas)
    return float((inks[0] & inks[1]).sum() / max(1, (inks[0] | inks[1]).sum()))


@lru_cache(maxsize=None)
def _twins(path: str) -> frozenset[str]:
    raw, _ = _raw_glyphs(path)
    return frozenset(a for a in CHARACTERS for b in CHARACTERS
                     if a != b and _ink_overlap(raw[a][0], raw[b][0]) > TWIN_OVERLAP)


def twin_characters(style: PlateStyle) -> frozenset[str]:
    """The characters that this style's face draws like another character (ink overlap above
    `TWIN_OVERLAP`; the closest distinct pair of the faces, B and D of Open DIN, is at 0.94).

    Open DIN and Bebas Neue draw O and 0 as one glyph. No classifier can tell such windows
    apart, so they make no centred-character training windows: as labels they would be noise,
    and they would cap any test accuracy. Plate faces (DIN 1451, FE-Schrift) draw 0 narrower.
    """
    faces = faces_of(style.faces)
    return _twins(str(faces[style.font % len(faces)].path))


def _glyphs_for(style: PlateStyle) -> _GlyphSet:
    faces = faces_of(style.faces)
    face = faces[style.font % len(faces)]
    grow = 0
    if style.stroke_ratio is not None:
        # Stems narrow with the horizontal scaling, so aim at the stem before it.
        raw, _ = _raw_glyphs(str(face.path))
        width_scale = style.char_width_ratio * REF_CAP_PX / raw["H"][0].shape[1]
        target = style.stroke_ratio / max(0.5, min(width_scale, 1.5))
        grow = round((target - font_stem_ratio(face)) * REF_CAP_PX / 2)
        grow = int(np.clip(grow, -4, 6))
    return _glyph_set(str(face.path), grow)


# ---------------------------------------------------------------------------------- drawing

_FP_SHIFT = 2               # cv2 drawing in fixed point: coordinates times 4
_FP = 1 << _FP_SHIFT


def _fp(v: float) -> int:
    return round(v * _FP)


class _Canvas:
    """A float grey canvas at `ss` times the final resolution, with box bookkeeping."""

    def __init__(self, width: int, height: int, value: float, ss: int):
        self.ss = ss
        self.a = np.full((height, width), float(value), np.float32)

    def paint(self, mask: np.ndarray, x: int, y: int, value: float) -> None:
        """Alpha-blend `value` through coverage `mask` placed with its top-left at (x, y)."""
        h, w = mask.shape
        y0, x0 = max(0, y), max(0, x)
        y1, x1 = min(self.a.shape[0], y + h), min(self.a.shape[1], x + w)
        if y1 <= y0 or x1 <= x0:
            return
        m = mask[y0 - y:y1 - y, x0 - x:x1 - x]
        region = self.a[y0:y1, x0:x1]
        region += (value - region) * m

    def paint_shape(self, draw_fn, value: float,
                    bbox: tuple[float, float, float, float] | None = None) -> None:
        """Blend `value` through a shape that `draw_fn(uint8 image)` draws with cv2 (anti-aliased,
        fixed-point canvas coordinates). `bbox` (x0, y0, x1, y1), when given, bounds the shape
        and saves time: only that part of the canvas is blended."""
        m = np.zeros(self.a.shape, np.uint8)
        draw_fn(m)
        H, W = self.a.shape
        if bbox is None:
            x0, y0, x1, y1 = 0, 0, W, H
        else:
            x0, y0 = max(0, math.floor(bbox[0]) - 2), max(0, math.floor(bbox[1]) - 2)
            x1, y1 = min(W, math.ceil(bbox[2]) + 3), min(H, math.ceil(bbox[3]) + 3)
            if x1 <= x0 or y1 <= y0:
                return
        region = self.a[y0:y1, x0:x1]
        region += (value - region) * (m[y0:y1, x0:x1].astype(np.float32) * (1 / 255))

    def rect(self, x0: float, y0: float, x1: float, y1: float, value: float) -> None:
        self.paint_shape(lambda m: cv2.rectangle(m, (_fp(x0), _fp(y0)), (_fp(x1), _fp(y1)), 255,
                                                 -1, cv2.LINE_AA, _FP_SHIFT),
                         value, (x0, y0, x1, y1))

    def circle(self, cx: float, cy: float, r: float, value: float, thickness: int = -1) -> None:
        self.paint_shape(lambda m: cv2.circle(m, (_fp(cx), _fp(cy)), max(1, _fp(r)), 255,
                                              thickness, cv2.LINE_AA, _FP_SHIFT),
                         value, (cx - r - 2, cy - r - 2, cx + r + 2, cy + r + 2))

    def rounded_rect(self, x0: float, y0: float, x1: float, y1: float, r: float, value: float,
                     line: float = 0.0) -> None:
        """A filled rounded rectangle, or its outline when `line` (thickness) is given."""
        X0, Y0, X1, Y1, R = (_fp(v) for v in (x0, y0, x1, y1, r))

        def draw(m):
            if not line:
                cv2.rectangle(m, (X0 + R, Y0), (X1 - R, Y1), 255, -1, cv2.LINE_AA, _FP_SHIFT)
                cv2.rectangle(m, (X0, Y0 + R), (X1, Y1 - R), 255, -1, cv2.LINE_AA, _FP_SHIFT)
                for cx, cy in ((X0 + R, Y0 + R), (X1 - R, Y0 + R), (X0 + R, Y1 - R),
                               (X1 - R, Y1 - R)):
                    cv2.circle(m, (cx, cy), R, 255, -1, cv2.LINE_AA, _FP_SHIFT)
                return
            t = max(1, round(line))
            for a, b in (((X0 + R, Y0), (X1 - R, Y0)), ((X0 + R, Y1), (X1 - R, Y1)),
                         ((X0, Y0 + R), (X0, Y1 - R)), ((X1, Y0 + R), (X1, Y1 - R))):
                cv2.line(m, a, b, 255, t, cv2.LINE_AA, _FP_SHIFT)
            for cx, cy, angle in ((X0 + R, Y0 + R, 180), (X1 - R, Y0 + R, 270),
                                  (X1 - R, Y1 - R, 0), (X0 + R, Y1 - R, 90)):
                cv2.ellipse(m, (cx, cy), (R, R), angle, 0, 90, 255, t, cv2.LINE_AA, _FP_SHIFT)
        self.paint_shape(draw, value, (x0 - line, y0 - line, x1 + line, y1 + line))

    def final_box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        """A box in final pixels that covers the canvas span [x0, x1) x [y0, y1)."""
        s = self.ss
        fx0, fy0 = math.floor(x0 / s), math.floor(y0 / s)
        fx1, fy1 = math.ceil(x1 / s), math.ceil(y1 / s)
        return (fx0, fy0, fx1 - fx0, fy1 - fy0)


def _scaled(mask: np.ndarray, sx: float, sy: float) -> np.ndarray:
    w = max(1, round(mask.shape[1] * sx))
    h = max(1, round(mask.shape[0] * sy))
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    return cv2.resize(mask, (w, h), interpolation=interp)


def _small_text_width(text: str, gs: _GlyphSet, cap_px: float, width_scale: float = 1.0) -> float:
    s = cap_px / gs.cap
    return (sum(round(gs.glyphs[c].mask.shape[1] * s * width_scale) for c in text)
            + 0.18 * cap_px * (len(text) - 1))


def _draw_small_text(cv: _Canvas, text: str, gs: _GlyphSet, x: float, y: float, cap_px: float,
                     value: float, width_scale: float = 1.0) -> float:
    """Draw a short A-Z0-9 string with its capital top at (x, y); return its width."""
    s = cap_px / gs.cap
    dx = 0.0
    for ch in text:
        g = gs.glyphs[ch]
        m = _scaled(g.mask, s * width_scale, s)
        cv.paint(m, round(x + dx), round(y + g.top * s), value)
        dx += m.shape[1] + 0.18 * cap_px
    return dx - 0.18 * cap_px


def _star_ring(cv: _Canvas, cx: float, cy: float, radius: float, dot: float, value: float) -> None:
    def draw(m):
        for k in range(12):
            t = 2 * math.pi * k / 12
            px, py = cx + radius * math.sin(t), cy - radius * math.cos(t)
            cv2.circle(m, (_fp(px), _fp(py)), max(1, _fp(dot)), 255, -1, cv2.LINE_AA, _FP_SHIFT)
    pad = radius + dot
    cv.paint_shape(draw, value, (cx - pad, cy - pad, cx + pad, cy + pad))


def _shield(cv: _Canvas, x: float, y: float, w: float, h: float, fill: float, cross: float) -> None:
    """The Slovak coat of arms, simplified: a shield with a double cross on three hills."""
    pts = [(x, y), (x + w, y), (x + w, y + 0.55 * h)]
    for k in range(1, 12):  # rounded point at the bottom
        t = k / 12 * math.pi
        pts.append((x + w / 2 + w / 2 * math.cos(t), y + 0.55 * h + 0.45 * h * math.sin(t)))
    pts.append((x, y + 0.55 * h))
    poly = np.array([[_fp(px), _fp(py)] for px, py in pts], np.int32)
    cv.paint_shape(lambda m: cv2.fillPoly(m, [poly], 255, cv2.LINE_AA, _FP_SHIFT), fill,
                   (x, y, x + w, y + h))
    bar = max(1.0, 0.12 * w)
    cx = x + w / 2
    cv.rect(cx - bar / 2, y + 0.12 * h, cx + bar / 2, y + 0.72 * h, cross)
    cv.rect(cx - 0.30 * w, y + 0.24 * h, cx + 0.30 * w, y + 0.24 * h + bar, cross)
    cv.rect(cx - 0.38 * w, y + 0.42 * h, cx + 0.38 * w, y + 0.42 * h + bar, cross)
    cv.paint_shape(lambda m: cv2.ellipse(m, (_fp(cx), _fp(y + 0.86 * h)),
                                         (_fp(0.30 * w), _fp(0.14 * h)), 0, 180, 360, 255, -1,
                                         cv2.LINE_AA, _FP_SHIFT),
                   cross, (x, y, x + w, y + h))


def _stamp(cv: _Canvas, cx: float, cy: float, r: float, rng: np.random.Generator | None,
           ground: float, ink: float) -> None:
    """A round registration sticker: a disc, a dark ring, a lighter core and some print."""
    def pick(lo, hi, default):
        return default if rng is None else float(rng.uniform(lo, hi))
    t = pick(0.25, 0.85, 0.55)
    cv.circle(cx, cy, r, t * ground + (1 - t) * ink)
    cv.circle(cx, cy, r * 0.92, ink + pick(0.0, 0.35, 0.15) * (ground - ink),
              thickness=max(1, round(r * 0.12)))
    cv.circle(cx, cy, r * pick(0.35, 0.6, 0.45), ground - pick(0.0, 0.45, 0.2) * (ground - ink))
    if rng is not None and rng.random() < 0.7:  # tiny print and numbers on the sticker
        for _ in range(int(rng.integers(2, 6))):
            a = rng.uniform(0, 2 * math.pi)
            rr = r * rng.uniform(0.55, 0.8)
            cv.circle(cx + rr * math.cos(a), cy + rr * math.sin(a), r * 0.1, ink)


def _draw_separator(cv: _Canvas, kind: str, x0: float, w: float, top: float, u: float,
                    stroke: float, ink: float, ground: float,
                    rng: np.random.Generator | None) -> Mark | None:
    """Draw separator `kind` in the slot [x0, x0 + w) of a text line starting at `top`."""
    if kind == "-":
        bw = 0.24 * u
        bx, by = x0 + (w - bw) / 2, top + 0.5 * u - stroke / 2
        cv.rect(bx, by, bx + bw, by + stroke, ink)
        return Mark("separator", cv.final_box(bx, by, bx + bw, by + stroke))
    if kind == ":":
        bx = x0 + (w - stroke) / 2
        for cy in (0.3, 0.7):
            by = top + cy * u - stroke / 2
            cv.rect(bx, by, bx + stroke, by + stroke, ink)
        return Mark("separator", cv.final_box(bx, top + 0.3 * u - stroke / 2, bx + stroke,
                                              top + 0.7 * u + stroke / 2))
    if kind == "*":
        r = 0.19 * u
        cx = x0 + w / 2
        for cy in (0.25, 0.75):
            _stamp(cv, cx, top + cy * u, r, rng, ground, ink)
        return Mark("stamp", cv.final_box(cx - r, top + 0.25 * u - r, cx + r, top + 0.75 * u + r))
    return None  # " " is a gap


def _draw_band(cv: _Canvas, x0: float, y0: float, x1: float, y1: float, u: float, code: str,
               ink: float, ground: float, inverted: bool) -> Mark:
    """The EU band: a dark strip, a ring of twelve stars and the country code."""
    band = 0.5 * (ink + ground) if inverted else min(ink + 25, ground - 40)
    cv.rect(x0, y0, x1, y1, band)
    light = max(ground, 200.0)
    _star_ring(cv, (x0 + x1) / 2, y0 + 0.38 * (y1 - y0), 0.19 * u, 0.028 * u, light)
    gs, cap = _code_glyphs(), 0.26 * u
    width = _small_text_width(code, gs, cap)
    _draw_small_text(cv, code, gs, (x0 + x1) / 2 - width / 2, y1 - 0.12 * u - cap, cap, light)
    return Mark("band", cv.final_box(x0, y0, x1, y1))


def _draw_emblem(cv: _Canvas, x0: float, y0: float, u: float, code: str, ink: float,
                 ground: float) -> Mark:
    """Old Slovak plates: the coat of arms above the letters SK, in the plate's ink."""
    sw, sh = 0.34 * u, 0.44 * u
    _shield(cv, x0, y0, sw, sh, ink, ground)
    cap = 0.26 * u
    _draw_small_text(cv, code, _code_glyphs(), x0, y0 + 1.02 * u - cap, cap, ink,
                     width_scale=0.85)
    return Mark("emblem", cv.final_box(x0 - 0.02 * u, y0, x0 + sw + 0.05 * u, y0 + 1.04 * u))


def _draw_dealer_text(cv: _Canvas, x0: float, y0: float, cap: float, holder: float,
                      rng: np.random.Generator) -> Mark:
    """Small print of the car dealer on the plate holder."""
    words = ["".join(rng.choice(list(CHARACTERS), size=int(rng.integers(2, 8))))
             for _ in range(int(rng.integers(2, 5)))]
    value = 0.5 * (holder + 230) if holder < 128 else 20.0
    x = x0
    for word in words:
        x += _draw_small_text(cv, word, _code_glyphs(), x, y0, cap, value, 1.1) + 0.5 * cap
    return Mark("dealer", cv.final_box(x0, y0, x, y0 + cap))


def _code_glyphs() -> _GlyphSet:
    """A bold face for country codes and small print."""
    return _glyph_set(str(find_fonts()[0].path), 2)


def _layout_slots(text: str) -> list[str]:
    bad = [c for c in text if c not in CHARACTERS and c not in SEPARATORS]
    if bad:
        raise DatasetError(f"plate text {text!r} has characters outside A-Z, 0-9 and the "
                           f"separators {SEPARATORS!r}: {''.join(dict.fromkeys(bad))!r}")
    if not any(c in CHARACTERS for c in text):
        raise DatasetError(f"plate text {text!r} has no character to draw")
    return list(text)


@dataclass
class _Slot:
    kind: str                 # a character or a separator
    x: float                  # left edge from the plate's left edge, canvas pixels
    width: float
    mask: np.ndarray | None = None  # characters only
    top: float = 0.0          # characters: ink top below the capital top


# German plates' FE-Schrift (and Slovak plates' face) draw W and M hardly wider than H, the
# middle of W up to the cap line: at 15-20 px such a W is two stems with a little between, and
# a net that saw only DIN 1451's wide W reads it as H (the dev crops' `WOB-VWMK4`, `FWE50`).
NARROW_WM = 1.1     # at most this many times the ink width of H


def _glyph_width_scale(ch: str, g: _Glyph, gs: _GlyphSet, style: PlateStyle) -> float:
    """The extra horizontal factor of one glyph: 1, or less for a W or M drawn narrow."""
    if style.narrow_wm and ch in "WM":
        return min(1.0, NARROW_WM * gs.h_width / g.mask.shape[1])
    return 1.0


def _lay_out(text: str, gs: _GlyphSet, style: PlateStyle, u: float, x: float) -> list[_Slot]:
    """Place characters and separator slots left to right, starting at `x`."""
    s = u / gs.cap
    width_scale = style.char_width_ratio * gs.cap / gs.h_width
    spacing = style.spacing_ratio * u
    slots = []
    for ch in _layout_slots(text):
        if ch in SEPARATORS:
            slots.append(_Slot(ch, x, SEPARATOR_SLOT[ch] * u))
        else:
            g = gs.glyphs[ch]
            m = _scaled(g.mask, s * width_scale * _glyph_width_scale(ch, g, gs, style), s)
            slots.append(_Slot(ch, x, m.shape[1], m, g.top * s))
        x += slots[-1].width + spacing
    return slots


def _compose(text: str, style: PlateStyle, char_h: float, rng: np.random.Generator | None,
             ss: int) -> tuple[np.ndarray, list[Box], list[Mark], Box]:
    """Draw the clean plate at `ss` times `char_h`; return the final-size image, the character
    boxes, the marks and the plate box."""
    u = char_h * ss  # one character height in canvas pixels
    ink, ground = float(style.ink), float(style.ground)
    if style.inverted:
        ink, ground = ground, ink

    # Horizontal layout, measured from the plate's left edge.
    border_w = 0.08 * u if style.border else 0.0
    lead = {"EU": 0.62, "SK": 0.48}.get(style.layout, 0.0) * u
    slots = _lay_out(text, _glyphs_for(style), style, u, border_w + lead + style.side_ratio * u)
    plate_w = slots[-1].x + slots[-1].width + style.side_ratio * u + border_w
    plate_h = (1 + 2 * style.margin_ratio) * u
    sur = style.surround_ratio * u
    W = int(math.ceil((plate_w + 2 * sur) / ss)) * ss
    H = int(math.ceil((plate_h + 2 * sur) / ss)) * ss
    ox, oy = (W - plate_w) / 2, (H - plate_h) / 2  # plate origin in the canvas
    cv = _Canvas(W, H, style.surround, ss)

    # The plate with rounded corners, and its rim.
    cv.rounded_rect(ox, oy, ox + plate_w, oy + plate_h, 0.08 * u, ground)
    if style.border:
        inset = border_w * 0.6
        cv.rounded_rect(ox + inset, oy + inset, ox + plate_w - inset, oy + plate_h - inset,
                        0.064 * u, ink, line=0.1 * u)
    plate_box = cv.final_box(ox, oy, ox + plate_w, oy + plate_h)
    edge = 0.15 * u
    marks = [Mark("edge", cv.final_box(ox - edge, oy, ox + edge, oy + plate_h)),
             Mark("edge", cv.final_box(ox + plate_w - edge, oy, ox + plate_w + edge,
                                       oy + plate_h))]
    if style.layout == "EU":
        marks.append(_draw_band(cv, ox + border_w, oy + border_w, ox + border_w + lead,
                                oy + plate_h - border_w, u, style.country[:3], ink, ground,
                                style.inverted))
    elif style.layout == "SK":
        marks.append(_draw_emblem(cv, ox + border_w + 0.07 * u,
                                  oy + (style.margin_ratio - 0.04) * u, u, style.country[:2],
                                  ink, ground))

    # Characters on the final pixel grid, so their boxes are exact; separators between them.
    top = round((oy + style.margin_ratio * u) / ss) * ss
    stroke = (style.stroke_ratio or 0.13) * u
    boxes: list[Box] = []
    for slot in slots:
        if slot.mask is not None:
            xi, yi = round((ox + slot.x) / ss) * ss, round(top + slot.top)
            cv.paint(slot.mask, xi, yi, ink)
            boxes.append(cv.final_box(xi, yi, xi + slot.mask.shape[1], yi + slot.mask.shape[0]))
        else:
            mark = _draw_separator(cv, slot.kind, ox + slot.x, slot.width, top, u, stroke, ink,
                                   ground, rng)
            if mark:
                marks.append(mark)

    if style.dealer_text and rng is not None and sur > 0.14 * u:
        cap = min(0.12 * u, sur * 0.6)
        marks.append(_draw_dealer_text(cv, ox + 0.3 * u, oy + plate_h + (sur - cap) / 2, cap,
                                       style.surround, rng))

    small = cv2.resize(cv.a, (W // ss, H // ss), interpolation=cv2.INTER_AREA)
    return small, boxes, marks, plate_box


# ------------------------------------------------------------------------- photo effects

def _transform_box(M: np.ndarray, box: Box, shape: tuple[int, int]) -> Box:
    x, y, w, h = box
    pts = np.array([[[x, y], [x + w, y], [x, y + h], [x + w, y + h]]], np.float32)
    t = cv2.perspectiveTransform(pts, M)[0]
    x0, y0 = np.floor(t.min(axis=0))
    x1, y1 = np.ceil(t.max(axis=0))
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(shape[1], int(x1)), min(shape[0], int(y1))
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def _photo(img: np.ndarray, boxes: list[Box], marks: list[Mark], plate_box: Box,
           char_h: float, rng: np.random.Generator, aug: PhotoAugment
           ) -> tuple[np.ndarray, list[Box], list[Mark], Box]:
    """Apply camera geometry, light, blur, noise and JPEG to a clean float plate image."""
    H, W = img.shape
    # Geometry: rotation and shear about the centre, then jitter of the four corners.
    ang = math.radians(rng.uniform(-aug.max_rotation_deg, aug.max_rotation_deg))
    sh = rng.uniform(-aug.max_shear, aug.max_shear)
    c, s = math.cos(ang), math.sin(ang)
    A = np.array([[c, -s], [s, c]]) @ np.array([[1, sh], [0, 1]])
    src = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)
    ctr = np.array([W / 2, H / 2])
    dst = (src - ctr) @ A.T + ctr
    dst += rng.uniform(-1, 1, size=(4, 2)) * aug.max_perspective * H
    M = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    img = cv2.warpPerspective(img, M, (W, H), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    boxes = [_transform_box(M, b, (H, W)) for b in boxes]
    marks = [Mark(m.kind, _transform_box(M, m.box, (H, W))) for m in marks]
    plate_box = _transform_box(M, plate_box, (H, W))

    # Uneven light: a gradient and a soft spot; sometimes a shadow edge.
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    xn, yn = xx / max(W, 1) - 0.5, yy / max(H, 1) - 0.5
    gain = 1 + aug.light * (rng.uniform(-1, 1) * xn + rng.uniform(-1, 1) * yn)
    sx, sy = rng.uniform(-0.5, 0.5, 2)
    spot = np.exp(-((xn - sx) ** 2 + (yn - sy) ** 2) / (2 * rng.uniform(0.05, 0.3) ** 2))
    gain += aug.light * rng.uniform(-0.6, 0.6) * spot
    if rng.random() < aug.shadow:
        t = rng.uniform(0, 2 * math.pi)
        d = math.cos(t) * xn + math.sin(t) * yn - rng.uniform(-0.3, 0.3)
        soft = 0.5 * (1 + np.tanh(d / (2 * rng.uniform(0.01, 0.08))))  # a soft step
        gain *= 1 - rng.uniform(0.3, 0.6) * soft
    img = img * gain.astype(np.float32)

    # Contrast and brightness around mid grey, then gamma.
    k = rng.uniform(*aug.contrast)
    img = (img - 128) * k + 128 + rng.uniform(-25, 25)
    img = np.clip(img, 0, 255)
    img = 255 * (img / 255) ** rng.uniform(0.7, 1.4)

    sigma = rng.uniform(*aug.blur) * char_h
    if sigma > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < aug.resolution_loss:
        f = rng.uniform(1.3, 2.0)
        small = cv2.resize(img, (max(4, round(W / f)), max(4, round(H / f))),
                           interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    img = img + rng.normal(0, rng.uniform(*aug.noise), img.shape).astype(np.float32)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < aug.jpeg:
        q = int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out, boxes, marks, plate_box


# ------------------------------------------------------------------------------ public API

def char_height_for(height_px: float, style: PlateStyle) -> float:
    """The character height that makes a plate image (holder included) `height_px` tall."""
    return height_px / (1 + 2 * style.margin_ratio + 2 * style.surround_ratio)


def synthesize_plate(text: str, rng: np.random.Generator | None = None, *,
                     char_height_px: float | None = None, height_px: float | None = None,
                     style: PlateStyle | None = None,
                     augment: bool | PhotoAugment = False) -> Plate:
    """Draw a plate showing `text` and return it with the boxes of everything on it.

    Give the size as `char_height_px` (capital height in pixels) or `height_px` (image height,
    holder included), not both; the default is 28 px characters. `text` holds A-Z, 0-9 and
    the separators " ", "-", ":" and "*" (two stacked round stamps). Without `augment` the
    result is clean and, for a given style, the same with any `rng`; with it, `rng` draws the
    photo effects (it also varies stamp details).
    """
    style = style or PlateStyle()
    if char_height_px is not None and height_px is not None:
        raise DatasetError("give the plate size as char_height_px or height_px, not both")
    if height_px is not None:
        char_h = char_height_for(height_px, style)
    else:
        char_h = 28.0 if char_height_px is None else float(char_height_px)
    if not 4 <= char_h <= 2000:
        raise DatasetError(f"character height {char_h:.1f} px is outside 4..2000 px")
    ss = max(1, math.ceil(72 / char_h))
    img, boxes, marks, plate_box = _compose(text, style, char_h, rng if augment else None, ss)
    if augment:
        if rng is None:
            raise DatasetError("augment=True needs an rng (np.random.default_rng(seed))")
        aug = augment if isinstance(augment, PhotoAugment) else PhotoAugment()
        out, boxes, marks, plate_box = _photo(img, boxes, marks, plate_box, char_h, rng, aug)
    else:
        out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return Plate(out, text, boxes, char_h, style, plate_box, marks)


def render_plate(text: str, rng: np.random.Generator | None = None, *,
                 char_height_px: float | None = None, height_px: float | None = None,
                 style: PlateStyle | None = None,
                 augment: bool | PhotoAugment = False) -> tuple[np.ndarray, list[Box]]:
    """Draw a plate; return the grey uint8 image and one (x, y, w, h) ink box per character.

    Boxes follow the A-Z/0-9 characters of `text` in order (separators get none). See
    `synthesize_plate` for the arguments.
    """
    plate = synthesize_plate(text, rng, char_height_px=char_height_px, height_px=height_px,
                             style=style, augment=augment)
    return plate.image, plate.boxes


# ------------------------------------------------------------------------ random plates


def random_plate_text(rng: np.random.Generator, fmt: str | None = None) -> str:
    """A plate text in one of DRAWN_FORMATS (or `fmt`), letters and digits drawn uniformly."""
    fmt = fmt or DRAWN_FORMATS[int(rng.integers(len(DRAWN_FORMATS)))]
    pools = {"L": LETTERS, "D": DIGITS, "X": CHARACTERS}
    return "".join(pools[c][int(rng.integers(len(pools[c])))] if c in pools else c for c in fmt)


def random_style(rng: np.random.Generator, faces: str = DEFAULT_FACES) -> PlateStyle:
    """A plate look drawn from the range seen on real European plates and photos of them, in
    a face of the set `faces`."""
    layout = str(rng.choice(["SK", "EU", "EU", "plain"]))
    ground = float(rng.uniform(120, 245))
    ink = float(rng.uniform(0, max(10.0, ground - 80)))
    return PlateStyle(
        layout=layout,
        country=str(rng.choice(["SK", "CZ", "D", "A", "PL", "H", "GB", "F", "NL", "I"])),
        font=int(rng.integers(len(faces_of(faces)))),
        char_width_ratio=float(rng.uniform(0.46, 0.64)),
        stroke_ratio=float(rng.uniform(0.10, 0.17)),
        spacing_ratio=float(rng.uniform(0.05, 0.2)),
        margin_ratio=float(rng.uniform(0.14, 0.3)),
        side_ratio=float(rng.uniform(0.1, 0.35)),
        ink=round(ink),
        ground=round(ground),
        inverted=bool(rng.random() < 0.12),
        border=bool(rng.random() < 0.8),
        surround_ratio=float(rng.uniform(0.12, 0.6)),
        surround=round(float(rng.uniform(0, 255) if rng.random() < 0.3 else rng.uniform(5, 80))),
        dealer_text=bool(rng.random() < 0.4),
        faces=faces,
        # drawn last, and only off the default faces, so LeNet's data stays record for record
        narrow_wm=faces != DEFAULT_FACES and bool(rng.random() < 0.35),
    )


def random_plate(rng: np.random.Generator, char_height_px: float,
                 augment: bool | PhotoAugment = True, faces: str = DEFAULT_FACES) -> Plate:
    """A random text in a random style, with photo effects unless `augment` is False."""
    return synthesize_plate(random_plate_text(rng), rng, char_height_px=char_height_px,
                            style=random_style(rng, faces), augment=augment)


__all__ = ["Box", "Mark", "Plate", "PlateStyle", "PhotoAugment", "render_plate", "synthesize_plate", "random_plate",
           "random_plate_text", "random_style", "char_height_for", "font_stem_ratio",
           "twin_characters"]
