"""Lowering of data-movement ops: each output element is an input element at a remapped
index (Transpose, Slice, Concat, Split, Expand, Tile, Pad, DepthToSpace, SpaceToDepth,
ReverseSequence, Trilu). Reshape-like ops are aliases: the same bytes, no kernel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aic.ir.graph import Node
from aic.ir.loop import INDEX, Bin, Cast, Expr, Stmt
from aic.ir.loop_tools import binop, select, seq

from .core import (
    ComputeTensor,
    LowerCtx,
    Tensor,
    broadcast_index,
    clamp,
    const,
    idx,
    node_error,
    static_ints,
    static_sizes,
)
from .sizes import Size, Sym, SymbolicSizeError, bound, bounds, shape_of, size_min
from .table import Emit, alias, compute, lowering_of

alias("Reshape", "Squeeze", "Unsqueeze", "Flatten")


def _out(node: Node, i: int = 0) -> tuple[tuple[int, ...], object]:
    t = node.outputs[i].type
    return shape_of(t), t.dtype


def _view(node: Node, x: Tensor, fn, i: int = 0) -> Tensor:
    """Output `i` as x read at `fn(output index)`."""
    shape, dtype = _out(node, i)
    return ComputeTensor(shape, dtype, lambda index: x.at(fn(index)))


def _input(node: Node, ins: list[Tensor | None], i: int = 0) -> Tensor:
    t = ins[i] if i < len(ins) else None
    if t is None:
        raise node_error(node, f"input {i} is required")
    return t


@compute("Transpose", cheap=True)
def _transpose(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    perm = node.attrs.get("perm") or list(range(x.rank))[::-1]

    def src(index: list[Expr]) -> list[Expr]:
        out = [idx(0)] * x.rank
        for k, p in enumerate(perm):
            out[p] = index[k]
        return out

    return [_view(node, x, src)]


@compute("Expand", cheap=True)
def _expand(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    return [_view(node, x, lambda index: broadcast_index(index, x.shape))]


@compute("Tile", cheap=True)
def _tile(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    return [_view(node, x, lambda index: [i if d == o else binop("mod", i, idx(d))
                                          for i, d, o in zip(index, x.shape, _out(node)[0])])]


def slice_params(node: Node, shape: tuple[Size, ...]) -> list[tuple[Size, int]]:
    """Per axis of the input, (first element, step) of an ONNX Slice."""
    starts = static_sizes(node, 1, "starts") or []
    static_sizes(node, 2, "ends")  # the output shape has them
    axes = static_ints(node, 3, "axes")
    steps = static_ints(node, 4, "steps")
    axes = list(range(len(starts))) if axes is None else [a % len(shape) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    params: list[tuple[Size, int]] = [(0, 1)] * len(shape)
    for a, s, st in zip(axes, starts, steps):
        dim = shape[a]
        if isinstance(s, Sym) or isinstance(dim, Sym):  # run-time sizes: a start that is a size (>= 0)
            if bounds(s)[0] < 0 or st <= 0:
                raise SymbolicSizeError(f"a slice from {s} with step {st} along a run-time dim")
            params[a] = (size_min(s, dim), st)
            continue
        s = s + dim if s < 0 else s
        s = min(max(s, 0), dim) if st > 0 else min(max(s, 0), dim - 1)
        params[a] = (s, st)
    return params


@compute("Slice", cheap=True)
def _slice(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    params = slice_params(node, x.shape)
    return [_view(node, x, lambda index: [binop("add", idx(s), binop("mul", i, idx(st)))
                                          for i, (s, st) in zip(index, params)])]


def _axis(node: Node, rank: int) -> int:
    return node.attrs.get("axis", 0) % rank


@compute("Split", cheap=True)
def _split(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    axis = _axis(node, x.rank)
    outs, offset = [], 0
    for i in range(len(node.outputs)):
        o = offset
        outs.append(_view(node, x, lambda index, o=o: [binop("add", e, idx(o)) if k == axis else e
                                                       for k, e in enumerate(index)], i))
        offset += shape_of(node.outputs[i].type)[axis]
    return outs


def _concat_parts(node: Node, ins: list[Tensor | None]) -> tuple[int, list[tuple[Size, Tensor]]]:
    parts = [t for t in ins if t is not None]
    axis = _axis(node, parts[0].rank)
    offsets, at = [], 0
    for t in parts:
        offsets.append((at, t))
        at += t.shape[axis]
    return axis, [(o, t) for o, t in offsets if bound(t.shape[axis]) > 0]


def _concat_root(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    """As a kernel of its own, Concat copies each input into its slice of the output."""
    axis, parts = _concat_parts(node, ins)

    def copy(o: Size, t: Tensor) -> Stmt:
        def body(index: list[Expr]) -> Stmt:
            out = [binop("add", e, idx(o)) if k == axis else e for k, e in enumerate(index)]
            return emit(0, out, t.at(index))

        return ctx.loops(t.shape, body)

    return seq(*(copy(o, t) for o, t in parts))


@compute("Concat", cheap=True, root=_concat_root)
def _concat(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    axis, parts = _concat_parts(node, ins)
    shape, dtype = _out(node)

    def at(index: list[Expr]) -> Expr:
        def read(o: Size, t: Tensor) -> Expr:
            local = binop("sub", index[axis], idx(o))
            return t.at([clamp(local, 0, t.shape[axis] - 1) if k == axis else e for k, e in enumerate(index)])

        value = read(*parts[-1])
        for (o, t), (nxt, _) in zip(reversed(parts[:-1]), reversed(parts[1:])):
            value = select(Bin("lt", index[axis], idx(nxt)), read(o, t), value)
        return value

    return [ComputeTensor(shape, dtype, at)]


@dataclass(frozen=True)
class Segment:
    """The slab of a Concat's output that one of its inputs fills: `shape`, from `offset` along `axis`."""

    shape: tuple[Size, ...]
    axis: int
    offset: Size

    def place(self, index: list[Expr]) -> list[Expr]:
        """The output index of element `index` of the slab."""
        return [binop("add", e, idx(self.offset)) if k == self.axis else e for k, e in enumerate(index)]


