"""The TensorFlow frontend's error: a FrontendError, so callers catch one kind for every frontend."""

from __future__ import annotations

from aic.frontend.onnx.errors import FrontendError


class TFFrontendError(FrontendError):
    """The TensorFlow model cannot be read or converted."""
