"""The shapes of the API's JSON answers, for the OpenAPI schema (/docs) and for FastAPI to check every answer
against: a route that returned something else would fail its tests instead of surprising a client.

The detections are the project's predictions format (`maskwatch.predictions`), the events the one event schema
(`maskwatch.video.events`); these models describe them for clients, they do not decide them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from maskwatch.video.events import EVENT_TYPES


class ErrorBody(BaseModel):
    """Every refusal and error: one sentence that says what was wrong and what to do."""
    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "no such video job"}]})

    detail: str = Field(description="what was wrong, in words")
    errors: list[dict[str, Any]] | None = Field(
        None, description="only on a 422 for a parameter or form field: FastAPI's list of what failed")


class Health(BaseModel):
    """The answer of GET /healthz: whether the model is loaded and how busy the server is."""

    status: Literal["ok"]
    model_loaded: bool
    busy: int = Field(description="requests being decoded or detected, or waiting for a worker")


class Detection(BaseModel):
    """One face: its box, a class and that class's score."""

    bbox: list[float] = Field(description="x1, y1, x2, y2 in pixels of the image", min_length=4, max_length=4)
    label: str = Field(description="with_mask, without_mask or mask_weared_incorrect (the model's classes)")
    score: float = Field(ge=0, le=1)


class DetectResult(BaseModel):
    """What POST /v1/detect answers for one photo: its faces, counts per class and compliance."""

    image: str = Field(description="the uploaded file's name")
    width: int
    height: int
    detections: list[Detection]
    counts: dict[str, int] = Field(description="faces per class, one per face whatever `all_classes` lists")
    compliance: float | None = Field(None, description="share of the faces wearing a mask correctly; null: no face, "
                                     "or one of a class whose name does not say (a model of your own classes)")
    warnings: list[str] = Field(default_factory=list, description="what was wrong with the picture but did not stop "
                                "it being read (a JPEG whose data is damaged: faces in the lost part are not found; "
                                "a TIFF of several pages: only the first is read)")
    annotated_image: str | None = Field(None, description="with `annotated=true`: the image with one box per face, "
                                                          "as a data:image/jpeg;base64 URL")


class VideoJobCreated(BaseModel):
    """The answer to a video upload: the job's id and where to follow it and fetch its results."""

    id: str
    status: Literal["queued"]
    status_url: str
    result_url: str
    summary_url: str


class RunSummary(BaseModel):
    """A finished video job's run, as `watch` writes OUT.json (without the server's paths). Every key has a
    default: a job finished by an earlier version, whose summary lacks a newer key, is still answered."""
    model_config = ConfigDict(extra="allow")

    camera: str | None = None
    run: str | None = None
    frames: int = Field(0, description="frames processed: detected + tracked-only")
    detected_frames: int = 0
    tracked_frames: int = 0
    dropped_frames: int = 0
    scene_cuts: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    source_fps: float = 0.0
    detect_every: float = 1.0
    scales: dict[str, int] = Field(default_factory=dict, description="detections per face-finder scale")
    realtime: list[str] = Field(default_factory=list)
    people: dict[str, int] = Field(default_factory=dict, description="people per class, each tracked person once")
    compliance: float | None = None
    zones: dict[str, Any] = Field(default_factory=dict)
    lines: dict[str, Any] = Field(default_factory=dict)
    events: dict[str, int] = Field(default_factory=dict, description="events per type")
    sink_failures: dict[str, dict[str, Any]] = Field(default_factory=dict)
    status: str = Field("finished", description="finished, interrupted, ended_early or failed")
    live: bool = False
    message: str | None = None
    run_id: int | None = None


class VideoJob(BaseModel):
    """A video job as GET /v1/videos/{job_id} describes it: its status and, once done, its run's summary."""

    id: str
    status: Literal["queued", "running", "finished", "failed"]
    progress: float | None = Field(description="0 to 1; null while the number of frames is unknown")
    frames_done: int
    frames_total: int | None
    complete: bool | None = Field(None, description="once finished: whether the whole video was read (false: it "
                                  "ended before its end, cut short or corrupt; `message` says where); null before")
    summary: RunSummary | None = Field(description="once finished: the run's summary (also at summary_url)")
    message: str | None = Field(description="why it failed, or what the run noticed (frames skipped)")
    filename: str | None


