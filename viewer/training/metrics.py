"""Test figures from class scores, the same whichever engine computed them (no torch needed).

`char_accuracy` is the issue's "top-1 on centred characters": among windows centred on a
character, the share whose best class of all outputs (background included) is that character.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from viewer.maps.labels import BACKGROUND


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

    def line(self) -> str:
        return (f"test @ iter {self.iteration}: accuracy {self.accuracy:.4f}, characters "
                f"{self.char_accuracy:.4f}, background {self.background_accuracy:.4f}, "
                f"loss {self.loss:.4f} ({self.count} windows)")


def evaluation(scores: np.ndarray, labels: np.ndarray, iteration: int) -> Evaluation:
    """Figures of N x classes raw scores against N labels; loss is SoftmaxWithLoss's mean."""
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
