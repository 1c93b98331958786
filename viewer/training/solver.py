"""Caffe's SGD solver run by PyTorch on the CPU: seeded, deterministic, with periodic tests.

The update is Caffe's, not torch.optim's: per blob, with its `lr_mult` and `decay_mult` from the
train/test net, v = momentum * v + lr * lr_mult * (grad + weight_decay * decay_mult * w) and
w -= v; the rate follows the solver's policy. Weights start from Caffe's xavier filler
(`init_weights`). Batches are drawn from a seeded shuffle of the training set, epoch
after epoch (Caffe reads the LMDB in key order instead; the generated records are already in
random order, so the two see the same distribution).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from viewer.maps.labels import labels_for
from viewer.caffe.model_io import CaffeNet
from viewer.net.weights import init_weights
from viewer.caffe.proto import caffe_pb2
from viewer.training import nets
from viewer.training.data import WindowSet
from viewer.training.metrics import Evaluation, evaluation, top_confusions
from viewer.training.torchnet import CaffeTorchNet

Progress = Callable[[str], None]


@dataclass
class TrainingRun:
    """A finished run: the trained deploy net, the curves and the settings that made it."""

    net: CaffeNet
    settings: nets.SolverSettings
    losses: list[tuple[int, float, float]] = field(default_factory=list)  # (iter, loss, lr)
    tests: list[Evaluation] = field(default_factory=list)
    seconds: float = 0.0
    threads: int = 1
    confusions: list[tuple[str, str, int]] = field(default_factory=list)
    predicted: np.ndarray | None = None   # the final test's class per test window

    @property
    def final(self) -> Evaluation:
        return self.tests[-1]

    @property
    def num_outputs(self) -> int:
        return int(self.net.weights[list(self.net.weights)[-1]][-1].shape[0])


def configure_torch(seed: int, threads: int) -> None:
    """Same seed, same thread count, deterministic kernels: the same run gives the same bits."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _batches(data: WindowSet, batch_size: int):
    """(images float32 0-255, labels) in order, for evaluation."""
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        yield (torch.from_numpy(data.images[start:stop]).float(),
               torch.from_numpy(data.labels[start:stop]))


def predict(model: CaffeTorchNet, data: WindowSet, batch_size: int = 1000) -> np.ndarray:
    """Class scores of every window (eval mode: dropout off), N x classes."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scores = [model(x).numpy() for x, _ in _batches(data, batch_size)]
    model.train(was_training)
    return np.concatenate(scores)


def evaluate(model: CaffeTorchNet, data: WindowSet, iteration: int,
             batch_size: int = 1000) -> tuple[Evaluation, np.ndarray]:
    """Test figures of the model on `data`, and its class scores."""
    scores = predict(model, data, batch_size)
    return evaluation(scores, data.labels, iteration), scores


class CaffeSGD:
    """Caffe's SGD with momentum, weight decay and per-blob multipliers."""

    def __init__(self, model: CaffeTorchNet, train_test: caffe_pb2.NetParameter,
                 settings: nets.SolverSettings) -> None:
        self.settings = settings
        mults = nets.lr_multipliers(train_test)
        self.slots = []  # (parameter, lr_mult, decay_mult, history)
        for name, module in model.learnable().items():
            blobs = [module.weight] + ([module.bias] if module.bias is not None else [])
            for tensor, (lr_mult, decay_mult) in zip(blobs, mults[name]):
                self.slots.append((tensor, lr_mult, decay_mult, torch.zeros_like(tensor)))

    def step(self, iteration: int) -> float:
        """Apply one update from the current gradients; returns the global rate used."""
        s = self.settings
        rate = s.learning_rate(iteration)
        with torch.no_grad():
            for tensor, lr_mult, decay_mult, history in self.slots:
                grad = tensor.grad
                if s.weight_decay and decay_mult:
                    grad = grad.add(tensor, alpha=s.weight_decay * decay_mult)
                history.mul_(s.momentum).add_(grad, alpha=rate * lr_mult)
                tensor.sub_(history)
                tensor.grad = None
        return rate


