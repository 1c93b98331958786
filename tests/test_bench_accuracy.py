"""The accuracy benchmarks print the model issue's figures and say whether its targets are met."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from bench import read_plates, synthetic_accuracy
from viewer import paths
from viewer.dataset.lmdb_io import write_lmdb
from viewer.dataset.plates import PlateStyle, synthesize_plate
from viewer.engines import DEFAULT_ENGINE
from viewer.labels import BACKGROUND, CHARACTERS
from viewer.model_io import load_net
from viewer.training.metrics import engine_scores


def one_hot(classes: list[int]) -> np.ndarray:
    scores = np.zeros((len(classes), len(CHARACTERS) + 1), np.float32)
    scores[np.arange(len(classes)), classes] = 1.0
    return scores


def test_figures_count_centred_characters_and_merge_o_and_0():
    o, zero, a = CHARACTERS.index("O"), CHARACTERS.index("0"), CHARACTERS.index("A")
    labels = np.array([a] * 6 + [o, zero] + [BACKGROUND] * 2)
    predicted = [a] * 5 + [BACKGROUND, zero, zero, BACKGROUND, a]
    scores = one_hot(predicted)
    scores[5, a] = 0.5                                      # A's runner-up behind background
    f = synthetic_accuracy.figures(scores, labels)
    assert (f["windows"], f["characters"]) == (10, 8)
    assert f["char_accuracy"] == pytest.approx(6 / 8)       # A read as background, O as 0
    assert f["letter_accuracy"] == pytest.approx(7 / 8)     # ... but A is the best character
    assert f["letter_accuracy_o0_merged"] == pytest.approx(8 / 8)
    assert f["background_accuracy"] == pytest.approx(1 / 2)
    assert f["target_met"] is False


def test_synthetic_accuracy_prints_the_shipped_models_figures(tmp_path, capsys):
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

    assert synthetic_accuracy.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{chars.sum()} centred characters of 40 windows (opencv)" in out
    assert f"characters {right.sum() / chars.sum():.2%}" in out
    verdict = "met" if right.sum() / chars.sum() >= 0.995 else "MISSED"
    assert f"target: characters >= 99.5% {verdict}" in out


def test_synthetic_accuracy_names_a_missing_dataset(tmp_path, capsys):
    assert synthetic_accuracy.main([str(tmp_path / "none")]) == 2
    assert "test_lmdb does not exist" in capsys.readouterr().err


def test_read_plates_prints_the_figures_and_the_targets(tmp_path, capsys):
    """Two generated plates with their truth; the printed figures follow from the readings."""
    rows = []
    for k, text in enumerate(["RK857AI", "XZ17QP"]):
        plate = synthesize_plate(text, char_height_px=24, style=PlateStyle(layout="plain"))
        name = f"plate{k}.png"
        cv2.imwrite(str(tmp_path / name), plate.image)
        rows.append({"plate_text": text, "plate_crop_file": name})
    with open(tmp_path / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["plate_text", "plate_crop_file"])
        writer.writeheader()
        writer.writerows(rows)

    result = read_plates.evaluate(tmp_path, DEFAULT_ENGINE)
    assert read_plates.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [p["truth"] for p in result["plates"]] == ["RK857AI", "XZ17QP"]
    accuracy, exact = result["char_accuracy"], result["exact"]
    assert accuracy == pytest.approx(np.mean([read_plates.char_accuracy(p["read"], p["truth"])
                                              for p in result["plates"]]))
    assert out[2] == f"character accuracy {accuracy:.3f}, exact {exact}/2 ({exact / 2:.0%})"
    assert out[3] == ("targets: character accuracy >= 0.90 "
                      f"{'met' if accuracy >= 0.9 else 'MISSED'}, exact >= 50% "
                      f"{'met' if exact >= 1 else 'MISSED'}")
