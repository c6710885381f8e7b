"""TensorFlow models for the frontend's tests; skipped where TensorFlow is not installed."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow", reason="the TensorFlow frontend's tests need TensorFlow (pip install aic[tf])")
