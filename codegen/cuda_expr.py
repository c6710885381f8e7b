"""Loop-IR expressions as CUDA C expressions (scalars only; see codegen/cuda_prelude.py).

Registers: float16 and bfloat16 values are floats (rounded on casts and stores, as the
LLVM target does), bool is `bool`, every other type its C type. Memory: float16 and
bfloat16 are `uint16_t` bit patterns and bool is `uint8_t`.
"""

from __future__ import annotations

import math

from aic.ir.dtypes import DType
from aic.ir.loop import (
    CMP_OPS,
    Bin,
    Broadcast,
    Call,
    Cast,
    Const,
    Expr,
    Load,
    Ramp,
    Select,
    Unary,
    Var,
)

from .errors import CodegenError

_C = {
    DType.float32: "float", DType.float64: "double", DType.float16: "float", DType.bfloat16: "float",
    DType.bool: "bool", DType.int8: "int8_t", DType.int16: "int16_t", DType.int32: "int32_t", DType.int64: "int64_t",
    DType.uint8: "uint8_t", DType.uint16: "uint16_t", DType.uint32: "uint32_t", DType.uint64: "uint64_t",
}  # fmt: skip
_STORAGE = {**_C, DType.float16: "uint16_t", DType.bfloat16: "uint16_t", DType.bool: "uint8_t"}
_OPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "eq": "==", "ne": "!=", "lt": "<", "le": "<=",
        "gt": ">", "ge": ">=", "and": "&", "or": "|", "xor": "^"}  # fmt: skip
_F32_FN = {"exp": "expf", "log": "logf", "sqrt": "sqrtf", "tanh": "tanhf", "erf": "erff", "sin": "sinf",
           "cos": "cosf", "tan": "tanf", "asin": "asinf", "acos": "acosf", "atan": "atanf", "sinh": "sinhf",
           "cosh": "coshf", "asinh": "asinhf", "acosh": "acoshf", "atanh": "atanhf", "abs": "fabsf",
           "floor": "floorf", "ceil": "ceilf", "round": "rintf", "trunc": "truncf", "pow": "powf",
           "fma": "fmaf"}  # fmt: skip


def reg_type(dt: DType) -> str:
    """The C type of a value of `dt` in registers."""
    return _C[dt]


def storage_type(dt: DType) -> str:
    """The C type of an element of `dt` in memory."""
    return _STORAGE[dt]


def _int_bits(dt: DType) -> int:
    return dt.itemsize * 8


def literal(value: int | float | bool, dt: DType) -> str:
    if dt is DType.bool:
        return "true" if value else "false"
    if dt.is_float:
        v = float(value)
        wide = dt is DType.float64
        if math.isnan(v):
            return "__longlong_as_double(0x7ff8000000000000LL)" if wide else "__int_as_float(0x7fc00000)"
        if math.isinf(v):
            sign = "-" if v < 0 else ""
            return f"{sign}__longlong_as_double(0x7ff0000000000000LL)" if wide else f"{sign}__int_as_float(0x7f800000)"
        return f"{v.hex()}" if wide else f"{v.hex()}f"
    v = int(value)
    if dt.is_signed:
        if dt is DType.int64 and v == -(1 << 63):
            return "(-9223372036854775807LL - 1)"
        return f"(({_C[dt]}){v}LL)" if dt is not DType.int64 else f"{v}LL"
    return f"(({_C[dt]}){v}ULL)"


