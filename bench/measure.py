"""Timing and machine facts: interleaved medians, numpy's float32 GEMM rate, the BLAS in use."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import numpy as np


def median_ms(fn: Callable[[], object], repeat: int = 5, warm: int = 1) -> float:
    """Median wall time of `repeat` calls after `warm` untimed ones, in milliseconds."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def cpu_ms(fn: Callable[[], object], repeat: int = 5, warm: int = 1) -> float:
    """Median CPU time of `repeat` calls, in milliseconds: the work a single-threaded pass
    does, whatever else the machine runs (wall time on a loaded machine is mostly waiting)."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000.0)
    return statistics.median(times)


def rotated_ms(fns: dict[str, Callable[[], object]], repeat: int = 5, block: int = 3,
               settle: float = 0.3) -> dict[str, list[float]]:
    """Every timed call, in blocks of `block` per candidate, taking turns until each has
    `repeat` (so load from other programs hits them all alike).

    Each block starts after `settle` seconds and one untimed call. BLAS, OpenMP and onnxruntime
    keep their worker threads spinning for a while after a call; on 2 cores those threads take
    the CPU from whichever library runs next. Measured here: onnx 66 ms alone, 120 ms right after
    a blas pass, 75 ms after a blas pass and 0.3 s.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    while any(len(t) < repeat for t in times.values()):
        for name, fn in fns.items():
            time.sleep(settle)
            fn()
            for _ in range(min(block, repeat - len(times[name]))):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def gemm_rate(repeat: int = 5) -> dict:
    """numpy's float32 matrix product rate in GFLOP/s: best of a square and LeNet's ip1 shape."""
    rng = np.random.default_rng(0)
    shapes = {"square 2048": (2048, 2048, 2048), "ip1-conv 500x800x11859": (500, 800, 11859)}
    rates = {}
    for label, (m, k, n) in shapes.items():
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        out = np.empty((m, n), np.float32)
        ms = median_ms(lambda: np.matmul(a, b, out=out), repeat=repeat, warm=1)
        rates[label] = 2.0 * m * k * n / (ms / 1000.0) / 1e9
    return {"gflops": max(rates.values()), "by_shape": rates}


def blas_info() -> dict:
    """Which BLAS numpy calls, with how many threads and which kernel."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        config = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
        blas = config.get("Build Dependencies", {}).get("blas", {}) if config else {}
        return {"name": blas.get("name", "?"), "version": blas.get("version", "?"),
                "threads": None, "kernel": None}
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    # numpy's own BLAS, not one that another library (pycaffe) loaded beside it
    pools.sort(key=lambda p: "numpy" not in str(p.get("filepath", "")))
    if not pools:
        return {"name": "?", "version": "?", "threads": None, "kernel": None}
    p = pools[0]
    return {"name": p.get("internal_api"), "version": p.get("version"),
            "threads": p.get("num_threads"), "kernel": p.get("architecture")}


def machine() -> dict:
    """nproc, CPU model, Python, numpy and its BLAS, and the load when the run started."""
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
        "numpy": np.__version__, "blas": blas_info(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
    }