def concat_head(nodes: list[Node], needed: list) -> int | None:
    """Position of the group's one Concat when only elementwise nodes of its shape follow it and every stored value
    is one of theirs (or the Concat's): the kernel can then run one loop nest per Concat input, each reading that
    input directly, instead of choosing among all the inputs at every element (DenseNet's Concat + BN + ReLU)."""
    heads = [i for i, n in enumerate(nodes) if n.op == "Concat"]
    if len(heads) != 1 or heads[0] == len(nodes) - 1:
        return None
    head = heads[0]
    shape = shape_of(nodes[head].outputs[0].type)
    tail = nodes[head + 1 :]
    if any(not lowering_of(n).elementwise or any(shape_of(o.type) != shape for o in n.outputs) for n in tail):
        return None
    produced = {id(o) for n in nodes[head:] for o in n.outputs}
    return head if all(id(v) in produced and shape_of(v.type) == shape for v in needed) else None


def concat_segments(
    node: Node, ins: list[Tensor | None], tensors: dict[int, Tensor], relower: Callable[[], None]
) -> Iterator[Segment]:
    """Per input of Concat `node`: bind its output to that input alone (valid within the input's slab), `relower`
    the nodes that read it, and yield the slab."""
    axis, parts = _concat_parts(node, ins)
    shape, dtype = _out(node)
    for offset, t in parts:
        def at(index: list[Expr], offset: Size = offset, t: Tensor = t) -> Expr:
            return t.at([binop("sub", e, idx(offset)) if k == axis else e for k, e in enumerate(index)])

        tensors[id(node.outputs[0])] = ComputeTensor(shape, dtype, at)
        relower()
        yield Segment(tuple(t.shape), axis, offset)


# ---------------------------------------------------------------- Pad


def _pad_source(mode: str, i: Expr, lo: int, size: int) -> Expr:
    """Source index within a cropped extent [lo, lo + size) for padded coordinate i (relative to lo)."""
    if mode == "edge":
        j = clamp(i, 0, size - 1)
    elif mode == "wrap":
        j = binop("mod", binop("add", binop("mod", i, idx(size)), idx(size)), idx(size))
    elif mode == "reflect" and size > 1:
        neg = Bin("lt", i, idx(0))
        over = Bin("ge", i, idx(size))
        j = select(neg, binop("sub", idx(0), i), select(over, binop("sub", idx(2 * size - 2), i), i))
        j = clamp(j, 0, size - 1)
    else:
        j = clamp(i, 0, size - 1)
    return binop("add", j, idx(lo))