def starting_weights(deploy: caffe_pb2.NetParameter, seed: int) -> CaffeNet:
    """Caffe's xavier start, with each Scale at its own filler's start: factor 1, bias 0."""
    start = init_weights(deploy, seed=seed)
    for layer in deploy.layer:
        if layer.type == "Scale" and layer.name in start.weights:
            start.weights[layer.name] = [np.ones_like(start.weights[layer.name][0])] + \
                [np.zeros_like(b) for b in start.weights[layer.name][1:]]
    return start


def train(deploy: caffe_pb2.NetParameter, train_set: WindowSet, test_set: WindowSet,
          settings: nets.SolverSettings, threads: int = 2, progress: Progress | None = None,
          init: CaffeNet | None = None, tick: Callable[[], object] | None = None) -> TrainingRun:
    """Train `deploy` with Caffe's solver `settings`; test every `test_interval` and at the end.

    `init` starts from given weights (fine-tuning) instead of the xavier filler. `progress`
    gets Caffe's display lines, `tick()` is called after every iteration (a progress bar).
    """
    say = progress or (lambda line: None)
    s = settings
    configure_torch(s.seed, threads)
    model = CaffeTorchNet(deploy)
    model.load_caffe(init or starting_weights(deploy, s.seed))
    # NHWC: oneDNN's pooling and convolutions run 1.75x faster per step on 2 cores (measured,
    # batch 64); the weights keep their logical Caffe shapes, so the export is unchanged.
    model = model.to(memory_format=torch.channels_last)
    train_test = nets.train_test_net(deploy, "train", "test", s.batch_size, s.test_batch_size)
    sgd = CaffeSGD(model, train_test, s)
    rng = np.random.default_rng(s.seed)
    order, cursor = rng.permutation(len(train_set)), 0
    run = TrainingRun(CaffeNet(deploy), s, threads=threads)
    window_loss, window_right, window_seen = 0.0, 0, 0
    start = last = time.perf_counter()
    model.train()
    for it in range(s.max_iter):
        if s.test_interval and it and it % s.test_interval == 0:
            run.tests.append(evaluate(model, test_set, it, s.test_batch_size)[0])
            say(run.tests[-1].line())
        if cursor + s.batch_size > len(order):
            order, cursor = rng.permutation(len(train_set)), 0
        pick = np.sort(order[cursor:cursor + s.batch_size])
        cursor += s.batch_size
        x = torch.from_numpy(train_set.images[pick]).float().contiguous(
            memory_format=torch.channels_last)
        y = torch.from_numpy(train_set.labels[pick])
        scores = model(x)
        loss = nn.functional.cross_entropy(scores, y)
        loss.backward()
        rate = sgd.step(it)
        if tick is not None:
            tick()
        window_loss += float(loss.detach()) * len(pick)
        window_right += int((scores.argmax(1) == y).sum())
        window_seen += len(pick)
        if (it + 1) % s.display == 0 or it + 1 == s.max_iter:
            now = time.perf_counter()
            mean_loss = window_loss / window_seen
            run.losses.append((it + 1, mean_loss, rate))
            speed = s.display * s.batch_size / max(now - last, 1e-9)
            eta = (s.max_iter - it - 1) * s.batch_size / max(speed, 1e-9)
            say(f"iter {it + 1}/{s.max_iter}  loss {mean_loss:.4f}  train accuracy "
                f"{window_right / window_seen:.4f}  lr {rate:.5f}  {speed:.0f} windows/s  "
                f"eta {eta / 60:.1f} min")
            window_loss, window_right, window_seen, last = 0.0, 0, 0, now
    final, scores = evaluate(model, test_set, s.max_iter, s.test_batch_size)
    run.tests.append(final)
    say(final.line())
    run.seconds = time.perf_counter() - start
    run.net = model.to_caffe()
    run.predicted = scores.argmax(axis=1)
    run.confusions = top_confusions(test_set.labels, run.predicted, labels_for(scores.shape[1]))
    return run
