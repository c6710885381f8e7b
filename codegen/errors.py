"""The code generators' error, kept apart from llvmlite so that the cuda target imports no LLVM."""

from __future__ import annotations


class CodegenError(ValueError):
    """The loop IR cannot be rendered for this target."""
