"""Score thresholds, named once. Every entry point (the CLI, `detect`, the API, batch, video, the detector's own
defaults) takes its defaults from here, so "what a drawing shows" is the same number everywhere.

Two presets cover what a consumer of detections wants:

- FOR_METRICS: prediction files scored with COCO mAP. mAP averages precision over every recall level, so the
  low-scored tail is kept, and a face gets a box for each class it plausibly is (with_mask 0.7 and
  mask_weared_incorrect 0.2), which mAP rewards: 0.810 against 0.773 mAP@.5 on the validation split, 0.790
  against 0.726 on jolignier-val (every class against the best class per face; v6.2, README).
- FOR_PEOPLE: what a person sees or counts (a drawing, a count, an API answer, a batch row): one box per face,
  its best class, confident ones only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskwatch.errors import MaskwatchError


@dataclass(frozen=True)
class Preset:
    """What one kind of consumer keeps of the detections: FOR_METRICS or FOR_PEOPLE (module docstring)."""

    min_score: float  # lowest final score kept
    all_classes: bool  # a box for every class scoring >= min_score (True) or only the face's best class


FOR_METRICS = Preset(min_score=0.01, all_classes=True)
FOR_PEOPLE = Preset(min_score=0.4, all_classes=False)

# `detector(image)` called from Python: the low tail (the caller filters by score as it likes), one class per
# face (what someone reading the result expects).
DETECTOR_MIN_SCORE = FOR_METRICS.min_score
DETECTOR_ALL_CLASSES = FOR_PEOPLE.all_classes

# Face-finder candidates scored below these are not classified.
MIN_FACE_SCORE = 0.05  # images: keep faint faces, recall matters more than the crops it costs
# `--scale auto` judges face sizes by the faces the face finder is at least this sure of (face_finder.ScalePolicy).
CONFIDENT_FACE_SCORE = 0.4
LIVE_MIN_FACE_SCORE = 0.2  # video: fewer crops per frame, speed matters more than faint faces

# Video tracking.
TRACK_MIN_SCORE = 0.1  # detections handed to ByteTrack: it keeps tracks alive with low-scored boxes
# A new track starts only from a detection at least this sure to be a face (its FACE_CONFIDENCE, every class
# together). Chosen on door clips made of the andrewmvd validation photos (bench/video_people.py): 0.5 counted
# their 36 faces as 36 people at 640x480, 0.3 as 41. (Before, trackers' own high-detection threshold, 0.6 on the
# best class's score, was the one that applied: 35 and, at 1080p, 30.)
TRACK_ACTIVATION_SCORE = 0.5
# Video's scale chooser sizes the finder's input by the smallest face of the last second among detections at least
# this sure to be a face (FACE_CONFIDENCE, as for tracks): fainter ones are often not faces. The same judgement as
# the still-image scale policy's, on the face score the video detections carry.
SCALE_MIN_FACE_CONFIDENCE = CONFIDENT_FACE_SCORE

# Evaluation: a detection at or above this score counts as a decision in the confusion matrix, matched to a face
# at this overlap (as AP@.5).
CONFUSION_MIN_SCORE = 0.5
CONFUSION_IOU = 0.5
# A detection on a face the scoring leaves out (--label-map OLD=, COCO's crowd) at this overlap is neither right nor
# wrong, in the AP and in the confusion matrix alike.
NOT_SCORED_IOU = 0.5

# Training on face pictures (one face each, train --extra-faces): the face finder looks for candidates down to
# PICTURE_CANDIDATE_SCORE; the picture is used only where its face is at least PICTURE_FACE_SCORE sure (a picture
# is one clear face: no faint ones wanted). The 8-bit head is calibrated on faces of pictures at least
# CALIBRATION_FACE_SCORE sure.
PICTURE_CANDIDATE_SCORE = 0.2
PICTURE_FACE_SCORE = 0.5
CALIBRATION_FACE_SCORE = 0.3


def check_score(value, name: str = "min_score") -> float:
    """A score from 0 to 1 as a float; a string ("0.4", from a form or a config read as text) or a bool is refused
    rather than read, so a caller's type slip is found where it happens."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise MaskwatchError(f"{name} is a score from 0 to 1 (a number), got {value!r}")
    score = float(value)
    if not 0 <= score <= 1:
        raise MaskwatchError(f"{name} is a score from 0 to 1, got {value!r}")
    return score
