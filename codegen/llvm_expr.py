"""Loop IR expressions -> LLVM IR values.

An `ExprEmitter` renders expressions inside one LLVM function. Scalars and vectors
mix freely: a binary op between a scalar and a vector broadcasts the scalar, which
is how the body of a vectorized loop becomes vector code (see ir/loop_vectorize.py).
Integer division and shifts are defined for every input (x/0 = 0, x%0 = 0,
INT_MIN/-1 wraps, over-wide shifts give 0 or the sign), so no input crashes the
process; float->int casts saturate (NaN -> 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from aic.ir.dtypes import DType
from aic.ir.loop import (
    CMP_OPS,
    Bin,
    Broadcast,
    Buffer,
    Call,
    Cast,
    Const,
    Expr,
    Interleave,
    Load,
    Ramp,
    Select,
    Unary,
    Var,
)
from aic.ir.loop_tools import coefficient, depends_on, inline_lets
from llvmlite import ir

from .llvm_math import emit_call
from .llvm_types import (
    I1,
    I32,
    CodegenError,
    concat,
    constant,
    gep,
    int_bits,
    lane_mask,
    lanes_of,
    mangle,
    round_to,
    splat,
    storage_type,
    to_storage,
    to_value,
    value_type,
    vec,
)

_FLOAT_BIN = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv", "mod": "frem"}
_INT_BIN = {"add": "add", "sub": "sub", "mul": "mul", "and": "and_", "or": "or_", "xor": "xor"}
_CMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class ModuleContext:
    """One LLVM module being built, with its declared functions."""

    def __init__(self, module: ir.Module, features: tuple[str, ...] = ()) -> None:
        self.module = module
        self.features = frozenset(f[1:] for f in features if f.startswith("+"))  # the target's CPU features
        self._decls: dict[str, ir.Function] = {}
        self._names: set[str] = set()

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        if name not in self._decls:
            self._decls[name] = ir.Function(self.module, ir.FunctionType(ret, args), name)
        return self._decls[name]

    def unique(self, name: str) -> str:
        base, n = name, 0
        while name in self._names:
            n += 1
            name = f"{base}.{n}"
        self._names.add(name)
        return name


@dataclass
class VectorLanes:
    """The vectorized loop being rendered: its var, lane count and scalar start."""

    var: Var
    lanes: int
    base: ir.Value


class ExprEmitter:
    """Renders expressions into one LLVM function."""

    def __init__(self, ctx: ModuleContext, fn: ir.Function, where: str) -> None:
        self.ctx = ctx
        self.fn = fn
        self.where = where  # kernel name, for errors
        self.alloca_builder = ir.IRBuilder(fn.append_basic_block("entry"))
        self.builder = ir.IRBuilder(fn.append_basic_block("body"))
        self.env: dict[Var, ir.Value] = {}
        self.ptrs: dict[Buffer, ir.Value] = {}
        self.mask: ir.Value | None = None
        self.vec: VectorLanes | None = None
        self.lets: dict[Var, Expr] = {}  # Let bindings inside the vectorized loop, for index analysis

    def error(self, message: str) -> CodegenError:
        return CodegenError(f"kernel {self.where}: {message}")

    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        fn = self.ctx.declare(name, ret, [a.type for a in args])
        return self.builder.call(fn, args)

    # ------------------------------------------------------------ dispatch

    def emit(self, e: Expr) -> ir.Value:
        match e:
            case Var():
                if e not in self.env:
                    raise self.error(f"variable {e.name} is used outside its loop or let")
                return self.env[e]
            case Const(value=v, dtype=dt, lanes=n):
                return constant(dt, v, n)
            case Bin():
                return self.binary(e)
            case Unary(op=op, a=a):
                return self.unary(op, a.dtype, self.emit(a))
            case Select(cond=c, a=a, b=b):
                cv, av, bv = self.emit(c), self.emit(a), self.emit(b)
                n = max(lanes_of(cv), lanes_of(av), lanes_of(bv))
                return self.builder.select(splat(self.builder, cv, n), *self.same_lanes(av, bv, n))
            case Cast(dtype=dt, a=a):
                return self.cast(a.dtype, dt, self.emit(a))
            case Load():
                return self.load(e)
            case Call():
                return emit_call(self, e)
            case Ramp(base=base, stride=s, lanes=n):
                steps = ir.Constant(value_type(e.dtype, n), [constant(e.dtype, i * s).constant for i in range(n)])
                add = self.builder.fadd if e.dtype.is_float else self.builder.add
                return add(splat(self.builder, self.emit(base), n), steps)
            case Broadcast(value=v, lanes=n):
                return splat(self.builder, self.emit(v), n)
            case Interleave(parts=parts):
                return self.interleave([splat(self.builder, self.emit(p), p.lanes) for p in parts])
        raise self.error(f"unknown expression {e!r}")

    def interleave(self, parts: list[ir.Value]) -> ir.Value:
        """Vectors of n lanes, lane by lane: concatenated, then one shuffle takes lane j of part p to lane
        j * len(parts) + p."""
        n, count = parts[0].type.count, len(parts)
        whole = concat(self.builder, parts)
        order = [p * n + j for j in range(n) for p in range(count)]
        return self.builder.shuffle_vector(whole, ir.Constant(whole.type, ir.Undefined), lane_mask(order))

    def same_lanes(self, a: ir.Value, b: ir.Value, n: int = 1) -> tuple[ir.Value, ir.Value]:
        n = max(n, lanes_of(a), lanes_of(b))
        return splat(self.builder, a, n), splat(self.builder, b, n)

    # ------------------------------------------------------------ arithmetic

    def binary(self, e: Bin) -> ir.Value:
        dt, op, b = e.a.dtype, e.op, self.builder
        if dt.is_float and op in ("add", "sub"):
            fused = self.contract(e)
            if fused is not None:
                return fused
        x, y = self.same_lanes(self.emit(e.a), self.emit(e.b))
        if op in CMP_OPS:
            if dt.is_float:
                cmp = b.fcmp_unordered if op == "ne" else b.fcmp_ordered
                return cmp(_CMP[op], x, y)
            cmp = b.icmp_signed if dt.is_signed else b.icmp_unsigned
            return cmp(_CMP[op], x, y)
        if dt.is_float:
            if op in _FLOAT_BIN:
                return getattr(b, _FLOAT_BIN[op])(x, y)
            if op in ("min", "max"):  # NaN-propagating, like numpy and ONNX Min/Max
                name = "minimum" if op == "min" else "maximum"
                return self.intrinsic(f"llvm.{name}.{mangle(x.type)}", x.type, [x, y])
            raise self.error(f"{op} is not defined on {dt.name}")
        if op in _INT_BIN:
            return getattr(b, _INT_BIN[op])(x, y)
        if op in ("div", "mod"):
            return self.int_divide(op, dt, x, y)
        if op in ("min", "max"):
            cmp = b.icmp_signed if dt.is_signed else b.icmp_unsigned
            return b.select(cmp("<" if op == "min" else ">", x, y), x, y)
        return self.shift(op, dt, x, y)

    def contract(self, e: Bin) -> ir.Value | None:
        """a*b + c, c + a*b, a*b - c and c - a*b as llvm.fmuladd (fused where the CPU has FMA),
        as C compilers contract within an expression."""
        product, other, negate_product = None, None, False
        if isinstance(e.a, Bin) and e.a.op == "mul":
            product, other = e.a, e.b
        elif isinstance(e.b, Bin) and e.b.op == "mul":
            product, other, negate_product = e.b, e.a, e.op == "sub"
        if product is None:
            return None
        b = self.builder
        p, q, c = self.emit(product.a), self.emit(product.b), self.emit(other)
        n = max(lanes_of(p), lanes_of(q), lanes_of(c))
        p, q, c = (splat(b, v, n) for v in (p, q, c))
        if negate_product:
            p = b.fneg(p)
        elif e.op == "sub":
            c = b.fneg(c)
        return self.intrinsic(f"llvm.fmuladd.{mangle(p.type)}", p.type, [p, q, c])

    def int_divide(self, op: str, dt: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        """Truncating division and remainder, defined for y == 0 (-> 0) and INT_MIN / -1 (wraps)."""
        b, n = self.builder, lanes_of(x)
        zero, one = constant(dt, 0, n), constant(dt, 1, n)
        is_zero = b.icmp_unsigned("==", y, zero)
        bad = is_zero
        if dt.is_signed:
            is_minus_one = b.icmp_signed("==", y, constant(dt, -1, n))
            bad = b.or_(is_zero, is_minus_one)
        safe = b.select(bad, one, y)
        if op == "mod":
            return (b.srem if dt.is_signed else b.urem)(x, safe)  # x % 1 == 0 covers y == 0 and y == -1
        q = (b.sdiv if dt.is_signed else b.udiv)(x, safe)
        q = b.select(is_zero, zero, q)
        return b.select(is_minus_one, b.sub(zero, x), q) if dt.is_signed else q

    def shift(self, op: str, dt: DType, x: ir.Value, y: ir.Value) -> ir.Value:
        """Shifts by >= the bit width give 0 (shl, unsigned shr) or the sign (signed shr)."""
        b, n = self.builder, lanes_of(x)
        width = constant(dt, int_bits(dt), n)
        in_range = b.icmp_unsigned("<", y, width)
        if op == "shl":
            return b.select(in_range, b.shl(x, y), constant(dt, 0, n))
        if op != "shr":
            raise self.error(f"unknown binary op {op}")
        if dt.is_signed:
            return b.ashr(x, b.select(in_range, y, constant(dt, int_bits(dt) - 1, n)))
        return b.select(in_range, b.lshr(x, y), constant(dt, 0, n))

    def unary(self, op: str, dt: DType, x: ir.Value) -> ir.Value:
        b = self.builder
        if op == "neg":
            return b.fneg(x) if dt.is_float else b.neg(x)
        if op == "not" and not dt.is_float:
            return b.not_(x)
        raise self.error(f"unary {op} is not defined on {dt.name}")

    def cast(self, src: DType, dst: DType, x: ir.Value) -> ir.Value:
        b, n = self.builder, lanes_of(x)
        if src is dst:
            return x
        if dst is DType.bool:
            if src.is_float:
                return b.fcmp_unordered("!=", x, ir.Constant(x.type, None))
            return b.icmp_unsigned("!=", x, ir.Constant(x.type, None))
        target = value_type(dst, n)
        if src is DType.bool:
            return b.uitofp(x, target) if dst.is_float else b.zext(x, target)
        if not src.is_float and not dst.is_float:
            have, want = int_bits(src), int_bits(dst)
            if want < have:
                return b.trunc(x, target)
            if want > have:
                return (b.sext if src.is_signed else b.zext)(x, target)
            return x
        if not src.is_float:  # int -> float
            return round_to(b, dst, (b.sitofp if src.is_signed else b.uitofp)(x, target))
        if not dst.is_float:
            return self.float_to_int(dst, x, target)
        if src is DType.float64:
            if dst is DType.float16:
                return b.fpext(b.fptrunc(x, vec(storage_type(dst), n)), target)
            return round_to(b, dst, b.fptrunc(x, target))
        if dst is DType.float64:
            return b.fpext(x, target)
        return round_to(b, dst, x)

    def float_to_int(self, dst: DType, x: ir.Value, target: ir.Type) -> ir.Value:
        """Truncating conversion that saturates at the integer range, NaN -> 0. (Written out
        rather than llvm.fpto*i.sat, which x86 scalarises for vectors.)"""
        b, n = self.builder, lanes_of(x)
        bits = int_bits(dst)
        lo, hi = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1)) if dst.is_signed else (0.0, 2.0**bits)
        ft = x.type
        fc = lambda v: ir.Constant(ft, [v] * n if n > 1 else v)  # noqa: E731
        below, above = b.fcmp_ordered("<", x, fc(lo)), b.fcmp_ordered(">=", x, fc(hi))
        inside = b.select(b.or_(below, above), fc(0.0), b.select(b.fcmp_unordered("uno", x, x), fc(0.0), x))
        r = (b.fptosi if dst.is_signed else b.fptoui)(inside, target)
        low_int, high_int = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dst.is_signed else (0, (1 << bits) - 1)
        r = b.select(below, constant(dst, low_int, n), r)
        return b.select(above, constant(dst, high_int, n), r)

    # ------------------------------------------------------------ memory

    def pointer(self, buf: Buffer) -> ir.Value:
        if buf not in self.ptrs:
            raise self.error(f"buffer {buf.name} is not a parameter or a live allocation")
        return self.ptrs[buf]

    def element_ptr(self, buf: Buffer, index: ir.Value) -> ir.Value:
        return gep(self.builder, self.pointer(buf), [index], storage_type(buf.dtype))

    def emit_at_base(self, e: Expr) -> ir.Value:
        """Render `e` with the vectorized var bound to its first lane."""
        assert self.vec is not None
        saved = self.env[self.vec.var]
        self.env[self.vec.var] = self.vec.base
        try:
            return self.emit(e)
        finally:
            self.env[self.vec.var] = saved

    def access(self, buf: Buffer, index: Expr, lanes: int) -> tuple[str, ir.Value, int]:
        """Classify an access: ("contiguous", scalar index, lanes), ("gather", vector index, lanes)
        or ("scalar", index, 1)."""
        if self.vec is not None and lanes == 1:
            full = inline_lets(index, self.lets)
            if depends_on(full, self.vec.var):
                if coefficient(full, self.vec.var) == 1:
                    return "contiguous", self.emit_at_base(full), self.vec.lanes
                return "gather", self.emit(index), self.vec.lanes
        if isinstance(index, Ramp) and index.stride == 1:
            return "contiguous", self.emit(index.base), index.lanes
        i = self.emit(index)
        if lanes_of(i) > 1:
            return "gather", i, lanes_of(i)
        return ("contiguous", i, lanes) if lanes > 1 else ("scalar", i, 1)

    def mask_for(self, lanes: int) -> ir.Value:
        if self.mask is not None:
            return splat(self.builder, self.mask, lanes)
        return ir.Constant(vec(I1, lanes), [1] * lanes)

    def load(self, e: Load) -> ir.Value:
        buf, b = e.buffer, self.builder
        kind, i, n = self.access(buf, e.index, e.lanes)
        st = storage_type(buf.dtype, n)
        align = buf.dtype.itemsize
        if kind == "scalar" and self.mask is None:
            return to_value(b, buf.dtype, b.load(self.element_ptr(buf, i), typ=st, align=align))
        if kind == "scalar":  # a uniform load under a lane mask: only masked-in lanes may touch memory
            kind, n = "gather", lanes_of(self.mask)
            i = splat(b, i, n)
            st = storage_type(buf.dtype, n)
        zero = ir.Constant(st, None)
        if kind == "contiguous":
            p = self.element_ptr(buf, i)
            if self.mask is None:
                return to_value(b, buf.dtype, b.load(p, typ=st, align=align))
            args = [p, ir.Constant(I32, align), self.mask_for(n), zero]
            return to_value(b, buf.dtype, self.intrinsic(f"llvm.masked.load.{mangle(st)}.p0", st, args))
        ptrs = self.element_ptr(buf, i)
        args = [ptrs, ir.Constant(I32, align), self.mask_for(n), zero]
        return to_value(b, buf.dtype, self.intrinsic(f"llvm.masked.gather.{mangle(st)}.{mangle(ptrs.type)}", st, args))

    def store(self, buf: Buffer, index: Expr, value: Expr) -> None:
        b = self.builder
        v = self.emit(value)
        kind, i, n = self.access(buf, index, value.lanes)
        v = to_storage(b, buf.dtype, splat(b, v, n))
        align = buf.dtype.itemsize
        if kind == "gather":
            ptrs = self.element_ptr(buf, i)
            args = [v, ptrs, ir.Constant(I32, align), self.mask_for(n)]
            self.intrinsic(f"llvm.masked.scatter.{mangle(v.type)}.{mangle(ptrs.type)}", ir.VoidType(), args)
        elif self.mask is not None and n > 1:
            args = [v, self.element_ptr(buf, i), ir.Constant(I32, align), self.mask_for(n)]
            self.intrinsic(f"llvm.masked.store.{mangle(v.type)}.p0", ir.VoidType(), args)
        else:
            b.store(v, self.element_ptr(buf, i), align=align)
