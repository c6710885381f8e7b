"""Text form of loop IR kernels and programs."""

from __future__ import annotations

from .loop import (
    Allocate,
    Barrier,
    Bin,
    Broadcast,
    Call,
    Cast,
    Const,
    Expr,
    For,
    ForKind,
    If,
    IfStep,
    Interleave,
    Kernel,
    KernelCall,
    Let,
    Load,
    LoopStep,
    Prefetch,
    Program,
    Ramp,
    Select,
    Seq,
    Step,
    Stmt,
    Store,
    Unary,
    Var,
)

_SYMBOL = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "mod": "%",
    "and": "&",
    "or": "|",
    "xor": "^",
    "shl": "<<",
    "shr": ">>",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


def expr_text(e: Expr) -> str:
    match e:
        case Var(name=name):
            return name
        case Const(value=v, dtype=dt):
            return str(v) if dt.is_int and not isinstance(v, bool) else f"{v}:{dt.short}"
        case Bin(op=op, a=a, b=b) if op in _SYMBOL:
            return f"({expr_text(a)} {_SYMBOL[op]} {expr_text(b)})"
        case Bin(op=op, a=a, b=b):
            return f"{op}({expr_text(a)}, {expr_text(b)})"
        case Unary(op=op, a=a):
            return f"{op}({expr_text(a)})"
        case Select(cond=c, a=a, b=b):
            return f"select({expr_text(c)}, {expr_text(a)}, {expr_text(b)})"
        case Cast(dtype=dt, a=a):
            return f"{dt.short}({expr_text(a)})"
        case Load(buffer=buf, index=i, lanes=n):
            return f"{buf.name}[{expr_text(i)}]" + (f"x{n}" if n > 1 else "")
        case Call(fn=fn, args=args):
            return f"{fn}({', '.join(expr_text(a) for a in args)})"
        case Ramp(base=b, stride=s, lanes=n):
            return f"ramp({expr_text(b)}, {s}, {n})"
        case Broadcast(value=v, lanes=n):
            return f"broadcast({expr_text(v)}, {n})"
        case Interleave(parts=parts):
            return f"interleave({', '.join(expr_text(p) for p in parts)})"
    raise TypeError(f"unknown expression {e!r}")


def stmt_text(s: Stmt, indent: str = "") -> list[str]:
    match s:
        case For(var=v, extent=ext, body=body, kind=kind, start=start):
            tag = "" if kind is ForKind.SERIAL else f" {kind.value}"
            zero = isinstance(start, Const) and start.value == 0
            bounds = expr_text(ext) if zero else f"{expr_text(start)}..{expr_text(start + ext)}"
            head = f"{indent}for{tag} {v.name} in {bounds}:"
            return [head, *stmt_text(body, indent + "  ")]
        case Store(buffer=buf, index=i, value=val):
            return [f"{indent}{buf.name}[{expr_text(i)}] = {expr_text(val)}"]
        case Let(var=v, value=val, body=body):
            return [f"{indent}let {v.name}: {v.dtype.short} = {expr_text(val)}", *stmt_text(body, indent)]
        case Allocate(buffer=buf, body=body):
            return [f"{indent}alloc {buf.scope.value} {buf!r}", *stmt_text(body, indent)]
        case If(cond=c, then=t, orelse=o):
            lines = [f"{indent}if {expr_text(c)}:", *stmt_text(t, indent + "  ")]
            if o is not None:
                lines += [f"{indent}else:", *stmt_text(o, indent + "  ")]
            return lines
        case Seq(stmts=stmts):
            return [line for st in stmts for line in stmt_text(st, indent)]
        case Barrier():
            return [f"{indent}barrier"]
        case Prefetch(buffer=buf, index=i):
            return [f"{indent}prefetch {buf.name}[{expr_text(i)}]"]
    raise TypeError(f"unknown statement {s!r}")


def kernel_text(k: Kernel) -> str:
    params = ", ".join(repr(p) for p in k.params)
    return "\n".join([f"kernel {k.name}({params}):", *stmt_text(k.body, "  ")])


def program_text(p: Program) -> str:
    lines = [f"program {p.name}  # arena {p.arena_bytes} bytes"]
    for b in p.inputs + p.outputs + p.weights:
        lines.append(f"  {b.kind} {b.name}: {b.dtype.short}{list(b.shape)} @{b.offset}")
    lines += steps_text(p.calls, "  ")
    return "\n".join(lines)


def steps_text(steps: list[Step], indent: str = "") -> list[str]:
    lines = []
    for step in steps:
        match step:
            case KernelCall(kernel=k, args=args):
                lines.append(f"{indent}call {k.name}({', '.join(b.name for b in args)})")
            case IfStep(cond=c, then=t, orelse=o):
                lines += [f"{indent}if {c.name}:", *steps_text(t, indent + "  ")]
                lines += [f"{indent}else:", *steps_text(o, indent + "  ")]
            case LoopStep(counter=i, body=body, trips=n, cond=c):
                limit = "" if n is None else f" < {n if isinstance(n, int) else n.name}"
                guard = "" if c is None else f" while {c.name}"
                lines += [f"{indent}loop {i.name}{limit}{guard}:", *steps_text(body, indent + "  ")]
    return lines
