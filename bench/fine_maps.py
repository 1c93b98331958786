"""`python -m bench.fine_maps`: the cost of a stride-1 map against the native pass, per engine.

On the issue's workload (the sample plate at scale 0.9), each engine runs the native net, the
rarefied net (where it can) and shift-and-stitch, in rotating blocks so that load from other
programs hits all three alike; the figures are ratios to the native pass, measured in one run.
The rarefied map is checked against the stitched one (they compute the same cells).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from bench.measure import machine, rotated_ms
from bench.sections import Workload
from viewer.net import cost, netgraph
from viewer.engines import available_engines, create_engine
from viewer.maps.finemap import RAREFYING, StitchedEngine, create_fine_engine
from viewer.surgery.rarefaction import native_stride, rarefy

TARGET = 12.0    # the bound for a stride-1 map, in native passes
RESULTS = Path(__file__).parent / "results" / "fine_maps.json"


def engine_row(w: Workload, name: str, stride: int, repeat: int) -> dict:
    """Median times of the three passes on one engine, their ratios and their agreement."""
    native = create_engine(name, w.fcn)
    stitched = StitchedEngine(create_engine(name, w.fcn), stride, native_stride(w.fcn),
                              rarefy(w.fcn, stride).net)
    blobs = [w.score_blob]
    calls = {"native": lambda: native.forward(w.data, blobs),
             "shift-and-stitch": lambda: stitched.forward(w.data, blobs)}
    fine, method = create_fine_engine(name, w.fcn, stride)
    if name in RAREFYING:
        calls["rarefaction"] = lambda: fine.forward(w.data, blobs)
    times = rotated_ms(calls, repeat=repeat, block=1, settle=0.5)
    ms = {k: statistics.median(v) for k, v in times.items()}
    row = {"engine": name, "method": method.method, "ms": ms, "times_ms": times,
           "ratio": {k: ms[k] / ms["native"] for k in ms if k != "native"}}
    if "rarefaction" in calls:
        a = fine.forward(w.data, blobs)[w.score_blob]
        b = stitched.forward(w.data, blobs)[w.score_blob]
        row["max_abs_diff"] = float(np.abs(a - b).max())
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fine_maps", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per figure")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--engines", nargs="*", default=None,
                        help="engines to time (default: every available one but numpy)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    w = Workload.load()
    names = args.engines or [n for n in available_engines() if n != "numpy"]
    fine_net = rarefy(w.fcn, args.stride).net
    report = {"machine": machine(), "input": list(w.data.shape), "stride": args.stride,
              "target_ratio": TARGET,
              "flops": {"native": cost.forward_flops(w.fcn, w.data.shape),
                        "rarefaction": cost.forward_flops(fine_net, w.data.shape)},
              "fine_score_shape": list(netgraph.infer_shapes(
                  fine_net.param, {next(iter(netgraph.input_shapes(fine_net.param))): w.data.shape})[w.score_blob]),
              "engines": [engine_row(w, name, args.stride, args.repeat) for name in names]}
    report["flops"]["ratio"] = report["flops"]["rarefaction"] / report["flops"]["native"]
    print(f"{w.data.shape[3]}x{w.data.shape[2]} input, stride {args.stride}: rarefaction does "
          f"{report['flops']['ratio']:.2f}x the native FLOPs (target: at most {TARGET:g}x "
          "the native time)")
    for row in report["engines"]:
        ratios = "  ".join(f"{k} {v:.2f}x" for k, v in row["ratio"].items())
        print(f"{row['engine']:>7}: native {row['ms']['native']:.0f} ms  {ratios}"
              + (f"  max|diff| {row['max_abs_diff']:.2g}" if "max_abs_diff" in row else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
