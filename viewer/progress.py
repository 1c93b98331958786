"""Progress bars for long work on the command line: tqdm on stderr, only on a terminal.

One place for the settings, so `read`/`map` batches, `dataset make` and `train` draw alike
and a pipe or a log file gets the results alone.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int, desc: str, unit: str) -> tqdm:
    """A bar counting `total` `unit`s, drawn on stderr when it is a terminal and there is
    more than one (else silent)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True, disable=total < 2 or not sys.stderr.isatty())


def note(text: str) -> None:
    """A line on stderr that does not break a bar being drawn."""
    tqdm.write(text, file=sys.stderr)
