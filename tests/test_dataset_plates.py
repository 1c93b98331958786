"""Synthetic plates: the boxes are where the characters are drawn, at every scale."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.errors import DatasetError
from viewer.dataset.fonts import FONT_PACKAGES, find_fonts
from viewer.dataset.plates import (PhotoAugment, PlateStyle, char_height_for, random_plate,
                                   random_plate_text, random_style, render_plate,
                                   synthesize_plate)

# Only the characters are dark: no band, no rim, a holder as light as the plate.
ONLY_TEXT = PlateStyle(layout="plain", border=False, surround=215, ground=215, ink=30)


def _dark(image: np.ndarray) -> np.ndarray:
    return image < 122


def _inside(boxes, shape) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        mask[y:y + h, x:x + w] = True
    return mask


def test_fonts_are_found_and_missing_fonts_name_the_packages(tmp_path):
    faces = find_fonts()
    assert len(faces) >= 6 and faces[0].name == "Open DIN"
    assert all(f.path.is_file() for f in faces)
    with pytest.raises(DatasetError, match="apt-get install fonts-opendin"):
        find_fonts((tmp_path,))
    assert "fonts-bebas-neue" in FONT_PACKAGES


@pytest.mark.parametrize("char_h", [14, 20, 28, 40, 56])
def test_clean_boxes_hold_all_the_ink_and_touch_it(char_h):
    image, boxes = render_plate("HA12B3W", char_height_px=char_h, style=ONLY_TEXT)
    dark = _dark(image)
    assert len(boxes) == 7
    inside = _inside(boxes, image.shape)
    assert dark[inside].sum() / dark.sum() > 0.995  # nothing dark outside the boxes
    for x, y, w, h in boxes:
        ink = dark[y:y + h, x:x + w]
        assert ink.mean() > 0.2                      # each box is mostly character
        # tight: ink reaches (within a pixel) every side of the box
        assert ink[:2].any() and ink[-2:].any() and ink[:, :2].any() and ink[:, -2:].any()
    assert boxes[0][3] == char_h                     # "H" is exactly the character height
    xs = [b[0] for b in boxes]
    assert xs == sorted(xs)


def test_boxes_scale_with_the_character_height():
    _, small = render_plate("RK-115AN", char_height_px=20)
    _, big = render_plate("RK-115AN", char_height_px=40)
    for a, b in zip(small, big):
        assert abs(2 * (a[0] + a[2] / 2) - (b[0] + b[2] / 2)) <= 2.5
        assert abs(2 * (a[1] + a[3] / 2) - (b[1] + b[3] / 2)) <= 2.5
        assert abs(2 * a[3] - b[3]) <= 2


def test_height_px_sets_the_image_height():
    style = PlateStyle()
    for height in (24, 48, 97):
        image, _ = render_plate("1T4*3213", height_px=height, style=style)
        assert abs(image.shape[0] - height) <= 1
    assert char_height_for(100, style) == pytest.approx(100 / (1 + 0.44 + 0.6))
    with pytest.raises(DatasetError, match="not both"):
        render_plate("AB", char_height_px=20, height_px=40)


def test_separators_and_stamps_get_marks_not_boxes():
    plate = synthesize_plate("RK*855-AP", char_height_px=30)
    assert plate.chars == "RK855AP" and len(plate.boxes) == 7
    kinds = [m.kind for m in plate.marks]
    assert kinds.count("stamp") == 1 and kinds.count("separator") == 1
    assert "emblem" in kinds and kinds.count("edge") == 2
    stamp = next(m.box for m in plate.marks if m.kind == "stamp")
    k_box, eight_box = plate.boxes[1], plate.boxes[2]
    assert k_box[0] + k_box[2] <= stamp[0] and stamp[0] + stamp[2] <= eight_box[0]
    assert stamp[3] > 0.8 * plate.char_height_px  # two stamps stacked over the text height
    eu = synthesize_plate("1T4 3213", char_height_px=30, style=PlateStyle(layout="EU",
                                                                          country="CZ"))
    band = next(m.box for m in eu.marks if m.kind == "band")
    assert band[0] + band[2] <= eu.boxes[0][0]


def test_inverted_plates_have_light_characters():
    image, boxes = render_plate("ABC123", char_height_px=30,
                                style=PlateStyle(inverted=True, layout="plain"))
    x, y, w, h = boxes[0]
    ground = image[y - 3, x:x + w].mean()
    assert image[y:y + h, x:x + w].max() > ground + 120


def test_clean_render_ignores_the_rng_and_augmented_follows_the_seed():
    a, _ = render_plate("RK-115AN", np.random.default_rng(1))
    b, _ = render_plate("RK-115AN", np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    c, bc = render_plate("RK-115AN", np.random.default_rng(5), augment=True)
    d, bd = render_plate("RK-115AN", np.random.default_rng(5), augment=True)
    e, _ = render_plate("RK-115AN", np.random.default_rng(6), augment=True)
    np.testing.assert_array_equal(c, d)
    assert bc == bd
    assert not np.array_equal(c, e)


def test_geometry_augmentation_keeps_the_boxes_on_the_characters():
    only_geometry = PhotoAugment(blur=(0, 0), resolution_loss=0, light=0, shadow=0,
                                 contrast=(1, 1), noise=(0, 0), jpeg=0)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        image, boxes = render_plate("WX78MN5", rng, char_height_px=30, style=ONLY_TEXT,
                                    augment=only_geometry)
        dark = _dark(image)
        assert dark[_inside(boxes, image.shape)].sum() / dark.sum() > 0.97
        for x, y, w, h in boxes:
            assert dark[y:y + h, x:x + w].mean() > 0.15


def test_random_plates_are_varied_and_well_formed():
    rng = np.random.default_rng(0)
    texts = [random_plate_text(rng) for _ in range(200)]
    assert len(set(texts)) > 190
    assert set("".join(texts)) - set(" -:*") == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    styles = [random_style(rng) for _ in range(200)]
    assert {s.layout for s in styles} == {"SK", "EU", "plain"}
    assert 0.03 < np.mean([s.inverted for s in styles]) < 0.25
    assert len({s.font for s in styles}) == len(find_fonts())
    for _ in range(5):
        plate = random_plate(rng, 22)
        assert plate.image.dtype == np.uint8 and plate.image.ndim == 2
        assert len(plate.boxes) == len(plate.chars)
        H, W = plate.image.shape
        for x, y, w, h in plate.boxes:
            assert 0 <= x and x + w <= W and 0 <= y and y + h <= H and w > 0 and h > 0


@pytest.mark.parametrize("text", ["", "---", "ab12", "RK#1"])
def test_bad_text_is_a_dataset_error(text):
    with pytest.raises(DatasetError, match="plate text"):
        render_plate(text)


def test_the_bundled_dinish_faces_with_their_licence_make_plates_of_their_own():
    from viewer.dataset.fonts import BUNDLED_FONTS, faces_of

    debian, dinish, both = faces_of("debian"), faces_of("dinish"), faces_of("debian+dinish")
    held_out = faces_of("dinish-held-out")
    assert (len(dinish), len(held_out), both) == (9, 3, debian + tuple(
        f for f in dinish if f not in held_out))                  # never trained on: 3 faces
    assert {f.name for f in held_out} == {"DINish Medium", "DINish Condensed Medium",
                                          "DINish Expanded Bold"}
    assert debian == find_fonts() and dinish[0].name == "DINish"
    assert "SIL OPEN FONT LICENSE" in (BUNDLED_FONTS / "OFL.txt").read_text().upper()
    with pytest.raises(DatasetError, match="unknown face set 'comic'"):
        faces_of("comic")
    rng = np.random.default_rng(4)
    styles = [random_style(rng, faces="dinish") for _ in range(60)]
    assert {s.font for s in styles} == set(range(9)) and {s.faces for s in styles} == {"dinish"}
    plate = synthesize_plate("AB-123", style=PlateStyle(layout="plain", faces="dinish", font=3),
                             char_height_px=24.0)
    default = synthesize_plate("AB-123", style=PlateStyle(layout="plain", font=3),
                               char_height_px=24.0)
    assert len(plate.boxes) == 5 and plate.image.shape[0] == default.image.shape[0]
    assert not np.array_equal(plate.image, default.image)      # another face drawn
