"""Finding plates in whole photos: rows of character cells in a pyramid of dense maps.

The net answers "is a character centred here?" at one character size, so a photo is mapped
at a pyramid of scales (OverFeat's sliding at several sizes). At each level the sure cells
(low background probability) are joined along a text line with OpenCV's dilation and
connected components; a component is a plate candidate when the reader finds enough letters
on it at a plate's spacing. Candidates seen at several levels are merged, and the best few are
read again on their own crop at the reader's fine scale sweep (`reading.auto_read`), which is
how a crop is read: when the plate fills the picture, the crop *is* the picture.

The pyramid's maps are computed once and serve both the finding and each candidate's first
reading; only the small crops around candidates are mapped again, between the pyramid's scales.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import cv2
import numpy as np

from viewer.errors import ImageError
from viewer.maps.featuremap import DenseClassifier, FeatureMap
from viewer.maps.labels import character_confidence
from viewer.progress import part as progress_part
from viewer.plates.alphabet import CHAR_FILL
from viewer.plates.ground import has_plate_ground
from viewer.plates.reading import (MIN_CONFIDENCE, NEIGHBOURS, PITCH, Letter, PlateReading,
                                   auto_read, calibrated, pitch_regularity, read_plate)

Box = tuple[float, float, float, float]        # x, y, w, h in original-image pixels

PYRAMID_STEP = 2 ** 0.5      # scale ratio between levels: every character size is near one
MIN_CHAR_PX = 10.0           # the smallest character height looked for, in photo pixels ...
MIN_CHAR_SHARE = 0.015       # ... or this share of the photo's longer side, if larger
MIN_PLATE_LETTERS = 4        # fewer letters in a row is a word, not a plate
MAX_PLATE_LETTERS = 10
PLATE_LETTERS = 7            # letters beyond this many make a row no more plate-like
JOIN_WIDTH = 1.5             # cells of one row join across gaps of this many character heights
MARGIN = (0.9, 0.45)         # a candidate's crop around its letters, in character heights (x, y)
WHOLE_IMAGE = 0.8            # a crop covering this share of both sides: read the whole image
SAME_PLATE_IOU = 0.3         # candidates overlapping this much are one plate ...
SAME_PLATE_PART = 0.5        # ... and so is one with this share of its box inside another
REFINED = 3                  # candidates read again on their own crop ...
REFINE_SPAN = 1.5            # ... at scales within this factor of where they were found ...
REFINE_STEPS = 12            # ... this many (the reader's crop sweep is about 7% apart)
END_OFFSET = 0.13            # an end letter this far off the others' line (character heights)
SECOND_PLATE = 0.5           # another plate scores at least this share of the best one's


@dataclass(frozen=True)
class FoundPlate:
    """A plate found in a photo: its reading, the box of its letters, score and tilt."""

    reading: PlateReading
    box: Box
    score: float
    tilt: float = 0.0        # degrees, positive when the line of letters rises to the right

    @property
    def text(self) -> str:
        return self.reading.text

    @property
    def scale(self) -> float:
        return self.reading.scale

    def as_dict(self) -> dict:
        return {"text": self.text, "box": [round(v, 1) for v in self.box],
                "score": round(self.score, 3), "scale": self.scale,
                "tilt": round(self.tilt, 1),
                "letters": [letter.as_dict() for letter in self.reading.letters]}


@dataclass
class PhotoReading:
    """The plates found in one image, best first, and the pyramid's maps they came from."""

    plates: list[FoundPlate]
    maps: list[FeatureMap] = field(default_factory=list)

    @property
    def best(self) -> FoundPlate | None:
        return self.plates[0] if self.plates else None

    def as_dict(self) -> dict:
        """The best plate's text and letters at the top (what `read --json` always gave),
        every plate under `plates`."""
        best = self.best
        scale = best.scale if best else self.maps[-1].scale if self.maps else None
        return {"text": best.text if best else "", "scale": scale,
                "letters": best.as_dict()["letters"] if best else [],
                "plates": [plate.as_dict() for plate in self.plates]}


