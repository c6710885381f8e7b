"""The int8 dot-product intrinsics `dot4`, `dot2`, `dotw` and `dot4sat` (loop IR `Call(fn, (acc, a, b))`) -> LLVM IR.

Each lane of `a` holds uint8 values and the same lane of `b` int8 values (4 per int32 lane for
dot4, 2 per int16 lane for dot2); the result is the int32 acc plus the sum of their products,
wrapping. Rendered as:
- dot4 with AVX-512 VNNI (`+avx512vnni`; with `+avx512vl` or `+avxvnni` for 8 or 4 lanes):
  one `vpdpbusd`;
- dot2 on x86 with 8 lanes (AVX2): the bytes widened to int16 (exact: |u8 * s8| < 2^15) and one
  `vpmaddwd` (products summed in pairs into int32), added to acc;
- elsewhere: widened to int32, multiplied and summed in plain LLVM IR.
`dotw` takes int32 lanes of two int16 values (bytes widened beforehand): one `vpmaddwd` on AVX2 / AVX-512BW.
`dot4sat` is dot4 with the two pair sums of each lane saturated to int16 first: `vpmaddubsw` then
`vpmaddwd` by ones (AVX2, AVX-512BW), elsewhere widened, clamped and summed in plain LLVM IR.
All renderings of one intrinsic give the same bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from .llvm_types import I8, I16, I32, lane_mask, lanes_of, vec

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


_PMADDWD = {8: ("llvm.x86.avx2.pmadd.wd", "avx2"), 16: ("llvm.x86.avx512.pmaddw.d.512", "avx512bw")}
_PMADDUBSW = {8: ("llvm.x86.avx2.pmadd.ub.sw", "avx2"), 16: ("llvm.x86.avx512.pmaddubs.w.512", "avx512bw")}


def emit_byte_dot(em: ExprEmitter, fn: str, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    n, bld, features = lanes_of(acc), em.builder, em.ctx.features
    if fn == "dotw":
        return _word_dot(em, acc, a, b)
    if fn == "dot4sat":
        return _saturating_dot(em, acc, a, b)
    per = 4 if fn == "dot4" else 2  # bytes per lane
    ua, sb = bld.bitcast(a, vec(I8, per * n)), bld.bitcast(b, vec(I8, per * n))
    if fn == "dot4" and has_vnni(features, n):
        return em.intrinsic(_VNNI[n][0], acc.type, [acc, ua, sb])
    if fn == "dot2" and n == 8 and "avx2" in features:
        words = vec(I16, 16)
        pairs = em.intrinsic("llvm.x86.avx2.pmadd.wd", vec(I32, 8), [bld.zext(ua, words), bld.sext(sb, words)])
        return bld.add(acc, pairs)
    wide = vec(I32, per * n)
    return _add_groups(bld, acc, bld.mul(bld.zext(ua, wide), bld.sext(sb, wide)), per)


def _word_dot(em: ExprEmitter, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    """acc + the products of the int16 halves of a and b summed per lane: one `vpmaddwd` on x86."""
    n, bld = lanes_of(acc), em.builder
    wa, wb = bld.bitcast(a, vec(I16, 2 * n)), bld.bitcast(b, vec(I16, 2 * n))
    if n in _PMADDWD and _PMADDWD[n][1] in em.ctx.features:
        return bld.add(acc, em.intrinsic(_PMADDWD[n][0], acc.type, [wa, wb]))
    wide = vec(I32, 2 * n)
    return _add_groups(bld, acc, bld.mul(bld.sext(wa, wide), bld.sext(wb, wide)), 2)


def _saturating_dot(em: ExprEmitter, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    """acc + per int32 lane the two int16-saturated pair sums of uint8 bytes of a times int8 bytes of b."""
    n, bld = lanes_of(acc), em.builder
    ua, sb = bld.bitcast(a, vec(I8, 4 * n)), bld.bitcast(b, vec(I8, 4 * n))
    if n in _PMADDUBSW and _PMADDUBSW[n][1] in em.ctx.features:
        words = vec(I16, 2 * n)
        pairs = em.intrinsic(_PMADDUBSW[n][0], words, [ua, sb])
        ones = ir.Constant(words, [ir.Constant(I16, 1)] * (2 * n))
        return bld.add(acc, em.intrinsic(_PMADDWD[n][0], acc.type, [pairs, ones]))
    wide = vec(I32, 4 * n)
    products = bld.mul(bld.zext(ua, wide), bld.sext(sb, wide))
    pairs = _add_groups(bld, ir.Constant(vec(I32, 2 * n), None), products, 2)
    low, high = ir.Constant(pairs.type, [ir.Constant(I32, -(2**15))] * (2 * n)), ir.Constant(
        pairs.type, [ir.Constant(I32, 2**15 - 1)] * (2 * n))
    pairs = bld.select(bld.icmp_signed("<", pairs, low), low, pairs)
    pairs = bld.select(bld.icmp_signed(">", pairs, high), high, pairs)
    return _add_groups(bld, acc, pairs, 2)


def _add_groups(bld: ir.IRBuilder, acc: ir.Value, products: ir.Value, per: int) -> ir.Value:
    """acc plus the sums of `per` consecutive int32 products per lane of acc."""
    n, total = lanes_of(acc), acc
    for q in range(per):
        if n == 1:
            part = bld.extract_element(products, ir.Constant(I32, q))
        else:
            part = bld.shuffle_vector(products, ir.Constant(products.type, ir.Undefined),
                                      lane_mask(range(q, per * n, per)))
        total = bld.add(total, part)
    return total