@compute("Pad", cheap=True)
def _pad(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    pads = static_ints(node, 1, "pads") or []
    axes = static_ints(node, 3, "axes")
    axes = list(range(x.rank)) if axes is None else [a % x.rank for a in axes]
    before, after = [0] * x.rank, [0] * x.rank
    for n, a in enumerate(axes):
        before[a], after[a] = pads[n], pads[n + len(axes)]
    mode = node.attrs.get("mode", "constant")
    shape, dtype = _out(node)
    fill = ins[2] if len(ins) > 2 and ins[2] is not None else None

    def at(index: list[Expr]) -> Expr:
        src, inside = [], None
        for k, (i, dim) in enumerate(zip(index, x.shape)):
            lo, hi = max(-before[k], 0), dim - max(-after[k], 0)
            rel = binop("sub", i, idx(max(before[k], 0)))
            if before[k] == 0 and after[k] == 0:
                src.append(i)
                continue
            src.append(_pad_source(mode, rel, lo, hi - lo))
            if mode == "constant" and (before[k] > 0 or after[k] > 0):
                ok = Bin("and", Bin("ge", rel, idx(0)), Bin("lt", rel, idx(hi - lo)))
                inside = ok if inside is None else Bin("and", inside, ok)
        value = x.at(src)
        if inside is None:
            return value
        pad_value = fill.at([idx(0)] * fill.rank) if fill is not None else const(0, dtype)
        return select(inside, value, pad_value)

    return [ComputeTensor(shape, dtype, at)]


# ---------------------------------------------------------------- block moves


@compute("DepthToSpace", cheap=True)
def _depth_to_space(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    bs = node.attrs["blocksize"]
    c_out = _out(node)[0][1]

    def src(index: list[Expr]) -> list[Expr]:
        n, c, h, w = index
        b1, b2 = binop("mod", h, idx(bs)), binop("mod", w, idx(bs))
        if node.attrs.get("mode", "DCR") == "DCR":
            ch = binop("add", binop("add", binop("mul", b1, idx(bs * c_out)), binop("mul", b2, idx(c_out))), c)
        else:
            ch = binop("add", binop("add", binop("mul", c, idx(bs * bs)), binop("mul", b1, idx(bs))), b2)
        return [n, ch, binop("div", h, idx(bs)), binop("div", w, idx(bs))]

    return [_view(node, x, src)]


@compute("SpaceToDepth", cheap=True)
def _space_to_depth(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    bs = node.attrs["blocksize"]
    c_in = x.shape[1]

    def src(index: list[Expr]) -> list[Expr]:
        n, c, h, w = index
        if node.attrs.get("mode", "DCR") == "DCR":  # channel = (b1 * bs + b2) * c_in + ch
            b1 = binop("div", c, idx(bs * c_in))
            b2 = binop("mod", binop("div", c, idx(c_in)), idx(bs))
            ch = binop("mod", c, idx(c_in))
        else:  # CRD: channel = ch * bs * bs + b1 * bs + b2
            b1 = binop("mod", binop("div", c, idx(bs)), idx(bs))
            b2 = binop("mod", c, idx(bs))
            ch = binop("div", c, idx(bs * bs))
        return [n, ch, binop("add", binop("mul", h, idx(bs)), b1), binop("add", binop("mul", w, idx(bs)), b2)]

    return [_view(node, x, src)]


@compute("ReverseSequence")
def _reverse_sequence(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x, lens = _input(node, ins), _input(node, ins, 1)
    batch_axis, time_axis = node.attrs.get("batch_axis", 1), node.attrs.get("time_axis", 0)

    def src(index: list[Expr]) -> list[Expr]:
        n = ctx.let(Cast(INDEX, lens.at([index[batch_axis]])), "len")
        t = index[time_axis]
        rev = clamp(binop("sub", binop("sub", n, idx(1)), t), 0, x.shape[time_axis] - 1)
        out = list(index)
        out[time_axis] = select(Bin("lt", t, n), rev, t)
        return out

    return [_view(node, x, src)]


@compute("Trilu", cheap=True)
def _trilu(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _input(node, ins)
    k_in = ins[1] if len(ins) > 1 else None
    shape, dtype = _out(node)

    def at(index: list[Expr]) -> Expr:
        k = Cast(INDEX, k_in.at([idx(0)] * k_in.rank)) if k_in is not None else idx(0)
        diff = binop("sub", index[-1], index[-2])
        keep = Bin("ge", diff, k) if node.attrs.get("upper", 1) else Bin("le", diff, k)
        return select(keep, x.at(index), const(0, dtype))

    return [ComputeTensor(shape, dtype, at)]
