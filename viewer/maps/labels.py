"""Class names: the plate-character nets' A-Z, 0-9 and background, or a user's labels file.

The plate nets' order is the tutorial's: A-Z, then 0-9, then an optional background class, so
channel k of a dense map is label k. Any other classifier is named by `labels.txt` (one name a
line) or Caffe's `synset_words.txt` beside it, or `--labels`; without one, classes are numbered.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from viewer.errors import ViewerError
from viewer.caffe.model_io import MAX_PROTOTXT_BYTES
from viewer.files.safe_read import read_regular

CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
BACKGROUND = len(CHARACTERS)
BACKGROUND_NAME = "background"


def labels_for(num_outputs: int) -> list[str]:
    """Name each output channel of a net with `num_outputs` classes.

    Our nets have 36 or 37 outputs; a user's net with some other count gets numbered names,
    so every channel can still be shown and picked.
    """
    if num_outputs == len(CHARACTERS):
        return list(CHARACTERS)
    if num_outputs == len(CHARACTERS) + 1:
        return list(CHARACTERS) + [BACKGROUND_NAME]
    return [f"class {k}" for k in range(num_outputs)]


LABEL_FILES = ("labels.txt", "synset_words.txt")
_SYNSET_ID = re.compile(r"^n\d{8}\s+")


def is_plate_model(labels: Sequence[str]) -> bool:
    """True for a net whose classes are our plate characters (the reader and the plate parts
    of the viewer apply to it), False for any other classifier."""
    return list(labels[:len(CHARACTERS)]) == list(CHARACTERS)


def labels_file_beside(prototxt: str | os.PathLike) -> Path | None:
    """`labels.txt` or Caffe's `synset_words.txt` in the model's folder, if there is one."""
    folder = Path(prototxt).parent
    return next((folder / name for name in LABEL_FILES if (folder / name).is_file()), None)


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names, one per line; a synset_words.txt line "n02123045 tabby, tabby cat" gives
    "tabby, tabby cat". Blank lines at the end are ignored."""
    path = Path(path)
    try:
        text = read_regular(path, MAX_PROTOTXT_BYTES, "labels file").decode("utf-8",
                                                                             errors="replace")
    except OSError as err:
        raise ViewerError(f"--labels {path} cannot be read ({err.strerror or err})") from None
    names = [_SYNSET_ID.sub("", line.strip()) for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    return names


def character_channels(labels: list[str]) -> np.ndarray:
    """Indices of the channels that are characters (all but a background channel)."""
    return np.array([k for k, name in enumerate(labels) if name != BACKGROUND_NAME])


def character_confidence(probs: np.ndarray, labels: list[str]) -> np.ndarray:
    """Per cell of a map's `probs`, how sure the net is that a character is centred there: 1 - P(background),
    or the best probability for a net without a background class. The reader looks for its
    peaks; the best-character picture uses it as its opacity."""
    chars = character_channels(labels)
    if len(chars) < len(labels):
        return 1.0 - probs[labels.index(BACKGROUND_NAME)]
    return probs[chars].max(axis=0)
