"""maskwatch: find every face in an image or video and say whether it wears a mask, wears it wrongly, or none."""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it, the API and COCO files report it

from maskwatch.data import Dataset, load_dataset  # noqa: E402 (after the version, which data/ reads)
from maskwatch.data.images import read_image  # noqa: E402
from maskwatch.errors import MaskwatchError  # noqa: E402


def __getattr__(name: str):
    # The detector loads onnxruntime; import it only when asked for.
    if name == "Detector":
        from maskwatch.detector import Detector

        return Detector
    raise AttributeError(name)


__all__ = ["Dataset", "Detector", "MaskwatchError", "load_dataset", "read_image"]
