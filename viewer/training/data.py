"""The train and test LMDBs of a dataset folder, loaded whole into memory as numpy arrays.

300k 28x28 windows are 235 MB of uint8, so the solver can draw batches without touching the
disk. Records are read through `viewer.caffe.lmdb_io`, in key order, as Caffe does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.caffe.lmdb_io import open_lmdb
from viewer.errors import DatasetError, TrainingError
from viewer.maps.labels import BACKGROUND
from viewer.plates.alphabet import WINDOW_SIZE

TRAIN_LMDB = "train_lmdb"
TEST_LMDB = "test_lmdb"


@dataclass
class WindowSet:
    """Images N x C x H x W (uint8, 0-255) and their labels, from one LMDB."""

    images: np.ndarray
    labels: np.ndarray
    source: Path

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def background_share(self) -> float:
        return float(np.mean(self.labels == BACKGROUND)) if len(self) else 0.0


def load_lmdb(path: str | os.PathLike) -> WindowSet:
    """Read every record of a Caffe LMDB; all must have one shape and hold uint8 pixels."""
    path = Path(path)
    try:
        with open_lmdb(path) as db:
            count = len(db)
            if count == 0:
                raise TrainingError(f"{path} holds no records")
            images = labels = None
            for i, record in enumerate(db):
                if images is None:
                    _check_window(record.shape, record.key, path)   # before allocating
                    images = np.empty((count,) + record.shape, np.uint8)
                    labels = np.empty(count, np.int64)
                if not 0 <= record.label <= BACKGROUND:
                    raise TrainingError(
                        f"record {record.key} of {path} has label {record.label}; the plate "
                        f"net's classes are 0-{BACKGROUND} (A-Z, 0-9, background)")
                if record.shape != images.shape[1:]:
                    raise TrainingError(f"record {record.key} of {path} is "
                                        f"{'x'.join(map(str, record.shape))}, the first was "
                                        f"{'x'.join(map(str, images.shape[1:]))}")
                if record.image.dtype != np.uint8:
                    raise TrainingError(f"record {record.key} of {path} holds float data; "
                                        "training reads raw uint8 Datum records")
                images[i] = record.image
                labels[i] = record.label
    except DatasetError as err:
        raise TrainingError(str(err)) from None
    return WindowSet(images, labels, path)


def _check_window(shape: tuple[int, ...], key: str, path: Path) -> None:
    """The plate net trains on 1 x 28 x 28 gray windows: any other first record is said now,
    not as a shape error some iterations in (or an allocation of count x 25 megapixels)."""
    if tuple(shape) != (1, WINDOW_SIZE, WINDOW_SIZE):
        raise TrainingError(f"record {key} of {path} is {'x'.join(map(str, shape))}; training "
                            f"reads 1x{WINDOW_SIZE}x{WINDOW_SIZE} gray windows, as "
                            "`dataset make` writes them")


def load_dataset(folder: str | os.PathLike) -> tuple[WindowSet, WindowSet]:
    """The train and test sets of a folder made by `dataset make`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(f"dataset folder {folder} does not exist; make one with "
                            f"`python main.py dataset make --out {folder}`")
    return load_lmdb(folder / TRAIN_LMDB), load_lmdb(folder / TEST_LMDB)