def pyramid_scales(dense: DenseClassifier, image_shape: tuple[int, int]) -> np.ndarray:
    """Scales from where a character of most of the image height fills the net's window
    (the crop case) to where the smallest plate character we look for does, `PYRAMID_STEP`
    apart, capped at the largest scale whose pass fits in memory."""
    char_px = dense.unit.receptive_field[0] * CHAR_FILL
    low = dense.planner.smallest_scale(image_shape)
    smallest_char = max(MIN_CHAR_PX, MIN_CHAR_SHARE * max(image_shape[:2]))
    high = max(low, char_px / smallest_char)
    if not dense.planner.fits(image_shape, high):      # a photo of many megapixels
        fits = dense.planner.max_scale(image_shape)
        if fits <= 0:
            raise ImageError(f"the {image_shape[1]}x{image_shape[0]} image is too large to map "
                             f"at any scale; crop it")
        high = min(high, fits)
    count = max(1, math.floor(math.log(high / low) / math.log(PYRAMID_STEP)) + 1)
    return high / PYRAMID_STEP ** np.arange(count)[::-1]


def sweep(dense: DenseClassifier, image: np.ndarray, scales: np.ndarray,
          progress: Callable[[int, int], None] | None = None) -> list[FeatureMap]:
    """The maps of `image` at `scales`, with `progress(done, total)` after each, weighted by
    pixels so that it moves as time does. (The GUI stops a search between two passes with a
    `dense` whose `run` refuses to start once cancelled.)"""
    weights = np.asarray(scales, float) ** 2
    total = float(weights.sum())
    maps = []
    for k, scale in enumerate(scales):
        # Each pass's own fraction (the blas engine's bands) as its share of the sweep. Only
        # the class maps are kept: conv1 of a 12-megapixel photo's pyramid is ~0.6 GB.
        with progress_part(weights[:k].sum() / total, weights[:k + 1].sum() / total):
            maps.append(replace(dense.run(image, float(scale)), conv1=None, blobs={}))
        if progress is not None:
            progress(round(1000 * weights[:k + 1].sum() / total), 1000)
    return maps


def submap(fm: FeatureMap, rows: slice, cols: slice) -> FeatureMap:
    """The cells `rows` x `cols` of a map as a map of their own, placed where they were."""
    (sy, sx), (oy, ox) = fm.geometry.stride, fm.geometry.offset
    geometry = replace(fm.geometry, offset=(oy + sy * rows.start, ox + sx * cols.start))
    return replace(fm, scores=fm.scores[:, rows, cols], probs=fm.probs[:, rows, cols],
                   conv1=None, geometry=geometry, blobs={})


def letters_box(letters: list[Letter]) -> Box:
    """The box holding every letter's box."""
    boxes = np.array([letter.box for letter in letters], float)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def letters_tilt(letters: list[Letter]) -> float:
    """The angle of the rotated rectangle around the letters' boxes, in degrees (positive
    when the line rises to the right), 0 for fewer than two letters."""
    if len(letters) < 2:
        return 0.0
    corners = np.array([(x + dx, y + dy) for x, y, w, h in (l.box for l in letters)
                        for dx in (0, w) for dy in (0, h)], np.float32)
    (_, _), (w, h), angle = cv2.minAreaRect(corners)
    if w < h:                                   # OpenCV names the long side either way
        angle -= 90.0
    angle = (angle + 90.0) % 180.0 - 90.0
    return float(-angle)


