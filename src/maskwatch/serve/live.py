"""The live-camera routes: the dashboard page, the cameras, their frames (snapshot, MJPEG stream), reports, and
the events (from SQLite, paged; and live as Server-Sent Events, the webhook's JSON).

The page and its two static files are open (they hold no data; the page asks for the key); every /v1 route
here takes the API key like the rest of the API.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import AsyncIterator, Callable, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event

from maskwatch.classes import CLASS_COLOURS_BGR, READABLE_NAMES, colour_of
from maskwatch.errors import MaskwatchError
from maskwatch.serve.cameras import CameraRegistry, CameraWorker, LiveFrame
from maskwatch.serve.schemas import Camera, CameraList, CameraReport, EventPage, binary_response, error_responses
from maskwatch.video.events import EVENT_TYPES
from maskwatch.video.report import compliance_series, read_report
from maskwatch.video.store import as_unix_time, cameras_with_events, event_stored, read_events

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {"cameras.js": "text/javascript", "cameras.css": "text/css", "classes.js": "text/javascript"}
# Routes without the API key: the page and the files it loads.
PAGE_PATHS = frozenset({"/cameras", *(f"/static/{name}" for name in PAGE_FILES)})
BOUNDARY = "maskwatch-frame"
NO_CAMERA = error_responses(_404="no camera of that name")
NO_FRAME = error_responses(_503="the camera has shown no frame yet (Retry-After)")
NO_DATABASE = error_responses(_404="no events database yet")
BAD_TYPE = error_responses(_422="an unknown event type or camera, or a parameter out of range")
SSE_PING_S = 15.0
STREAM_RESEND_S = 5.0  # a stream with no new frame resends the last one this often (and so notices a client gone)


EVENT_ID = re.compile(r"[0-9a-f]{32}")  # what events.Event gives its events (uuid4 hex)


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    """`check()` until it holds or `seconds` have passed (on a worker thread: the routes that call it are sync)."""
    deadline = time.monotonic() + seconds
    while not (held := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


def parse_time(value: str | None, name: str = "since") -> float | None:
    """Unix seconds, or ISO 8601 (a time without an offset is UTC); a 422 naming the parameter otherwise."""
    if value is None or value == "":
        return None
    try:
        return as_unix_time(value, name)
    except MaskwatchError as exc:
        raise HTTPException(422, str(exc)) from None


def frame_part(frame: LiveFrame) -> bytes:
    """One part of the MJPEG stream; X-Frame-Time is when the source delivered the frame (for latency)."""
    head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
            f"X-Frame-Time: {frame.received_at:.3f}\r\n\r\n")
    return head.encode() + frame.jpeg + b"\r\n"


REPLAY_WAIT_S = 5.0  # how long a reconnecting client's Last-Event-ID may take to reach the database


def sse_message(event: dict) -> bytes:
    """One event as a Server-Sent Event whose id is the event's: a client that reconnects sends it back as
    Last-Event-ID, and sse_messages replays what it missed."""
    return format_sse_event(data_str=json.dumps(event, separators=(",", ":")), id=event["id"])


async def sse_messages(registry: CameraRegistry, cameras: list[str] | None, types: list[str] | None,
                       last_event_id: str | None) -> AsyncIterator[bytes]:
    """The stream of one SSE client: what it missed since Last-Event-ID, then every event as it comes, pings
    while quiet. (FastAPI's own EventSourceResponse can log an error when a client leaves while events flow.)"""
    subscription = registry.hub.subscribe(cameras, types)
    getter: asyncio.Task | None = None
    try:
        missed = []
        if last_event_id and registry.db is not None and Path(registry.db).is_file():
            # The database is written on its own thread: the last event a client saw live may be stored a
            # moment later (longer while another process holds the database); wait for it, or nothing replays.
            for _ in range(int(REPLAY_WAIT_S / 0.1) if EVENT_ID.fullmatch(last_event_id) else 1):
                if found := event_stored(registry.db, last_event_id):
                    break
                await asyncio.sleep(0.1)
            if not found:  # (another server's id, or gone with the retention): said, as an SSE comment
                yield f": Last-Event-ID {last_event_id[:64]!r} is not stored here; nothing replayed, live from now\n\n"\
                    .encode()
            missed = read_events(registry.db, camera=cameras, type=types, after_id=last_event_id, limit=1000)
        sent = {event["id"] for event in missed}
        for event in missed:
            yield sse_message(event)
        while True:
            getter = getter or asyncio.ensure_future(subscription.queue.get())
            done, _ = await asyncio.wait({getter}, timeout=SSE_PING_S)
            if not done:
                yield KEEPALIVE_COMMENT
                continue
            event, getter = getter.result(), None
            if event["id"] not in sent:
                yield sse_message(event)
    finally:
        if getter is not None:
            getter.cancel()
        registry.hub.unsubscribe(subscription)


def classes_script(classes_in_use: list[str] = ()) -> str:
    """The pages' class names and colours, from classes.py (where the drawings take theirs): `CLASS_NAMES`, and a
    style rule per class that colours its `.dot`; the classes of the server's models of other names (a model of
    the user's own classes) by what they mean, matched by the `data-class` the pages give each count."""
    rules = "".join(f".{name} .dot, .dot.{name} {{ background: rgb({r}, {g}, {b}); }}\n"
                    for name, (b, g, r) in CLASS_COLOURS_BGR.items())
    for name in dict.fromkeys(c for c in classes_in_use if c not in CLASS_COLOURS_BGR):
        b, g, r = colour_of(name)
        quoted = json.dumps(name, ensure_ascii=False)  # (a CSS string: quotes and backslashes escaped as in JSON)
        rules += f"[data-class={quoted}] .dot {{ background: rgb({r}, {g}, {b}); }}\n"
    return (f"const CLASS_NAMES = {json.dumps(READABLE_NAMES)};\n"
            f"document.head.appendChild(Object.assign(document.createElement('style'), {{textContent: "
            f"{json.dumps(rules)}}}));\n")


def page_router(classes_in_use: Callable[[], list[str]]) -> APIRouter:
    """The cameras page and the files it loads, left out of the OpenAPI document; classes.js is made on each request,
    from the classes in use then."""
    router = APIRouter(include_in_schema=False)

    @router.get("/cameras", response_class=HTMLResponse)
    def cameras_page() -> HTMLResponse:
        return HTMLResponse((STATIC / "cameras.html").read_text())

    @router.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in PAGE_FILES:
            raise HTTPException(404, "no such file")
        if name == "classes.js":
            return Response(classes_script(classes_in_use()), media_type=PAGE_FILES[name],
                            headers={"Cache-Control": "no-cache"})
        return FileResponse(STATIC / name, media_type=PAGE_FILES[name], headers={"Cache-Control": "no-cache"})

    return router


def api_router(registry: CameraRegistry) -> APIRouter:
    """The cameras' routes and the events' routes of the JSON API."""
    router = APIRouter()
    router.include_router(camera_router(registry))
    router.include_router(event_router(registry))
    return router


def known_cameras(registry: CameraRegistry) -> str:
    """The server's cameras, for messages that name a camera it does not have."""
    return ", ".join(registry.workers) or "none; start the server with --camera or --config"


def camera_or_404(registry: CameraRegistry, name: str) -> CameraWorker:
    """The camera of that name, or 404 naming the ones there are."""
    worker = registry.get(name)
    if worker is None:
        raise HTTPException(404, f"no camera {name!r} (cameras: {known_cameras(registry)})")
    return worker


def database_or_404(registry: CameraRegistry) -> Path:
    """The events database, or 404 saying why there is none (yet)."""
    if registry.db is None:
        raise HTTPException(404, "no events database yet: start the server with --camera, --config or --db")
    if not Path(registry.db).is_file():  # (its name only: the server's folders are not the client's business)
        raise HTTPException(404, f"no events database yet ({Path(registry.db).name}): a camera makes it when it "
                                 f"starts; where one has started, the file was deleted while the server ran, and "
                                 f"a restart of the server makes it again")
    return registry.db


def camera_router(registry: CameraRegistry) -> APIRouter:
    """Each camera's state, latest frame, live MJPEG stream and counts report."""
    router = APIRouter(tags=["cameras and events"])

    @router.get("/v1/cameras", response_model=CameraList)
    def list_cameras() -> dict:
        """Every camera: status (live / reconnecting / stopped), frames and detections per second, people per
        class since the camera started, present now, compliance, zones and lines, the latest alert."""
        return {"cameras": [worker.describe() for worker in registry.workers.values()], "time": time.time()}

    @router.get("/v1/cameras/{name}", response_model=Camera, responses=NO_CAMERA)
    def one_camera(name: str) -> dict:
        return camera_or_404(registry, name).describe()

    @router.get("/v1/cameras/{name}/snapshot.jpg", response_class=Response,
                responses={**binary_response(("image/jpeg",), "the latest annotated frame",
                                             **{"X-Frame-Time": "Unix seconds when the camera delivered it",
                                                "X-Camera-Status": "live, reconnecting or stopped"}),
                           **NO_CAMERA, **NO_FRAME})
    def snapshot(name: str) -> Response:
        """The latest annotated frame (faces blurred where the camera has blur_faces)."""
        worker = camera_or_404(registry, name)
        worker.polled()
        frame = latest_or_503(worker, name)
        return Response(frame.jpeg, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Frame-Time": f"{frame.received_at:.3f}",
                                 "X-Camera-Status": worker.status})

    @router.get("/v1/cameras/{name}/stream", response_class=Response,
                responses={**binary_response((f"multipart/x-mixed-replace; boundary={BOUNDARY}",),
                                             "MJPEG: one JPEG part per new frame"), **NO_CAMERA, **NO_FRAME})
    async def stream(name: str, request: Request) -> StreamingResponse:
        """The live annotated video as MJPEG (multipart/x-mixed-replace): each part a JPEG with Content-Length
        and X-Frame-Time (Unix seconds when the camera delivered it). 503 while the camera has shown no frame
        (a stream that might never start would otherwise hold the client open, silent)."""
        worker = camera_or_404(registry, name)
        latest_or_503(worker, name)

        async def parts() -> AsyncIterator[bytes]:
            sequence = 0
            while True:
                worker.streamed()
                sequence, frame = await worker.board.newer_than(sequence, STREAM_RESEND_S)
                if frame is not None:
                    yield frame_part(frame)
                elif await request.is_disconnected():
                    return

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("/v1/cameras/{name}/report", response_model=CameraReport, responses=NO_CAMERA)
    def report(name: str, since: str | None = Query(None, description="Unix seconds or ISO 8601; default an "
                                                                      "hour ago"),
               bucket_s: float | None = Query(None, ge=1, allow_inf_nan=False,
                                              description="merge the windows into buckets of this many seconds "
                                                          "(e.g. 60 for an hour's chart)")
               ) -> dict:
        """Per-window counts and compliance of a camera from the database, as `maskwatch report` computes them:
        people per class (confirmed tracks), compliance, zones, lines, and the windows on the wall clock."""
        worker = camera_or_404(registry, name)
        start = parse_time(since)
        start = time.time() - 3600 if start is None else start
        try:
            result = read_report(database_or_404(registry), camera=name, since=start)
        except MaskwatchError:  # no run in that time yet
            return {"camera": name, "since": start, "window_s": worker.config.window, "people": {},
                    "compliance": None, "windows": [], "zones": {}, "lines": {}}
        return {"camera": name, "since": start, "window_s": worker.config.window, "people": result.people,
                "compliance": result.compliance, "windows": compliance_series(result, bucket_s),
                "zones": result.zones, "lines": result.lines}

    return router


