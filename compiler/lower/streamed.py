"""Products that stream their weights: each packed weight panel is read from memory once.

When the left operand stays in cache (few rows: MLPs, decoders, short sequences; `streams_weights`), every
row tile of a panel runs on one K block before the next (partial sums carried in a stack buffer), the
left operand is packed in row strips (`pack_rows`), and each strip prefetches its share of the next
block (`prefetch_share`). Blocks fit L1 when the rows are few; from 48 rows the block is the whole
panel, read from L2; a larger left operand is taken in K spans that fit L2, the partial sums of all
panels kept between spans (`stream_plan`).
"""

from __future__ import annotations

from collections.abc import Callable

from aic.ir.dtypes import DType
from aic.ir.loop import Allocate, Bin, Buffer, Expr, For, Load, Prefetch, Seq, Stmt, Store
from aic.ir.loop_tools import binop, seq
from aic.ir.schedule import Parallel

from .core import LowerCtx, clamp, idx
from .micro_kernel import LINE_FLOATS, Carry, tiles
from .reduce import stack
from .sizes import Size, Sym

K_BLOCK_BYTES = 16 << 10  # a K block of one weight panel: half the L1 data cache
L2_BYTES = 512 << 10  # the per-core L2 that `stream_plan` sizes for (AMD Zen 3; many x86 cores have more)
STREAMED_A_BYTES = 512 << 10  # the largest left operand kept whole while the weight panels stream
STREAMED_ROWS = 256  # products of at most this many rows (sequences, batches) keep FEW_ROWS_A_BYTES of `a` whole
FEW_ROWS_A_BYTES = 2 << 20  # (read from L3 past the L2)
SPAN_A_BYTES = 256 << 10  # the columns of a larger left operand kept in L2 at once (a K span)
MIN_SPAN = 256  # shorter spans store and reload the partial sums of all panels too often
MIN_PREFETCH_GROUP = 8  # fewer k steps per prefetched line keep a prefetch every step (`prefetch_steps`)
WEIGHTS_AHEAD = 2048  # floats (8 KiB): how far ahead of a k step `weights_ahead` prefetches packed weights
UNBLOCKED_ROWS = 48  # from this many rows, panels are not cut into L1-sized K blocks when L2 holds them


