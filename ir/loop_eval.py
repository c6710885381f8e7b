"""A small evaluator of loop IR, for testing lowering without a native back end.

A kernel is translated to Python source (one Python loop per `For`, numpy scalars
and arrays for values, so element types round and wrap as they would natively) and
executed over flat numpy arrays. Every load and store is bounds checked, selects
evaluate both sides, and fresh memory is filled with garbage (NaN for floats), so
lowering bugs surface as errors or NaNs. It is slow: keep shapes tiny.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from .loop import (
    INDEX,
    Allocate,
    Barrier,
    Bin,
    Broadcast,
    Buffer,
    Call,
    Cast,
    Const,
    Expr,
    For,
    If,
    Interleave,
    Kernel,
    Let,
    Load,
    Prefetch,
    Program,
    ProgramBuffer,
    Ramp,
    Select,
    Seq,
    Stmt,
    Store,
    Unary,
    Var,
)


class LoopEvalError(RuntimeError):
    pass


def _check(buf: np.ndarray, i, n: int, name: str) -> int:
    i = int(i)
    if i < 0 or i + n > buf.size:
        raise LoopEvalError(f"access {name}[{i}:{i + n}] out of bounds (size {buf.size})")
    return i


def _ld(buf: np.ndarray, i, n: int, name: str):
    if np.ndim(i):  # a gather: one index per lane
        if np.any(i < 0) or np.any(i >= buf.size):
            raise LoopEvalError(f"gather from {name} at {i} out of bounds (size {buf.size})")
        return buf[i]
    i = _check(buf, i, n, name)
    return buf[i] if n == 1 else buf[i : i + n].copy()


def _st(buf: np.ndarray, i, n: int, value, name: str) -> None:
    i = _check(buf, i, n, name)
    value = np.asarray(value)
    if value.dtype != buf.dtype:
        raise LoopEvalError(f"store of {value.dtype} into {name} of {buf.dtype}")
    if n == 1:
        buf[i] = value
    else:
        buf[i : i + n] = value


def _c_div(a, b):
    if np.any(np.asarray(b) == 0):
        raise LoopEvalError("integer division by zero")
    return (a - np.fmod(a, b)) // b


def _c_mod(a, b):
    if np.any(np.asarray(b) == 0):
        raise LoopEvalError("integer modulo by zero")
    return np.fmod(a, b)


def _cast(dtype: np.dtype):
    def cast(a):
        return np.asarray(a).astype(dtype)[()]

    return cast


def _not(a):
    a = np.asarray(a)
    return (np.logical_not(a) if a.dtype == np.bool_ else np.invert(a))[()]


def _erf(a):
    return np.vectorize(math.erf, otypes=[np.asarray(a).dtype])(a)[()]


def _alloc(dtype: np.dtype, size: int) -> np.ndarray:
    if dtype.kind == "f":
        return np.full(size, np.nan, dtype)
    return np.frombuffer(np.full(size * dtype.itemsize, 0xA5, np.uint8).tobytes(), dtype).copy()


def _byte_dot(lane: type) -> Callable:
    """acc + the sum of the uint8 bytes of each `lane`-typed lane of a times the int8 bytes of b (int32, wrapping)."""
    size = np.dtype(lane).itemsize

    def dot(acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        acc, a, b = np.broadcast_arrays(np.asarray(acc, np.int32), np.asarray(a, lane), np.asarray(b, lane))
        ua = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(-1, size).astype(np.int64)
        sb = np.ascontiguousarray(b).reshape(-1).view(np.int8).reshape(-1, size).astype(np.int64)
        total = acc.reshape(-1).astype(np.int64) + (ua * sb).sum(axis=1)
        return total.astype(np.int32).reshape(acc.shape)[()]

    return dot


def _saturating_byte_dot(acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """acc + the two pair sums of uint8 bytes of a times int8 bytes of b per int32 lane, each saturated to
    int16 (bytes 0+1 and 2+3; `vpmaddubsw`), summed into int32 (wrapping)."""
    acc, a, b = np.broadcast_arrays(np.asarray(acc, np.int32), np.asarray(a, np.int32), np.asarray(b, np.int32))
    ua = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(-1, 2, 2).astype(np.int64)
    sb = np.ascontiguousarray(b).reshape(-1).view(np.int8).reshape(-1, 2, 2).astype(np.int64)
    pairs = np.clip((ua * sb).sum(axis=2), -(2**15), 2**15 - 1)
    total = acc.reshape(-1).astype(np.int64) + pairs.sum(axis=1)
    return total.astype(np.int32).reshape(acc.shape)[()]


def _word_dot(acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """acc + the sum of the products of the two int16 halves of each int32 lane of a and b (wrapping)."""
    acc, a, b = np.broadcast_arrays(np.asarray(acc, np.int32), np.asarray(a, np.int32), np.asarray(b, np.int32))
    wa = np.ascontiguousarray(a).reshape(-1).view(np.int16).reshape(-1, 2).astype(np.int64)
    wb = np.ascontiguousarray(b).reshape(-1).view(np.int16).reshape(-1, 2).astype(np.int64)
    total = acc.reshape(-1).astype(np.int64) + (wa * wb).sum(axis=1)
    return total.astype(np.int32).reshape(acc.shape)[()]


_CALLS: dict[str, Callable] = {
    "exp": np.exp,
    "exp_nonpos": lambda a: np.exp(np.minimum(a, 0)),
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "log": np.log,
    "sqrt": np.sqrt,
    "tanh": np.tanh,
    "erf": _erf,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "abs": np.abs,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.rint,
    "trunc": np.trunc,
    "pow": np.power,
    "fma": lambda a, b, c: a * b + c,
    "dot4": _byte_dot(np.int32),
    "dot2": _byte_dot(np.int16),
    "dotw": _word_dot,
    "dot4sat": _saturating_byte_dot,
}

_PY_OPS = {"add": "+", "sub": "-", "mul": "*", "and": "&", "or": "|", "xor": "^"}
_PY_CMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class _Translator:
    """Loop IR -> Python source of one function `kernel(*buffers)`."""

    def __init__(self) -> None:
        self.consts: dict[str, object] = {}
        self.names: dict[int, str] = {}

    def name(self, obj: Var | Buffer) -> str:
        key = id(obj)
        if key not in self.names:
            prefix = "b" if isinstance(obj, Buffer) else "v"
            clean = "".join(c if c.isalnum() else "_" for c in obj.name)
            self.names[key] = f"{prefix}{len(self.names)}_{clean}"
        return self.names[key]

    def const(self, value: object) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def expr(self, e: Expr) -> str:
        match e:
            case Var():
                return self.name(e)
            case Const(value=v, dtype=dt, lanes=n):
                if dt == INDEX and n == 1 and not isinstance(v, bool):
                    return repr(int(v))
                scalar = dt.numpy.type(v)
                return self.const(scalar if n == 1 else np.full(n, scalar))
            case Bin(op=op, a=a, b=b):
                return self.bin(op, a, b)
            case Unary(op="neg", a=a):
                return f"(-{self.expr(a)})"
            case Unary(op="not", a=a):
                return f"_not({self.expr(a)})"
            case Select(cond=c, a=a, b=b):
                return f"_np.where({self.expr(c)}, {self.expr(a)}, {self.expr(b)})[()]"
            case Cast(dtype=dt, a=a):
                return f"{self.const(_cast(dt.numpy))}({self.expr(a)})"
            case Load(buffer=buf, index=i, lanes=n):
                return f"_ld({self.name(buf)}, {self.expr(i)}, {n}, {buf.name!r})"
            case Call(fn=fn, args=args):
                return f"{self.const(_CALLS[fn])}({', '.join(self.expr(a) for a in args)})"
            case Ramp(base=b, stride=s, lanes=n):
                return f"({self.expr(b)} + {self.const(np.arange(n, dtype=np.int64) * s)})"
            case Broadcast(value=v, lanes=n):
                return f"_np.repeat(_np.asarray({self.expr(v)}), {n})"
            case Interleave(parts=parts):
                return f"_np.stack([{', '.join(self.expr(p) for p in parts)}], axis=-1).reshape(-1)"
        raise TypeError(f"unknown expression {e!r}")

    def bin(self, op: str, a: Expr, b: Expr) -> str:
        x, y = self.expr(a), self.expr(b)
        if op in _PY_OPS:
            return f"({x} {_PY_OPS[op]} {y})"
        if op in _PY_CMP:
            return f"_np.asarray({x} {_PY_CMP[op]} {y})[()]"
        is_float = a.dtype.is_float
        match op:
            case "div":
                return f"({x} / {y})" if is_float else f"_c_div({x}, {y})"
            case "mod":
                return f"_np.fmod({x}, {y})" if is_float else f"_c_mod({x}, {y})"
            case "min":
                return f"_np.minimum({x}, {y})"
            case "max":
                return f"_np.maximum({x}, {y})"
            case "shl":
                return f"_np.left_shift({x}, {y})"
            case "shr":
                return f"_np.right_shift({x}, {y})"
        raise TypeError(f"unknown binary op {op}")

    def stmt(self, s: Stmt, ind: str, out: list[str]) -> None:
        match s:
            case For(var=v, extent=ext, body=body, start=start):
                lo = self.expr(start)
                out.append(f"{ind}for {self.name(v)} in range(int({lo}), int({lo}) + int({self.expr(ext)})):")
                self.stmt(body, ind + "  ", out)
            case Store(buffer=buf, index=i, value=val):
                out.append(f"{ind}_st({self.name(buf)}, {self.expr(i)}, {val.lanes}, {self.expr(val)}, {buf.name!r})")
            case Let(var=v, value=val, body=body):
                out.append(f"{ind}{self.name(v)} = {self.expr(val)}")
                self.stmt(body, ind, out)
            case Allocate(buffer=buf, body=body):
                size = int(buf.size)
                out.append(f"{ind}{self.name(buf)} = _alloc({self.const(buf.dtype.numpy)}, {size})")
                self.stmt(body, ind, out)
            case If(cond=c, then=t, orelse=o):
                out.append(f"{ind}if {self.expr(c)}:")
                self.stmt(t, ind + "  ", out)
                if o is not None:
                    out.append(f"{ind}else:")
                    self.stmt(o, ind + "  ", out)
            case Seq(stmts=stmts):
                for x in stmts:
                    self.stmt(x, ind, out)
                if not stmts:
                    out.append(f"{ind}pass")
            case Barrier() | Prefetch():
                out.append(f"{ind}pass")
            case _:
                raise TypeError(f"unknown statement {s!r}")


def compile_kernel(kernel: Kernel) -> Callable[..., None]:
    """A Python function taking one flat numpy array per kernel parameter."""
    tr = _Translator()
    params = [tr.name(p) for p in kernel.params]
    lines = [f"def kernel({', '.join(params)}):"]
    tr.stmt(kernel.body, "  ", lines)
    lines.append("  return None")
    env = {
        "_np": np,
        "_ld": _ld,
        "_st": _st,
        "_c_div": _c_div,
        "_c_mod": _c_mod,
        "_not": _not,
        "_alloc": _alloc,
        **tr.consts,
    }
    exec(compile("\n".join(lines), f"<kernel {kernel.name}>", "exec"), env)
    return env["kernel"]


def run_kernel(kernel: Kernel, arrays: list[np.ndarray]) -> None:
    """Run `kernel` over flat arrays (one per parameter, in order), in place."""
    for param, array in zip(kernel.params, arrays, strict=True):
        if array.dtype != param.dtype.numpy or array.ndim != 1:
            raise LoopEvalError(f"parameter {param!r} got {array.dtype}{list(array.shape)}")
    with np.errstate(all="ignore"):
        compile_kernel(kernel)(*arrays)


def run_program(program: Program, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate a whole program: arena and weights laid out at their planned byte offsets."""
    arena = np.frombuffer(np.full(program.arena_bytes + 64, 0xFF, np.uint8).tobytes(), np.uint8).copy()
    views: dict[int, np.ndarray] = {}
    for b in program.inputs:
        if b.name not in feeds:
            raise LoopEvalError(f"missing input {b.name}")
        views[id(b)] = np.ascontiguousarray(feeds[b.name], b.dtype.numpy).reshape(-1).copy()
    for b in program.outputs:
        views[id(b)] = _alloc(b.dtype.numpy, int(np.prod(b.shape, dtype=np.int64)))
    for b in program.weights:
        views[id(b)] = np.ascontiguousarray(b.data, b.dtype.numpy).reshape(-1)
    compiled = {id(k): compile_kernel(k) for k in program.kernels}
    for call in program.calls:
        args = []
        for b, param in zip(call.args, call.kernel.params, strict=True):
            if b.kind == "arena":
                nbytes = int(np.prod(b.shape, dtype=np.int64)) * b.dtype.itemsize
                array = arena[b.offset : b.offset + nbytes]
            else:
                array = views[id(b)]
            args.append(array.view(param.dtype.numpy))  # buffers are bytes: a parameter may reinterpret them
        with np.errstate(all="ignore"):
            compiled[id(call.kernel)](*args)
    return [_trimmed(views[id(b)], b, arena) for b in program.outputs]


def _trimmed(flat: np.ndarray, b: ProgramBuffer, arena: np.ndarray) -> np.ndarray:
    """An output in its actual shape: data-dependent dims read from their arena slots."""
    shape = list(b.shape)
    for dim, (_, offset) in b.dynamic.items():
        shape[dim] = int(arena[offset : offset + 8].view(np.int64)[0])
    return flat[: int(np.prod(shape, dtype=np.int64))].reshape(shape)

