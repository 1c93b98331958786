"""The accuracy benchmarks print the model issue's figures and say whether its targets are met."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from bench import read_plates, synthetic_accuracy
from viewer.files import paths
from viewer.caffe.lmdb_io import write_lmdb
from viewer.maps.labels import BACKGROUND, CHARACTERS
from viewer.net.weights import load_net
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


def test_edit_distance_and_character_accuracy_by_hand():
    assert read_plates.edit_distance("KITTEN", "SITTING") == 3
    assert read_plates.edit_distance("", "AB1") == 3
    assert read_plates.char_accuracy("XZ1QP", "XZ17QP") == pytest.approx(5 / 6)
    assert read_plates.char_accuracy("ABCDEFGH", "XY") == 0.0


def test_read_plates_prints_the_figures_and_the_targets(tmp_path, capsys, monkeypatch):
    """Readings fixed per file (exact, one character lost, unreadable), so every printed
    figure is worked out by hand."""
    from types import SimpleNamespace

    from viewer.errors import ImageError

    readings = {"a.png": "RK857AI", "b.png": "XZ1QP", "c.png": None}

    def fake_read(dense, name):
        if readings[name] is None:
            raise ImageError(f"{name}: not an image")
        return SimpleNamespace(text=readings[name], scale=0.75), None

    monkeypatch.setattr(read_plates, "load_image", lambda path: path.name)
    monkeypatch.setattr(read_plates, "auto_read", fake_read)
    with open(tmp_path / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["plate_text", "plate_crop_file"])
        writer.writeheader()
        writer.writerows([{"plate_text": " rk857ai ", "plate_crop_file": "a.png"},
                          {"plate_text": "XZ17QP", "plate_crop_file": "b.png"},
                          {"plate_text": "AB12CD", "plate_crop_file": "c.png"}])

    assert read_plates.main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].split() == ["ok", "a.png", "RK857AI", "RK857AI", "scale", "0.75"]
    assert out[1].split() == ["b.png", "XZ17QP", "XZ1QP", "scale", "0.75"]
    assert out[2].split() == ["c.png", "AB12CD", "scale", "-"]
    assert out[3] == ("character accuracy 0.611, exact 1/3 (33%), "     # (1 + 5/6 + 0) / 3
                      "1 read with under half of their characters")
    assert out[4] == "errors: -7 1, -D 1, -C 1, -2 1, -1 1, -B 1, -A 1"
    assert out[5] == ("targets: character accuracy >= 0.95 MISSED, exact >= 80% MISSED, "
                      "none under half MISSED")
    assert "warning: c.png: c.png: not an image" in captured.err
    readings["b.png"], readings["c.png"] = "XZ17QP", "AB12CD"
    assert read_plates.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[3:] == [
        "character accuracy 1.000, exact 3/3 (100%), 0 read with under half of their characters",
        "errors: none",
        "targets: character accuracy >= 0.95 met, exact >= 80% met, none under half met"]


def test_errors_name_each_edit_of_one_cheapest_alignment():
    assert read_plates.errors("LH025BD", "LM025BD") == {"M>H": 1}
    assert read_plates.errors("L169A", "LM169AM") == {"-M": 2}
    assert read_plates.errors("GVVAGEN", "GWAGEN") == {"W>V": 1, "+V": 1}
    assert read_plates.errors("RK857AIX", "RK857AI") == {"+X": 1}
    assert read_plates.errors("RK857AI", "RK857AI") == {}
    with pytest.raises(SystemExit, match="^error: cannot read /nonexistent/manifest.csv: "
                       "No such file or directory$"):
        read_plates.main(["/nonexistent"])


def test_read_photos_counts_a_plate_found_by_overlap_and_centre():
    from bench.read_photos import is_found

    truth = (100.0, 50.0, 120.0, 30.0)
    assert is_found((105.0, 55.0, 100.0, 20.0), truth)          # centre inside, IoU 0.56
    assert not is_found((60.0, 55.0, 100.0, 20.0), truth)       # centre inside, IoU 0.27
    assert not is_found((100.0, 20.0, 120.0, 50.0), truth)      # IoU 0.33, centre above it
    assert not is_found(None, truth)                             # nothing read
