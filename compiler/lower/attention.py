"""Lowering of SoftmaxAttention: softmax(q @ kt * scale + mask) @ v without storing the scores.

Per batch index, kt and v are first copied to column panels of the tile width ([Sk/W, D, W] and
[Dv/W, Sk, W], zero padded, in a scratch buffer): each tile then streams one contiguous panel
instead of W floats from every row (kt rows of 500 or 1500 floats are not cache-line aligned,
so each row's W floats straddle two lines). Then per block of ROWS query rows:

1. the block's scores q[rows] @ kt, scaled and masked, into a stack buffer [rows, Sk] (the
   contraction's register-tiled micro-kernel, column tiles of 2 vectors); the tile's epilogue also
   keeps each row's running maximum per column of the tile, so no pass over the scores finds it;
2. per row: exp(score - max) in place (`exp_nonpos`: the argument is never positive) and their sum
   in the same pass, then its reciprocal;
3. the block's output exp-scores @ v with the same micro-kernel (Sk deep), each row multiplied
   by its reciprocal sum on the way out, through the epilogue.

The block's scores stay in L1/L2 between the three steps: the Sq x Sk score matrix of the
unfused graph (written by one kernel, read twice by the softmax, once by the second product)
never reaches memory. The batch index (one loop over all batch dims) is the parallel loop.
"""

from __future__ import annotations

from collections.abc import Callable

from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Bin, Buffer, Expr, Load, Stmt, Store
from aic.ir.loop_tools import binop, seq

from .contraction import ROWS, micro_kernel, tiles
from .core import LowerCtx, Tensor, broadcast_index, const, delinear, idx
from .mathx import add, exp_nonpos, fast_max, mul, sub
from .reduce import accumulate, lowest, stack
from .rows import vector_row
from .sizes import shape_of, size_prod
from .table import Emit, anchor


