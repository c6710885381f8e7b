"""Compilation targets: what the code is generated for.

A target string is ``"llvm"`` (the host CPU), ``"llvm -mtriple=aarch64-linux-gnu
-mcpu=neoverse-n1 -mattr=+neon"``, or ``"cuda"`` / ``"cuda -arch=sm_80"``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import cache

from .cpu_check import check_cpu_target, cpu_features


@dataclass(frozen=True)
class Target:
    kind: str  # "llvm" | "cuda"
    triple: str = ""
    cpu: str = ""
    features: tuple[str, ...] = ()  # LLVM feature flags, e.g. ("+avx2", "+fma")
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_host(self) -> bool:
        return self.kind == "llvm" and self.triple == host_triple() and self.cpu == host_cpu()

    @property
    def vector_bits(self) -> int:
        """Widest native float vector register, in bits."""
        if self.kind == "cuda":
            return 8  # scalar code: one lane of every type (the cuda codegen renders no vectors)
        feats = set(self.features)
        if "+avx512f" in feats:
            return 512
        if "+avx" in feats or "+avx2" in feats:
            return 256
        return 128

    def lanes(self, itemsize: int) -> int:
        """Vector lanes for elements of `itemsize` bytes (AVX2 float32: 8)."""
        return max(1, self.vector_bits // (8 * itemsize))

    @property
    def cuda_archs(self) -> tuple[str, ...]:
        """The GPU architectures a cuda target compiles cubins for."""
        return tuple(a for a in self.cpu.split(",") if a)

    @property
    def feature_string(self) -> str:
        return ",".join(self.features)

    def __str__(self) -> str:
        if self.kind == "cuda":
            return f"cuda -arch={self.cpu}" + (" -fp32-exact" if "fp32-exact" in self.options else "")
        return f"llvm -mtriple={self.triple} -mcpu={self.cpu}"

    @staticmethod
    def parse(text: str | Target | None) -> Target:
        if isinstance(text, Target):
            return text
        words = shlex.split(text or "llvm")
        kind, opts = words[0], {}
        for word in words[1:]:
            key, _, value = word.lstrip("-").partition("=")
            opts[key] = value
        if kind == "cuda":  # -arch=sm_80,sm_90 (the default); -fp32-exact: no TF32 tensor-core math
            unknown = set(opts) - {"arch", "fp32-exact"}
            if unknown:
                known = "-arch=sm_XY[,sm_XY], -fp32-exact"
                raise ValueError(f"unknown cuda target option(s) {sorted(unknown)}; known: {known}")
            return Target("cuda", "nvptx64-nvidia-cuda", opts.get("arch") or "sm_80,sm_90", (), opts)
        if kind != "llvm":
            raise ValueError(f"unknown target kind {kind!r}; expected 'llvm' or 'cuda'")
        triple = opts.get("mtriple", host_triple())
        same_machine = triple == host_triple()
        cpu = opts.get("mcpu", host_cpu() if same_machine else "generic")
        check_cpu_target(triple, cpu, ())  # an unknown -mcpu or -mattr name: ValueError
        features = _features(triple, cpu, opts)
        check_cpu_target(triple, cpu, features)
        return Target("llvm", triple, cpu, features, opts)


def _features(triple: str, cpu: str, opts: dict[str, str]) -> tuple[str, ...]:
    """The features recorded for the load-time check: the CPU's own (this machine's, or a
    named x86 CPU's), then -mattr's additions and removals."""
    if cpu == host_cpu() and triple == host_triple():
        base = list(host_features())
    elif "mcpu" in opts and triple.split("-")[0] == host_triple().split("-")[0]:  # names LLVM knows for this arch
        base = list(cpu_features(triple, cpu, tuple(sorted(_llvm().get_host_cpu_features()))))
    else:
        base = []
    for flag in (f for f in opts.get("mattr", "").split(",") if f):
        name = flag.lstrip("+-")
        gone = _implying(name) if flag[0] == "-" else ()
        base = [f for f in base if f[1:] != name and not f[1:].startswith(gone)]
        base.append(flag)  # "-f" stays: LLVM must not enable it for the CPU; the load check reads "+f" only
    return tuple(base)


def _implying(name: str) -> tuple[str, ...]:
    """Prefixes of the x86 features that imply `name`: LLVM clears them with it (-avx2 also turns off
    AVX-512 and AVX-VNNI), so the recorded features, which pick the kernels' instructions, must too."""
    avx512 = ("avx512", "avx10", "evex512")
    above_avx2 = (*avx512, "avxvnni", "avxifma", "avxneconvert")
    return {"avx512f": avx512, "avx2": above_avx2,
            "avx": ("avx2", "fma", "f16c", "vaes", "vpclmulqdq", "xop", "fma4", *above_avx2)}.get(name, ())


@cache
def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


@cache
def host_triple() -> str:
    return _llvm().get_process_triple()


@cache
def host_cpu() -> str:
    return _llvm().get_host_cpu_name()


@cache
def host_features() -> tuple[str, ...]:
    return tuple(sorted(f for f in _llvm().get_host_cpu_features().flatten().split(",") if f.startswith("+")))
