"""The parts of the benchmark, each returning a plain dict that goes into the JSON report."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bench.measure import median_ms, rotated_ms
from bench.peers import TorchPass, torch_available
from viewer.files import paths
from viewer.net import cost, netgraph
from viewer.engines import DEFAULT_ENGINE, available_engines, create_engine
from viewer.engines.ops import softmax
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.images import load_image
from viewer.caffe.model_io import CaffeNet
from viewer.net.weights import load_net

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4


@dataclass
class Workload:
    """The issue's case: the sample plate in gray at scale 0.9, on the bundled weights."""

    classifier: CaffeNet
    fcn: CaffeNet
    image: np.ndarray
    scale: float
    data: np.ndarray
    score_blob: str
    first_conv: str
    flops: int

    @classmethod
    def load(cls, image_path: Path = paths.SAMPLE_PLATE, scale: float = 0.9) -> "Workload":
        classifier = load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
        fcn = load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
        image = load_image(image_path)
        dense = DenseClassifier(fcn, "numpy")
        data = dense.prepare(image, scale)
        return cls(classifier, fcn, image, scale, data, dense.score_blob, dense.first_conv,
                   cost.forward_flops(fcn, data.shape))

    @property
    def blobs(self) -> list[str]:
        """What the viewer asks for on every pass: the scores and the first convolution."""
        return [self.score_blob, self.first_conv]


def dense_engines(include_numpy: bool) -> list[str]:
    """The engines to time: every available one, the slow reference only when asked."""
    names = [n for n in available_engines() if include_numpy or n != "numpy"]
    return names + ["torch"] if torch_available() else names


def _make(name: str, net: CaffeNet):
    return TorchPass(net) if name == "torch" else create_engine(name, net)


def engines_section(w: Workload, names: list[str], repeat: int, gemm_gflops: float) -> dict:
    """Forward time of the dense pass per engine (interleaved), checked against the reference."""
    engines, failed = {}, {}
    for name in names:
        try:
            engines[name] = _make(name, w.fcn)
        except Exception as err:  # a peer that cannot load is reported, not fatal
            failed[name] = f"{type(err).__name__}: {err}"
    reference = create_engine("numpy", w.fcn).forward(w.data, w.blobs)
    ref_probs = softmax(reference[w.score_blob])
    calls = {name: (lambda e=e: e.forward(w.data, w.blobs)) for name, e in engines.items()}
    times = rotated_ms(calls, repeat=repeat)
    bound_ms = w.flops / (gemm_gflops * 1e9) * 1000.0
    rows = {}
    for name, engine in engines.items():
        out = engine.forward(w.data, w.blobs)
        ms = statistics.median(times[name])
        rows[name] = {
            "median_ms": round(ms, 1), "all_ms": [round(t, 1) for t in times[name]],
            "gflops": round(w.flops / (ms / 1000.0) / 1e9, 1),
            "x_gemm_bound": round(ms / bound_ms, 2),
            "max_prob_diff": float(np.abs(softmax(out[w.score_blob]) - ref_probs).max()),
            "max_conv1_diff": float(np.abs(out[w.first_conv] - reference[w.first_conv]).max()),
        }
    base = rows.get("opencv", {}).get("median_ms")
    for row in rows.values():
        row["speedup_vs_opencv"] = round(base / row["median_ms"], 2) if base else None
    exact = {n: r for n, r in rows.items() if r["max_prob_diff"] < TOLERANCE}
    best = min(exact, key=lambda n: exact[n]["median_ms"]) if exact else None
    return {"input_shape": list(w.data.shape), "output_shape": list(reference[w.score_blob].shape),
            "gflop": round(w.flops / 1e9, 3), "gemm_bound_ms": round(bound_ms, 1),
            "engines": rows, "failed": failed, "fastest_exact": best, "default": DEFAULT_ENGINE}


def windows_of(w: Workload) -> tuple[np.ndarray, tuple[int, int]]:
    """Every classifier window at the map's stride and offset, as the dense pass sees them."""
    dense = DenseClassifier(w.fcn, "numpy")
    (sy, sx), (oy, ox), (ry, rx) = dense.unit.stride, dense.unit.offset, \
        dense.unit.receptive_field
    view = sliding_window_view(w.data[0], (ry, rx), axis=(1, 2))[:, oy::sy, ox::sx]
    c, rows, cols = view.shape[:3]
    return view.transpose(1, 2, 0, 3, 4).reshape(rows * cols, c, ry, rx), (rows, cols)


