"""Engines that the benchmark compares with but the viewer does not offer: PyTorch.

The net runs as `viewer.training.torchnet.CaffeTorchNet`, the same module the trainer uses, so
the weights and Caffe's conventions (ceil pooling, in-place blobs) are the ones the engines see.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Sequence

import numpy as np

from viewer.caffe.model_io import CaffeNet


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


class TorchPass:
    """PyTorch's CPU forward pass of the dense net, inference mode, one thread per core."""

    name = "torch"

    def __init__(self, net: CaffeNet) -> None:
        import torch

        from viewer.training.torchnet import CaffeTorchNet

        torch.set_num_threads(os.cpu_count() or 1)
        self._torch = torch
        self._module = CaffeTorchNet(net.param).eval()
        self._module.load_caffe(net)

    def forward(self, data: np.ndarray, blobs: Sequence[str]) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            out = self._module.blobs(self._torch.from_numpy(data))
            return {b: out[b].numpy() for b in blobs}
