"""Batch detection over many images: a local engine and a Ray Data engine over the same per-image function."""
