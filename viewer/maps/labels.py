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

from viewer.errors import ViewerError, shown
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


# The names that mean "no character here", compared case-insensitively without spaces,
# underscores or punctuation: `Background`, `BG`, `__background__`, `<none>`, `no-char` all do.
BACKGROUND_NAMES = frozenset({"background", "bg", "none", "nothing", "null", "void",
                              "blank", "empty", "nochar", "noclass", "negative"})


def is_background(name: str) -> bool:
    """True for a class name that says background by the rule of docs/formats.md."""
    return re.sub(r"[\W_]+", "", name.casefold()) in BACKGROUND_NAMES


def plate_labels_problem(labels: Sequence[str]) -> str | None:
    """Why a net whose first classes are A-Z and 0-9 cannot be read as a plate model (None when
    it can): the one class after them must be a background (`is_background`), or the reader
    would take that class for a letter and print its name."""
    extra = list(labels[len(CHARACTERS):])
    if list(labels[:len(CHARACTERS)]) != list(CHARACTERS) or not extra:
        return None
    if len(extra) > 1:
        return (f"this model has {len(labels)} classes, A-Z and 0-9 then {len(extra)} more; a "
                "plate model has at most one, the background")
    if not is_background(extra[0]):
        return (f"class {len(CHARACTERS)} after A-Z and 0-9 is named '{shown(extra[0])}', which "
                "is not a background name (background, bg, none, __background__..., any case; "
                "see docs/formats.md): name it so in the labels file")
    return None


def is_plate_model(labels: Sequence[str]) -> bool:
    """True for a net whose classes are our plate characters, with or without one background
    class (the reader and the plate parts of the viewer apply to it), False for any other."""
    return list(labels[:len(CHARACTERS)]) == list(CHARACTERS) and \
        len(labels) <= len(CHARACTERS) + 1 and plate_labels_problem(labels) is None


def labels_file_beside(prototxt: str | os.PathLike) -> Path | None:
    """`labels.txt` or Caffe's `synset_words.txt` in the model's folder, if there is one."""
    folder = Path(prototxt).parent
    return next((folder / name for name in LABEL_FILES if (folder / name).is_file()), None)


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names, one per line; a synset_words.txt line "n02123045 tabby, tabby cat" gives
    "tabby, tabby cat". Blank lines at the end are ignored."""
    path = Path(path)
    try:
        text = _decoded(read_regular(path, MAX_PROTOTXT_BYTES, "labels file"))
    except OSError as err:
        raise ViewerError(f"--labels {path} cannot be read ({err.strerror or err})") from None
    names = [_SYNSET_ID.sub("", line.strip()) for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    return names


def _decoded(data: bytes) -> str:
    """A labels file's text: UTF-8, with or without the BOM Windows editors put first (which
    would make the first class "\\ufeffA"), or UTF-16 with its BOM."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def character_channels(labels: list[str]) -> np.ndarray:
    """Indices of the channels that are characters (all but a background channel)."""
    return np.array([k for k, name in enumerate(labels) if not is_background(name)])


def character_confidence(probs: np.ndarray, labels: list[str]) -> np.ndarray:
    """Per cell of a map's `probs`, how sure the net is that a character is centred there: 1 - P(background),
    or the best probability for a net without a background class. The reader looks for its
    peaks; the best-character picture uses it as its opacity."""
    chars = character_channels(labels)
    if len(chars) < len(labels):
        return 1.0 - probs[next(k for k, name in enumerate(labels) if is_background(name))]
    return probs[chars].max(axis=0)
