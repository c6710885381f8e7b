"""ONNX frontend: ModelProto -> aic Graph."""

from .loader import FrontendError, load_model

__all__ = ["FrontendError", "load_model"]
