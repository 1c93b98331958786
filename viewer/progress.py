"""Progress of long work: tqdm bars on the command line, and fractions for whoever listens.

One place for the settings, so `read`/`map` batches, `dataset make` and `train` draw alike
and a pipe or a log file gets the results alone.

Inside one long call (a dense pass of a 12 MP photo, writing its maps) the work says how far
it is with `report(fraction)`; a caller that wants to know wraps the call in
`reporting(callback)`, and `part(start, end)` maps a sub-step's 0-1 into its share. Without a
listener a report costs one context-variable lookup. Context variables are per thread, so
each worker thread hears only its own job.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

from tqdm import tqdm


def bar(total: int, desc: str, unit: str) -> tqdm:
    """A bar counting `total` `unit`s, drawn on stderr when it is a terminal and there is
    more than one (else silent)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True, disable=total < 2 or not sys.stderr.isatty())


def note(text: str) -> None:
    """A line on stderr that does not break a bar being drawn."""
    tqdm.write(text, file=sys.stderr)


_listener: ContextVar[Callable[[float], None] | None] = ContextVar("listener", default=None)
_span: ContextVar[tuple[float, float]] = ContextVar("span", default=(0.0, 1.0))


@contextmanager
def reporting(callback: Callable[[float], None]) -> Iterator[None]:
    """Send the fractions (0-1) reported inside the block to `callback`."""
    listening, span = _listener.set(callback), _span.set((0.0, 1.0))
    try:
        yield
    finally:
        _span.reset(span)
        _listener.reset(listening)


@contextmanager
def part(start: float, end: float) -> Iterator[None]:
    """A sub-step covering `start`-`end` of the enclosing work; reports `end` when done."""
    low, high = _span.get()
    token = _span.set((low + start * (high - low), low + end * (high - low)))
    try:
        yield
    finally:
        _span.reset(token)
    report(end)


def report(fraction: float) -> None:
    """How far the current (sub-)step is, 0-1."""
    listener = _listener.get()
    if listener is not None:
        low, high = _span.get()
        listener(low + min(max(fraction, 0.0), 1.0) * (high - low))
