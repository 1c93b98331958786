"""Batches on Dask: `--jobs N` on a local cluster of N one-thread processes, `--cluster ADDRESS`
on a running scheduler; the same tasks, results and errors either way.

Why Dask's `distributed`: its futures are shaped like a pool's, a local cluster starts in about
half a second, the same code runs on many machines (`dask scheduler` / `dask worker`,
`dask-jobqueue` on SLURM), and the tasks of a worker that dies (the OOM killer's SIGKILL) are
run again elsewhere, so a dead worker costs a retry, never a hung or half-written batch.

The model travels to the workers as bytes (prototxt, caffemodel, sidecar, labels and the files
of the preprocessing flags) inside one task, so the scheduler can make it again if the worker
that held it dies; each worker writes it into a folder of its own and loads it once, keyed by
its hash. Images travel as bytes too, unless the workers see the same files (a local cluster,
or `--paths-on-workers`).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import urlparse

from viewer import progress
from viewer.errors import ClusterError, ViewerError
from viewer.maps.calibration import calibration_path
from viewer.maps.labels import labels_file_beside
from viewer.maps.preprocess import sidecar_path
from viewer.net import cost

# Seconds to reach a scheduler before `--cluster` gives up with one line.
CONNECT_SECONDS = 3
# Images handed to the cluster ahead of the one being written, per worker thread: enough to keep
# every worker busy, few enough that a million-image batch holds a few results in memory.
AHEAD_PER_THREAD = 8
# A worker died this many times while holding the same image (Dask's `allowed-failures` + 1):
# that image, not the cluster, is the problem (a decompression bomb the OOM killer stops).
DEATHS = 4


# A local cluster's settings. Its workers start from a fork server: a fresh process, started
# once, that has imported Dask and the viewer (`FORKSERVER_PRELOAD`) and forks a worker for each
# job. Forking the client itself would be quicker still (its model is loaded), but the client
# may hold threads (a BLAS pool, onnxruntime, Qt under the tests), and a child forked from a
# threaded process can deadlock or crash on a lock held at the fork: seen here as a worker
# segfaulting in the garbage collector. Dask's sampling profiler of the tasks is off: it took
# 60 ms of CPU per image (a third more CPU than the work) on this machine. Each worker ignores
# Ctrl+C (`viewer.cli.cluster_worker`), which the client handles by stopping them all.
LOCAL_CONFIG = {"distributed.worker.multiprocessing-method": "forkserver",
                "distributed.worker.preload": ["viewer.cli.cluster_worker"],
                "distributed.worker.profile.enabled": False,
                "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "5s",
                "distributed.worker.memory.monitor-interval": "1s"}
# What the fork server imports once, so that each worker it forks starts with it.
FORKSERVER_PRELOAD = ["distributed", "numpy", "viewer.cli.cluster", "viewer.cli.read",
                      "viewer.cli.maps", "viewer.engines.onnx_engine"]


# ---- the model as bytes ------------------------------------------------------------------------

# The flags naming files that the model's setup reads, besides --prototxt and --weights.
FILE_FLAGS = ("labels", "mean", "train_prototxt")


@dataclass(frozen=True)
class ModelBundle:
    """Every file the model's setup reads, as (name, bytes) by role, and their hash."""

    files: tuple[tuple[str, str, bytes], ...]
    digest: str = field(default="")

    @classmethod
    def of(cls, args: argparse.Namespace) -> "ModelBundle":
        """The files `args` name: the net (the bundled one by default), the sidecar, labels
        file and letter calibration beside it, and the files given to --labels, --mean and
        --train-prototxt."""
        from viewer.cli.options import model_files

        prototxt, weights = model_files(args)
        found = [("prototxt", Path(prototxt)), ("weights", Path(weights))]
        for role, path in (("sidecar", sidecar_path(prototxt)),
                           ("beside", labels_file_beside(prototxt)),
                           ("calibration", calibration_path(prototxt))):
            if path is not None and Path(path).is_file():
                found.append((role, Path(path)))
        for flag in FILE_FLAGS:
            value = getattr(args, flag, None)
            if value is not None and Path(value).is_file():
                found.append((flag, Path(value)))
        files = tuple((role, path.name, path.read_bytes()) for role, path in found)
        digest = hashlib.sha256()
        for role, name, data in files:
            digest.update(f"{role}\0{name}\0{len(data)}\0".encode())
            digest.update(data)
        return cls(files, digest.hexdigest()[:16])

    def write(self, folder: Path) -> dict[str, Path]:
        """Write the files into `folder` (the net and what lies beside it together, each flag's
        file in a folder of its own, so no two names meet) and say where each role went."""
        where = {}
        for role, name, data in self.files:
            place = folder / ("net" if role in ("prototxt", "weights", "sidecar", "beside",
                                                "calibration") else role)
            place.mkdir(parents=True, exist_ok=True)
            (place / name).write_bytes(data)
            where[role] = place / name
        return where


