"""maskwatch: find every face in an image or video and say whether it wears a mask, wears it wrongly, or none."""

from maskwatch.data import Dataset, load_dataset
from maskwatch.data.images import read_image
from maskwatch.errors import MaskwatchError

__version__ = "0.1.0"


def __getattr__(name: str):
    # The detector loads onnxruntime; import it only when asked for.
    if name == "Detector":
        from maskwatch.detector import Detector

        return Detector
    raise AttributeError(name)


__all__ = ["Dataset", "Detector", "MaskwatchError", "load_dataset", "read_image"]
