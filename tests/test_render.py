"""Pictures of maps without Qt: the best-character overlay leaves background cells untouched."""
from __future__ import annotations

import numpy as np

from viewer.maps import render
from viewer.maps.featuremap import FeatureMap
from viewer.net.geometry import Geometry
from viewer.maps.labels import labels_for


def one_letter_map(background: bool = True) -> FeatureMap:
    """A 2x3 map over a 16x20 image (4-pixel cells): cell (0, 1) is a sure K, cell (1, 2) an
    80% A, the rest background (or, without that class, a flat guess)."""
    labels = labels_for(37 if background else 36)
    probs = np.full((len(labels), 2, 3), 0.0, np.float32)
    if background:
        probs[-1] = 1.0
    else:
        probs[:] = 1.0 / len(labels)
    probs[:, 0, 1] = 0.0
    probs[labels.index("K"), 0, 1] = 1.0
    probs[:, 1, 2] = 0.0
    probs[labels.index("A"), 1, 2] = 0.8
    probs[-1 if background else labels.index("B"), 1, 2] = 0.2
    geometry = Geometry((4, 4), (0, 0), (4, 4), (1.0, 1.0))
    return FeatureMap(np.log(probs + 1e-9), probs, None, labels, geometry, (16, 20), 1.0, 1.0)


def test_alpha_is_one_minus_background_and_the_color_the_best_character():
    fm = one_letter_map()
    rgba = render.best_class_rgba(fm)
    colors = render.class_colors(37)
    assert rgba.shape == (2, 3, 4)
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] == 255 and rgba[1, 2, 3] == 204
    assert np.array_equal(rgba[0, 1, :3], colors[fm.labels.index("K")])
    assert np.array_equal(rgba[1, 2, :3], colors[fm.labels.index("A")])


def test_overlay_leaves_background_cells_as_the_plate_and_blends_letters():
    fm = one_letter_map()
    plate = np.full((16, 20), 100, np.uint8)
    out = render.overlay_best_class(plate, fm, opacity=0.5)
    assert out.shape == (16, 20, 3)
    assert np.all(out[0:4, 0:4] == 100)                      # background cell: untouched
    k = render.class_colors(37)[fm.labels.index("K")].astype(float)
    assert np.abs(out[1, 5] - (0.5 * 100 + 0.5 * k)).max() <= 1  # sure K at half opacity
    a = render.class_colors(37)[fm.labels.index("A")].astype(float)
    assert np.abs(out[5, 9] - (0.6 * 100 + 0.4 * a)).max() <= 1  # 80% A: alpha 0.8 x 0.5


def test_without_a_background_class_the_best_probability_is_the_alpha():
    rgba = render.best_class_rgba(one_letter_map(background=False))
    assert rgba[0, 1, 3] == 255 and rgba[1, 2, 3] == 204 and rgba[0, 0, 3] == round(255 / 36)


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* of uint8 RGB colours (OpenCV's 8-bit scaling undone)."""
    import cv2

    raw = cv2.cvtColor(np.asarray(rgb, np.uint8)[None], cv2.COLOR_RGB2LAB)[0].astype(float)
    return raw * (100 / 255, 1, 1) - (0, 128, 128)


def test_every_two_character_colours_differ_clearly():
    colors = lab(render.class_colors(37)[:36])
    distance = np.sqrt(((colors[:, None] - colors[None]) ** 2).sum(-1))
    np.fill_diagonal(distance, np.inf)
    assert distance.min() > 15          # golden-ratio hues: 4.0 (K and 5 both yellow)


def test_the_legend_lists_the_characters_shown_left_to_right():
    fm = one_letter_map()
    legend = render.best_class_legend(fm)
    colors = render.class_colors(37)
    assert [label for label, _ in legend] == ["K", "A"]
    assert np.array_equal(legend[1][1], colors[fm.labels.index("A")])
    assert render.best_class_legend(fm, sure=0.9)[0][0] == "K" and \
        len(render.best_class_legend(fm, sure=0.9)) == 1