def args_on_worker(args: argparse.Namespace, where: dict[str, Path]) -> argparse.Namespace:
    """`args` with every model file pointing at its copy on this worker."""
    moved = argparse.Namespace(**vars(args))
    moved.prototxt, moved.weights = where["prototxt"], where["weights"]
    moved.model = None                          # --model's files are the ones just written
    for flag in FILE_FLAGS:
        if flag in where:
            setattr(moved, flag, where[flag])
    return moved


# ---- on a worker -------------------------------------------------------------------------------

# Models loaded in this process, by bundle hash, with the process that gave each its share of
# cores and memory (the share is given once per process).
_models: dict[str, tuple[object, int | None]] = {}
# The folders a worker wrote the models it was sent into, by bundle hash.
_folders: dict[str, tempfile.TemporaryDirectory] = {}


@dataclass(frozen=True)
class Share:
    """What each worker on a host may use: engine threads and bytes for one pass.

    Cores are split between the worker threads of a host. The memory guard (`cost.MEMORY_LIMIT`,
    one pass at a time) is split between the worker processes of a host, so N jobs stay within
    one guard, not N; a worker started with its own `--memory-limit` keeps half of that instead.
    """

    threads_on_host: dict[str, int]
    workers_on_host: dict[str, int]
    budget: int = cost.MEMORY_LIMIT

    def for_worker(self, host: str, cores: int, memory_limit: int | None) -> tuple[int, int]:
        threads = max(1, cores // max(1, self.threads_on_host.get(host, 1)))
        if memory_limit:
            return threads, int(min(self.budget, memory_limit // 2))
        return threads, self.budget // max(1, self.workers_on_host.get(host, 1))


def _worker_model(bundle: ModelBundle, setup: Callable, args: argparse.Namespace,
                  share: Share) -> object:
    """This worker's model for `bundle`: loaded on its first image, from the bytes that
    travelled, or from the client's own files on a local cluster (an empty bundle); given its
    share of cores and memory once."""
    from distributed import get_worker

    dense, pid = _models.get(bundle.digest, (None, None))
    if dense is None and not bundle.files:
        dense = setup(args)
    elif dense is None:
        # Removed when the worker ends (not when it is killed: the OS's temporary folder is
        # cleaned from time to time).
        if bundle.digest not in _folders:
            _folders[bundle.digest] = tempfile.TemporaryDirectory(
                prefix=f"netsurgery-model-{bundle.digest}-")
        folder = Path(_folders[bundle.digest].name)
        dense = setup(args_on_worker(args, bundle.write(folder)))
    if pid != os.getpid():
        worker = get_worker()
        threads, memory = share.for_worker(urlparse(worker.address).hostname or "",
                                           os.cpu_count() or 1,
                                           worker.memory_manager.memory_limit)
        dense.engine.limit_threads(threads)
        cost.MEMORY_LIMIT = memory
        _models[bundle.digest] = (dense, os.getpid())
    return dense


def model_task(bundle: ModelBundle) -> ModelBundle:
    """The task that holds the model's bytes: made again by the scheduler if its worker dies."""
    return bundle


def image_task(task: Callable, debug: bool, setup: Callable, args: argparse.Namespace,
               share: Share, bundle: ModelBundle, image: str, data: bytes | None) -> tuple:
    """Run `task` on one image (its bytes, when they travelled) on a worker: the fields of
    its `batch.Outcome` (image, row, error, note, trace)."""
    dense = _worker_model(bundle, setup, args, share)
    with _image_here(image, data) as path:
        try:
            row, note = task(dense, path)
            if data is not None:
                row["image"] = image
            return Path(image), row, "", note, ""
        except ViewerError as err:
            return (Path(image), None, str(err).replace(str(path), image), "",
                    traceback.format_exc() if debug else "")


@contextlib.contextmanager
def _image_here(image: str, data: bytes | None) -> Iterator[Path]:
    """The image as a file on this worker: its own path, or its bytes under its own name."""
    if data is None:
        yield Path(image)
        return
    with tempfile.TemporaryDirectory(prefix="netsurgery-image-") as folder:
        path = Path(folder) / Path(image).name
        path.write_bytes(data)
        yield path


# ---- on the client ------------------------------------------------------------------------------

@contextlib.contextmanager
def quiet(debug: bool) -> Iterator[None]:
    """Dask's own log lines and warnings (a worker restarted, a large graph) stay off stderr:
    the user sees our rows, errors and progress bar; `--debug` shows them."""
    logger = logging.getLogger("distributed")
    level = logger.level
    if not debug:
        logger.setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


@contextlib.contextmanager
def connect(jobs: int, address: str | None, debug: bool) -> Iterator[object]:
    """A Dask client: on a local cluster of `jobs` one-thread processes, or on the scheduler at
    `address`. An unreachable scheduler is a ClusterError within CONNECT_SECONDS."""
    from distributed import Client, LocalCluster

    with quiet(debug):
        if address is None:
            import dask

            # No Dask memory limit: our own guard (split in `Share`) refuses a pass that would
            # not fit before it runs, where Dask's would kill the worker halfway through it.
            with dask.config.set(LOCAL_CONFIG), \
                    LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                              dashboard_address=None, memory_limit=0,
                              silence_logs=logging.ERROR if debug else logging.CRITICAL) as local, \
                    Client(local) as client:
                yield client
            return
        try:
            _knock(address)
            client = Client(address, timeout=f"{3 * CONNECT_SECONDS}s")
        except (OSError, TimeoutError, ValueError) as err:
            reason = "" if isinstance(err, (OSError, TimeoutError)) else f" ({_reason(err)})"
            raise ClusterError(f"cannot reach the Dask scheduler at {address} within "
                               f"{CONNECT_SECONDS} s{reason}: start it with `dask scheduler`, "
                               "or check the address (tcp://HOST:8786)") from None
        with client:
            yield client


def _knock(address: str) -> None:
    """Open and close a TCP connection to the scheduler's port: a refused or silent port is an
    OSError at once or within CONNECT_SECONDS, where Dask's client would retry until its own
    timeout."""
    url = urlparse(address)
    if url.scheme in ("tcp", "tls") and url.hostname and url.port:
        socket.create_connection((url.hostname, url.port), timeout=CONNECT_SECONDS).close()


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) < 160 else text[:157] + "..."


def share_of(client) -> Share:
    """How the cores and the memory guard are split on each host of the cluster now."""
    threads: dict[str, int] = {}
    workers: dict[str, int] = {}
    for address, info in client.scheduler_info()["workers"].items():
        host = urlparse(address).hostname or ""
        threads[host] = threads.get(host, 0) + info.get("nthreads", 1)
        workers[host] = workers.get(host, 0) + 1
    return Share(threads, workers)


def _threads(client) -> int:
    return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1


def _start_dask() -> None:
    """Import Dask and start the fork server of a local cluster's workers, told to import
    `FORKSERVER_PRELOAD` (Dask's own list would be the whole of its optional packages) in its
    own process meanwhile. `run` calls it before `connect` makes the cluster, which then finds
    the server running."""
    from multiprocessing import forkserver

    import dask
    import distributed  # noqa: F401  (its config's defaults, before LOCAL_CONFIG is set over them)
    from distributed.utils import get_mp_context

    with dask.config.set(LOCAL_CONFIG):
        get_mp_context().set_forkserver_preload(FORKSERVER_PRELOAD)
        forkserver.ensure_running()


def run(images: Sequence[Path], task: Callable, setup: Callable, args: argparse.Namespace,
        jobs: int) -> Iterator:
    """Outcomes of `task` on every image, in input order: on the scheduler at `--cluster`, or
    on a local cluster of `jobs` processes, which load the model from the same files. Either
    way the model is made here first, so a bad one fails before any image (after the
    scheduler was reached: an unreachable one is said within seconds)."""
    address = getattr(args, "cluster", None)
    if address is not None:
        with connect(jobs, address, args.debug) as client:
            setup(args)
            yield from run_on_cluster(client, images, task, setup, args, ModelBundle.of(args),
                                      send_bytes=not args.paths_on_workers)
        return
    # Dask's imports and the start of the workers' fork server (which imports the viewer)
    # go on while the model loads: most of what a local cluster adds to a batch's start.
    importing = threading.Thread(target=_start_dask, daemon=True)
    importing.start()
    setup(args)
    importing.join()
    with connect(jobs, None, args.debug) as client:
        yield from run_on_cluster(client, images, task, setup, args, None, False)


def run_on_cluster(client, images: Sequence[Path], task: Callable, setup: Callable,
                   args: argparse.Namespace, bundle: ModelBundle | None,
                   send_bytes: bool) -> Iterator:
    """The fields of each image's `batch.Outcome`, in input order, run on `client`'s workers.

    At most a few images per worker thread are handed out ahead of the next one to write, so
    the results waiting for an earlier slow image stay few. The bar counts finished images,
    failed ones and the workers there are now.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    debug = getattr(args, "debug", False)
    share = share_of(client)
    # A local cluster's workers read the client's own files (an empty bundle, keyed by the
    # process). Elsewhere the model's bytes are a task of their own.
    model = ModelBundle((), f"local-{os.getpid()}") if bundle is None else \
        client.submit(model_task, bundle, pure=False)
    ahead = AHEAD_PER_THREAD * _threads(client)
    index: dict[str, int] = {}
    finished = as_completed()
    done: dict[int, tuple] = {}
    submitted = written = failed = 0

    def hand_out() -> None:
        nonlocal submitted
        while submitted < len(images) and submitted - written < ahead:
            image = images[submitted]
            data = _read_bytes(image) if send_bytes else None
            future = client.submit(image_task, task, debug, setup, args, share, model,
                                   str(image), data, pure=False)
            index[future.key] = submitted
            finished.add(future)
            submitted += 1

    with quiet(debug), progress.bar(len(images), "images", "image") as bar:
        seen = time.monotonic()
        try:
            hand_out()
            for future in finished:
                i = index.pop(future.key)
                try:
                    outcome = future.result()
                except KilledWorker:
                    outcome = (images[i], None, f"{images[i]}: the worker reading it died "
                               f"{DEATHS} times (out of memory?)", "", "")
                except (ModuleNotFoundError, RuntimeError) as err:
                    raise _not_our_code(err) from None
                future.release()
                failed += bool(outcome[2])
                done[i] = outcome
                bar.update()
                if time.monotonic() - seen > 1 or written == 0:
                    seen = time.monotonic()
                    bar.set_postfix(failed=failed, workers=len(
                        client.scheduler_info()["workers"]), refresh=False)
                while written in done:
                    yield done.pop(written)
                    written += 1
                hand_out()
        finally:
            finished.clear()
            if not isinstance(model, ModelBundle):
                client.cancel([model], force=True)


def _not_our_code(err: Exception) -> Exception:
    """A scheduler or worker that cannot unpickle our tasks (the viewer missing there, or
    another version of it) as one line; any other error as it was."""
    if isinstance(err, ModuleNotFoundError) or "deserializ" in str(err):
        why = f"no module {err.name}" if isinstance(err, ModuleNotFoundError) else \
            "it cannot unpickle them"
        return ClusterError(f"the Dask scheduler or a worker cannot run this viewer's tasks "
                            f"({why}): install the same netsurgery-viewer, dask and "
                            "distributed on the scheduler, every worker and here")
    return err


def _read_bytes(image: Path) -> bytes | None:
    """The image's bytes to send; None when it cannot be read here, so the worker's loader
    gives its own message for the path (missing, a folder, unreadable)."""
    try:
        return image.read_bytes() if image.is_file() else None
    except OSError:
        return None