def streamed_panels(ctx: LowerCtx, m: int, n: Size, k: int, rows: int, width: int, plan: tuple[int, int],
                    part: Callable[..., Stmt], parallel: bool = False) -> Stmt:
    """The column panels of a weight-streaming product (`stream_plan`): per K span, per panel, per K
    block, every row strip; `part(m0, nrows, n0, cols, k0, klen, carry)` is one tile. The partial sums of
    a panel pass between its blocks in a stack buffer, or between spans in a buffer of all panels (whose
    loop, inside the span loop, is then the parallel one; so it is with `parallel`, inside a row block's loop)."""
    span, kc = plan
    spans, blocks = k // span, span // kc
    shared = ctx.scratch(DType.float32, -(-int(n) // width) * width * m) if spans > 1 else None

    def column(ks: Expr, n0: Expr, cols: int) -> Stmt:
        if spans * blocks == 1:
            return tiles(ctx, m, rows, lambda m0, nrows: part(m0, nrows, n0, cols, idx(0), k), "mo")
        sums = shared if shared is not None else stack(ctx, DType.float32, m * width, "sums")

        def block(kb: Expr) -> Stmt:
            loops = [(v, extent) for v, extent in ((ks, spans), (kb, blocks)) if extent > 1]
            first = _all([Bin("eq", v, idx(0)) for v, _ in loops])
            last = _all([Bin("eq", v, idx(extent - 1)) for v, extent in loops])
            k0 = binop("add", binop("mul", ks, idx(span)), binop("mul", kb, idx(kc)))

            def strip(m0: Expr, nrows: int) -> Stmt:
                def at(r: Expr, c: Expr) -> Expr:
                    row = binop("add", binop("mul", binop("add", m0, r), idx(width)), c)
                    return row if shared is None else binop("add", binop("mul", n0, idx(m)), row)

                return part(m0, nrows, n0, cols, k0, kc, Carry(sums, at, first, last))

            return tiles(ctx, m, rows, strip, "mo")

        loop = ctx.loop(blocks, block, "kb")
        return loop if shared is not None else Allocate(sums, loop)

    def span_panels(ks: Expr) -> Stmt:
        panels = tiles(ctx, n, width, lambda n0, cols: column(ks, n0, cols), "no")
        loops = [panels] if isinstance(panels, For) else panels.stmts if isinstance(panels, Seq) else []
        whole = next((s for s in loops if isinstance(s, For)), None)  # the whole panels; the tail follows
        if whole is not None and (spans > 1 or parallel):
            ctx.hints.append(Parallel(whole.var.name))
        return panels

    return span_panels(idx(0)) if spans == 1 else ctx.loop(spans, span_panels, "ks")


def _all(tests: list[Expr]) -> Expr:
    return tests[0] if len(tests) == 1 else binop("and", tests[0], _all(tests[1:]))


def prefetch_ahead(load: Expr, ahead: int) -> Stmt | None:
    """Prefetch the element `ahead` elements after a load from a packed panel (the next panel of an int8
    product): the weights come from memory while the row tiles of this panel compute."""
    if not isinstance(load, Load) or isinstance(load.buffer.size, Sym):
        return None
    return Prefetch(load.buffer, clamp(binop("add", load.index, idx(ahead)), 0, int(load.buffer.size) - 1))


def weights_ahead(first: Callable[[list[Expr]], list[Expr]], floats: int) -> tuple[Callable[[list[Expr]], Stmt], int]:
    """(prefetch, every) for `micro_kernel`: at k step kk, a prefetch WEIGHTS_AHEAD floats after each load of
    first(kk) (the first weight that the step reads from each packed panel it uses, `floats` from each), one per
    cache line of a step, shared by `every` steps (a 6-row panel moves on by a line every 2.7 steps). Weights are
    packed in the order the kernels read them, so this is one stream 8 KiB ahead of the reads. Without it, a
    core's stream prefetcher starting anew on each 4 KiB page kept ResNet-50's weight-bound kernels (Winograd on
    14x14 maps, 1x1 and 3x3 on 7x7 and 14x14 maps) 15-35% slower in the model than with their weights in cache;
    with it, they take about that time (BENCHMARKS.md, "Weights prefetched 8 KiB ahead")."""
    every = 1
    while 2 * every * floats <= LINE_FLOATS:
        every *= 2

    def prefetch(kk: list[Expr]) -> Stmt:
        lines = range(WEIGHTS_AHEAD, WEIGHTS_AHEAD + floats, LINE_FLOATS)
        return seq(*(prefetch_ahead(load, ahead) for load in first(kk) for ahead in lines))

    return prefetch, every


def prefetch_share(start: Expr, ahead: int, klen: int, width: int, strip: Expr, strips: int,
                   kk: Expr, clamped: bool = True) -> Stmt | None:
    """Row strip `strip`'s share of the prefetch of the block `ahead` elements after `start` (the first
    element of a block of `klen` k steps of a packed panel of `width` columns; `ahead`: the next block, or
    the same block of the next panel): each of the `strips` strips of the block asks for 1/strips of it
    over its own k steps, one line every few steps (at k step `kk`, element (strip * klen + kk) * width /
    strips of the block).
    The index is clamped to the buffer unless `clamped` is False, where the packed weights end on a spare
    panel (`pack_columns`) that keeps it in bounds: the clamp was 6 of the ~20 integer and load operations a k
    step beside 12 FMAs, and GPT-2's 64-row products ran 10-15% faster without it in loaded minutes (within
    3% either way in quiet ones; BENCHMARKS.md, "Transformer products at one and two threads").
    Asked for by the first strip alone, the next block kept about one new line in flight per k step of
    that strip, more than a core tracks over a memory latency, and the strip stalled (BENCHMARKS.md,
    "fp32 micro-kernel efficiency")."""
    if not isinstance(start, Load) or isinstance(start.buffer.size, Sym):
        return None
    step = binop("add", binop("mul", strip, idx(klen)), kk)
    share = binop("div", binop("mul", step, idx(width)), idx(strips))
    at = binop("add", binop("add", start.index, idx(ahead)), share)
    return Prefetch(start.buffer, clamp(at, 0, int(start.buffer.size) - 1) if clamped else at)


def prefetch_steps(width: int, strips: int, klen: int) -> int:
    """How many k steps share one prefetch of a strip's share (`prefetch_share`): the share moves on by
    width / strips floats a step, so a 64-byte line lasts 16 * strips / width steps; the largest power of
    two within that which divides `klen`, if at least MIN_PREFETCH_GROUP, else 1 (a prefetch every step).
    One prefetch per line instead of per step: the Mixer's 196 x 512 x 2048 products (32 steps a line) 7%
    faster, BERT's 128-row ones (16) 1%, GPT-2's 64-row ones (8, once the prefetch was unclamped) 2%;
    BENCHMARKS.md, "Transformer products at one and two threads"."""
    every = 1
    while 2 * every * width <= 16 * strips and klen % (2 * every) == 0:
        every *= 2
    return every if every >= MIN_PREFETCH_GROUP else 1


def pack_rows(ctx: LowerCtx, m: int, k: int, rows: int, a: Callable[[Expr, Expr], Expr]) -> tuple[Buffer, Stmt]:
    """`a` (m x k) copied to strips of `rows` rows, each k-major ([ceil(m/rows), k, rows], the last strip
    short): a row tile reads one contiguous run per k instead of one float of `rows` rows k apart, which
    share few L1 sets when k*4 bytes is a multiple of a large power of two (1024, 3072, 4096)."""
    buf = ctx.scratch(DType.float32, -(-m // rows) * rows * k)

    def strip(m0: Expr, nrows: int) -> Stmt:
        def copy(i: list[Expr]) -> Stmt:
            at = binop("add", binop("add", binop("mul", m0, idx(k)), binop("mul", i[0], idx(rows))), i[1])
            return Store(buf, at, a(binop("add", m0, i[1]), i[0]))

        return ctx.loops((k, nrows), copy, "pa")

    return buf, tiles(ctx, m, rows, strip, "ps")


def streams_weights(m: Size, k: Size) -> bool:
    """Whether all of `a` (m x k, both known) stays in cache while every weight panel passes once (few rows: MLPs,
    decoders, short sequences; `stream_plan`): STREAMED_A_BYTES (L2), or FEW_ROWS_A_BYTES with at most
    STREAMED_ROWS rows. 2 MiB is more than the L2 of the cores measured (1 MiB on Zen 4 and 5): past it each panel
    reads the packed `a` again from L3, in order (16 FLOPs a byte with 32-column panels), which cost less than
    cutting K into spans whose partial sums pass between them: BERT's 128 x 3072 feed-forward outputs 4% faster,
    the kernels of BERT, GPT-2 and T5 1-4% in sum (docs/decisions.md, "Sequences of up to 256 rows stream
    whole"). More rows keep their own orders (rows outer: ConvNeXt's channel MLPs; row blocks: Whisper's)."""
    if isinstance(m, Sym) or isinstance(k, Sym):
        return False
    return 4 * m * k <= (FEW_ROWS_A_BYTES if m <= STREAMED_ROWS else STREAMED_A_BYTES)


def row_block(m: Size, k: Size, rows: int, width: int) -> int | None:
    """The rows of a block of `a` (a multiple of `rows`) for a product whose `a` (m x k) is over
    STREAMED_A_BYTES and has no K-span plan (`stream_plan` is None: many rows, Whisper's 500 x 384 and
    500 x 1536): the product runs block by block, each block's rows packed in strips that stay in L2 while
    every weight panel passes over them once, so that `a` is read from L2, not once per panel from L3.
    The blocks are as even as whole strips allow, and small enough that a block and two panels fit L2 (not
    cut in K blocks, `stream_plan`) where that leaves UNBLOCKED_ROWS; None when `a` fits whole."""
    if isinstance(m, Sym) or isinstance(k, Sym) or streams_weights(m, k):
        return None
    most = STREAMED_A_BYTES // (4 * int(k))
    if L2_BYTES // (4 * int(k)) - 2 * width >= UNBLOCKED_ROWS:
        most = min(most, L2_BYTES // (4 * int(k)) - 2 * width)
    blocks = -(-int(m) // most)
    per_block = -(-int(m) // blocks)
    block = -(-per_block // rows) * rows
    while block > rows and block > most:
        block -= rows
    return block if block <= most else None


def stream_plan(m: Size, k: Size, width: int) -> tuple[int, int] | None:
    """(span, block): how a product with packed weights and known m, k streams them, or None for the plain
    panel loop. `a` is packed in row strips (`pack_rows`), `span` columns of it stay in L2 while every
    weight panel passes over them once, each panel's span in K blocks of `block` (== span: not cut), every
    row strip on one block before the next, the next block prefetched (`prefetch_share`). The span is K
    when `a` fits L2 (`streams_weights`), else the longest divisor of K (at least MIN_SPAN) whose columns of
    `a` fit SPAN_A_BYTES (GPT-2's and BERT's K = 3072 products), the partial sums kept between spans; more
    rows keep the plain loop. Spans of few rows are cut into blocks that fit L1 (`k_block`); from
    UNBLOCKED_ROWS rows, when `a`'s span and two panel spans fit L2, they are not: each strip's start on
    a block and its carried sums cost more than reading the panel from L2 (BENCHMARKS.md, "fp32
    micro-kernel efficiency")."""
    if isinstance(m, Sym) or isinstance(k, Sym):
        return None
    m, k = int(m), int(k)
    span = k if streams_weights(m, k) else next(
        (d for d in range(min(k, SPAN_A_BYTES // (4 * m)), MIN_SPAN - 1, -1) if k % d == 0), None)
    if span is None:
        return None
    whole = m >= UNBLOCKED_ROWS and 4 * span * (m + 2 * width) <= L2_BYTES
    return span, span if whole else k_block(span, width) or span


def k_block(k: int, width: int) -> int | None:
    """The K block of a column panel: the longest divisor of k (at least 64) whose slice of the panel fits
    K_BLOCK_BYTES, so that every row tile reads it from L1; None when the whole panel fits (or no divisor)."""
    most = K_BLOCK_BYTES // (4 * width)
    if k <= most:
        return None
    return next((d for d in range(most, 63, -1) if k % d == 0), None)


