"""bench/zoo.py's full-size nets are the papers' nets: their blob and parameter sizes."""
from __future__ import annotations

import math

import pytest

from bench import zoo
from viewer.caffe import model_io
from viewer.net import netgraph


@pytest.mark.parametrize("name, layers, parameters", [
    ("GoogLeNet", 143, 6_998_552),      # about 7M (Szegedy et al.), without the auxiliary heads
    ("ResNet-50", 229, 25_610_205),     # 25.6M, He et al.; BatchNorm statistics included
])
def test_the_full_size_nets_have_the_papers_sizes(name, layers, parameters):
    param, _ = model_io.parse_prototxt(zoo.NETS[name](), f"{name}.prototxt")
    assert len(param.layer) == layers
    shapes = netgraph.infer_shapes(param)
    assert shapes["prob"] == (1, 1000)
    count = sum(math.prod(s) for l in netgraph.deploy_layers(param) if l.bottom
                for s in netgraph.param_shapes(l, shapes[l.bottom[0]]))
    assert count == parameters
    large = netgraph.infer_shapes(param, {"data": (1, 3, zoo.SIZE, zoo.SIZE)})
    last = [l for l in param.layer if l.type == "Pooling"][-1]
    assert large[last.top[0]][2:] == (8, 8)   # 448 / 32 - 7 + 1 cells a side after surgery
