"""The aic benchmark: models, ONNX export, timing against onnxruntime (run as `python -m bench.run`)."""
