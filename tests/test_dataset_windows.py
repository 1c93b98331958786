"""Training windows: centred characters are centred, background windows hold none."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from viewer.dataset import windows as windows_module
from viewer.dataset.fonts import find_fonts
from viewer.dataset.plates import PlateStyle, synthesize_plate, twin_characters
from viewer.dataset.windows import (WindowSpec, box_centre, centred_character,
                                    generate_windows, reference_width, sample_windows)
from viewer.maps.labels import BACKGROUND, CHARACTERS

SPEC = WindowSpec()


@pytest.fixture(scope="module")
def windows():
    return list(generate_windows(1500, np.random.default_rng(7)))


def test_count_shape_labels_and_background_share(windows):
    assert len(windows) == 1500
    assert all(w.image.shape == (28, 28) and w.image.dtype == np.uint8 for w in windows)
    labels = Counter(w.label for w in windows)
    assert set(labels) == set(range(37))
    assert 0.38 <= labels[BACKGROUND] / len(windows) <= 0.48
    per_letter = np.mean([labels[k] for k in range(26)])
    per_digit = np.mean([labels[k] for k in range(26, 36)])
    assert 0.8 < per_letter / per_digit < 1.25  # letters and digits about equally often


def test_character_windows_are_centred_on_their_character(windows):
    for w in (w for w in windows if w.label != BACKGROUND):
        h = w.char_height
        assert SPEC.char_height[0] <= h <= SPEC.char_height[1]
        near = min(w.boxes, key=lambda b: abs(box_centre(b)[0] - 14) + abs(box_centre(b)[1] - 14))
        cx, cy = box_centre(near)
        assert abs(cx - 14) <= SPEC.max_jitter * reference_width(near, h) + 0.5
        assert abs(cy - 14) <= SPEC.max_jitter_y * h + 0.5


def test_background_windows_hold_no_centred_character(windows):
    background = [w for w in windows if w.label == BACKGROUND]
    kinds = Counter(w.kind for w in background)
    assert {"gap", "half", "edge", "stamp", "separator", "band", "emblem", "scale"} <= set(kinds)
    for w in background:
        if w.kind == "scale":  # the whole plate is far too small or too large
            assert (w.char_height <= SPEC.tiny_char_height[1]
                    or w.char_height >= SPEC.huge_char_height[0])
            continue
        for b in w.boxes:
            cx, cy = box_centre(b)
            off_x = abs(cx - 14) >= SPEC.min_shift * reference_width(b, w.char_height) - 0.5
            off_y = abs(cy - 14) >= SPEC.min_shift_y * w.char_height - 0.5
            assert off_x or off_y, (w.kind, b)


def test_half_character_windows_are_shifted_by_a_quarter_to_three_quarters(windows):
    halves = [w for w in windows if w.kind == "half"]
    assert len(halves) > 50
    for w in halves:
        near = min(w.boxes, key=lambda b: abs(box_centre(b)[0] - 14))
        shift = abs(box_centre(near)[0] - 14) / reference_width(near, w.char_height)
        assert SPEC.min_shift - 0.05 <= shift <= 0.8


def test_centred_character_rule():
    boxes = [(10, 5, 12, 22), (26, 5, 6, 22)]  # a wide and a narrow character
    assert centred_character(boxes, 22, 16, 16) == 0
    assert centred_character(boxes, 22, 16 + 2.9, 16) == 0      # < 12/4 away from the first
    assert centred_character(boxes, 22, 16 + 3.1, 16) is None   # > 12/4 away
    assert centred_character(boxes, 22, 29 + 2.0, 16) == 1      # narrow: width counts as 11
    assert centred_character(boxes, 22, 29 + 2.8, 16) is None
    assert centred_character(boxes, 22, 16, 16 + 7.5) is None      # a third of 22 below
    assert centred_character(boxes, 10, 16, 16) is None         # off scale: never centred


def test_sample_windows_on_a_clean_plate_crops_at_the_centres():
    plate = synthesize_plate("AB*12-CD", char_height_px=22)
    rng = np.random.default_rng(0)
    ws = sample_windows(plate, rng, n_chars=6, n_background=30)
    chars = [w for w in ws if w.label != BACKGROUND]
    assert sorted(CHARACTERS[w.label] for w in chars) == sorted("AB12CD")
    for w in chars:
        i = plate.chars.index(CHARACTERS[w.label])
        bx, by = box_centre(plate.boxes[i])
        assert abs(w.centre[0] - bx) < reference_width(plate.boxes[i], 22) / 8
        x0, y0 = int(round(w.centre[0] - 14)), int(round(w.centre[1] - 14))
        np.testing.assert_array_equal(w.image, plate.image[y0:y0 + 28, x0:x0 + 28])
    assert len(ws) - len(chars) == 30


def test_windows_follow_the_seed():
    a = list(generate_windows(120, np.random.default_rng(3)))
    b = list(generate_windows(120, np.random.default_rng(3)))
    c = list(generate_windows(120, np.random.default_rng(4)))
    assert [w.label for w in a] == [w.label for w in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c))


def test_glyphs_a_face_draws_alike_make_no_character_windows(monkeypatch):
    """Open DIN draws O and 0 as one glyph: such windows would be label noise."""
    faces = [f.name for f in find_fonts()]
    if "Open DIN" not in faces:
        pytest.skip("fonts-opendin is not installed (scripts/system-deps.sh installs it)")
    din = PlateStyle(font=faces.index("Open DIN"))
    roboto = PlateStyle(font=faces.index("Roboto Condensed"))
    assert twin_characters(din) == {"O", "0"} and twin_characters(roboto) == set()
    for style, expected in ((din, set("BA8X")), (roboto, set("BO0A8X"))):
        monkeypatch.setattr(windows_module, "random_plate", lambda rng, h, s=style, **_:
                            synthesize_plate("BO0A8X", rng, char_height_px=h, style=s,
                                             augment=True))
        rng = np.random.default_rng(3)
        labels = {w.label for _ in range(40) for w in
                  windows_module.windows_from_random_plate(rng) if w.label != BACKGROUND}
        assert {CHARACTERS[k] for k in labels} == expected