def per_window_section(w: Workload, engine_name: str, dense_ms: float, repeat: int,
                       batch: int = 1024) -> dict:
    """The classifier on every window in batches, the work that surgery replaces."""
    windows, (rows, cols) = windows_of(w)
    engine = create_engine(engine_name, w.classifier)
    blob = netgraph.score_blob(w.classifier.param)

    def run() -> np.ndarray:
        parts = [engine.forward(np.ascontiguousarray(windows[k:k + batch]), [blob])[blob]
                 for k in range(0, len(windows), batch)]
        return np.concatenate(parts).reshape(len(windows), -1)

    ms = median_ms(run, repeat=repeat, warm=1)
    scores = run().T.reshape(-1, rows, cols)
    dense = create_engine(engine_name, w.fcn).forward(w.data, [w.score_blob])[w.score_blob][0]
    # Ceil-rounded pooling gives the dense map extra edge cells whose window leaves the image;
    # the classifier has no such windows, so the comparison covers the cells both have.
    edge = dense[:, rows:, :].size + dense[:, :rows, cols:].size
    diff = float(np.abs(softmax(scores, 0) - softmax(dense[:, :rows, :cols], 0)).max())
    return {"engine": engine_name, "windows": len(windows), "batch": batch,
            "gflop": round(cost.forward_flops(w.classifier, (len(windows),) +
                                              tuple(windows.shape[1:])) / 1e9, 2),
            "median_ms": round(ms, 1), "dense_ms": round(dense_ms, 1),
            "dense_speedup": round(ms / dense_ms, 1), "max_prob_diff": diff,
            "dense_map": list(dense.shape), "dense_edge_cells": edge // dense.shape[0],
            "identical": diff < TOLERANCE}


def growth_section(w: Workload, engine_name: str, scales: list[float], repeat: int) -> dict:
    """Forward time against input pixels over scales, with a least-squares line."""
    dense = DenseClassifier(w.fcn, engine_name)
    points = []
    for scale in scales:
        data = dense.prepare(w.image, scale)
        ms = median_ms(lambda: dense.engine.forward(data, w.blobs), repeat=repeat, warm=1)
        points.append({"scale": scale, "pixels": int(data.shape[2] * data.shape[3]),
                       "input": [int(data.shape[2]), int(data.shape[3])], "ms": round(ms, 2)})
    x = np.array([p["pixels"] for p in points], float)
    y = np.array([p["ms"] for p in points], float)
    slope, intercept = np.polyfit(x, y, 1)
    fitted = slope * x + intercept
    r2 = 1.0 - float(((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    return {"engine": engine_name, "points": points, "ms_per_megapixel": round(slope * 1e6, 2),
            "intercept_ms": round(float(intercept), 2), "r2": round(r2, 4)}


# Linux carries a process's resident peak across fork and exec, so a child forked from this
# (large) process would report at least our size. A tiny launcher forks the real child and
# reports that child's own peak.
LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"maxrss_kb": usage.ru_maxrss}, f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_child(args: list[str], env: dict, timeout: float) -> dict:
    """Wall time, exit code, last stdout line and peak resident memory (ru_maxrss) of a child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as usage:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, usage.name, *args],
                                cwd=ROOT, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)
            proc.wait()
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace").strip().splitlines()
        stderr = err.read().decode(errors="replace").strip().splitlines()
        text = Path(usage.name).read_text()
        peak_kb = json.loads(text)["maxrss_kb"] if text else None
    return {"seconds": round(elapsed, 3), "exit_code": proc.returncode,
            "peak_rss_mb": round(peak_kb / 1024.0, 1) if peak_kb else None,
            "timed_out": timed_out, "stderr_tail": stderr[-3:],
            "stdout": stdout[-1] if stdout else ""}


def end_to_end_section(timeout: float = 120.0) -> dict:
    """`python main.py view --screenshot` from launch to the saved PNG, offscreen."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "view.png"
        result = _run_child([sys.executable, "main.py", "view", "--screenshot", str(shot)],
                            env, timeout)
        result["png_written"] = shot.exists() and shot.stat().st_size > 0
    result.pop("stdout")
    result["command"] = "python main.py view --screenshot FILE"
    return result


LARGE_SCRIPT = """
import json, sys, numpy as np
from viewer.files import paths
from viewer.errors import ImageError
from viewer.maps.featuremap import DenseClassifier
from viewer.net.weights import load_net
dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), sys.argv[1])
image = np.random.default_rng(0).integers(0, 256, (3000, 4000), dtype=np.uint8)
report = {"estimate_mb": round(dense.planner.forward_bytes(3000, 4000) / 2**20, 1)}
try:
    fm = dense.run(image, 1.0)
    ran = next(e for e in dense.planner.memory_engines() if e.name == fm.engine)
    report.update(map=list(fm.probs.shape), forward_ms=round(fm.forward_ms, 1), ran_on=fm.engine,
                  ran_on_estimate_mb=round(dense.planner.forward_bytes(3000, 4000, engine=ran) / 2**20, 1))
except ImageError as err:
    report["refused"] = str(err)
print(json.dumps(report))
"""


def large_image_section(engine_name: str, timeout: float = 300.0) -> dict:
    """A dense map of a 4000x3000 photo at scale 1 in a fresh process: its peak memory and
    the engine that ran it (the lean one when `engine_name`'s estimate is over the limit), or
    the viewer's refusal (before allocating) when no engine's estimate fits."""
    result = {"engine": engine_name, "image": "4000x3000 gray, scale 1",
              **_run_child([sys.executable, "-c", LARGE_SCRIPT, engine_name], dict(os.environ),
                           timeout)}
    if result["exit_code"] == 0 and result["stdout"]:
        result.update(json.loads(result.pop("stdout")))
    result["limit_mb"] = cost.MEMORY_LIMIT / 2 ** 20
    return result
