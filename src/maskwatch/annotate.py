"""The one place that draws: boxes coloured by class and a label with the score, legible on 20-px faces."""

from __future__ import annotations

import numpy as np
import supervision as sv

from maskwatch.classes import CLASS_COLOURS_BGR, DISPLAY_NAMES, FALLBACK_COLOUR_BGR


def _palette(classes: list[str]) -> sv.ColorPalette:
    colours = []
    for name in classes:
        b, g, r = CLASS_COLOURS_BGR.get(name, FALLBACK_COLOUR_BGR)
        colours.append(sv.Color(r=r, g=g, b=b))
    return sv.ColorPalette(colours)


def annotate(image_bgr: np.ndarray, detections: sv.Detections, classes: list[str],
             show_scores: bool = True) -> np.ndarray:
    """A copy of the image with every detection drawn; line and text size follow the image size."""
    out = image_bgr.copy()
    if len(detections) == 0:
        return out
    palette = _palette(classes)
    long_side = max(image_bgr.shape[:2])
    thickness = max(1, round(long_side / 500))
    text_scale = max(0.3, long_side / 2400)
    boxes = sv.BoxAnnotator(color=palette, thickness=thickness, color_lookup=sv.ColorLookup.CLASS)
    labels = sv.LabelAnnotator(color=palette, text_scale=text_scale, text_thickness=1,
                               text_padding=max(1, thickness), color_lookup=sv.ColorLookup.CLASS,
                               text_position=sv.Position.TOP_LEFT, smart_position=True)
    names = detections.data.get("class_name", np.array([classes[int(c)] for c in detections.class_id]))
    scores = detections.confidence if detections.confidence is not None else np.ones(len(detections))
    texts = []
    for i, (name, score) in enumerate(zip(names, scores)):
        short = DISPLAY_NAMES.get(str(name), str(name))
        text = f"{short} {score:.2f}" if show_scores else short
        if detections.tracker_id is not None and detections.tracker_id[i] >= 0:
            text = f"#{int(detections.tracker_id[i])} {text}"
        texts.append(text)
    out = boxes.annotate(out, detections)
    return labels.annotate(out, detections, labels=texts)
