"""Finding plates in whole pictures: generated scenes whose plate box and text are known."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from viewer.maps.featuremap import FeatureMap
from viewer.net.geometry import Geometry
from viewer.maps.labels import labels_for
from viewer.plates.locate import (FoundPlate, distinct, find_plates, iou, letters_tilt, plate_score,
                           read_region, submap, trim_off_line_ends)
from viewer.plates.reading import Letter, PlateReading


@pytest.fixture(scope="module")
def shipped():
    from viewer.files import paths
    from viewer.maps.featuremap import DenseClassifier
    from viewer.net.weights import load_net

    return DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS))


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A float picture with what photos have around plates: texture, light, edges, text."""
    noise = rng.normal(0, 40, (height, width)).astype(np.float32)
    picture = 120 + cv2.GaussianBlur(noise, (0, 0), 2.5) * 2 + np.linspace(-30, 30, width)
    for _ in range(8):
        p, q = rng.integers(0, (width, height), 2), rng.integers(0, (width, height), 2)
        cv2.line(picture, tuple(map(int, p)), tuple(map(int, q)),
                 float(rng.uniform(0, 255)), int(rng.integers(1, 5)))
    for k, word in enumerate(("SERVICE 24H", "TEL 0905")):
        at = (int(rng.integers(0, width // 3)),
              int(rng.integers(12, height // 2)) + k * height // 2)
        cv2.putText(picture, word, at, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 20.0, 1, cv2.LINE_AA)
    return picture


def letters_box_of(boxes) -> tuple[float, float, float, float]:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def scene(seed: int, text: str, height: int = 180, width: int = 240):
    """A generated plate pasted at a random place, size and tilt (within 4 degrees) into a
    generated background: the picture, the box of the plate's characters, the plate's box."""
    from viewer.dataset.plates import PlateStyle, synthesize_plate

    rng = np.random.default_rng(seed)
    plate = synthesize_plate(text, char_height_px=float(rng.uniform(16, 30)),
                             style=PlateStyle(layout="plain"))
    h, w = plate.image.shape
    x, y = rng.integers(0, (width - w, height - h))
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-4, 4)), 1.0)
    turn[:, 2] += (x, y)
    picture = background(rng, height, width)
    pasted = cv2.warpAffine(plate.image.astype(np.float32), turn, (width, height))
    inside = cv2.warpAffine(np.ones((h, w), np.float32), turn, (width, height)) > 0.5
    picture[inside] = pasted[inside]

    def placed(boxes):
        corners = np.array([(bx + dx, by + dy, 1.0) for bx, by, bw, bh in boxes
                            for dx in (0, bw) for dy in (0, bh)]) @ turn.T
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        return (x0, y0, x1 - x0, y1 - y0)

    image = np.clip(picture, 0, 255).astype(np.uint8)
    return image, placed(plate.boxes), placed([plate.plate_box])


def assert_found(plate: FoundPlate, letters_box, plate_box) -> None:
    x, y, w, h = plate.box
    cx, cy = x + w / 2, y + h / 2
    assert plate_box[0] <= cx <= plate_box[0] + plate_box[2]
    assert plate_box[1] <= cy <= plate_box[1] + plate_box[3]
    assert iou(plate.box, letters_box) >= 0.5


@pytest.mark.parametrize("seed, text", [(3, "RK857AI"), (8, "4B40262")])
def test_a_plate_in_a_generated_scene_is_found_and_read(shipped, seed, text):
    image, letters_box, plate_box = scene(seed, text)
    best = find_plates(shipped, image).best
    assert best.text == text
    assert_found(best, letters_box, plate_box)


def test_a_crop_is_read_as_one_plate_as_before(shipped):
    from viewer.dataset.plates import PlateStyle, synthesize_plate
    from viewer.plates.reading import auto_read

    crop = synthesize_plate("RK857AI", char_height_px=20.0, style=PlateStyle(layout="plain"))
    best = find_plates(shipped, crop.image).best
    alone, _ = auto_read(shipped, crop.image)
    assert (best.text, best.scale) == (alone.text, alone.scale) == ("RK857AI", alone.scale)
    assert iou(best.box, letters_box_of(crop.boxes)) >= 0.5


def test_a_region_is_read_in_the_pixels_of_the_whole_image(shipped):
    image, letters_box, plate_box = scene(3, "RK857AI")
    x0 = max(0, int(plate_box[0]) - 20)
    y0 = max(0, int(plate_box[1]) - 10)
    region = (x0, y0, min(image.shape[1] - x0, int(plate_box[2]) + 40),
              min(image.shape[0] - y0, int(plate_box[3]) + 20))
    best = read_region(shipped, image, region).best
    assert best.text == "RK857AI"
    assert_found(best, letters_box, plate_box)


def test_read_cli_lists_the_plates_and_refuses_a_region_outside(shipped, tmp_path, capsys):
    from viewer.cli import main

    image, letters_box, plate_box = scene(8, "4B40262")
    photo = tmp_path / "scene.png"
    Image.fromarray(image).save(photo)
    assert main(["read", str(photo), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == row["plates"][0]["text"] == "4B40262"
    assert iou(tuple(row["plates"][0]["box"]), letters_box) >= 0.5
    assert [l["label"] for l in row["letters"]] == list("4B40262")

    assert main(["read", str(photo), "--region", "220,150,40,50"]) == 2
    assert capsys.readouterr().err == (f"error: {photo}: the region 220,150,40,50 is not inside "
                                       "the 240x180 image\n")


def map_with(rows: dict[int, int], cols: int = 40, height: int = 12) -> FeatureMap:
    """A map sure of an "A" at column -> row, background elsewhere (stride 4, window 28)."""
    labels = labels_for(37)
    scores = np.zeros((37, height, cols), np.float32)
    scores[-1] = 4.0
    for col, row in rows.items():
        scores[0, row, col] = 9.0
    probs = np.exp(scores) / np.exp(scores).sum(axis=0)
    return FeatureMap(scores, probs, None, labels, Geometry((4, 4), (0, 0), (28, 28)),
                      (76, 184), 1.0, 0.0)


def reading_of(fm: FeatureMap, columns: list[int]) -> PlateReading:
    rows = fm.probs[0].argmax(axis=0)
    return PlateReading([Letter("A", 0.99, [], (4.0 * j, 4.0 * rows[j], 13.5, 22.5),
                                (int(rows[j]), j)) for j in columns])


def test_end_letters_off_the_line_are_dropped_and_a_tilted_line_kept():
    fm = map_with({3: 7, 8: 4, 13: 4, 18: 4, 23: 4, 28: 4, 33: 6})
    kept = trim_off_line_ends(reading_of(fm, [3, 8, 13, 18, 23, 28, 33]), fm)
    assert [l.cell[1] for l in kept.letters] == [8, 13, 18, 23, 28]
    tilted = map_with({5: 8, 10: 7, 15: 6, 20: 5, 25: 4, 30: 3})
    assert len(trim_off_line_ends(reading_of(tilted, [5, 10, 15, 20, 25, 30]), tilted).letters) == 6


def test_a_submap_keeps_its_cells_where_they_were():
    fm = map_with({8: 4})
    part = submap(fm, slice(3, 6), slice(5, 12))
    assert part.probs.shape == (37, 3, 7)
    assert part.geometry.cell_window(1, 3) == fm.geometry.cell_window(4, 8)


def test_plate_score_wants_a_plates_count_and_spacing():
    def letters(centres):
        return [Letter("A", 1.0, [], (c - 6.75, 0.0, 13.5, 22.5), (0, 0)) for c in centres]

    assert plate_score(letters([0, 16, 32])) == 0.0                        # a word
    assert plate_score(letters([0, 16, 32, 48, 64])) == pytest.approx(5.0)
    assert plate_score(letters([0, 16, 32, 200, 216])) == pytest.approx(3.75)  # one gap too wide


def test_tilt_is_the_angle_of_the_line_of_letters():
    rising = [Letter("A", 1.0, [], (20.0 * k, 100.0 - 20.0 * k * np.tan(np.radians(5)), 13.5,
                                    22.5), (0, 0)) for k in range(6)]
    assert letters_tilt(rising) == pytest.approx(5.0, abs=1.0)


def test_a_part_of_a_better_plate_is_not_another_plate():
    def plate(box, score):
        return FoundPlate(PlateReading([]), box, score)

    whole, band = plate((100.0, 50.0, 120.0, 25.0), 7.0), plate((90.0, 50.0, 30.0, 25.0), 4.0)
    elsewhere = plate((300.0, 50.0, 120.0, 25.0), 5.0)
    assert iou(whole.box, band.box) < 0.3
    assert distinct([whole, band, elsewhere]) == [whole, elsewhere]


def test_the_pyramid_stops_at_the_largest_scale_that_fits_in_memory(shipped, monkeypatch):
    from viewer.net import cost
    from viewer.errors import ImageError
    from viewer.plates.locate import pyramid_scales

    free = pyramid_scales(shipped, (600, 800))
    assert free[-1] == pytest.approx(22.5 / 12)         # a 12 px character (1.5% of 800)
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 32 * 2**20)
    capped = pyramid_scales(shipped, (600, 800))
    assert capped[-1] == shipped.planner.max_scale((600, 800)) < free[-1]
    assert shipped.planner.fits((600, 800), capped[-1])
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 1)
    with pytest.raises(ImageError, match="^the 800x600 image is too large to map at any scale; "
                                         "crop it$"):
        pyramid_scales(shipped, (600, 800))


def _row(ink: int, ground: tuple[int, int, int], stroke: int, gap: int) -> np.ndarray:
    """A 20 px row of vertical strokes `stroke` px wide, `gap` apart, on a plain ground."""
    image = np.zeros((20, 100, 3), np.uint8)
    image[:] = ground
    for x in range(0, 100, stroke + gap):
        image[:, x:x + stroke] = ink
    return image


def test_a_plate_needs_ink_on_a_light_or_coloured_ground():
    from viewer.plates.ground import has_plate_ground, ink_share

    box = (0.0, 0.0, 100.0, 20.0)
    plate = _row(20, (230, 230, 230), 3, 7)              # thin dark strokes on white
    assert ink_share(plate, box) == (pytest.approx(0.3), 0.0)
    assert has_plate_ground(plate, box)
    assert has_plate_ground(plate[..., 0], box)          # a gray image
    grille = _row(20, (200, 200, 200), 6, 4)             # a texture darker than light
    assert ink_share(grille, box)[0] == pytest.approx(0.6)
    assert not has_plate_ground(grille, box)
    blue = _row(240, (30, 60, 170), 3, 3)                 # white strokes on a blue plate
    assert ink_share(blue, box) == (pytest.approx(0.49), pytest.approx(140.0))
    assert has_plate_ground(_row(240, (30, 60, 170), 2, 3), box)      # dark 0.6, coloured
    assert not has_plate_ground(_row(240, (60, 60, 60), 2, 3), box)   # the same in gray
    flat = np.full((20, 100), 128, np.uint8)              # no contrast: nothing is said
    assert ink_share(flat, box) == (0.0, 0.0) and has_plate_ground(flat, box)


def test_beside_the_best_plate_only_nearly_as_plate_like_ones_are_kept():
    from viewer.plates.locate import SECOND_PLATE, plausible

    image = np.full((100, 400, 3), 230, np.uint8)
    image[:, 300:] = 40                                   # the right part a dark grille
    image[:, 300::4] = 200
    best, second = FoundPlate(PlateReading([]), (0.0, 0.0, 90.0, 20.0), 6.0), \
        FoundPlate(PlateReading([]), (100.0, 0.0, 90.0, 20.0), 6.0 * SECOND_PLATE)
    weak = FoundPlate(PlateReading([]), (200.0, 0.0, 90.0, 20.0), 6.0 * SECOND_PLATE - 0.01)
    dark = FoundPlate(PlateReading([]), (310.0, 0.0, 80.0, 20.0), 7.0)
    image[5:15, 10:80:8] = 0
    image[5:15, 110:180:8] = 0
    assert plausible(image, [best, second, weak]) == [best, second]
    assert plausible(image, [dark, best, weak]) == [best]
