"""The batch runner `read`/`map` had before Dask (issue 26), kept only as the benchmark's
baseline: a forked `multiprocessing.Pool` of `--jobs` processes that inherit the model.

    python -m bench.old_pool read IMAGE... --jobs N [read's options]

It runs the CLI with `viewer.cli.batch.run_batch` replaced by the pool, so everything but the
runner is today's code. It hangs if a worker is killed (issue 28, item 4): never use it for
real work.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from functools import partial

from viewer.cli import batch, main


def _init_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    batch._dense.engine.limit_threads(threads)


def pool_run_batch(images, setup, task, args):
    """The old `run_batch`: the model made here, then inherited by the forked workers."""
    batch._dense = setup(args)
    jobs = max(1, min(args.jobs, len(images)))
    one = partial(batch._run_one, task, args.debug)
    if jobs == 1:
        yield from map(one, images)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with multiprocessing.get_context("fork").Pool(jobs, _init_worker, (threads,)) as pool:
        yield from pool.imap(one, images)


if __name__ == "__main__":
    batch.run_batch = pool_run_batch
    sys.exit(main())
