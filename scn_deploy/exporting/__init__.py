"""Turning model files into deployment artifacts (ONNX; TensorRT and int8 build on it)."""