def plate_score(letters: list[Letter]) -> float:
    """How much a row of letters looks like a plate: the mean of their probabilities to the
    fourth power (a plate's letters are sure; a row of doubtful ones is texture) times their
    count up to a plate's usual count (a long sign does not win by its length), zero for a
    count no plate has, and scaled by the share of gaps at a letter's pitch."""
    if not MIN_PLATE_LETTERS <= len(letters) <= MAX_PLATE_LETTERS:
        return 0.0
    sureness = float(np.mean([l.prob ** 4 for l in letters]))
    return sureness * min(len(letters), PLATE_LETTERS) * pitch_regularity(letters)


def rows_of_cells(fm: FeatureMap) -> list[tuple[slice, slice]]:
    """Cell ranges of lines of sure cells in one map: sure cells joined along their row
    across a letter gap (dilation), then connected components wide enough for a plate."""
    sure = (character_confidence(fm.probs, fm.labels) >= MIN_CONFIDENCE).astype(np.uint8)
    char_cells = fm.geometry.receptive_field[1] * CHAR_FILL / fm.geometry.stride[1]
    join = max(3, 2 * round(JOIN_WIDTH * char_cells / 2) + 1)
    joined = cv2.dilate(sure, cv2.getStructuringElement(cv2.MORPH_RECT, (join, 3)))
    count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    pad = max(1, round(0.25 * char_cells))
    ranges = []
    for x, y, w, h, _ in stats[1:count]:
        if w - join + 1 < (MIN_PLATE_LETTERS - 1) * PITCH[0] * char_cells:
            continue
        ranges.append((slice(max(0, y - pad), y + h + pad), slice(max(0, x), x + w)))
    return ranges


def candidates(maps: list[FeatureMap]) -> list[FoundPlate]:
    """Every level's plate-like rows read on their own part of the map, best first."""
    found = []
    for fm in maps:
        for rows, cols in rows_of_cells(fm):
            reading = read_plate(submap(fm, rows, cols))
            score = plate_score(reading.letters)
            if score > 0:
                found.append(FoundPlate(reading, letters_box(reading.letters), score,
                                        letters_tilt(reading.letters)))
    return sorted(found, key=lambda plate: -plate.score)


