"""Test figures from scores: the accuracies the model card reports, and the loss Caffe shows."""
from __future__ import annotations

import numpy as np
import pytest

from viewer.maps.labels import BACKGROUND, CHARACTERS, labels_for
from viewer.training.metrics import character_figures, evaluation, top_confusions


def one_hot_scores(predicted: list[int], classes: int = 37) -> np.ndarray:
    scores = np.zeros((len(predicted), classes), np.float32)
    scores[np.arange(len(predicted)), predicted] = 5.0
    return scores


def test_character_accuracy_counts_a_character_read_as_background_as_wrong():
    labels = np.array([0, 1, 2, 3, BACKGROUND, BACKGROUND])
    predicted = [0, 1, 2, BACKGROUND, BACKGROUND, 5]
    result = evaluation(one_hot_scores(predicted), labels, 7)
    assert (result.iteration, result.count) == (7, 6)
    assert result.char_accuracy == pytest.approx(3 / 4)
    assert result.background_accuracy == pytest.approx(1 / 2)
    assert result.accuracy == pytest.approx(4 / 6)


def test_loss_is_the_mean_softmax_cross_entropy():
    scores = np.array([[2.0, 0.0], [0.0, 0.0]])
    expected = np.mean([np.log(1 + np.exp(-2.0)), np.log(2.0)])
    assert evaluation(scores, np.array([0, 1]), 0).loss == pytest.approx(expected)


def test_top_confusions_are_named_and_counted():
    labels = np.array([14, 14, 14, 26, 8])
    predicted = np.array([26, 26, 14, 14, BACKGROUND])
    assert top_confusions(labels, predicted, labels_for(37)) == [
        ("O", "0", 2), ("I", "background", 1), ("0", "O", 1)]
    assert top_confusions(labels, labels, labels_for(37)) == []


def test_figures_count_centred_characters_and_merge_o_and_0():
    o, zero, a = CHARACTERS.index("O"), CHARACTERS.index("0"), CHARACTERS.index("A")
    labels = np.array([a] * 6 + [o, zero] + [BACKGROUND] * 2)
    predicted = [a] * 5 + [BACKGROUND, zero, zero, BACKGROUND, a]
    scores = np.zeros((len(predicted), len(CHARACTERS) + 1), np.float32)
    scores[np.arange(len(predicted)), predicted] = 1.0
    scores[5, a] = 0.5                                      # A's runner-up behind background
    f = character_figures(scores, labels)
    assert (f["windows"], f["characters"]) == (10, 8)
    assert f["char_accuracy"] == pytest.approx(6 / 8)       # A read as background, O as 0
    assert f["letter_accuracy"] == pytest.approx(7 / 8)     # ... but A is the best character
    assert f["letter_accuracy_o0_merged"] == pytest.approx(8 / 8)
    assert f["background_accuracy"] == pytest.approx(1 / 2)
    assert (f["target"], f["target_met"]) == (0.995, False)