class VideoJobList(BaseModel):
    """Every video job the server keeps (queued, running, finished or failed)."""

    jobs: list[VideoJob] = Field(description="every job the server keeps, oldest first")


class Camera(BaseModel):
    """A live camera as the server follows it: status, rates, people counted, zones, lines, the latest alert."""

    name: str
    status: Literal["live", "reconnecting", "stopped"]
    message: str | None
    source: str = Field(description="the stream's address, any password replaced")
    size: list[int] | None = Field(description="width, height; null before the first frame")
    source_fps: float | None
    frames_per_s: float | None
    detections_per_s: float | None
    frames: int
    detected_frames: int
    people: dict[str, int] = Field(description="confirmed people per class since the camera started")
    present: dict[str, int] = Field(description="people per class in view now (empty while no frame comes)")
    compliance: float | None = Field(description="share of people wearing a mask correctly; null: nobody yet")
    zones: dict[str, Any]
    lines: dict[str, Any]
    last_frame_at: float | None = Field(description="Unix seconds")
    last_alert: dict[str, Any] | None = Field(description="the latest person.unmasked event")
    reconnects: int
    run: str | None
    blur_faces: bool
    event_snapshots: bool
    every: int | None = Field(description="detects every Nth frame; null: as often as its speed allows")
    zone_names: list[str]
    line_names: list[str]
    snapshot_url: str
    stream_url: str
    report_url: str


class CameraList(BaseModel):
    """Every camera of the server, and the server's time (Unix seconds) when they were described."""

    cameras: list[Camera]
    time: float = Field(description="the server's clock, Unix seconds")


class Window(BaseModel):
    """One counting window (or bucket of windows) of a camera's report, on the wall clock."""

    start: float = Field(description="Unix seconds")
    people: dict[str, int]
    compliance: float | None


class CameraReport(BaseModel):
    """A camera's counts since a time, from the events database, as `maskwatch report` computes them."""

    camera: str
    since: float
    window_s: int | float
    people: dict[str, int]
    compliance: float | None
    windows: list[Window]
    zones: dict[str, Any]
    lines: dict[str, Any]


class Event(BaseModel):
    """One event, as the webhook posts it and MQTT publishes it: the common keys always (null where they do not
    apply), the type's own keys only on it. Kept as stored: a type or key of a newer version passes through, and a
    key an older version did not write is left out."""
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    id: str = Field(description="unique: delivery is at least once, so drop repeated ids")
    type: str = Field(description=f"one of {', '.join(EVENT_TYPES)}")
    time: str = Field(description="wall clock, ISO 8601 with offset")
    source_time_s: float | None = Field(None, description="seconds into the video or stream")
    camera: str | None = None
    run: str | None = None
    track_id: int | None = None
    class_: str | None = Field(None, alias="class", description="the track's class by its vote")
    share: float | None = Field(None, description="the class's share of the track's vote")
    zone: str | None = Field(None, description="the zone or line (zone.*, line.crossed), or the zone the face is in")
    box: list[float] | None = None
    frame: int | None = None
    direction: str | None = Field(None, description="line.crossed only: in or out")
    counts: dict[str, Any] | None = Field(None, description="counts only: people per class, zone and line")
    reason: str | None = Field(None, description="camera.down / camera.up only")
    snapshot: str | None = Field(None, description="base64 JPEG of the face, only with event snapshots on")


class EventPage(BaseModel):
    """A page of stored events and the URL of the next page (null on the last)."""

    events: list[Event]
    next: str | None = Field(description="the URL of the following page; null on the last")


def binary_response(media_types: tuple[str, ...], description: str, **headers: str) -> dict[int, dict[str, Any]]:
    """The OpenAPI 200 of a route that answers bytes (an image, a video), with the headers it sets."""
    answer: dict[str, Any] = {"description": description, "content": {
        media: {"schema": {"type": "string", "format": "binary"}} for media in media_types}}
    if headers:
        answer["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                             for name, text in headers.items()}
    return {200: answer}


def error_responses(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for refusals, by status code (`_404="no such job"`), each with the ErrorBody shape."""
    return {int(code.lstrip("_")): {"model": ErrorBody, "description": text} for code, text in descriptions.items()}
