"""Plate reading from dense maps, tested on maps whose answer is known by construction."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.maps.featuremap import FeatureMap
from viewer.net.geometry import Geometry
from viewer.maps.labels import labels_for
from viewer.plates.alphabet import CHAR_FILL
from viewer.plates.formats import TWINS
from viewer.plates.reading import read_plate


def synthetic_map(letters: dict[int, str], rows: int = 6, cols: int = 60, line: int = 2,
                  scale: float = 0.5, background: bool = True) -> FeatureMap:
    """A map that is background everywhere but at `letters` (column -> label) on `line`."""
    labels = labels_for(37 if background else 36)
    scores = np.zeros((len(labels), rows, cols), np.float32)
    if background:
        scores[-1] = 4.0  # without that class, no character is uniform: 1/36 each
    for col, label in letters.items():
        for dj, strength in ((-1, 5.0), (0, 9.0), (1, 5.0)):  # a peak with shoulders
            scores[labels.index(label), line, col + dj] = strength
        scores[labels.index("O"), line, col] = 6.0  # a runner-up
    probs = np.exp(scores) / np.exp(scores).sum(axis=0)
    geometry = Geometry((4, 4), (0, 0), (28, 28), (scale, scale))
    return FeatureMap(scores, probs, None, labels, geometry, (100, 500), scale, 1.0)


def test_letters_are_read_left_to_right_with_their_probabilities():
    fm = synthetic_map({10: "R", 16: "K", 30: "8", 36: "5", 42: "7"})
    reading = read_plate(fm)
    assert reading.text == "RK857"
    first = reading.letters[0]
    assert first.cell == (2, 10)
    assert first.prob == pytest.approx(fm.probs[fm.labels.index("R"), 2, 10])
    assert [label for label, _ in first.top[:2]] == ["R", "O"]


def test_boxes_are_centred_on_the_windows_in_original_pixels():
    reading = read_plate(synthetic_map({10: "A", 20: "B"}, scale=0.5))
    x, y, w, h = reading.letters[1].box
    # cell (2, 20) at scale 0.5: window x 160..216, y 16..72 in original pixels
    assert (x + w / 2, y + h / 2) == pytest.approx((188.0, 44.0))
    assert h == pytest.approx(56 * CHAR_FILL)


def test_shoulders_of_a_peak_do_not_become_extra_letters():
    assert read_plate(synthetic_map({10: "W"})).text == "W"


def test_cells_off_the_text_line_are_dropped():
    fm = synthetic_map({10: "A", 20: "B", 30: "C"}, rows=30, line=5)
    far = synthetic_map({40: "J"}, rows=30, line=20)
    fm.probs[:, :, 39:42] = far.probs[:, :, 39:42]
    assert read_plate(fm).text == "ABC"


def test_a_map_without_background_channel_uses_the_best_character():
    fm = synthetic_map({12: "7", 24: "Z"}, background=False)
    assert read_plate(fm).text == "7Z"


def test_nothing_confident_reads_nothing():
    reading = read_plate(synthetic_map({}))
    assert reading.text == "" and reading.letters == [] and reading.weakest == 0.0


def test_o_and_0_follow_the_kind_of_their_group():
    # `RK-O26`: the gap after K splits the groups, so O's neighbours are the digits 2 and 6.
    fm = synthetic_map({10: "R", 16: "K", 28: "O", 34: "2", 40: "6"})
    reading = read_plate(fm)
    assert reading.text == "RK026"
    o, zero = fm.labels.index("O"), fm.labels.index("0")
    assert reading.letters[2].prob == pytest.approx(fm.probs[o, 2, 28] + fm.probs[zero, 2, 28])
    assert reading.letters[2].top[0][0] == "O"  # the net's own ranking is kept
    # A 0 among letters is an O; one after a letter and before none stays a 0 (`B0X0`).
    assert read_plate(synthetic_map({10: "0", 16: "B", 22: "X"})).text == "OBX"
    assert read_plate(synthetic_map({10: "B", 16: "0", 22: "X", 28: "0"})).text == "BOX0"


def test_o_or_0_between_kinds_or_already_of_its_kind_is_left_as_read():
    assert read_plate(synthetic_map({10: "A", 16: "O", 22: "7"})).text == "AO7"
    assert read_plate(synthetic_map({10: "A", 16: "O"})).text == "AO"
    assert read_plate(synthetic_map({10: "1", 16: "A", 22: "2"})).text == "1A2"


def test_1_and_i_are_left_to_the_formats_not_to_the_neighbours():
    # `B1MM1A` fits no format; `CJN1SK` is as likely a random text as a misread I.
    assert read_plate(synthetic_map({10: "B", 16: "1", 22: "M", 28: "M", 34: "1", 40: "A"})
                      ).text == "B1MM1A"
    # `R1857A1`: SK's LL DDD LL two swaps away.
    assert read_plate(synthetic_map({6: "R", 12: "1", 18: "8", 24: "5", 30: "7", 36: "A",
                                     42: "1"})).text == "RI857AI"


def test_a_twin_between_kinds_is_decided_by_a_known_plate_format():
    # `OYO9FEU` with an even pitch is one group; only GB's `LLDDLLL` is a swap away.
    fm = synthetic_map({6: "O", 12: "Y", 18: "O", 24: "9", 30: "F", 36: "E", 42: "U"})
    reading = read_plate(fm)
    assert reading.text == "OY09FEU"
    o, zero = fm.labels.index("O"), fm.labels.index("0")
    assert reading.letters[2].prob == pytest.approx(fm.probs[o, 2, 18] + fm.probs[zero, 2, 18])


def test_pitch_regularity_counts_gaps_at_a_plates_pitch():
    from viewer.plates.reading import Letter, pitch_regularity

    def letters(centres, height=20.0):
        return [Letter("A", 0.9, [("A", 0.9)], (x - 6.0, 0.0, 12.0, height), (0, k))
                for k, x in enumerate(centres)]

    assert pitch_regularity(letters([0, 20, 40, 60])) == pytest.approx(1.0)
    assert pitch_regularity(letters([0, 20, 26, 46])) == pytest.approx(2 / 3)  # 0.3 heights
    assert pitch_regularity(letters([0, 20, 70, 90])) == pytest.approx(5 / 6)  # 2.5: a group
    assert pitch_regularity(letters([0, 20, 90, 110])) == pytest.approx(2 / 3)  # 3.5: too far
    assert pitch_regularity(letters([0, 20, 40], height=40.0)) == pytest.approx(1.0)
    assert pitch_regularity(letters([0])) == 0.0
    reading = read_plate(synthetic_map({10: "A", 16: "B", 40: "C"}))
    assert reading.score == pytest.approx(reading.weakest * (1 + 0) / 2)


def test_two_sure_letters_score_two_thirds_of_three():
    # the country code `SK` beside a plate: sure, evenly spaced, but only two letters
    two = read_plate(synthetic_map({10: "S", 16: "K"}))
    three = read_plate(synthetic_map({10: "S", 16: "K", 22: "A"}))
    assert two.weakest == pytest.approx(three.weakest)
    assert two.score == pytest.approx(three.score * 2 / 3)
    assert read_plate(synthetic_map({10: "S"})).score == 0.0


# With the shipped model: plates drawn by the project's own generator, so text and boxes are
# known. Characters are drawn 22.5 / scale pixels tall, so at `scale` they fill the window as
# in training.
@pytest.fixture(scope="module")
def shipped():
    from viewer.files import paths
    from viewer.maps.featuremap import DenseClassifier
    from viewer.net.weights import load_net

    return DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS))


def test_generated_plates_read_with_boxes_on_the_characters(shipped):
    """Three texts at five scales: nearly every character right, every box on its character.

    The model is statistical, so the text is checked in aggregate (it reads the dev plates of
    the model card at about 0.92); boxes are checked on every letter of the plates read whole.
    """
    from viewer.plates.scoring import char_accuracy
    from viewer.dataset.plates import PlateStyle, synthesize_plate

    accuracies, exact = [], 0
    for text in ["RK857AI", "4B40262", "XZ17QP"]:
        for scale in [0.5, 0.75, 1.0, 1.5, 2.0]:
            plate = synthesize_plate(text, char_height_px=22.5 / scale,
                                     style=PlateStyle(layout="plain"))
            reading = read_plate(shipped.run(plate.image, scale))
            accuracies.append(char_accuracy(reading.text, text))
            if reading.text != text:
                continue
            exact += 1
            for letter, (x, y, w, h) in zip(reading.letters, plate.boxes):
                lx, ly, lw, lh = letter.box
                assert abs((lx + lw / 2) - (x + w / 2)) <= 0.2 * plate.char_height_px
                assert abs((ly + lh / 2) - (y + h / 2)) <= 0.2 * plate.char_height_px
                assert lh == pytest.approx(plate.char_height_px, rel=0.25)
                assert letter.prob > 0.5
                # the net's best class, or its O/0 twin that the letter's group decided on
                assert letter.top[0] == (letter.label, letter.prob) or \
                    letter.label == TWINS[letter.top[0][0]]
    assert np.mean(accuracies) >= 0.95
    assert exact >= 12


@pytest.mark.parametrize("char_height", [18.0, 40.0])
def test_auto_scale_finds_a_scale_that_fits_the_characters(shipped, char_height):
    from viewer.dataset.plates import PlateStyle, synthesize_plate
    from viewer.plates.reading import auto_read

    plate = synthesize_plate("RK857AI", char_height_px=char_height,
                             style=PlateStyle(layout="plain"))
    reading, fm = auto_read(shipped, plate.image)
    assert reading.text == "RK857AI"
    assert fm.scale == reading.scale
    assert 17.0 <= reading.scale * char_height <= 28.0


# ---- exact behaviour of the pieces (mutation survivors of `make mutation MODULES=reading`)

def _letters(centres, widths=None, height=20.0, labels=None, prob=0.9):
    from viewer.plates.reading import Letter

    widths = widths or [12.0] * len(centres)
    labels = labels or ["A"] * len(centres)
    return [Letter(label, prob, [(label, prob)], (x - w / 2, 5.0, w, height), (0, k))
            for k, (x, w, label) in enumerate(zip(centres, widths, labels))]


def test_readings_as_dicts_hold_every_field_rounded():
    from viewer.plates.reading import Letter, PlateReading

    letter = Letter("K", 0.987654, [("K", 0.987654), ("X", 0.012346)],
                    (10.04, 20.06, 30.0, 40.55), (3, 4))
    assert letter.as_dict() == {"label": "K", "prob": 0.9877, "confidence": 0.9877,
                                "agreement": 1.0, "top": [["K", 0.9877], ["X", 0.0123]],
                                "box": [10.0, 20.1, 30.0, 40.5]}
    calibrated = Letter("K", 0.987654, [], (0.0, 0.0, 1.0, 1.0), (0, 0), 0.66666, 0.912345)
    assert calibrated.as_dict()["confidence"] == 0.9123 and calibrated.shown == 0.912345
    assert calibrated.as_dict()["agreement"] == 0.667
    reading = PlateReading([letter, letter], 0.75)
    assert reading.as_dict() == {"text": "KK", "scale": 0.75,
                                 "letters": [letter.as_dict(), letter.as_dict()]}


def test_pitch_regularity_at_its_bounds_and_with_uneven_widths():
    from viewer.plates.reading import GROUP_PITCH, PITCH, pitch_regularity

    # centres from x + w / 2: uneven widths must not move them
    assert pitch_regularity(_letters([0, 20, 40], widths=[4.0, 16.0, 8.0])) == 1.0
    assert pitch_regularity(_letters([0, 20])) == 1.0                      # two letters count
    assert pitch_regularity(_letters([0, 20], widths=[0.0, 120.0])) == 1.0  # centres, not edges
    assert pitch_regularity(_letters([0, PITCH[0] * 20])) == 1.0           # 0.35: inside
    assert pitch_regularity(_letters([0, PITCH[1] * 20])) == 1.0           # 1.6: inside
    assert pitch_regularity(_letters([0, GROUP_PITCH * 20])) == 0.5        # 3.2: a group gap
    # a box wider than tall: the height is the unit
    assert pitch_regularity(_letters([0, 40], widths=[60.0, 60.0], height=20.0)) == 0.5


def test_groups_split_at_gaps_wider_than_their_median_pitch():
    from viewer.plates.reading import GROUP_GAP, _groups

    assert _groups(_letters([0, 20, 60])) == [[0, 1], [2]]     # three letters are split too
    assert _groups(_letters([0, 20])) == [[0, 1]]
    # exactly GROUP_GAP times the median gap is no cut; uneven widths keep the centres
    assert _groups(_letters([0, 20, 40, 40 + GROUP_GAP * 20],
                            widths=[4.0, 16.0, 8.0, 30.0])) == [[0, 1, 2, 3]]
    assert _groups(_letters([0, 20, 40, 100, 120])) == [[0, 1, 2], [3, 4]]
    assert _groups(_letters([0, 20, 40, 100], widths=[0.0, 120.0, 0.0, 60.0])) == [[0, 1, 2], [3]]


def test_an_o_is_decided_by_exactly_its_nearest_neighbours():
    from viewer.plates.reading import resolve_twins

    labels = labels_for(37)
    probs = np.zeros((37, 1, 8), np.float32)

    def read(text, prob=0.9):
        letters = _letters([20 * k for k in range(len(text))], labels=list(text), prob=prob)
        letters = [letter.__class__(letter.label, letter.prob, letter.top, letter.box, (0, k))
                   for k, letter in enumerate(letters)]
        return "".join(letter.label for letter in resolve_twins(letters, probs, labels))

    assert read("ABO12") == "ABO12"      # one letter and one digit beside it: left open
    assert read("AO1BC") == "AO1BC"
    assert read("A0BC1") == "AOBC1"      # second place: A before, B after
    assert read("AB0") == "AB0"          # after letters and before none: a 0 ...
    assert read("AB0", prob=0.3) == "AB0"
    assert read("AB012") == "AB012"      # ... as before digits
    assert read("1OBC") == "1OBC"        # second place: 1 before, B after
    assert read("O12AB") == "012AB"      # at the start: the two after it
    assert read("AB12O") == "AB120"      # at the end: the two before it
    assert read("ABO1C") == "ABO1C"
    assert read("1AO2") == "1AO2"        # inner neighbours A and 2 disagree
    assert read("1A0B") == "1AOB"        # one neighbour on each side, not two before
    assert read("A1O2") == "A102"        # one neighbour on each side, not two before ...
    assert read("1O2A") == "102A"        # ... nor two after
    assert read("0A") == "OA"            # a group of two: its one neighbour decides
    assert read("A0") == "A0"
    assert read("01BC") == "01BC"        # at the start: the next two, 1 and B, disagree
    assert read("0AB", prob=0.5) == "OAB"     # neighbours at exactly MIN_CONFIDENCE count
    assert read("0AB", prob=0.49) == "0AB"    # unsure neighbours do not


def test_a_format_never_swaps_a_twin_against_its_groups_neighbours():
    """Belgian `2-ABI-345` is Czech `1AB 2345` one swap away (I -> 1), but the I ends a group
    of letters: left as read. `OYO9FEU` in one group has Y and 9 beside its O: open, so GB's
    format decides; a 0 after a letter and before none is kept unless a format swaps it
    (`RK857A0`)."""
    from viewer.plates.reading import resolve_twins

    labels = labels_for(37)
    probs = np.zeros((37, 1, 12), np.float32)

    def read(text, centres):
        letters = _letters(centres, labels=list(text), prob=0.9)
        letters = [letter.__class__(letter.label, letter.prob, letter.top, letter.box, (0, k))
                   for k, letter in enumerate(letters)]
        return "".join(letter.label for letter in resolve_twins(letters, probs, labels))

    assert read("2ABI345", [0, 40, 60, 80, 120, 140, 160]) == "2ABI345"
    assert read("2ABI345", [0, 20, 40, 60, 80, 100, 120]) == "2AB1345"   # one group: open
    assert read("OYO9FEU", [0, 20, 40, 60, 80, 100, 120]) == "OY09FEU"
    assert read("RK857A0", [0, 20, 40, 60, 80, 100, 120]) == "RK857AO"  # SK LL DDD LL
    assert read("AB0CD", [0, 20, 40, 60, 80]) == "ABOCD"
    assert read("AB012", [0, 20, 40, 60, 80]) == "AB012"


def test_a_twin_keeps_its_cell_and_box():
    fm = synthetic_map({6: "O", 12: "Y", 18: "O", 24: "9", 30: "F", 36: "E", 42: "U"})
    letter = read_plate(fm).letters[2]
    assert letter.label == "0" and letter.cell == (2, 18)


def test_column_peaks_take_ties_left_first_and_allow_the_minimum_gap():
    from viewer.plates.reading import _column_peaks

    score = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    assert _column_peaks(score, 3, 0.5) == [0, 3, 6]          # stable: leftmost of equals
    score = np.array([0.6, 0.7, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.6, 0.7, 0.6, 0.7, 0.7,
                      0.6, 0.6, 0.7, 0.7, 0.7, 0.6, 0.9, 0.6, 0.6, 0.9])
    assert _column_peaks(score, 3, 0.5) == [0, 3, 6, 10, 13, 16, 20, 23]   # numpy's quicksort
    # takes 17 before 16 here
    assert _column_peaks(np.array([0.5, 0.2, 0.7]), 2, 0.5) == [0, 2]   # at the threshold
    assert _column_peaks(np.array([0.49, 0.2, 0.7]), 2, 0.5) == [2]


def test_read_plate_geometry_of_a_non_square_map():
    # strides 4 down, 8 across: the minimum gap round(0.3 * 28 / 8) = 1 cell lets neighbours
    # both read; the line's tolerance is 0.5 * 56 / 4 = 7 rows (height over height)
    labels = labels_for(37)
    scores = np.zeros((37, 16, 12), np.float32)
    scores[-1] = 4.0
    for col, row, label in ((3, 7, "A"), (4, 7, "B"), (6, 12, "C"), (8, 0, "D"), (10, 15, "E")):
        scores[labels.index(label), row, col] = 9.0
    probs = np.exp(scores) / np.exp(scores).sum(axis=0)
    geometry = Geometry((4, 8), (0, 0), (56, 28), (0.5, 0.5))
    fm = FeatureMap(scores, probs, None, labels, geometry, (100, 200), 0.5, 1.0)
    reading = read_plate(fm)
    assert reading.text == "ABCD"       # D exactly 7 rows off stays, E 8 rows off does not
    x, y, w, h = reading.letters[0].box
    assert h == pytest.approx(112 * CHAR_FILL)                 # the window is 56 / 0.5 tall
    assert w == pytest.approx(h * 0.6)                          # GLYPH_ASPECT
    empty = read_plate(synthetic_map({}, scale=0.3))
    assert empty.letters == [] and empty.scale == 0.3


class ScriptedDense:
    """A stand-in for DenseClassifier: `strengths[k]` is how sure the letters of the map at
    the k-th candidate scale are (None: nothing reads), and every pass is recorded."""

    unit = type("Unit", (), {"receptive_field": (28, 20)})()

    def __init__(self, strengths=None, smallest=0.5):
        self.strengths, self.smallest, self.passes, self.image = strengths, smallest, [], None
        self.planner = self        # the scale bounds a DenseClassifier's planner gives

    def min_scale(self, image_shape):
        assert len(image_shape) == 2
        return self.smallest

    def run(self, image, scale):
        from viewer.plates.reading import candidate_scales

        assert image is self.image
        index = int(np.argmin(np.abs(candidate_scales(self, image.shape[:2]) - scale)))
        self.passes.append(index)
        fm = synthetic_map({10 + 6 * k: "A" for k in range(5 if self.strengths[index] else 0)},
                           scale=scale)
        if self.strengths[index]:        # the letters' peaks, surer with a larger strength
            fm.scores[fm.labels.index("A"), 2, 10:35:6] = self.strengths[index]
            fm.probs[:] = np.exp(fm.scores) / np.exp(fm.scores).sum(axis=0)
        return fm


def test_candidate_scales_run_from_the_smallest_to_a_fifth_of_the_height():
    from viewer.plates.reading import SWEEP_STEPS, candidate_scales

    dense = ScriptedDense(smallest=0.5)
    scales = candidate_scales(dense, (40, 300))
    high = 28 * CHAR_FILL / (0.2 * 40)                    # the window's height, not width
    assert len(scales) == SWEEP_STEPS == 32
    assert scales[0] == pytest.approx(0.5) and scales[-1] == pytest.approx(high)
    assert candidate_scales(dense, (20, 300))[-1] == pytest.approx(4.0)       # capped
    dense.smallest = high
    assert candidate_scales(dense, (40, 300)).tolist() == [pytest.approx(high)]
    dense.smallest = 0.01
    assert candidate_scales(dense, (40, 300))[0] == pytest.approx(0.05)


def test_auto_read_tries_every_third_scale_then_the_best_ones_neighbours():
    from viewer.plates.reading import auto_read, candidate_scales

    strengths = [7.0] * 32
    strengths[6], strengths[7], strengths[8] = 8.0, 9.0, 9.0     # 7 and 8 tie: the first wins
    strengths[0] = None
    dense = ScriptedDense(strengths)
    dense.image = np.zeros((40, 300), np.uint8)
    reading, fm = auto_read(dense, dense.image)
    assert dense.passes == list(range(0, 32, 3)) + [4, 5, 7, 8]
    scales = candidate_scales(dense, (40, 300))
    assert reading.scale == fm.scale == pytest.approx(scales[7])
    assert reading.text == "AAAAA"


def test_auto_read_with_nothing_readable_maps_the_scale_nearest_1():
    from viewer.plates.reading import auto_read, candidate_scales

    dense = ScriptedDense([None] * 32)
    dense.image = np.zeros((40, 300), np.uint8)
    reading, fm = auto_read(dense, dense.image)
    scales = candidate_scales(dense, (40, 300))
    nearest = int(np.argmin(np.abs(np.log(scales))))
    # nothing beats the first coarse scale, so its neighbours 1 and 2 are tried, then the map
    # nearest 1 is made again
    assert dense.passes == list(range(0, 32, 3)) + [1, 2, nearest]
    assert fm.scale == pytest.approx(scales[nearest]) and reading.scale == fm.scale
    assert reading.letters == []


def test_a_letters_agreement_is_the_share_of_other_scales_reading_it_there():
    from viewer.plates.reading import Letter, PlateReading, agreement, calibrated
    from viewer.maps.calibration import Calibration

    def at(label, centre):
        return Letter(label, 0.9, [], (centre - 6.0, 0.0, 12.0, 20.0), (0, 0))

    w = at("W", 50.0)
    others = [PlateReading([at("W", 52.0)]), PlateReading([at("H", 50.0)]),
              PlateReading([at("A", 10.0), at("W", 56.5)]),        # 6.5 px off: not there
              PlateReading([])]
    assert agreement(w, others) == 0.25
    assert agreement(w, []) == 1.0
    assert agreement(at("0", 50.0), [PlateReading([at("O", 49.0)])]) == 1.0   # twins agree
    plain = calibrated(PlateReading([w], 0.5), others, None)
    assert plain.letters[0].agreement == 0.25 and plain.letters[0].shown == 0.9
    cal = Calibration(slope=0.5, weight=4.0, bias=-3.0)
    letter = calibrated(PlateReading([w], 0.5), others, cal).letters[0]
    z = 0.5 * np.log(0.9 / 0.1) + 4.0 * 0.25 - 3.0
    assert letter.confidence == pytest.approx(1 / (1 + np.exp(-z)))
    assert letter.as_dict()["confidence"] == round(letter.confidence, 4)
    assert (letter.label, letter.prob, letter.box) == (w.label, w.prob, w.box)


def test_the_calibration_sidecar_is_shared_by_a_model_and_its_surgered_twin(tmp_path):
    from viewer.maps.calibration import (Calibration, calibration_path, read_calibration,
                                         write_calibration)

    assert calibration_path(tmp_path / "m_fullconv.prototxt") == tmp_path / "m.calibration.json"
    assert calibration_path(tmp_path / "m.prototxt") == tmp_path / "m.calibration.json"
    assert read_calibration(tmp_path / "m.prototxt") is None            # none: the softmax
    write_calibration(tmp_path / "m.calibration.json", Calibration(0.25, 6.0, -4.0), "a test")
    assert read_calibration(tmp_path / "m_fullconv.prototxt") == Calibration(0.25, 6.0, -4.0)
    (tmp_path / "m.calibration.json").write_text('{"slope": 1, "weight": "x", "bias": 0}')
    assert read_calibration(tmp_path / "m.prototxt") is None            # unusable: ignored
    assert Calibration(1.0, 0.0, 0.0).confidence(0.8, 1.0) == pytest.approx(0.8)
    assert Calibration(1.0, 0.0, 0.0).confidence(1.0, 1.0) == pytest.approx(1 - 1e-6)
