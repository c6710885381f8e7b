"""How loop IR dtypes live in LLVM: storage types in memory, value types in registers.

bool is i8 in memory and i1 in registers. float16 and bfloat16 are stored as
half / i16 and computed in float32: a load widens them, a store or a cast to
them rounds to nearest even.
"""

from __future__ import annotations

import numpy as np
from aic.ir.dtypes import DType
from llvmlite import ir

from .errors import CodegenError  # noqa: F401  (re-exported: the LLVM modules raise it)

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()

_INT_BITS = {
    DType.int8: 8,
    DType.int16: 16,
    DType.int32: 32,
    DType.int64: 64,
    DType.uint8: 8,
    DType.uint16: 16,
    DType.uint32: 32,
    DType.uint64: 64,
}


def vec(t: ir.Type, lanes: int) -> ir.Type:
    return t if lanes == 1 else ir.VectorType(t, lanes)


def lanes_of(v: ir.Value) -> int:
    return v.type.count if isinstance(v.type, ir.VectorType) else 1


def elem_type(t: ir.Type) -> ir.Type:
    return t.element if isinstance(t, ir.VectorType) else t


def mangle(t: ir.Type) -> str:
    """Type suffix of an overloaded intrinsic name (f32, v8f32, v8p0, i64)."""
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{mangle(t.element)}"
    if isinstance(t, ir.PointerType):
        return "p0"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    return {"half": "f16", "float": "f32", "double": "f64"}[str(t)]


def storage_type(dt: DType, lanes: int = 1) -> ir.Type:
    """The type of an element in memory."""
    if dt is DType.bool:
        t = I8
    elif dt is DType.float16:
        t = F16
    elif dt is DType.bfloat16:
        t = I16
    elif dt is DType.float32:
        t = F32
    elif dt is DType.float64:
        t = F64
    else:
        t = ir.IntType(_INT_BITS[dt])
    return vec(t, lanes)


def value_type(dt: DType, lanes: int = 1) -> ir.Type:
    """The type of a value in registers."""
    if dt is DType.bool:
        t = I1
    elif dt in (DType.float16, DType.bfloat16, DType.float32):
        t = F32
    elif dt is DType.float64:
        t = F64
    else:
        t = ir.IntType(_INT_BITS[dt])
    return vec(t, lanes)


def int_bits(dt: DType) -> int:
    return 1 if dt is DType.bool else _INT_BITS[dt]


def constant(dt: DType, value: int | float | bool, lanes: int = 1) -> ir.Constant:
    """A register constant; floats are first rounded to the dtype's precision."""
    if dt is DType.bool:
        c = int(bool(value))
    elif dt.is_float:
        c = float(np.asarray(value).astype(dt.numpy).astype(np.float64))
    else:
        bits = _INT_BITS[dt]
        c = int(value) & ((1 << bits) - 1)
        c = c - (1 << bits) if c >= 1 << (bits - 1) else c  # two's complement, as LLVM prints it
    t = value_type(dt)
    return ir.Constant(vec(t, lanes), [c] * lanes if lanes > 1 else c)


def splat(b: ir.IRBuilder, v: ir.Value, lanes: int) -> ir.Value:
    """Broadcast a scalar to `lanes` lanes (vectors pass through)."""
    if lanes == 1 or isinstance(v.type, ir.VectorType):
        return v
    if isinstance(v, ir.Constant):
        return ir.Constant(ir.VectorType(v.type, lanes), [v.constant] * lanes)
    vt = ir.VectorType(v.type, lanes)
    one = b.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def lane_mask(order: range | list[int]) -> ir.Constant:
    """A shufflevector mask: lane i of the result is lane order[i] of the operands (the second's lanes follow the
    first's)."""
    return ir.Constant(ir.VectorType(I32, len(order)), [ir.Constant(I32, i) for i in order])


def concat(b: ir.IRBuilder, parts: list[ir.Value]) -> ir.Value:
    """The lanes of `parts` one vector after another, joined pairwise (an odd one out joins the next round; a
    narrower second operand is repeated to the first's width for the shuffle)."""
    while len(parts) > 1:
        joined = []
        for first, second in zip(parts[::2], parts[1::2]):
            wide, narrow = first.type.count, second.type.count
            if narrow < wide:
                second = b.shuffle_vector(second, second, lane_mask([i % narrow for i in range(wide)]))
            joined.append(b.shuffle_vector(first, second, lane_mask(range(wide + narrow))))
        parts = joined + parts[len(parts) - len(parts) % 2:]
    return parts[0]


def gep(b: ir.IRBuilder, base: ir.Value, indices: list[ir.Value], etype: ir.Type, name: str = "") -> ir.Value:
    """getelementptr typed as an opaque pointer (a vector of them for vector indices)."""
    p = b.gep(base, indices, inbounds=True, name=name, source_etype=etype)
    p.type = vec(PTR, max(lanes_of(i) for i in indices))  # llvmlite would give the base pointer's type
    return p


def to_value(b: ir.IRBuilder, dt: DType, v: ir.Value) -> ir.Value:
    """A loaded storage value -> its register form."""
    n = lanes_of(v)
    if dt is DType.bool:
        return b.icmp_unsigned("!=", v, ir.Constant(v.type, None))
    if dt is DType.float16:
        return b.fpext(v, vec(F32, n))
    if dt is DType.bfloat16:
        wide = b.shl(b.zext(v, vec(I32, n)), splat(b, ir.Constant(I32, 16), n))
        return b.bitcast(wide, vec(F32, n))
    return v


def to_storage(b: ir.IRBuilder, dt: DType, v: ir.Value) -> ir.Value:
    """A register value -> what is written to memory."""
    n = lanes_of(v)
    if dt is DType.bool:
        return b.zext(v, vec(I8, n))
    if dt is DType.float16:
        return b.fptrunc(v, vec(F16, n))
    if dt is DType.bfloat16:
        return b.trunc(b.lshr(_bf16_round_bits(b, v), splat(b, ir.Constant(I32, 16), n)), vec(I16, n))
    return v


def round_to(b: ir.IRBuilder, dt: DType, v: ir.Value) -> ir.Value:
    """Round a float32 register value to float16 / bfloat16 precision (identity otherwise)."""
    n = lanes_of(v)
    if dt is DType.float16:
        return b.fpext(b.fptrunc(v, vec(F16, n)), vec(F32, n))
    if dt is DType.bfloat16:
        mask = splat(b, ir.Constant(I32, 0xFFFF0000 - (1 << 32)), n)
        return b.bitcast(b.and_(_bf16_round_bits(b, v), mask), vec(F32, n))
    return v


def _bf16_round_bits(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """float32 bits rounded to nearest even at bit 16; NaNs stay (quiet) NaNs."""
    n = lanes_of(v)
    c = lambda x: splat(b, ir.Constant(I32, x), n)  # noqa: E731
    bits = b.bitcast(v, vec(I32, n))
    odd = b.and_(b.lshr(bits, c(16)), c(1))
    rounded = b.add(bits, b.add(odd, c(0x7FFF)))
    quiet = b.or_(bits, c(0x00400000))
    return b.select(b.fcmp_unordered("uno", v, v), quiet, rounded)
