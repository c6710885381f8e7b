"""Write DynamicQuantizeLinear as primitives (for GPU targets).

On a CPU the op is one kernel that reads its input twice (compiler/lower/quant_dynamic.py); a GPU
needs the range as block reductions over many threads, which the primitive reductions get. The
primitives compute the same float32 arithmetic (ir/ops/quant.py): max(ReduceMax(x), 0),
min(ReduceMin(x), 0), scale = (hi - lo) / 255 or 1, zero point = Round(Clip(-lo / scale, 0, 255)),
y = Cast(Clip(Round(x / scale) + zero point, 0, 255)).
"""

from __future__ import annotations

import numpy as np
from aic.ir import DType, Graph

from .rewrite import Rewriter, each_scope


def _split(graph: Graph) -> bool:
    rw = Rewriter(graph)
    for node in list(graph.nodes):
        if node.op != "DynamicQuantizeLinear" or not rw.alive(node):
            continue
        x = node.inputs[0]
        zero, one, top = (rw.const(np.float32(v)) for v in (0, 1, 255))
        hi = rw.op("Max", rw.op("ReduceMax", x, keepdims=0), zero)
        lo = rw.op("Min", rw.op("ReduceMin", x, keepdims=0), zero)
        scale = rw.op("Where", rw.op("Equal", hi, lo), one, rw.op("Div", rw.op("Sub", hi, lo), top))
        zp = rw.op("Round", rw.op("Clip", rw.op("Div", rw.op("Neg", lo), scale), zero, top))
        q = rw.op("Clip", rw.op("Add", rw.op("Round", rw.op("Div", x, scale)), zp), zero, top)
        y, scale_out, zp_out = node.outputs
        rw.replace(y, rw.op("Cast", q, to=DType.uint8.onnx), "split-dynamic-quantize")
        rw.replace(scale_out, scale, "split-dynamic-quantize")
        rw.replace(zp_out, rw.op("Cast", zp, to=DType.uint8.onnx), "split-dynamic-quantize")
    return rw.finish()


split_dynamic_quantize = each_scope(_split)