class ExprRenderer:
    """Renders expressions of one kernel; `names` maps variables and buffers to C names."""

    def __init__(self, names: dict[object, str], kernel: str) -> None:
        self.names = names
        self.kernel = kernel

    def error(self, what: str) -> CodegenError:
        return CodegenError(f"kernel {self.kernel}: {what}")

    def __call__(self, e: Expr) -> str:
        if e.lanes != 1:
            raise self.error(f"vector expression {e!r} (the cuda target renders scalar code)")
        match e:
            case Ramp(base=base) | Broadcast(value=base):  # one lane: the base value
                return self(base)
            case Var():
                return self.names[e]
            case Const(value=v, dtype=dt):
                return literal(v, dt)
            case Load(buffer=buf, index=i):
                return self.load(buf.dtype, f"{self.names[buf]}[{self(i)}]")
            case Bin():
                return self.binary(e)
            case Unary(op=op, a=a):
                if op == "neg":
                    return f"(-{self(a)})"
                if a.dtype is DType.bool:
                    return f"(!{self(a)})"
                if a.dtype.is_float:
                    raise self.error(f"unary {op} on {a.dtype.name}")
                return f"(({_C[a.dtype]})~{self(a)})"
            case Select(cond=c, a=a, b=b):
                return f"({self(c)} ? {self(a)} : {self(b)})"
            case Cast(dtype=dt, a=a):
                return self.cast(a.dtype, dt, self(a))
            case Call(fn=fn, args=args):
                return self.call(fn, args)
        raise self.error(f"unknown expression {e!r}")

    @staticmethod
    def load(dt: DType, text: str) -> str:
        if dt is DType.float16:
            return f"aic_h2f({text})"
        if dt is DType.bfloat16:
            return f"aic_bf2f({text})"
        if dt is DType.bool:
            return f"({text} != 0)"
        return text

    @staticmethod
    def store_value(dt: DType, text: str) -> str:
        if dt is DType.float16:
            return f"aic_f2h({text})"
        if dt is DType.bfloat16:
            return f"aic_f2bf({text})"
        if dt is DType.bool:
            return f"(uint8_t)({text})"
        return text

    def binary(self, e: Bin) -> str:
        dt, op = e.a.dtype, e.op
        a, b = self(e.a), self(e.b)
        if op in CMP_OPS:
            return f"({a} {_OPS[op]} {b})"
        if dt.is_float:
            wide = dt is DType.float64
            if op in ("add", "sub", "mul", "div"):
                return f"({a} {_OPS[op]} {b})"
            if op == "mod":
                return f"{'fmod' if wide else 'fmodf'}({a}, {b})"
            if op in ("min", "max"):
                return f"aic_f{op}{'' if wide else 'f'}({a}, {b})"
            raise self.error(f"{op} is not defined on {dt.name}")
        t = _C[dt]
        if dt is DType.bool:
            if op in ("and", "or", "xor", "min", "max"):
                return f"(bool)({a} {dict(min='&', max='|').get(op, _OPS.get(op))} {b})"
            raise self.error(f"{op} is not defined on bool")
        if op in ("add", "sub", "mul"):
            if dt is DType.int64:
                return f"({a} {_OPS[op]} {b})"
            return f"(({t})((uint64_t){a} {_OPS[op]} (uint64_t){b}))"  # wraps, as LLVM's add/sub/mul
        if op in ("and", "or", "xor"):
            return f"(({t})({a} {_OPS[op]} {b}))"
        if op in ("div", "mod"):
            if isinstance(e.b, Const) and int(e.b.value) > 0:
                return f"({a} {'/' if op == 'div' else '%'} {b})"
            return f"aic_{op}<{t}>({a}, {b})"
        if op in ("min", "max"):
            return f"aic_i{op}<{t}>({a}, {b})"
        if op in ("shl", "shr"):
            return f"aic_{op}<{t}>({a}, {b})"
        raise self.error(f"unknown binary op {op}")

    def cast(self, src: DType, dst: DType, x: str) -> str:
        if src is dst:
            return x
        if dst is DType.bool:
            return f"({x} != 0)"
        if src is DType.bool:
            return f"({_C[dst]})({x})"
        if not src.is_float and not dst.is_float:
            return f"({_C[dst]})({x})"
        if not src.is_float:  # int -> float (via float for the 16-bit floats, as on the CPU)
            return self.round_to(dst, f"({_C[dst]})({x})")
        if not dst.is_float:
            bits = _int_bits(dst)
            lo, hi = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1)) if dst.is_signed else (0.0, 2.0**bits)
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dst.is_signed else (0, (1 << bits) - 1)
            return f"aic_f2i<{_C[dst]}>((double)({x}), {lo!r}, {hi!r}, {literal(low, dst)}, {literal(high, dst)})"
        if src is DType.float64:
            if dst is DType.float16:
                return f"aic_f64_to_f16({x})"
            return self.round_to(dst, f"(float)({x})")
        if dst is DType.float64:
            return f"(double)({x})"
        return self.round_to(dst, x)

    @staticmethod
    def round_to(dt: DType, x: str) -> str:
        if dt is DType.float16:
            return f"aic_round_f16({x})"
        if dt is DType.bfloat16:
            return f"aic_round_bf16({x})"
        return x

    def call(self, fn: str, args: tuple[Expr, ...]) -> str:
        dt = args[0].dtype
        xs = ", ".join(self(a) for a in args)
        if not dt.is_float:
            if fn == "abs":
                return f"aic_iabs<{_C[dt]}>({xs})"
            raise self.error(f"{fn} on {dt.name}")
        if fn == "exp_nonpos":
            f64 = dt is DType.float64
            return f"{'exp' if f64 else 'expf'}({'aic_fmin' if f64 else 'aic_fminf'}({xs}, 0))"  # NaN stays NaN
        if fn == "sigmoid":
            one = "1.0" if dt is DType.float64 else "1.0f"
            return f"({one} / ({one} + {'exp' if dt is DType.float64 else 'expf'}(-({xs}))))"
        name = _F32_FN[fn]
        if dt is DType.float64:
            name = {"fabsf": "fabs", "rintf": "rint"}.get(name, name[:-1])
        return f"{name}({xs})"
