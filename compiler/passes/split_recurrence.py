"""Split whole-sequence recurrent ops into one step op per time step (for GPU targets).

A bidirectional LSTM, GRU or RNN layer converts to one LSTMStep/GRUStep/RNNStep with ``whole`` = 1: on a
CPU its kernel runs each direction's steps on one thread, with no barrier between steps. A GPU needs
every step's blocks of hidden units in parallel, so there the op becomes the step chain again: step k
reads step k-1's state, and the steps' states [N, D, B, H] are stacked into the whole op's [D, S, N, B, H].
"""

from __future__ import annotations

from aic.ir import Graph

from .rewrite import Rewriter, each_scope

STEP_OPS = ("LSTMStep", "GRUStep", "RNNStep")


def _split(graph: Graph) -> bool:
    rw = Rewriter(graph)
    for node in list(graph.nodes):
        if node.op not in STEP_OPS or not node.attrs.get("whole", 0) or not rw.alive(node):
            continue
        xw, state, r, *extra = node.inputs
        steps = xw.type.shape[0]
        attrs = {k: v for k, v in node.attrs.items() if k not in ("whole", "step")}
        states = []
        for k in range(steps):
            state = rw.op(node.op, xw, state, r, *extra, step=k, **attrs)
            states.append(rw.op("Unsqueeze", state, rw.const([0])))
        stacked = rw.op("Concat", *states, axis=0) if steps > 1 else states[0]  # [S, N, D, B, H]
        rw.replace(node.outputs[0], rw.op("Transpose", stacked, perm=[2, 0, 1, 3, 4]), "split-recurrence")
    return rw.finish()


split_recurrence = each_scope(_split)
