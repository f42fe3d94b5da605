"""The face finder's scale in video, chosen from the faces of the previous detections (under `--scale auto`).

A still image does not know its face sizes before looking, so `auto` runs 1x and adds an upscaled pass when
the faces are small. A video does know: the faces of the last second say which one scale finds them all. A door
camera whose faces are 150 px or more is searched at 1/4 of the pixels (or 1/16), a crowd keeps `auto`. Now and
then one detection looks a step finer, to find faces smaller than those seen (someone far away); after a second
without faces, the next detections run at the still-image policy's first-pass scale (1x up to 960 px, 0.5 for
1080p), and at `auto` now and then (the scene may hold tiny faces). Some faces are found confidently only near
full size (a dark mask, a tilted head): a downscale that finds fewer confident faces than a finer detection just
before it is detected again at once on the next frame at that finer scale; if the faces are there, the downscale
is not used for a while (the still-image policy's coarse look is kept only when it finds confident faces, for the
same reason); if not, they had left."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import supervision as sv

from maskwatch.face_finder import AUTO
from maskwatch.predictions import FACE_CONFIDENCE
from maskwatch.thresholds import SCALE_MIN_FACE_CONFIDENCE
from maskwatch.video.realtime import REALTIME, RealtimeSettings


class ScaleChooser:
    """Video's face-finder scale, chosen from the faces of the last second rather than per frame (a crowd clip keeps
    its upscaled pass, a door camera its small one), probing the full pass now and then for faces it would miss."""

    def __init__(self, settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.smallest: deque[tuple[float, float]] = deque()  # (time, smallest face height at 1x) per detection
        self.last_probe_s: float | None = None
        self.chosen: float | str = AUTO
        self.last_count = 0  # confident faces the last detection found ...
        self.last_scale: float | str = AUTO  # ... at this scale
        self.blocked: dict[float, float] = {}  # downscale -> until when it is not used (it lost faces)
        self.retry = False  # the last detection lost faces at a downscale: look again (finer) on the next frame
        self.suspect: tuple[float, int, float | str] | None = None  # a downscale that lost faces, what it found,
        # and the scale that had found them: the next frame is looked at there, to tell faces missed from faces gone

    def scale_for(self, time_s: float, base: float = 1.0) -> float | str:
        """The scale of the next detection: a downscale, `base` or "auto" (the still-image policy). base: the
        still-image policy's first-pass scale for this frame size (1 up to 960 px, 0.5 for 1080p): with no face
        lately a 1080p or 4K frame is searched at that size, not at full resolution, and auto's upscaled pass
        (full resolution and more) comes with the probes."""
        while self.smallest and time_s - self.smallest[0][0] > self.settings.scale_memory_s:
            self.smallest.popleft()
        self.retry = False
        if self.suspect is not None:  # again as the detection that found the faces the downscale lost
            return self.suspect[2]
        probe = self.last_probe_s is None or time_s - self.last_probe_s >= self.settings.scale_probe_s
        if not self.smallest:  # no face lately: the first pass's scale, and the upscaled pass of auto now and then
            settled = base
        else:
            settled = self.cheapest_for(min(h for _, h in self.smallest))
            while settled != AUTO and self.blocked.get(settled, -1.0) > time_s:  # it lost faces lately
                settled = self.finer(settled)
        self.chosen = settled
        if probe:
            self.last_probe_s = time_s
            return self.finer(settled) if self.smallest else AUTO  # no face: auto's upscaled pass, whatever the size
        return settled

    def cheapest_for(self, smallest_px: float) -> float | str:
        """The cheapest scale at which the smallest face is still `min_face_input_px` tall at the finder's input."""
        for scale in sorted(self.settings.downscales):
            if smallest_px * scale >= self.settings.min_face_input_px:
                return scale
        return AUTO

    def finer(self, scale: float | str) -> float | str:
        """One step finer than `scale`: the next downscale, then auto."""
        if scale == AUTO or scale >= 1.0:
            return AUTO
        bigger = [s for s in sorted(self.settings.downscales) if s > scale]
        return bigger[0] if bigger else AUTO

    @staticmethod
    def _finer_than(a: float | str, b: float | str) -> bool:
        """Whether scale `a` looks finer than `b` (auto: the still-image policy, finer than any downscale)."""
        rank = {AUTO: math.inf}
        return rank.get(a, a) > rank.get(b, b)  # type: ignore[operator]

    def observe(self, time_s: float, detections: sv.Detections, scale: float | str | None = None) -> None:
        """The faces a detection found (boxes in frame pixels) at `scale` (the one scale_for gave; None: not
        known). Judged, as the tracker judges them, by how sure the detector is that each is a face (every class
        together): a face split between two classes is still a face whose size counts."""
        face_score = detections.data.get(FACE_CONFIDENCE, detections.confidence) if len(detections) else None
        confident = detections.xyxy[face_score >= SCALE_MIN_FACE_CONFIDENCE] if face_score is not None \
            else np.zeros((0, 4), np.float32)
        downscaled = isinstance(scale, float) and scale in self.settings.downscales
        if (downscaled and self._finer_than(self.last_scale, scale) and len(confident) < self.last_count
                and self.smallest):  # faces a finer look found lately are not found here
            self.blocked[scale] = time_s + self.settings.scale_loss_block_s
            self.retry = True  # the next frame is detected at once, at the scale that found them
            self.suspect = (scale, len(confident), self.last_scale)
            return  # (the count to beat stays the finer look's)
        if self.suspect is not None:  # that second look: were the faces there?
            lost_at, found_there, _ = self.suspect
            self.suspect = None
            if len(confident) <= found_there:  # no: they had left, the downscale was not to blame
                self.blocked.pop(lost_at, None)
        self.last_count, self.last_scale = len(confident), scale if scale is not None else AUTO
        if len(confident):
            heights = confident[:, 3] - confident[:, 1]
            self.smallest.append((time_s, float(np.min(heights))))
