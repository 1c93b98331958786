"""What a local cluster's worker does as it starts (Dask's `distributed.worker.preload`).

Ctrl+C reaches every process of the terminal's group. The client stops the whole batch and
its cluster on it; a worker that raised KeyboardInterrupt too would only print tracebacks.
"""
from __future__ import annotations

import signal


def dask_setup(worker: object) -> None:
    """Leave Ctrl+C to the client (the worker's event loop runs in its main thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
