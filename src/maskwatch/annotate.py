"""The one place that draws: boxes coloured by class and a label with the score, legible on 20-px faces; on
video also the running counts, and the zones and lines with theirs; and the one way faces are blurred (on the
video with --blur-faces, in event snapshots unless --keep-faces)."""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Iterable, Sequence

import cv2
import numpy as np
import supervision as sv

from maskwatch.classes import DISPLAY_NAMES, colour_of, compliance_of
from maskwatch.data.images import as_bgr_image
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import class_names_of, scores_of

if TYPE_CHECKING:
    import PIL.Image

ZONE_COLOUR = sv.Color(r=255, g=210, b=0)


def drawn_name(name: str) -> str:
    """A class's name as drawn: short for the mask classes, and in ASCII (drawable)."""
    return drawable(DISPLAY_NAMES.get(name, name))


def drawable(text: str) -> str:
    """Text in ASCII, the only letters OpenCV's font has: accents dropped (`máscara` as `mascara`, a zone `entrée`
    as `entree`), other scripts as `?` (the JSON, events and pages keep the names whole)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return plain.encode("ascii", "replace").decode("ascii")


def _palette(names: Iterable[str]) -> sv.ColorPalette:
    """A colour per detection (ColorLookup.INDEX), by what its class name means (classes.colour_of)."""
    return sv.ColorPalette([sv.Color(r=r, g=g, b=b) for b, g, r in map(colour_of, map(str, names))])


def annotate(image_bgr: "np.ndarray | PIL.Image.Image", detections: sv.Detections,
             classes: Sequence[str] | None = None, show_scores: bool = True, copy: bool = True) -> np.ndarray:
    """A copy of the image with every detection drawn (copy=False: drawn on the image itself, for a caller that
    already owns its copy); line and text size follow the image size. A PIL image is drawn on as the detector
    saw it (upright, as a BGR array). classes: the detector's, needed only for detections without class names
    (the detector's carry them in data["class_name"])."""
    if not isinstance(image_bgr, np.ndarray):  # (a PIL image: converted below into a new array already)
        copy = False
    image_bgr = as_bgr_image(image_bgr)  # (grey, float or 4-channel arrays said, as the detector says them)
    if not copy and not (image_bgr.flags.writeable and image_bgr.flags.c_contiguous):
        raise MaskwatchError("annotate(copy=False) draws on the array itself, which must be writable and "
                             "C-contiguous (a [..., ::-1] view or a read-only array is not): give copy=True")
    out = image_bgr.copy() if copy else image_bgr
    if len(detections) == 0:
        return out
    if "class_name" not in detections.data and classes is None:
        raise MaskwatchError("these detections carry no class names: give annotate the detector's classes")
    names = class_names_of(detections, list(classes or []))
    palette = _palette(names)
    long_side = max(image_bgr.shape[:2])
    thickness = max(1, round(long_side / 500))
    text_scale = max(0.3, long_side / 2400)
    boxes = sv.BoxAnnotator(color=palette, thickness=thickness, color_lookup=sv.ColorLookup.INDEX)
    labels = sv.LabelAnnotator(color=palette, text_scale=text_scale, text_thickness=1,
                               text_padding=max(1, thickness), color_lookup=sv.ColorLookup.INDEX,
                               text_position=sv.Position.TOP_LEFT, smart_position=True)
    scores = scores_of(detections)
    texts = []
    for i, (name, score) in enumerate(zip(names, scores)):
        short = drawn_name(str(name))
        text = f"{short} {score:.2f}" if show_scores else short
        if detections.tracker_id is not None and detections.tracker_id[i] >= 0:
            text = f"#{int(detections.tracker_id[i])} {text}"
        texts.append(text)
    out = boxes.annotate(out, detections)
    return labels.annotate(out, detections, labels=texts)


def blur_boxes(image: np.ndarray, boxes: Iterable[Sequence[float]]) -> np.ndarray:
    """Blur each box of the image (in place): a Gaussian blur a third of the box's side, so a face of any size
    becomes unrecognisable while the picture around it stays readable."""
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        left, top, right, bottom = max(0, int(x1)), max(0, int(y1)), min(width, int(x2)), min(height, int(y2))
        if right > left and bottom > top:
            region = image[top:bottom, left:right]
            k = max(3, (max(region.shape[:2]) // 3) | 1)
            image[top:bottom, left:right] = cv2.GaussianBlur(region, (k, k), 0)
    return image


def draw_counts(image: np.ndarray, people: dict[str, int]) -> np.ndarray:
    """The running counts in a band at the top of the frame (drawn in place)."""
    compliance = compliance_of(people)
    parts = ", ".join(f"{drawn_name(k)} {v}" for k, v in people.items()) or "none yet"
    shown = "" if compliance is None else f"{compliance:.0%}"
    width = image.shape[1] - 12
    # The words as they are where they fit; on a narrow frame (a 320-px webcam) shorter, then smaller, never cut.
    short = parts + (f" | {shown}" if shown else "")
    for text, scale in ((f"people: {parts}" + (f" | compliance {shown}" if shown else ""), max(0.4, width / 1400)),
                        (short, 0.4), (short, 0.3)):
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if tw <= width:
            break
    cv2.rectangle(image, (0, 0), (min(image.shape[1], tw + 12), th + base + 10), (0, 0, 0), -1)
    cv2.putText(image, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def draw_zones(image: np.ndarray, polygons: list[tuple[sv.PolygonZone, str]],
               lines: list[tuple[sv.LineZone, str]]) -> np.ndarray:
    """Zones outlined with their label (name and counts), lines with their in / out counts (drawn in place)."""
    text_scale = max(0.35, image.shape[1] / 1600)
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for zone, label in polygons:
        sv.PolygonZoneAnnotator(zone, color=ZONE_COLOUR, thickness=thickness, text_scale=text_scale,
                                text_padding=4).annotate(image, label=drawable(label))
    for counter, name in lines:
        sv.LineZoneAnnotator(color=ZONE_COLOUR, thickness=thickness, text_scale=text_scale, text_thickness=1,
                             text_padding=4, custom_in_text=f"{drawable(name)} in",
                             custom_out_text=f"{drawable(name)} out").annotate(image, counter)
    return image
