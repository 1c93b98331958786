"""Saving what a dense pass produced (`featuremap.npz`, overlay PNGs, filter grids) and the
net that produces it (as ONNX).

One format for the CLI's `map` and `export` and the GUI's export, written atomically.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from viewer import progress
from viewer.net import netgraph
from viewer.errors import ViewerError
from viewer.maps.featuremap import DenseClassifier, FeatureMap
from viewer.files.safe_write import Writer, write_atomic, write_bytes_atomic

PROB_OUTPUT = "prob"  # the exported softmax output (the map of `map`) of a net without one
NPZ_KEYS = ("probs", "scores", "conv1", "labels", "scale", "stride", "offset",
            "receptive_field", "image_shape")


NPZ_PIECE = 4 * 1024 ** 2     # bytes of an array compressed between two progress reports


def npz_writer(fm: FeatureMap) -> Writer:
    """What writes the maps and their geometry as a compressed `.npz` into a file, streamed
    (the maps of a 12 MP photo take a gigabyte even compressed)."""
    conv1 = fm.conv1 if fm.conv1 is not None else np.zeros((0, 0, 0), np.float32)
    arrays = dict(
        probs=fm.probs, scores=fm.scores, conv1=conv1, labels=np.array(fm.labels),
        scale=np.float64(fm.scale), stride=np.array(fm.geometry.stride),
        offset=np.array(fm.geometry.offset), receptive_field=np.array(fm.geometry.receptive_field),
        image_shape=np.array(fm.image_shape))
    return lambda fh: write_npz(fh, arrays)


def write_npz(fh, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez_compressed`'s format, written in NPZ_PIECE pieces with `progress` reports
    between them: savez writes each array in one call, so 64 MB of maps took 3 s without
    a sign of life."""
    arrays = {name: np.asarray(value, order="C") for name, value in arrays.items()}
    total, done = sum(a.nbytes for a in arrays.values()) or 1, 0
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array_header_1_0(
                    entry, np.lib.format.header_data_from_array_1_0(array))
                data = memoryview(array.reshape(-1).view(np.uint8)) if array.nbytes else b""
                for start in range(0, array.nbytes, NPZ_PIECE):
                    entry.write(data[start:start + NPZ_PIECE])
                    progress.report((done + min(start + NPZ_PIECE, array.nbytes)) / total)
            done += array.nbytes


def png_writer(image: np.ndarray, path: str | os.PathLike) -> Writer:
    """What writes an RGB or gray uint8 array as PNG into a file (encoded now, so a picture
    that cannot be encoded fails before anything is written)."""
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ViewerError(f"cannot encode {path} as PNG")
    return lambda fh: fh.write(encoded.tobytes())


def save_npz(fm: FeatureMap, path: str | os.PathLike, inputs: tuple = ()) -> Path:
    """Write the maps and their geometry as `.npz` atomically; see `npz_writer`."""
    return write_atomic(path, npz_writer(fm), inputs)


def save_png(image: np.ndarray, path: str | os.PathLike, inputs: tuple = ()) -> Path:
    """Write an RGB or gray uint8 array as PNG atomically."""
    return write_atomic(path, png_writer(image, path), inputs)


def surgered_onnx(dense: DenseClassifier):
    """The fully convolutional net of `dense` as a standalone ONNX model (`onnx.ModelProto`).

    The graph is the onnx engine's conversion (Caffe's blob names, symbolic H and W) with two
    outputs: the class scores and their softmax over the classes, `prob`, which is the map
    `map` writes. Metadata says what a runtime needs beside it: the geometry of the cells in
    input pixels (stride, offset, window, as [y, x]), the labels, and the input the net expects.
    """
    import onnx
    from onnx import TensorProto, helper

    from viewer.convert.onnx_graph import to_onnx

    final = netgraph.deploy_layers(dense.net.param)[-1]
    if final.type == "Softmax":                  # the net's own softmax is the map's
        prob = final.top[0]
        model = to_onnx(dense.net, [dense.score_blob, prob])
    else:
        prob = PROB_OUTPUT
        model = to_onnx(dense.net, [dense.score_blob])
        graph = model.graph
        rank = len(graph.output[0].type.tensor_type.shape.dim)
        graph.node.append(helper.make_node("Softmax", [dense.score_blob], [prob], axis=1,
                                           name=prob))
        graph.output.append(helper.make_tensor_value_info(prob, TensorProto.FLOAT,
                                                          [None] * rank))
    unit = dense.unit
    metadata = {
        "stride": unit.stride, "offset": unit.offset, "window": unit.receptive_field,
        "labels": dense.labels, "scores": dense.score_blob, "probabilities": prob,
        "input": f"{model.graph.input[0].name}: N x {dense.channels} x H x W float32, the image "
                 f"resized by the chosen scale, then {dense.transformer.describe()} (Caffe's "
                 "Transformer order: channel swap, raw scale, mean, input scale)",
        "preprocessing": json.dumps(dense.transformer.as_dict()),
        "source": Path(dense.net.source).name,
    }
    helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(list(v))
                                   for k, v in metadata.items()})
    onnx.checker.check_model(model)
    return model


def save_onnx(dense: DenseClassifier, path: str | os.PathLike, inputs: tuple = ()) -> Path:
    """Write `surgered_onnx(dense)` atomically."""
    model = surgered_onnx(dense)
    return write_bytes_atomic(path, model.SerializeToString(), inputs)
