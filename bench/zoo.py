"""Full-size zoo nets on a 448x448 colour image at scale 1: the default engine against real Caffe.

`python -m bench.zoo [--repeat N]` (also a section of `python -m bench`); `--sizes` prints
each net's layer and parameter counts instead, to check them against the papers. The deploy
nets are written here after the papers, with random weights: GoogLeNet (Szegedy et al. 2014, the
layout of BVLC's deploy net: LRN, nine Inception modules, 7x7 average pooling) and ResNet-50
(He et al. 2015, the layout of the authors' Caffe deploy net: BatchNorm + Scale after every
convolution, stride 2 in the first 1x1 of stages 3-5, 7x7 average pooling). Each is made fully
convolutional as the viewer does it, and both engines run the pass the viewer runs (scores and
conv1) on the same prepared input, timed in turns (`measure.rotated_ms`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

import numpy as np

from bench.measure import cpu_ms, rotated_ms
from viewer.net.weights import init_weights
from viewer.caffe import model_io
from viewer.net import cost, netgraph
from viewer.engines import DEFAULT_ENGINE, available_engines, create_engine
from viewer.engines.ops import softmax
from viewer.maps.featuremap import DenseClassifier

SIZE = 448
INPUT = ('name: "{name}"\nlayer {{ name: "data" type: "Input" top: "data"\n'
         '  input_param {{ shape {{ dim: 1 dim: 3 dim: 224 dim: 224 }} }} }}\n')


def _conv(name: str, bottom: str, n: int, k: int, s: int = 1, p: int = 0,
          bias: bool = True) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
            f'  convolution_param {{ num_output: {n} kernel_size: {k} stride: {s} pad: {p}'
            f'{"" if bias else " bias_term: false"} }} }}\n')


def _layer(name: str, kind: str, bottoms: list[str], top: str, params: str = "") -> str:
    feeds = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'layer {{ name: "{name}" type: "{kind}" {feeds} top: "{top}" {params}}}\n'


def _pool(name: str, bottom: str, kind: str, k: int, s: int, p: int = 0) -> str:
    return _layer(name, "Pooling", [bottom], name,
                  f"pooling_param {{ pool: {kind} kernel_size: {k} stride: {s} pad: {p} }} ")


def _relu(name: str, blob: str) -> str:
    return _layer(name, "ReLU", [blob], blob)


def _lrn(name: str, bottom: str) -> str:
    return _layer(name, "LRN", [bottom], name,
                  "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } ")


# GoogLeNet's Inception modules: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection.
INCEPTIONS = [("3a", 64, 96, 128, 16, 32, 32), ("3b", 128, 128, 192, 32, 96, 64), "pool",
              ("4a", 192, 96, 208, 16, 48, 64), ("4b", 160, 112, 224, 24, 64, 64),
              ("4c", 128, 128, 256, 24, 64, 64), ("4d", 112, 144, 288, 32, 64, 64),
              ("4e", 256, 160, 320, 32, 128, 128), "pool",
              ("5a", 256, 160, 320, 32, 128, 128), ("5b", 384, 192, 384, 48, 128, 128)]


def _inception(name: str, bottom: str, widths: tuple[int, ...]) -> tuple[str, str]:
    one, r3, three, r5, five, proj = widths
    p = f"inception_{name}/"
    text = _conv(p + "1x1", bottom, one, 1) + _relu(p + "relu_1x1", p + "1x1")
    text += _conv(p + "3x3_reduce", bottom, r3, 1) + _relu(p + "relu_3x3_reduce", p + "3x3_reduce")
    text += _conv(p + "3x3", p + "3x3_reduce", three, 3, p=1) + _relu(p + "relu_3x3", p + "3x3")
    text += _conv(p + "5x5_reduce", bottom, r5, 1) + _relu(p + "relu_5x5_reduce", p + "5x5_reduce")
    text += _conv(p + "5x5", p + "5x5_reduce", five, 5, p=2) + _relu(p + "relu_5x5", p + "5x5")
    text += _pool(p + "pool", bottom, "MAX", 3, 1, 1)
    text += _conv(p + "pool_proj", p + "pool", proj, 1) + _relu(p + "relu_pool_proj",
                                                                p + "pool_proj")
    text += _layer(p + "output", "Concat",
                   [p + "1x1", p + "3x3", p + "5x5", p + "pool_proj"], p + "output")
    return text, p + "output"


def googlenet() -> str:
    """GoogLeNet's deploy prototxt (224x224 input, 1000 classes)."""
    text = INPUT.format(name="GoogLeNet")
    text += _conv("conv1/7x7_s2", "data", 64, 7, 2, 3) + _relu("conv1/relu", "conv1/7x7_s2")
    text += _pool("pool1/3x3_s2", "conv1/7x7_s2", "MAX", 3, 2)
    text += _lrn("pool1/norm1", "pool1/3x3_s2")
    text += _conv("conv2/3x3_reduce", "pool1/norm1", 64, 1) + _relu("conv2/relu_reduce",
                                                                   "conv2/3x3_reduce")
    text += _conv("conv2/3x3", "conv2/3x3_reduce", 192, 3, p=1) + _relu("conv2/relu",
                                                                       "conv2/3x3")
    text += _lrn("conv2/norm2", "conv2/3x3") + _pool("pool2/3x3_s2", "conv2/norm2", "MAX", 3, 2)
    blob, pools = "pool2/3x3_s2", 3
    for module in INCEPTIONS:
        if module == "pool":
            text += _pool(f"pool{pools}/3x3_s2", blob, "MAX", 3, 2)
            blob, pools = f"pool{pools}/3x3_s2", pools + 1
        else:
            part, blob = _inception(module[0], blob, module[1:])
            text += part
    text += _pool("pool5/7x7_s1", blob, "AVE", 7, 1)
    text += _layer("pool5/drop_7x7_s1", "Dropout", ["pool5/7x7_s1"], "pool5/7x7_s1",
                   "dropout_param { dropout_ratio: 0.4 } ")
    text += _layer("loss3/classifier", "InnerProduct", ["pool5/7x7_s1"], "loss3/classifier",
                   "inner_product_param { num_output: 1000 } ")
    return text + _layer("prob", "Softmax", ["loss3/classifier"], "prob")