@anchor("SoftmaxAttention", views=True)
def _attention(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    q, kt, v = ins[0], ins[1], ins[2]
    mask = ins[3] if len(ins) > 3 else None
    assert q is not None and kt is not None and v is not None
    out_shape = shape_of(node.outputs[0].type)
    batch = out_shape[:-2]
    sq, depth, keys, dv = q.shape[-2], q.shape[-1], kt.shape[-1], v.shape[-1]
    scale = const(node.attrs["scale"], DType.float32)
    width = 2 * ctx.lanes
    f32 = DType.float32
    key_panels, out_panels = -(-keys // width), -(-dv // width)
    kt_panel, v_panel = depth * width, keys * width  # floats in one panel
    kt_packed = ctx.scratch(f32, size_prod(batch) * key_panels * kt_panel)
    v_packed = ctx.scratch(f32, size_prod(batch) * out_panels * v_panel)

    def panel_start(flat: Expr, count: int, panel: int, n0: Expr) -> Expr:
        """Where the panel of columns n0.. of batch index `flat` starts (`count` panels of `panel` floats)."""
        within = binop("mul", binop("div", n0, idx(width)), idx(panel))
        return binop("add", binop("mul", flat, idx(count * panel)), within)

    def pack(bi: list[Expr], flat: Expr) -> Stmt:
        """kt and v of batch index `bi` to their panels (`flat`: the batch index as one number)."""
        kb, vb = broadcast_index(bi, kt.shape[:-2]), broadcast_index(bi, v.shape[:-2])

        def panels(buf: Buffer, count: int, outer: int, extent: int, read: Callable[[Expr, Expr], Expr]) -> Stmt:
            """buf[flat][p][o][c] = read(o, p * width + c), zero from `extent` on."""
            def panel(n0: Expr, cols: int) -> Stmt:
                def row(o: Expr) -> Stmt:
                    at = binop("add", panel_start(flat, count, outer * width, n0), binop("mul", o, idx(width)))

                    def put(c: Expr) -> Stmt:
                        return Store(buf, binop("add", at, c), read(o, binop("add", n0, c)))

                    def zero(c: Expr) -> Stmt:
                        return Store(buf, binop("add", binop("add", at, idx(cols)), c), const(0, f32))

                    rest = vector_row(ctx, width - cols, zero) if cols < width else None
                    return seq(vector_row(ctx, cols, put), rest)

                return ctx.loop(outer, row, "pk")

            return tiles(ctx, extent, width, panel, "pp")

        return seq(panels(kt_packed, key_panels, depth, keys, lambda o, n: kt.at([*kb, o, n])),
                   panels(v_packed, out_panels, keys, dv, lambda o, n: v.at([*vb, o, n])))

    def block(bi: list[Expr], flat: Expr, m0: Expr, rows: int) -> Stmt:
        scores = stack(ctx, f32, rows * keys, "scores")
        inv = stack(ctx, f32, rows, "inv")
        peaks = stack(ctx, f32, rows * width, "peaks")  # per row, the maximum seen in each column of a tile
        qb = broadcast_index(bi, q.shape[:-2])

        def panel_at(buf: Buffer, count: int, panel: int, n0: Expr, offset: Expr) -> Expr:
            return Load(buf, binop("add", panel_start(flat, count, panel, n0), offset))

        def at(r: Expr, j: Expr) -> Expr:
            return binop("add", binop("mul", r, idx(keys)), j)

        def score(r: Expr, n0: Expr, c: Expr, value: Expr) -> Stmt:
            j = binop("add", n0, c)
            s = mul(value, scale)
            if mask is not None:
                s = add(s, mask.at(broadcast_index([*bi, binop("add", m0, r), j], mask.shape)))
            s = ctx.let(s, "s")
            peak = binop("add", binop("mul", r, idx(width)), c)
            return seq(Store(scores, at(r, j), s), Store(peaks, peak, fast_max(Load(peaks, peak), s)))

        def score_tile(n0: Expr, cols: int) -> Stmt:
            return micro_kernel(
                ctx, [depth], rows, width, cols,
                lambda r, kk: q.at([*qb, binop("add", m0, r), kk[0]]),
                lambda kk, g, c: panel_at(kt_packed, key_panels, kt_panel, n0,
                                          binop("add", binop("mul", kk[0], idx(width)), c)),
                lambda r, g, c, value: score(r, n0, c, value),
            )

        def normalise(r: Expr) -> Stmt:
            def with_max(m: Expr) -> Stmt:
                peak = ctx.let(m, "peak")
                return accumulate(ctx, [None], [keys], lambda i: exp_nonpos(sub(Load(scores, at(r, i[0])), peak)),
                                  const(0, f32), add, lambda s: Store(inv, r, Bin("div", const(1, f32), s)),
                                  keep=scores, keep_from=at(r, idx(0)))

            row_peaks = binop("mul", r, idx(width))
            return accumulate(ctx, [None], [width], lambda i: Load(peaks, binop("add", row_peaks, i[0])),
                              const(lowest(f32), f32), fast_max, with_max)

        def out_tile(n0: Expr, cols: int) -> Stmt:
            return micro_kernel(
                ctx, [keys], rows, width, cols,
                lambda r, kk: Load(scores, at(r, kk[0])),
                lambda kk, g, c: panel_at(v_packed, out_panels, v_panel, n0,
                                          binop("add", binop("mul", kk[0], idx(width)), c)),
                lambda r, g, c, value: emit(0, [*bi, binop("add", m0, r), binop("add", n0, c)],
                                            mul(value, Load(inv, r))),
            )

        lowest_score = vector_row(ctx, rows * width, lambda i: Store(peaks, i, const(lowest(f32), f32)))
        body = seq(lowest_score, tiles(ctx, keys, width, score_tile, "no"), ctx.loop(rows, normalise, "sr"),
                   tiles(ctx, dv, width, out_tile, "vo"))
        return Allocate(scores, Allocate(inv, Allocate(peaks, body)))

    def head(flat: Expr) -> Stmt:
        bi = delinear(flat, batch)
        return seq(pack(bi, flat), tiles(ctx, sq, ROWS, lambda m0, rows: block(bi, flat, m0, rows), "mo"))

    return ctx.loop(size_prod(batch), head, "b")
