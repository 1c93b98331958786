"""Net Surgery Viewer: Caffe net surgery made visible on license plates.

The small public API, as pycaffe's root gives `Net` and `Classifier`: load a net, make it fully
convolutional, map an image with it, read a plate::

    import viewer
    dense = viewer.DenseClassifier(viewer.load_net("deploy.prototxt", "net.caffemodel"))
    reading, fm = viewer.auto_read(dense, viewer.load_image("plate.png"))

The names are imported on first use, so `import viewer` (and the command line's start) stays
light; each lives in the layer that `docs/architecture.md` names.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it
_API = {
    "CaffeNet": "viewer.caffe.model_io",
    "load_net": "viewer.net.weights",
    "Geometry": "viewer.net.geometry",
    "make_fully_convolutional": "viewer.surgery.convolutional",
    "verify_equivalence": "viewer.surgery.verify",
    "create_engine": "viewer.engines",
    "load_image": "viewer.maps.images",
    "Transformer": "viewer.maps.preprocess",
    "DenseClassifier": "viewer.maps.featuremap",
    "FeatureMap": "viewer.maps.featuremap",
    "read_plate": "viewer.plates.reading",
    "auto_read": "viewer.plates.reading",
    "find_plates": "viewer.plates.locate",
    "ViewerError": "viewer.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    """The API names, imported from their modules when first asked for (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'viewer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