def _conv_bn(name: str, bottom: str, n: int, k: int, s: int, p: int, bn: str,
             relu: bool) -> str:
    text = _conv(name, bottom, n, k, s, p, bias=False)
    text += _layer(f"bn{bn}", "BatchNorm", [name], name,
                   "batch_norm_param { use_global_stats: true } ")
    text += _layer(f"scale{bn}", "Scale", [name], name, "scale_param { bias_term: true } ")
    return text + (_relu(f"{name}_relu", name) if relu else "")


def _bottleneck(stage: str, bottom: str, mid: int, out: int, stride: int,
                project: bool) -> tuple[str, str]:
    r = f"res{stage}"
    text, shortcut = "", bottom
    if project:
        text += _conv_bn(f"{r}_branch1", bottom, out, 1, stride, 0, f"{stage}_branch1", False)
        shortcut = f"{r}_branch1"
    text += _conv_bn(f"{r}_branch2a", bottom, mid, 1, stride, 0, f"{stage}_branch2a", True)
    text += _conv_bn(f"{r}_branch2b", f"{r}_branch2a", mid, 3, 1, 1, f"{stage}_branch2b", True)
    text += _conv_bn(f"{r}_branch2c", f"{r}_branch2b", out, 1, 1, 0, f"{stage}_branch2c", False)
    text += _layer(r, "Eltwise", [shortcut, f"{r}_branch2c"], r) + _relu(f"{r}_relu", r)
    return text, r


def resnet50() -> str:
    """ResNet-50's deploy prototxt (224x224 input, 1000 classes)."""
    text = INPUT.format(name="ResNet-50")
    text += _conv_bn("conv1", "data", 64, 7, 2, 3, "_conv1", True)
    text += _pool("pool1", "conv1", "MAX", 3, 2)
    blob = "pool1"
    for stage, (blocks, mid) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=2):
        for k in range(blocks):
            part, blob = _bottleneck(f"{stage}{chr(ord('a') + k)}", blob, mid, 4 * mid,
                                     2 if k == 0 and stage > 2 else 1, k == 0)
            text += part
    text += _pool("pool5", blob, "AVE", 7, 1)
    text += _layer("fc1000", "InnerProduct", ["pool5"], "fc1000",
                   "inner_product_param { num_output: 1000 } ")
    return text + _layer("prob", "Softmax", ["fc1000"], "prob")


NETS = {"GoogLeNet": googlenet, "ResNet-50": resnet50}


def zoo_net(name: str, seed: int = 0) -> model_io.CaffeNet:
    """The named full-size net with random weights (BatchNorm with its neutral statistics)."""
    param, _ = model_io.parse_prototxt(NETS[name](), f"{name}.prototxt")
    return init_weights(param, seed)