def event_router(registry: CameraRegistry) -> APIRouter:
    """Stored events, a page at a time, and live ones as Server-Sent Events."""
    router = APIRouter(tags=["cameras and events"])

    @router.get("/v1/events", response_model=EventPage, response_model_exclude_unset=True,
                responses={**NO_DATABASE, **BAD_TYPE})
    def events(request: Request, camera: str | None = None,
               type: list[str] | None = Query(None, description=f"one or more of {', '.join(EVENT_TYPES)}"),
               since: str | None = Query(None, description="Unix seconds or ISO 8601"),
               limit: int = Query(100, ge=1, le=1000),
               order: Literal["oldest", "newest"] = "oldest",
               after: str | None = Query(None, description="page on: the `next` cursor of the previous page"),
               ) -> dict:
        """Stored events, in the webhook's JSON, oldest first (or newest first), a page at a time: `next` is the
        URL of the following page (null on the last)."""
        check_event_types(type)
        db = database_or_404(registry)
        if camera is not None and registry.get(camera) is None and not cameras_with_events(db, [camera]):
            # a filter with a typo would answer an empty page, as if nothing had happened
            raise HTTPException(422, f"no camera {camera!r} here and no stored event of one (cameras: "
                                     f"{known_cameras(registry)})")
        # A cursor of another server, mistyped, or gone with the retention (an id just received by webhook or SSE
        # is stored a moment later: one that looks like an id is given that moment).
        if after is not None and not wait_for(lambda: event_stored(db, after), 1.0 if EVENT_ID.fullmatch(after) else 0):
            raise HTTPException(422, f"after={after!r}: no stored event of that id; page on with the `next` URL "
                                     f"of the previous page")
        newest = order == "newest"
        rows = read_events(db, camera=camera, type=type, since=parse_time(since), limit=limit,
                           after_id=None if newest else after, before_id=after if newest else None,
                           newest_first=newest)
        following = None
        if len(rows) == limit:
            query = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
            following = f"{request.url.path}?{urlencode([*query, ('after', rows[-1]['id'])])}"
        return {"events": rows, "next": following}

    @router.get("/v1/events/stream", response_class=Response, responses={
        200: {"description": "Server-Sent Events, one event's JSON per `data:`",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}}, **BAD_TYPE})
    async def event_stream(camera: list[str] | None = Query(None), type: list[str] | None = Query(None),
                           last_event_id: str | None = Header(None)) -> StreamingResponse:
        """Live events as Server-Sent Events: each `data:` is one event's JSON, exactly as the webhook posts it,
        and `id:` its id; a comment every 15 s keeps proxies from closing a quiet stream. A client that
        reconnects with Last-Event-ID first gets what it missed (from the database)."""
        check_event_types(type)
        unknown = [name for name in camera or [] if registry.get(name) is None]
        if unknown:  # live events come from the server's cameras: this stream would stay silent
            raise HTTPException(422, f"no camera {', '.join(map(repr, unknown))} here (cameras: "
                                     f"{known_cameras(registry)}): live events come only from these")
        return StreamingResponse(sse_messages(registry, camera, type, last_event_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


def latest_or_503(worker, name: str):
    """The camera's latest annotated frame, or 503 (Retry-After: 1) while it has none."""
    frame = worker.board.latest
    if frame is None:
        raise HTTPException(503, f"camera {name!r} has no frame yet ({worker.status})", headers={"Retry-After": "1"})
    return frame


def check_event_types(types: list[str] | None) -> None:
    """422 for a type that no event has (a stream filtered on a typo would wait forever, silently)."""
    unknown = sorted(set(types or []) - set(EVENT_TYPES))
    if unknown:
        raise HTTPException(422, f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")


def add_live_routes(app: FastAPI, registry: CameraRegistry,
                    classes_in_use: Callable[[], list[str]] = lambda: []) -> None:
    """The page and the API; the API key is the app's (its middleware leaves PAGE_PATHS open). classes_in_use: the
    classes of the server's models now, whose colours the pages' script carries."""
    app.include_router(page_router(classes_in_use))
    app.include_router(api_router(registry))
