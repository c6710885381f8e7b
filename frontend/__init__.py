"""Frontends: ONNX and TensorFlow models -> aic graph IR."""
