"""maskwatch: find every face in an image or video and say whether it wears a mask, wears it wrongly, or none."""

import logging
from typing import TYPE_CHECKING

from maskwatch.data import Dataset, load_dataset
from maskwatch.data.images import read_image
from maskwatch.errors import MaskwatchError
from maskwatch.version import __version__

if TYPE_CHECKING:  # (at run time loaded on first use, below)
    from maskwatch.detector import Detector

# A library says what it has to say through logging and leaves where it goes to the application (the commands set
# it up); without this, Python's last-resort handler would print every warning of a library call to stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())


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
    import pkgutil

    return sorted({*__all__, *(m.name for m in pkgutil.iter_modules(__path__))})  # (what there is to use)


__all__ = ["Dataset", "Detector", "MaskwatchError", "__version__", "load_dataset", "read_image"]
