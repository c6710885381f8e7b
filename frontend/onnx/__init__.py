"""ONNX frontend: ModelProto -> aic Graph."""

from .errors import FrontendError
from .loader import load_model

__all__ = ["FrontendError", "load_model"]
