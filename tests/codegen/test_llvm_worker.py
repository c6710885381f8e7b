"""The LLVM helper process: errors come back as CodegenError, and a helper that died is replaced."""

from __future__ import annotations

import pytest
from aic.codegen import llvm_worker
from aic.codegen.llvm_types import CodegenError
from aic.codegen.target import Target

IR = """
define void @aic_entry(ptr %a, ptr %b, ptr %c, ptr %d) {
  ret void
}
"""


def test_invalid_ir_is_a_codegen_error():
    with pytest.raises(CodegenError, match="generated LLVM IR is invalid"):
        llvm_worker.assemble("define nonsense", Target.parse("llvm"), 2)


def test_a_dead_helper_is_replaced():
    target = Target.parse("llvm")
    obj, optimized = llvm_worker.assemble(IR, target, 2)
    assert obj[:4] == b"\x7fELF" and "aic_entry" in optimized
    helper = llvm_worker._HELPER.proc
    assert helper is not None
    helper.kill()
    helper.wait()
    obj, _ = llvm_worker.assemble(IR, target, 2)
    assert obj[:4] == b"\x7fELF" and llvm_worker._HELPER.proc is not helper
