"""Inference engines behind one interface, chosen by name (`--engine NAME`)."""
from __future__ import annotations

import importlib
import importlib.util

from viewer.engines.base import Engine
from viewer.errors import EngineError
from viewer.caffe.model_io import CaffeNet

# name -> (module, class, the import that must work, how to get it)
_REGISTRY = {
    "opencv": ("viewer.engines.opencv_engine", "OpenCVEngine", "cv2",
               "pip install 'opencv-python-headless<5'"),
    "numpy": ("viewer.engines.numpy_engine", "NumpyEngine", "numpy", "pip install numpy"),
    "blas": ("viewer.engines.blas_engine", "BlasEngine", "numpy", "pip install numpy"),
    "onnx": ("viewer.engines.onnx_engine", "OnnxEngine", "onnxruntime",
             "pip install onnx onnxruntime"),
    "caffe": ("viewer.engines.caffe_engine", "CaffeEngine", "caffe", "make caffe"),
}


def _fastest_installed() -> str:
    """The fastest exact engine that imports here (bench/README.md has the figures):
    onnxruntime, else the numpy + BLAS engine, which needs nothing beyond numpy."""
    found = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
    return "onnx" if found else "blas"


DEFAULT_ENGINE = _fastest_installed()


def engine_names() -> list[str]:
    """Every engine this build knows, installed or not."""
    return list(_REGISTRY)


def available_engines() -> list[str]:
    """Engines whose library imports here."""
    return [name for name, (_, _, dep, _) in _REGISTRY.items()
            if importlib.util.find_spec(dep) is not None]


def create_engine(name: str, net: CaffeNet) -> Engine:
    """Load `net` into the named engine, or explain why that engine cannot be used."""
    if name not in _REGISTRY:
        raise EngineError(f"unknown engine '{name}'; choose one of {', '.join(engine_names())}")
    module, cls, dep, how = _REGISTRY[name]
    if importlib.util.find_spec(dep) is None:
        raise EngineError(f"engine '{name}' is not installed here ({how})")
    return getattr(importlib.import_module(module), cls)(net)


__all__ = ["Engine", "DEFAULT_ENGINE", "engine_names", "available_engines", "create_engine"]