def intersection(a: Box, b: Box) -> float:
    """The area two (x, y, w, h) boxes share."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def same_plate(a: Box, b: Box) -> bool:
    """Two boxes of one plate: they overlap, or half of the smaller lies in the larger (a
    plate's band or half its letters, found at another scale)."""
    smaller = min(a[2] * a[3], b[2] * b[3])
    return iou(a, b) >= SAME_PLATE_IOU or (smaller > 0 and
                                           intersection(a, b) >= SAME_PLATE_PART * smaller)


def distinct(plates: list[FoundPlate]) -> list[FoundPlate]:
    """Non-maximum suppression: drop a plate that is part of a better one (input best first)."""
    kept: list[FoundPlate] = []
    for plate in plates:
        if not any(same_plate(plate.box, other.box) for other in kept):
            kept.append(plate)
    return kept


def crop_around(box: Box, image_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop (x, y, w, h) to read a plate whose letters fill `box`: a margin of
    `MARGIN` character heights, the whole image when that covers most of it."""
    height, width = image_shape[:2]
    x, y, w, h = box                       # the letters' box: h is a character's height
    mx, my = MARGIN[0] * h, MARGIN[1] * h
    x0, x1 = max(0, math.floor(x - mx)), min(width, math.ceil(x + w + mx))
    y0, y1 = max(0, math.floor(y - my)), min(height, math.ceil(y + h + my))
    if x1 - x0 >= WHOLE_IMAGE * width and y1 - y0 >= WHOLE_IMAGE * height:
        return (0, 0, width, height)
    return (x0, y0, x1 - x0, y1 - y0)


def shifted(reading: PlateReading, dx: float, dy: float) -> PlateReading:
    """A reading of a crop placed back in the image the crop was cut from."""
    letters = [replace(l, box=(l.box[0] + dx, l.box[1] + dy, l.box[2], l.box[3]))
               for l in reading.letters]
    return PlateReading(letters, reading.scale)


def line_heights(fm: FeatureMap, letters: list[Letter]) -> np.ndarray:
    """Each letter's height on the map, in rows, to a fraction of a row: the centroid of
    the character confidence over its cell and the cells above and below."""
    conf = character_confidence(fm.probs, fm.labels)
    heights = []
    for letter in letters:
        i, j = letter.cell
        rows = np.arange(max(0, i - 1), min(conf.shape[0], i + 2))
        weights = conf[rows, j]
        heights.append(float((rows * weights).sum() / max(weights.sum(), 1e-9)))
    return np.array(heights)


def trim_off_line_ends(reading: PlateReading, fm: FeatureMap) -> PlateReading:
    """Drop an end letter whose centre is off the line of the letters between the ends.

    The frame's edge and the EU band end a plate with a stroke the net takes for an I, L or
    J; its window fires lower or higher than the letters do. A crop cut close to the plate
    keeps that window out; a plate found in a photo needs the line to tell it.
    """
    letters = reading.letters
    if len(letters) <= MIN_PLATE_LETTERS:
        return reading
    heights = line_heights(fm, letters)
    columns = np.array([letter.cell[1] for letter in letters], float)
    slope, intercept = np.polyfit(columns[1:-1], heights[1:-1], 1)
    off = np.abs(heights - (slope * columns + intercept))
    limit = END_OFFSET * fm.geometry.receptive_field[0] * CHAR_FILL / fm.geometry.stride[0]
    keep = [k for k in range(len(letters))
            if 0 < k < len(letters) - 1 or off[k] <= limit]
    return PlateReading([letters[k] for k in keep], reading.scale)


def best_plate_reading(dense: DenseClassifier, crop: np.ndarray,
                       scales: np.ndarray) -> tuple[PlateReading, FeatureMap]:
    """The reading of a crop, over `scales`, that looks most like a plate (`plate_score`,
    then the weakest letter): unlike a crop's `auto_read`, which keeps the scale of the
    strongest weakest letter (times the spacing's regularity), it does not trade a letter of
    the plate for surer ones. Its letters' agreement is with the scales `NEIGHBOURS` steps
    around."""
    best: tuple[tuple[float, float], int, FeatureMap] | None = None
    readings = []
    for index, scale in enumerate(scales):
        fm = dense.run(crop, float(scale))
        readings.append(read_plate(fm))
        key = (plate_score(readings[-1].letters), readings[-1].weakest)
        if best is None or key > best[0]:
            best = (key, index, fm)
    _, at, fm = best
    others = [r for i, r in enumerate(readings) if i != at and abs(i - at) <= NEIGHBOURS]
    return calibrated(readings[at], others, fm.calibration), fm


def read_candidate(dense: DenseClassifier, image: np.ndarray, plate: FoundPlate) -> FoundPlate:
    """Read a found plate again on its own crop, at a fine scale sweep around the scale it
    was found at, without the stray strokes at its ends; a plate that fills the image is read
    as any crop is (`auto_read`, whose borders keep the frame out). The pyramid's reading
    stays only when the crop's does not look like a plate."""
    x, y, w, h = crop_around(plate.box, image.shape)
    crop = image[y:y + h, x:x + w]
    try:
        if (w, h) == (image.shape[1], image.shape[0]):
            reading, _ = auto_read(dense, crop)
        else:
            smallest = dense.planner.smallest_scale(crop.shape[:2])
            scales = np.geomspace(plate.scale / REFINE_SPAN, plate.scale * REFINE_SPAN,
                                  REFINE_STEPS)
            reading, fm = best_plate_reading(dense, crop, np.maximum(smallest, scales))
            reading = trim_off_line_ends(reading, fm)
    except ImageError:                # a crop smaller than the net's window at any scale
        return plate
    reading = shifted(reading, x, y)
    score = plate_score(reading.letters)
    if score == 0:
        return plate
    return FoundPlate(reading, letters_box(reading.letters), score, letters_tilt(reading.letters))


def whole_image(dense: DenseClassifier, image: np.ndarray) -> FoundPlate | None:
    """The image read as one plate (a crop): what `read` did before plates were searched."""
    reading, _ = auto_read(dense, image)
    if not reading.letters:
        return None
    return FoundPlate(reading, letters_box(reading.letters), plate_score(reading.letters),
                      letters_tilt(reading.letters))


def on_plate_ground(image: np.ndarray, plates: list[FoundPlate]) -> list[FoundPlate]:
    """The plates whose letters stand on a plate's ground (`ground.has_plate_ground`)."""
    return [plate for plate in plates if has_plate_ground(image, plate.box)]


def plausible(image: np.ndarray, plates: list[FoundPlate]) -> list[FoundPlate]:
    """Of plates read on their crops (best first), those on a plate's ground; after the best,
    only those that look at least `SECOND_PLATE` as much like a plate. A second car's plate
    is read as surely as the first; a row of doubtful letters in a texture is not."""
    kept = on_plate_ground(image, plates)
    return kept[:1] + [p for p in kept[1:] if p.score >= SECOND_PLATE * kept[0].score]


def find_plates(dense: DenseClassifier, image: np.ndarray,
                progress: Callable[[int, int], None] | None = None) -> PhotoReading:
    """The plates in an image, best first, each read on its own crop; rows of letters
    without a plate's ground, and doubtful ones beside a sure plate, are not plates (nor read
    again: on the dev photos that saves a quarter of the passes).

    When nothing in the image looks like a plate, the whole image is read as one (the crop
    case), so a short or faint plate still gets today's reading.
    """
    maps = sweep(dense, image, pyramid_scales(dense, image.shape[:2]), progress)
    found = plausible(image, distinct(on_plate_ground(image, candidates(maps)))[:REFINED])
    read = plausible(image, distinct(sorted((read_candidate(dense, image, p) for p in found),
                                            key=lambda plate: -plate.score)))
    if not read:
        whole = whole_image(dense, image)
        read = [whole] if whole else []
    return PhotoReading(read, maps)


def check_region(image_shape: tuple[int, ...], region: tuple[int, int, int, int]) -> None:
    """An ImageError unless the (x, y, w, h) region lies inside the image."""
    x, y, w, h = region
    height, width = image_shape[:2]
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ImageError(f"the region {x},{y},{w},{h} is not inside the {width}x{height} image")


def placed(photo: PhotoReading, x: int, y: int) -> PhotoReading:
    """A region's plates with their boxes and letters in the whole image's pixels."""
    plates = [FoundPlate(shifted(p.reading, x, y), (p.box[0] + x, p.box[1] + y, *p.box[2:]),
                         p.score, p.tilt) for p in photo.plates]
    return PhotoReading(plates, photo.maps)


def read_region(dense: DenseClassifier, image: np.ndarray, region: tuple[int, int, int, int],
                progress: Callable[[int, int], None] | None = None) -> PhotoReading:
    """`find_plates` in the (x, y, w, h) region of an image, placed in the image's pixels
    (the maps stay the region's)."""
    check_region(image.shape, region)
    x, y, w, h = region
    return placed(find_plates(dense, image[y:y + h, x:x + w], progress), x, y)


def read_region_at(dense: DenseClassifier, image: np.ndarray,
                   region: tuple[int, int, int, int], scale: float) -> PhotoReading:
    """The (x, y, w, h) region read as one plate at one given scale: `read --scale S`."""
    check_region(image.shape, region)
    x, y, w, h = region
    fm = dense.run(image[y:y + h, x:x + w], scale)
    reading = calibrated(read_plate(fm), [], fm.calibration)
    plates = [FoundPlate(reading, letters_box(reading.letters), plate_score(reading.letters),
                         letters_tilt(reading.letters))] if reading.letters else []
    return placed(PhotoReading(plates, [fm]), x, y)