def net_sizes(name: str) -> dict:
    """What the papers state of the named net: its layers, its parameters (BatchNorm
    statistics included) and its output, and the cells a side of its last pooling on a
    SIZE x SIZE input, i.e. of the map after surgery."""
    param, _ = model_io.parse_prototxt(NETS[name](), f"{name}.prototxt")
    shapes = netgraph.infer_shapes(param)
    parameters = sum(math.prod(s) for l in netgraph.deploy_layers(param) if l.bottom
                     for s in netgraph.param_shapes(l, shapes[l.bottom[0]]))
    large = netgraph.infer_shapes(param, {"data": (1, 3, SIZE, SIZE)})
    last = [l for l in param.layer if l.type == "Pooling"][-1]
    return {"layers": len(param.layer), "parameters": parameters, "prob": list(shapes["prob"]),
            "size": SIZE, "last_pool_cells": list(large[last.top[0]][2:])}


def _engine(name: str, net: model_io.CaffeNet, threads: int | None):
    """The named engine; onnxruntime with `threads` intra-op threads when given (Caffe's
    OpenBLAS follows OPENBLAS_NUM_THREADS, read when it loads)."""
    if name == "onnx" and threads:
        from viewer.engines.onnx_engine import OnnxEngine

        return OnnxEngine(net, threads)
    return create_engine(name, net)


def zoo_section(repeat: int = 5, engines: tuple[str, ...] = (DEFAULT_ENGINE, "caffe"),
                threads: int | None = None) -> dict:
    """Per net: the pass of each engine on one 448x448 colour image at scale 1, in turns."""
    names = [e for e in dict.fromkeys(engines) if e in available_engines()]
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    rows = {}
    for net_name in NETS:
        dense = DenseClassifier(zoo_net(net_name), "numpy")   # surgery, input, blobs only
        data = dense.prepare(image, 1.0)
        wanted = dense.wanted_blobs()
        runs = {e: _engine(e, dense.net, threads) for e in names}
        calls = {e: (lambda r=r: r.forward(data, wanted)) for e, r in runs.items()}
        times = rotated_ms(calls, repeat=repeat)
        outs = {e: r.forward(data, wanted)[dense.score_blob][0] for e, r in runs.items()}
        row = {"input_shape": list(data.shape), "map": list(outs[names[0]].shape),
               "gflop": round(cost.forward_flops(dense.net, data.shape) / 1e9, 2)}
        for e in names:
            row[e] = {"median_ms": round(statistics.median(times[e]), 1),
                      "all_ms": [round(t, 1) for t in times[e]],
                      "max_prob_diff": float(np.abs(softmax(outs[e], 0) -
                                                    softmax(outs[names[0]], 0)).max())}
            if threads == 1:
                row[e]["cpu_ms"] = round(cpu_ms(calls[e], repeat=repeat), 1)
        if len(names) == 2:
            row["speedup"] = round(row[names[1]]["median_ms"] / row[names[0]]["median_ms"], 2)
            if threads == 1:
                row["cpu_speedup"] = round(row[names[1]]["cpu_ms"] / row[names[0]]["cpu_ms"], 2)
        rows[net_name] = row
    return {"engines": names, "size": SIZE, "threads": threads or "default", "nets": rows,
            "load_average": list(os.getloadavg())}


def report_lines(section: dict) -> list[str]:
    names = section["engines"]
    lines = [f"model zoo at {section['size']}x{section['size']}, scale 1 "
             f"({' vs '.join(names)}, threads {section['threads']}, load at the end "
             f"{section['load_average'][0]:.1f}):"]
    for net, row in section["nets"].items():
        times = ", ".join(f"{e} {row[e]['median_ms']:.0f} ms" for e in names)
        ratio = f" -> {names[0]} {row['speedup']}x faster" if "speedup" in row else ""
        if "cpu_speedup" in row:
            cpu = ", ".join(f"{e} {row[e]['cpu_ms']:.0f} ms" for e in names)
            ratio += f"; CPU time {cpu} -> {row['cpu_speedup']}x"
        lines.append(f"  {net}: map {row['map']}, {row['gflop']} GFLOP: {times}{ratio}, "
                     f"max |dP| {max(row[e]['max_prob_diff'] for e in names):.1e}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zoo", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per engine")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime threads (run with OPENBLAS_NUM_THREADS=N for Caffe)")
    parser.add_argument("--sizes", action="store_true",
                        help="print each net's layers and parameters as JSON, run nothing")
    args = parser.parse_args(argv)
    if args.sizes:
        print(json.dumps({name: net_sizes(name) for name in NETS}, indent=2))
        return 0
    section = zoo_section(args.repeat, threads=args.threads)
    print("\n".join(report_lines(section)))
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
