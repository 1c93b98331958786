"""The accuracy benchmarks print the model issue's figures and say whether its targets are met:
run as a user runs them (`python -m bench...`), on inputs whose figures are known."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from viewer.caffe.lmdb_io import write_lmdb
from viewer.files import paths
from viewer.maps.labels import BACKGROUND, CHARACTERS
from viewer.net.weights import load_net
from viewer.training.metrics import engine_scores

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_synthetic_accuracy_prints_the_shipped_models_figures(tmp_path):
    """Labels are the shipped model's own answers but one, so the figure is known exactly."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (40, 1, 28, 28), dtype=np.uint8)
    net = load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    predicted = engine_scores(net, images).argmax(axis=1)
    labels = predicted.copy()
    labels[labels == BACKGROUND] = CHARACTERS.index("A")   # wrong: the model said background
    labels[0] = BACKGROUND
    chars = labels != BACKGROUND
    right = chars & (labels == predicted)
    write_lmdb(tmp_path / "test_lmdb", zip(images, labels.tolist()))

    result = bench("bench.synthetic_accuracy", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{chars.sum()} centred characters of 40 windows (opencv)" in result.stdout
    assert f"characters {right.sum() / chars.sum():.2%}" in result.stdout
    verdict = "met" if right.sum() / chars.sum() >= 0.995 else "MISSED"
    assert f"target: characters >= 99.5% {verdict}" in result.stdout


def test_synthetic_accuracy_names_a_missing_dataset(tmp_path):
    result = bench("bench.synthetic_accuracy", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "test_lmdb does not exist" in result.stderr


def write_manifest(folder: Path, rows: list[tuple[str, str]]) -> None:
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["plate_text", "plate_crop_file"])
        writer.writeheader()
        writer.writerows([{"plate_text": t, "plate_crop_file": f} for t, f in rows])


def test_read_plates_prints_the_figures_and_the_targets(tmp_path):
    """A generated crop the shipped model reads exactly and a file that is no picture (read as
    nothing), so every printed figure is worked out by hand."""
    from viewer.dataset.plates import PlateStyle, synthesize_plate

    crop = synthesize_plate("RK857AI", char_height_px=20.0, style=PlateStyle(layout="plain"))
    cv2.imwrite(str(tmp_path / "a.png"), crop.image)
    (tmp_path / "c.png").write_bytes(b"not a picture")
    write_manifest(tmp_path, [(" rk857ai ", "a.png"), ("AB12CD", "c.png")])

    result = bench("bench.read_plates", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0].split()[:5] == ["ok", "a.png", "RK857AI", "RK857AI", "scale"]
    assert re.fullmatch(r"\d\.\d\d", out[0].split()[5])
    assert out[1].split() == ["c.png", "AB12CD", "scale", "-"]
    assert out[2] == ("character accuracy 0.500, exact 1/2 (50%), "     # (1 + 0) / 2
                      "1 read with under half of their characters")
    assert out[3] == "errors: -D 1, -C 1, -2 1, -1 1, -B 1, -A 1"
    assert out[4] == ("targets: character accuracy >= 0.95 MISSED, exact >= 80% MISSED, "
                      "none under half MISSED")
    assert len(out) == 5
    assert f"warning: c.png: {tmp_path / 'c.png'} is not an image" in result.stderr

    write_manifest(tmp_path, [(" rk857ai ", "a.png")])
    result = bench("bench.read_plates", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "character accuracy 1.000, exact 1/1 (100%), 0 read with under half of their characters",
        "errors: none",
        "targets: character accuracy >= 0.95 met, exact >= 80% met, none under half met"]


def test_read_plates_names_a_missing_manifest():
    result = bench("bench.read_plates", "/nonexistent")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == ("error: cannot read /nonexistent/manifest.csv: "
                                     "No such file or directory")


def test_a_general_ocrs_lines_become_plate_readings_by_one_rule():
    from bench.ocr_peer import Line, box_of, crop_text, photo_plates, plate_text

    assert plate_text("g.Wagen") == "GWAGEN" and plate_text("RK-857 AÏ") == "RK857A"
    assert box_of([[243, 469], [415, 475], [413, 523], [241, 517]]) == (241.0, 469.0, 174.0, 54.0)
    band, plate = Line("GB", 0.99, (0, 0, 5, 5)), Line("OY09FEU", 0.98, (10, 0, 50, 10))
    assert crop_text([band, plate]) == "OY09FEU" and crop_text([]) == ""
    assert crop_text([Line("AB12", 0.5, band.box), Line("CD34", 0.9, band.box)]) == "CD34"
    sign = Line("PARKINGLOT12", 0.999, (0, 50, 90, 10))          # 12 characters: no plate
    word = Line("TAXI", 0.995, (0, 80, 30, 10))
    assert photo_plates([band, plate, sign, word]) == [word, plate]


def test_a_photos_false_plates_are_the_reported_ones_off_the_true_plate():
    from bench.read_photos import photo_result

    row = {"file": "a.jpg", "plate_text": " rk857ai ", "x": "100", "y": "50", "w": "120",
           "h": "30"}
    on, off = (105.0, 55.0, 110.0, 20.0), (300.0, 50.0, 60.0, 20.0)
    result = photo_result(row, [("RK857AI", on, 1.2), ("TTTT", off, 0.8)], 0.5)
    assert (result["found"], result["exact"], result["false_plates"]) == (True, True, 1)
    result = photo_result(row, [("TTTT", off, 0.8), ("RK857A", on, 1.2)], 0.5)
    assert (result["found"], result["read"], result["false_plates"]) == (False, "TTTT", 1)
    assert photo_result(row, [], 0.1)["false_plates"] == 0


def test_calibration_figures_are_worked_out_by_hand():
    from bench.calibration import aligned_right, ece, fit_logistic

    assert aligned_right("HOBVHHK4", "WOBVWMK4") == [False, True, True, True, False, False,
                                                    True, True]
    assert aligned_right("RK857A", "RK857AI") == [True] * 6          # a lost letter: none wrong
    assert aligned_right("RKX857AI", "RK857AI") == [True, True, False] + [True] * 5
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    right = np.array([True, False, True, True])
    # bins 9 (0.95: half right) and 5 (0.55: all right): (2 * 0.45 + 2 * 0.45) / 4
    assert ece(conf, right) == pytest.approx(0.45)
    x = np.c_[np.r_[np.full(50, 4.0), np.full(50, -1.0)], np.ones(100)]
    y = np.r_[np.ones(45), np.zeros(5), np.ones(10), np.zeros(40)].astype(bool)
    w = fit_logistic(x[:, :1], y, l2=0.0)                    # two groups: their shares exactly
    p = 1 / (1 + np.exp(-(w[0] * np.array([4.0, -1.0]) + w[1])))
    assert p == pytest.approx([0.9, 0.2], abs=1e-6)


def test_the_unseen_set_draws_seven_countries_formats_in_held_out_dinish_faces():
    from bench.read_unseen import COUNTRIES, unseen_plate

    rng = np.random.default_rng(3)
    plates = [unseen_plate(rng, 20.0) for _ in range(40)]
    assert {p.style.faces for p in plates} == {"dinish-held-out"}
    assert {p.style.country for p in plates} == set(COUNTRIES)
    for plate in plates:
        layout, formats = COUNTRIES[plate.style.country]
        shape = "".join("D" if c.isdigit() else "L" if c.isalpha() else c for c in plate.text)
        assert plate.style.layout == layout and shape in formats
