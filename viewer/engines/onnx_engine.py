"""ONNX Runtime engine: the net as an ONNX graph in memory (`viewer.convert.onnx_graph`), one
session per set of requested blobs.

Height and width are symbolic in the graph, so one session serves every scale. Without its
memory arena, onnxruntime frees each blob after its last reader: `peak_bytes` counts that.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from viewer.caffe.model_io import CaffeNet
from viewer.caffe.proto import caffe_pb2
from viewer.convert.onnx_graph import to_onnx
from viewer.engines.base import Engine
from viewer.errors import EngineError
from viewer.net import cost, netgraph

# onnxruntime (1.2x on Linux) starts a telemetry client when imported, which must store a
# device id under HOME: with a read-only HOME it prints a coloured "Failed to persist
# telemetry device ID" warning on every command. Every import of onnxruntime is in this
# module, after this line; a user who sets the variable keeps their choice.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# Channels per block of MLAS's NCHWc layout (16 with AVX-512, 8 with AVX2).
CHANNEL_BLOCK = 16


def blocked_layout_pays(net: CaffeNet) -> bool:
    """Whether onnxruntime's NCHWc layout (ORT_ENABLE_ALL) speeds this net up: when nearly all
    of its convolution work has channel counts in whole blocks. GoogLeNet and ResNet-50 ran
    1.15-1.4x faster with it (bench/zoo.py); LeNet, whose 50-channel ip1-conv is most of its
    pass and gets padded to 64, ran 25-30% slower."""
    shapes = netgraph.infer_shapes(net.param)
    total = blocked = 0
    for layer in netgraph.deploy_layers(net.param):
        if layer.type != "Convolution":
            continue
        p = layer.convolution_param
        cin, cout = shapes[layer.bottom[0]][1] // p.group, p.num_output // p.group
        work = math.prod(shapes[layer.top[0]]) * cin * math.prod(netgraph.conv_kernel(p).kernel)
        total += work
        if cin % CHANNEL_BLOCK == 0 and cout % CHANNEL_BLOCK == 0:
            blocked += work
    return total > 0 and blocked >= 0.85 * total


def session_options(threads: int | None = None, blocked: bool = False):
    """ONNX Runtime options tuned for one dense pass at a time on a small machine."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # EXTENDED fuses Conv+ReLU and the like; ALL adds the NCHWc layout rewrite, which pays
    # only on nets whose channels come in whole blocks (`blocked_layout_pays`).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if blocked \
        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    # onnxruntime's default: worker threads spin between operators. On an idle 2-core machine,
    # as a desktop user's is, the tutorial pass takes 67 ms spinning against 75-79 ms
    # sleeping (2.2-2.3x OpenCV instead of 1.95x), GoogLeNet 89 against 102 ms. Only on a
    # machine busy with a dozen other jobs does sleeping win (LeNet 496 against 621 ms at load
    # 15), and there the timing is noisy anyway (bench/README.md, model zoo).
    # Without the arena, a pass on a large photo returns its memory instead of keeping the
    # largest size ever seen (1.3 GB instead of 1.85 GB at 2000x1500), at no cost in speed.
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    return options


def onnx_scratch(layer, shapes: dict[str, netgraph.Shape]) -> int:
    """Elements onnxruntime allocates for a layer beyond its output: a Convolution's im2col
    buffer, and for an LRN within channels its float64 integral image (the padded squares and
    two cumulative sums of them, each twice a float's size) and the four corners read from it."""
    if layer.type == "Convolution":
        outputs, fan_in = cost.im2col_size(layer, shapes)
        return outputs // shapes[layer.top[0]][1] * fan_in
    if layer.type == "LRN":
        n, c, h, w = shapes[layer.bottom[0]]
        if layer.lrn_param.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
            return 2 * n * c * h * w
        k = layer.lrn_param.local_size
        return n * c * (6 * (h + k) * (w + k) + 12 * h * w)
    return 0


class OnnxEngine(Engine):
    """onnxruntime forward pass on the CPU, one cached session per set of requested blobs."""

    name = "onnx"

    def __init__(self, net: CaffeNet, threads: int | None = None) -> None:
        super().__init__(net)
        try:
            import onnx  # noqa: F401  (fail here, not on the first forward)
            import onnxruntime  # noqa: F401
        except ImportError as err:
            raise EngineError(f"engine 'onnx' needs {err.name} (pip install onnx onnxruntime)") \
                from None

        self.threads = threads
        self.blocked = blocked_layout_pays(net)
        self._sessions: dict[tuple[str, ...], object] = {}

    def peak_bytes(self, input_shape: tuple[int, ...], blobs: Sequence[str]) -> int:
        """Without its memory arena (`session_options`) onnxruntime frees each blob after its
        last reader: the most alive at once, with each layer's own scratch (`onnx_scratch`)."""
        return cost.liveness_peak_bytes(self.net, tuple(input_shape), blobs, onnx_scratch)

    def limit_threads(self, threads: int) -> None:
        self.threads = threads
        self._sessions.clear()          # sessions made before keep their thread pools

    def session(self, blobs: Sequence[str]):
        """The session whose outputs are `blobs` (built on first use, then reused)."""
        import onnxruntime as ort

        key = tuple(sorted(blobs))
        if key not in self._sessions:
            model = to_onnx(self.net, key)
            try:
                self._sessions[key] = ort.InferenceSession(
                    model.SerializeToString(), session_options(self.threads, self.blocked),
                    providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime raises its own untyped errors
                raise EngineError(f"onnxruntime cannot load {self.net.source}: {err}") from None
        return self._sessions[key]

    def _forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        session = self.session(blobs)
        names = [o.name for o in session.get_outputs()]
        try:
            outs = session.run(names, {session.get_inputs()[0].name: data})
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise EngineError(f"onnxruntime failed on a {data.shape[3]}x{data.shape[2]} input: "
                              f"{str(err).strip().splitlines()[-1]}") from None
        return dict(zip(names, outs))
