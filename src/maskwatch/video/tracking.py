"""One id per person: ByteTrack (Roboflow's `trackers` package) follows the faces, and a track's class is a
vote over its frames, so one noisy frame cannot flip it.

Two votes, both weighted by the time each detection stands for (video detects at a varying rate: often while a
face is new, rarely once it stands still, so a vote per look would let a track's first seconds outvote the rest):
the whole visit's (`label`: the class a person is counted in when they leave) and the last seconds' (`label_now`,
older looks fading with a half-life of `RECENT_HALF_LIFE_S`: what is drawn, and what raises `person.unmasked`, so a
mask pulled down after ten seconds masked is alerted within seconds, not never).

ByteTrack sees how sure the detector is that each box is a face (`FACE_CONFIDENCE`, every class together), not
the score of its best class: following a person does not depend on which class they are, and a face whose class
is in doubt (with_mask 0.45, mask_weared_incorrect 0.45) is as much a face as any. The votes are weighted by the
class scores."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from maskwatch.predictions import FACE_CONFIDENCE, class_names_of
from maskwatch.thresholds import TRACK_ACTIVATION_SCORE

_CLASS_SCORE = "class_score"  # the detections' own confidence, kept while ByteTrack sees the face confidence


# A track seen on fewer detection frames than this is not counted as a person (one-frame flickers).
MIN_TRACK_FRAMES = 2
RECENT_HALF_LIFE_S = 2.0  # label_now: a look this old counts half; a change lasting about this long turns it
MAX_LOOK_S = 1.0  # the most time one look stands for (after a gap, the face was not seen meanwhile)


@dataclass
class TrackState:
    """One track's two votes: the whole visit's (the class counted at person.left) and the last seconds' (drawn, and
    what raises person.unmasked), each look weighted by its score and the time it stands for."""

    track_id: int
    first_seen_s: float
    last_seen_s: float
    votes: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # the whole visit
    recent: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # fading with RECENT_HALF_LIFE_S
    frames: int = 0
    best_score: float = 0.0
    best_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    best_frame: int = 0
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    first_look: tuple[str, float] | None = None  # weighed once the second look says how long a look stands for

    @property
    def label(self) -> str:
        """The class of the whole visit so far (counted when the person leaves)."""
        return _winner(self.votes)

    @property
    def share(self) -> float:
        """The winning class's share of the whole visit's vote (1.0: every look agreed)."""
        return _share(self.votes)

    @property
    def label_now(self) -> str:
        """The class of the last few seconds (drawn; an unmasked one raises person.unmasked)."""
        return _winner(self.recent)

    @property
    def share_now(self) -> float:
        """The winning class's share of the last seconds' vote."""
        return _share(self.recent)

    def vote(self, name: str, score: float, time_s: float) -> None:
        """Add one look, standing for the time since the track's previous one (at most MAX_LOOK_S). The first
        look has nothing before it: it stands for as long as the second, so one misread first look (a face coming
        into the picture, blurred) weighs as one look, not more."""
        elapsed = max(time_s - self.last_seen_s, 0.0)
        span = min(elapsed, MAX_LOOK_S)
        fade = 0.5 ** (elapsed / RECENT_HALF_LIFE_S)  # (by the time that passed, also past MAX_LOOK_S)
        if not self.frames:
            self.first_look = (name, score)
            self.votes[name] += score * 1e-6  # (a label until the second look)
            self.recent[name] += score * 1e-6
        else:
            for key in self.recent:
                self.recent[key] *= fade
            if self.first_look is not None:
                first, first_score = self.first_look
                self.votes[first] += first_score * span
                self.recent[first] += first_score * span * fade
                self.first_look = None
            self.votes[name] += score * span
            self.recent[name] += score * span
        self.frames += 1
        self.last_seen_s = time_s


def _winner(votes: dict[str, float]) -> str:
    return max(votes, key=votes.get) if votes else "unknown"


def _share(votes: dict[str, float]) -> float:
    total = sum(votes.values())
    return votes[_winner(votes)] / total if total else 0.0


class FaceTracker:
    """ByteTrack (Roboflow's trackers) over the detector's faces, by how sure each is to be a face, and each track's
    class votes (TrackState)."""

    def __init__(self, classes: list[str], fps: float, lost_after_s: float = 1.5,
                 min_confidence: float = TRACK_ACTIVATION_SCORE):
        from trackers import ByteTrackTracker

        self.classes = classes
        self.lost_after_s = lost_after_s
        self.min_confidence = min_confidence
        # ByteTrack starts tracks only from its "high" detections: both thresholds are `min_confidence`
        # (trackers' default high threshold, 0.6, would otherwise be the activation threshold whatever ours).
        self._new_tracker = lambda: ByteTrackTracker(frame_rate=fps, lost_track_buffer=max(1, int(lost_after_s * 30)),
                                                     track_activation_threshold=min_confidence,
                                                     high_conf_det_threshold=min_confidence,
                                                     minimum_consecutive_frames=1)
        self.tracker = self._new_tracker()
        self.tracks: dict[int, TrackState] = {}  # the tracks ByteTrack still follows (seen, or lost for a while)
        self._ids: dict[int, int] = {}  # ByteTrack's id -> ours (they differ once a lost track came back)
        self._next_id = 1

    def new_scene(self) -> None:
        """A scene cut (video/scene_cut.py): nobody on screen continues, so new faces get new ids (the emitter
        ends the people of the old scene at the cut). A new ByteTrack, not reset(): trackers 2.1's reset() zeroes
        an id counter shared by every tracker in the process (serve's other cameras)."""
        self.tracker = self._new_tracker()
        self._ids.clear()
        self.tracks.clear()

    def _our_id(self, tid: int, time_s: float) -> int:
        """Our id for ByteTrack's: a track unseen for longer than `lost_after_s` is a new person, whatever
        ByteTrack's own buffer (counted in detection frames, which video detects at a varying rate) kept."""
        ours = self._ids.get(tid)
        if ours is None or time_s - self.tracks[ours].last_seen_s > self.lost_after_s:
            if ours is not None:
                del self.tracks[ours]  # that person left; the emitter keeps what it needs of them
            ours = self._ids[tid] = self._next_id
            self._next_id += 1
        return ours

    def _forget_lost(self) -> None:
        """Drop the tracks ByteTrack forgot (they cannot come back), so a camera watched for a week keeps
        bounded state."""
        following = {int(t.tracker_id) for t in self.tracker.tracks}
        for tid in [t for t in self._ids if t not in following]:
            self.tracks.pop(self._ids.pop(tid), None)

    def update(self, detections: sv.Detections, time_s: float, frame_index: int,
               offset: np.ndarray | None = None) -> sv.Detections:
        """Track ids assigned and each tracked face relabelled with its track's vote. Faces the tracker has not
        confirmed yet (id -1, their first frame) keep their own label and are not counted. `offset`: where the
        picture lies relative to the first frame (a moving camera, video/camera_motion.py); faces are matched in
        the scene's coordinates, so a pan does not break the tracks."""
        shift = np.tile(np.asarray(offset, np.float32), 2) if offset is not None else None
        if len(detections) and detections.confidence is not None:
            data = dict(detections.data)
            data[_CLASS_SCORE] = detections.confidence
            detections = sv.Detections(xyxy=detections.xyxy - shift if shift is not None else detections.xyxy,
                                       confidence=data.get(FACE_CONFIDENCE, detections.confidence),
                                       class_id=detections.class_id, data=data)
        tracked = self.tracker.update(detections)
        self._forget_lost()
        class_scores = tracked.data.pop(_CLASS_SCORE, None)
        if len(tracked) == 0:
            return tracked
        tracked.confidence = class_scores
        if shift is not None:
            tracked.xyxy = tracked.xyxy + shift
        names = class_names_of(tracked, self.classes)
        voted, ids = [], []
        for box, tid, name, score in zip(tracked.xyxy, tracked.tracker_id, names, tracked.confidence):
            if tid < 0:
                voted.append(str(name))
                ids.append(-1)
                continue
            tid = self._our_id(int(tid), time_s)
            ids.append(tid)
            state = self.tracks.get(tid)
            if state is None:
                state = self.tracks[tid] = TrackState(tid, time_s, time_s)
            state.vote(str(name), float(score), time_s)
            state.last_box = tuple(map(float, box))
            if score > state.best_score:
                state.best_score, state.best_box, state.best_frame = float(score), tuple(map(float, box)), frame_index
            voted.append(state.label_now)
        tracked.tracker_id = np.array(ids, dtype=int)
        tracked.data["class_name"] = np.array(voted, dtype=str)
        tracked.class_id = np.array([self.classes.index(v) if v in self.classes else -1 for v in voted], dtype=int)
        return tracked
