"""Class labels of the plate-character nets: A-Z, then 0-9, then an optional background class.

The order is the tutorial's and the shipped models' output order, so channel k of a dense map is
label k. A model with one extra output has a background class after the 36 characters.
"""
from __future__ import annotations

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
