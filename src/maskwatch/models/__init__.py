"""Networks and their export to ONNX; the only package besides `training` that imports torch."""
