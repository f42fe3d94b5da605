"""maskwatch: find every face in an image or video and say whether it wears a mask, wears it wrongly, or none."""

from maskwatch.data import Dataset, load_dataset
from maskwatch.data.images import read_image
from maskwatch.errors import MaskwatchError
from maskwatch.version import __version__


def __getattr__(name: str):
    # The detector loads onnxruntime, and the subpackages (video, serve, ...) their own libraries: each is
    # imported when first asked for, so `maskwatch.video.watch` works after a bare `import maskwatch`.
    import importlib
    import importlib.util

    if name == "Detector":
        from maskwatch.detector import Detector

        return Detector
    if name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "Detector"])


__all__ = ["Dataset", "Detector", "MaskwatchError", "__version__", "load_dataset", "read_image"]
