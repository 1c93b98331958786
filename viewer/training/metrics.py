"""Test figures from class scores, the same whichever engine computed them (no torch needed).

`char_accuracy` is the issue's "top-1 on centred characters": among windows centred on a
character, the share whose best class of all outputs (background included) is that character.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from viewer.caffe.model_io import CaffeNet
from viewer.maps.labels import BACKGROUND, CHARACTERS, labels_for
from viewer.net.weights import load_net
from viewer.plates.formats import TWINS
from viewer.training.artifacts import output_files
from viewer.training.data import TEST_LMDB, WindowSet, load_lmdb

# The model issue's target: top-1 of all outputs on centred characters of the synthetic test set.
TARGET_CHAR_ACCURACY = 0.995
TWIN_CLASSES = tuple(CHARACTERS.index(c) for c in TWINS)


@dataclass(frozen=True)
class Evaluation:
    """Test figures at one iteration."""

    iteration: int
    loss: float
    accuracy: float
    char_accuracy: float
    background_accuracy: float
    count: int

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self, engine: str = "") -> str:
        """The display line of a test; `engine` is named when it is not the default one."""
        return (f"test @ iter {self.iteration}: accuracy {self.accuracy:.4f}, characters "
                f"{self.char_accuracy:.4f}, background {self.background_accuracy:.4f}, "
                f"loss {self.loss:.4f} ({self.count} windows{', ' + engine if engine else ''})")


def evaluation(scores: np.ndarray, labels: np.ndarray, iteration: int) -> Evaluation:
    """Figures of N x classes raw scores against N labels; loss is SoftmaxWithLoss's mean.

    Every engine's test goes through here (PyTorch's, real Caffe's, a saved model's), so the
    figures of one net agree whichever engine computed its scores."""
    scores = np.asarray(scores, np.float64)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    right = scores.argmax(axis=1) == labels
    chars = labels != BACKGROUND

    def share(mask: np.ndarray) -> float:
        return float(right[mask].mean()) if mask.any() else float("nan")

    return Evaluation(iteration, loss, float(right.mean()), share(chars), share(~chars),
                      len(labels))


def character_figures(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Character and background accuracy of N x classes scores, against TARGET_CHAR_ACCURACY;
    on characters also the best of the character channels alone (the label the reader gives
    a letter it has found), and that with the TWINS counted as one class, because several
    faces draw them alike and plates tell them apart only by their neighbours."""
    result = evaluation(scores, labels, 0)
    chars = labels != BACKGROUND
    letter = scores[chars, :len(CHARACTERS)].argmax(axis=1)
    merged, truth = (np.where(np.isin(a, TWIN_CLASSES), TWIN_CLASSES[0], a)
                     for a in (letter, labels[chars]))
    return {"windows": len(labels), "characters": int(chars.sum()),
            "char_accuracy": result.char_accuracy,
            "letter_accuracy": float((letter == labels[chars]).mean()),
            "letter_accuracy_o0_merged": float((merged == truth).mean()),
            "background_accuracy": result.background_accuracy,
            "target": TARGET_CHAR_ACCURACY,
            "target_met": result.char_accuracy >= TARGET_CHAR_ACCURACY}


def top_confusions(labels: np.ndarray, predicted: np.ndarray, names: list[str],
                   count: int = 12) -> list[tuple[str, str, int]]:
    """The most frequent (truth, predicted, how many) mistakes."""
    wrong = labels != predicted
    if not wrong.any():
        return []
    pairs, counts = np.unique(np.stack([labels[wrong], predicted[wrong]], 1), axis=0,
                              return_counts=True)
    order = np.argsort(-counts, kind="stable")[:count]
    return [(names[int(pairs[k][0])], names[int(pairs[k][1])], int(counts[k])) for k in order]


def engine_scores(net, images: np.ndarray, engine: str = "opencv",
                  batch_size: int = 1000) -> np.ndarray:
    """Class scores of N x C x H x W uint8 windows by an inference engine, as the viewer runs
    the model (so a shipped caffemodel is measured without PyTorch)."""
    from viewer.net import netgraph
    from viewer.engines import create_engine

    runner = create_engine(engine, net)
    score = netgraph.score_blob(net.param)
    out = [runner.forward(images[k:k + batch_size].astype(np.float32), [score])[score]
           for k in range(0, len(images), batch_size)]
    return np.concatenate(out).reshape(len(images), -1)


def test_scores(net: CaffeNet, data: str | os.PathLike,
                engine: str = "opencv") -> tuple[np.ndarray, WindowSet]:
    """Class scores of `net` on the test LMDB of the dataset folder `data`, and that test set:
    how a saved model is measured without PyTorch."""
    test_set = load_lmdb(Path(data) / TEST_LMDB)
    return engine_scores(net, test_set.images, engine), test_set


def evaluate_saved(out: str | os.PathLike, data: str | os.PathLike, engine: str = "opencv",
                   arch: str = "lenet") -> tuple[Evaluation, list[tuple[str, str, int]], Path]:
    """`train --evaluate`: the figures and the most frequent mistakes of the model a run of
    `arch` wrote into `out`, on `data`'s test LMDB, and the LMDB's path."""
    from viewer.training.nets import ARCHITECTURES

    files = output_files(Path(out), ARCHITECTURES[arch])
    scores, test_set = test_scores(load_net(files["prototxt"], files["caffemodel"]), data, engine)
    confusions = top_confusions(test_set.labels, scores.argmax(axis=1),
                                labels_for(scores.shape[1]))
    return evaluation(scores, test_set.labels, 0), confusions, test_set.source
