"""The `dot4` intrinsic (int8 dot products, loop IR `Call("dot4", (acc, a, b))`) -> LLVM IR.

Each int32 lane of `a` holds 4 uint8 values and each lane of `b` 4 int8 values; the result is
acc + the sum of their 4 products, wrapping. Rendered as:
- AVX-512 VNNI (`+avx512vnni`; with `+avx512vl` or `+avxvnni` for 8 or 4 lanes): one `vpdpbusd`;
- AVX2: bytes widened to int16 (exact: |u8 * s8| < 2^15) and two `vpmaddwd`, on bytes 0-1
  and on bytes 2-3 of every lane (pairs summed into int32), added;
- elsewhere: widened to int32, multiplied and summed in plain LLVM IR.
All three give the same bits: no step saturates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from .llvm_types import I8, I16, I32, lanes_of, vec

if TYPE_CHECKING:
    from .llvm_expr import ExprEmitter

_VNNI = {16: ("llvm.x86.avx512.vpdpbusd.512", {"avx512vnni"}),
         8: ("llvm.x86.avx512.vpdpbusd.256", {"avx512vnni", "avx512vl"}),
         4: ("llvm.x86.avx512.vpdpbusd.128", {"avx512vnni", "avx512vl"})}


def has_vnni(features: frozenset[str], lanes: int) -> bool:
    """Whether `lanes` int32 lanes of dot4 are one `vpdpbusd` on a CPU with `features`."""
    if lanes not in _VNNI:
        return False
    return _VNNI[lanes][1] <= features or (lanes in (4, 8) and "avxvnni" in features)


def emit_dot4(em: ExprEmitter, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    n = lanes_of(acc)
    bld = em.builder
    features = em.ctx.features
    if has_vnni(features, n):
        bytes_t = vec(I8, 4 * n)
        return em.intrinsic(_VNNI[n][0], acc.type, [acc, bld.bitcast(a, bytes_t), bld.bitcast(b, bytes_t)])
    if n == 8 and "avx2" in features:
        return bld.add(acc, _pair_sums(em, a, b))
    wide = vec(I32, 4 * n)
    ua = bld.zext(bld.bitcast(a, vec(I8, 4 * n)), wide)
    sb = bld.sext(bld.bitcast(b, vec(I8, 4 * n)), wide)
    products = bld.mul(ua, sb)
    total = acc
    for q in range(4):
        part = bld.shuffle_vector(products, ir.Constant(wide, ir.Undefined), _indices(range(q, 4 * n, 4)))
        total = bld.add(total, part if n > 1 else bld.extract_element(part, ir.Constant(I32, 0)))
    return total


def _pair_sums(em: ExprEmitter, a: ir.Value, b: ir.Value) -> ir.Value:
    """The 4-product sums of 8 lanes as two `vpmaddwd`: one on bytes 0-1 of every lane, one on
    bytes 2-3, widened to int16 (the shuffles of `b` are shared by every row that reads it)."""
    bld = em.builder
    words_t = vec(I16, 32)
    ua = bld.zext(bld.bitcast(a, vec(I8, 32)), words_t)
    sb = bld.sext(bld.bitcast(b, vec(I8, 32)), words_t)
    total = None
    for first in (0, 2):
        pick = _indices([4 * lane + first + q for lane in range(8) for q in (0, 1)])
        wa = bld.shuffle_vector(ua, ir.Constant(words_t, ir.Undefined), pick)
        wb = bld.shuffle_vector(sb, ir.Constant(words_t, ir.Undefined), pick)
        part = em.intrinsic("llvm.x86.avx2.pmadd.wd", vec(I32, 8), [wa, wb])
        total = part if total is None else bld.add(total, part)
    return total


def _indices(values: range | list[int]) -> ir.Constant:
    return ir.Constant(vec(I32, len(values)), [ir.Constant(I32, v) for v in values])
