"""The FastAPI app: `maskwatch serve` runs it with uvicorn.

Uploads are checked by decoding, never by file name; sizes are capped (413, on Content-Length before reading and
while reading); the API key is checked before the body is read; decoding and detection run in a bounded pool of
worker threads, so the event loop keeps answering, and a full queue answers 503; job ids are random and checked
against the database before any path is built from them; one server per data directory.
"""

from __future__ import annotations

import base64
import errno
import io
import logging
import math
import os
import re
import signal
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote
from pathlib import Path

import cv2
from fastapi import APIRouter, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from maskwatch.version import __version__
from maskwatch.annotate import annotate
from maskwatch.classes import compliance_of, say_what_classes_leave_unknown
from maskwatch.data.images import (ACCEPTED_FORMATS, ACCEPTED_NAMES, decode_image, decoding_warnings, image_header,
                                   is_video_header)
from maskwatch.detector import Detector, OneStageDetector
from maskwatch.errors import MaskwatchError, TooManyPixels, one_line
from maskwatch.limits import (API_KEY_ENV, MAX_UPLOAD_MB, MULTIPART_OVERHEAD_BYTES, SERVE_DATA_DIR, SERVE_MAX_QUEUE,
                              SERVE_MAX_QUEUED_VIDEOS, SERVE_WORKERS, usable_cores)
from maskwatch.predictions import ImagePredictions, best_class_per_face, class_counts
from maskwatch.serve.cameras import CameraRegistry, CameraSetup
from maskwatch.serve.guards import ApiKeyMiddleware, LoopbackHostGate, UploadGate, WorkerPool, is_loopback
from maskwatch.serve.jobs import DataDirLock, JobQueue
from maskwatch.serve.live import PAGE_PATHS, add_live_routes
from maskwatch.serve.schemas import (DetectResult, Health, RunSummary, VideoJob, VideoJobCreated, VideoJobList,
                                     binary_response, error_responses)
from maskwatch.thresholds import FOR_PEOPLE
from maskwatch.video.sources import FileSource, is_still_image

STATIC = Path(__file__).parent / "static"
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{20,40}$")
CHUNK = 1 << 20
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")
# Open without the API key: the health check, the pages (static HTML that asks for the key) and the API's
# description (/docs, whose Authorize button takes the key for the requests tried from it: a browser cannot send
# a header to open the page itself). Everything that reads or sends data needs the key.
OPEN_PATHS = (frozenset({"/healthz", "/", "/favicon.ico", "/docs", "/openapi.json"})
              | {f"/docs-assets/{name}" for name in DOCS_ASSETS} | PAGE_PATHS)
TAGS = ["images and videos"]  # the routes here; the cameras' are live.py's
API_KEY_SCHEME = "ApiKey"


@dataclass
class Settings:
    """The server's settings, as `maskwatch serve`'s options set them."""

    data_dir: Path = SERVE_DATA_DIR
    max_upload_mb: float = MAX_UPLOAD_MB
    api_key: str | None = None
    threads: int | None = None
    model: Path | None = None
    workers: int = SERVE_WORKERS  # threads that decode and detect
    max_queue: int = SERVE_MAX_QUEUE  # requests that may wait for a worker; more get 503
    cameras: CameraSetup | None = None  # live cameras (serve --camera / --config) and their events database
    keep_results_days: float | None = None  # video jobs deleted this long after they ended (None: kept)

    def __post_init__(self):
        """A key that would leave the server open, or that no client could send, is refused before it starts."""
        key = self.api_key
        if key is not None and not key.strip():
            raise MaskwatchError(f"--api-key (or {API_KEY_ENV}) is empty (a variable set to nothing?): the "
                                 "server would be open to anyone; give a key, or leave both out for a server "
                                 "without one")
        if key is not None and key != key.strip():
            raise MaskwatchError("--api-key starts or ends with spaces, which HTTP drops from a header: no client "
                                 "could send it; give the key without them")
        if key is not None and not (key.isascii() and key.isprintable()):
            raise MaskwatchError("--api-key holds characters other than printable ASCII, which a header cannot "
                                 "carry as they are; choose a key of letters, digits and punctuation")
        if not (math.isfinite(self.max_upload_mb) and self.max_upload_mb > 0):
            raise MaskwatchError(f"--max-upload-mb is {self.max_upload_mb:g}; expected a size in MB above 0")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_body_bytes(self) -> int:
        """The upload plus the multipart headers around it: what the request body may hold."""
        return self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES

    @property
    def too_large(self) -> str:
        return f"upload larger than the limit of {self.max_upload_mb:g} MB (the server's --max-upload-mb)"


# The refusals each kind of route can answer, for the OpenAPI schema (/docs); the body is always ErrorBody.
UPLOAD_ERRORS = error_responses(
    _413="the upload is over the size limit (--max-upload-mb), or its picture over the pixel limit "
         "(MASKWATCH_MAX_PIXELS)",
    _415="not a readable image or video (checked by decoding, not by name)",
    _422="no file, an empty file, several files, or a parameter out of range",
    _503="every worker busy and the queue full: try again (Retry-After)")
JOB_ERRORS = error_responses(_404="no such job")
NOT_READY = error_responses(_409="the job has not finished (queued, running or failed)")


def photo_refusal(path: Path) -> str:
    """What POST /v1/videos says to a still picture: send it to /v1/detect, converted first where /v1/detect does
    not read its format (a GIF of one frame)."""
    try:
        fmt = image_header(path, "the upload").format
    except MaskwatchError:
        fmt = ""
    if fmt and fmt not in ACCEPTED_FORMATS:
        return (f"the upload is a {fmt} picture of one frame: convert it to JPEG or PNG and send it to POST "
                f"/v1/detect (videos here)")
    if not fmt:  # a still picture FFmpeg reads but maskwatch does not (an SVG): /v1/detect would refuse it too
        return (f"the upload is a still picture in a format maskwatch does not read (accepted: {ACCEPTED_NAMES}): "
                f"convert it to JPEG or PNG and send it to POST /v1/detect (videos here)")
    return "the upload is a photo: send photos to POST /v1/detect (videos here)"


def create_app(settings: Settings | None = None, detector: Detector | OneStageDetector | None = None) -> FastAPI:
    """The app; it takes the data directory's lock at once, so a second server on it fails before it starts."""
    settings = settings or Settings(api_key=os.environ.get(API_KEY_ENV))
    JobQueue.checked_keep_days(settings.keep_results_days)  # refused before the data directory is taken
    lock = DataDirLock(settings.data_dir)
    pool = WorkerPool(settings.workers, settings.max_queue)
    state: dict = {}
    cameras = CameraRegistry(settings.cameras)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            clean_uploads(settings.data_dir / "uploads")  # left by a server killed mid-upload; the lock is ours
            # onnxruntime's own default counts the machine's cores, not those the server may use (a container,
            # taskset): more threads than cores only take turns.
            threads = settings.threads or usable_cores()
            state["detector"] = detector or Detector.load(settings.model, threads=threads)
            say_what_classes_leave_unknown(tuple(state["detector"].classes))
            state["jobs"] = JobQueue(settings.data_dir / "jobs", state["detector"], settings.keep_results_days)
            cameras.start()
            state["cameras started"] = True
            yield
        finally:
            try:
                if state.get("cameras started"):
                    cameras.stop()  # each camera finishes its run (database rows, webhooks drained)...
                if "jobs" in state:
                    state["jobs"].close()  # ...the running job stops and its database is closed...
            finally:
                lock.release()  # ...before another server may take the directory

    app = FastAPI(title="maskwatch", version=__version__, lifespan=lifespan,
                  max_body_size=settings.max_body_bytes,
                  responses=error_responses(_401="missing or wrong X-API-Key (when the server has a key)"),
                  docs_url=None, redoc_url=None,  # /docs below, from files in the package (no CDN: works offline)
                  description="Detect faces and whether they wear a mask correctly, wrongly, or not at all.")
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key, open_paths=OPEN_PATHS)
    app.openapi = lambda: openapi_schema(app, keyed=bool(settings.api_key))

    @app.exception_handler(RequestValidationError)
    async def explain_422(request: Request, exc: RequestValidationError):
        """FastAPI's own 422 has a list as its `detail`, every other error a sentence: one shape for clients, the
        list kept as `errors`."""
        return JSONResponse(validation_error_body(exc.errors()), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def explain_starlette(request: Request, exc: StarletteHTTPException):
        """Starlette's own refusals are two words ("Content Too Large", "Not Found"); say what was wrong and what
        to do, as every other refusal does."""
        if not isinstance(exc, HTTPException):
            said = {413: settings.too_large,
                    404: f"no such route: {request.url.path} (the API is described at /docs)",
                    405: f"{request.method} is not how {request.url.path} is used (see /docs)"}.get(exc.status_code)
            if said:
                exc = HTTPException(exc.status_code, said, headers=exc.headers)
        return await http_exception_handler(request, exc)

    add_live_routes(app, cameras, lambda: [*(state["detector"].classes if "detector" in state else []),
                                           *cameras.classes_in_use()])

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI for the API, its script and style served from the package (swagger-ui-dist 5, Apache-2.0)."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="maskwatch API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="")

    app.mount("/docs-assets", StaticFiles(directory=STATIC / "docs"), name="docs-assets")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        """None: answered, so that browsers do not log an error (or a 401 on a keyed server) for every page."""
        return Response(status_code=204)

    @app.get("/healthz", response_model=Health, tags=["server"])
    def healthz() -> dict:
        """Liveness, and how many requests are being decoded or detected (or wait for a worker)."""
        return {"status": "ok", "model_loaded": "detector" in state, "busy": pool.busy}

    # (monitors ask with HEAD: an operation of its own id, or client generators meet one id twice)
    app.head("/healthz", response_model=Health, tags=["server"], operation_id="healthz_head")(healthz)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    app.include_router(photo_router(settings, pool, state))
    app.include_router(video_router(settings, pool, state))
    return app


def photo_router(settings: Settings, pool: WorkerPool, state: dict) -> APIRouter:
    """POST /v1/detect and /v1/annotate: a photo in, its faces out (JSON, or drawn), on the worker pool."""
    router = APIRouter()

    def decode_upload(data: bytes, name: str):
        """The picture, and what was wrong with it that did not stop it being read (for the client: it never sees
        the server's log)."""
        try:
            with decoding_warnings() as heard:
                return decode_image(data, name), heard
        except TooManyPixels as exc:  # a readable image, only too big to decode: the size is what is refused
            raise HTTPException(413, str(exc)) from exc
        except MaskwatchError as exc:  # names the file and says it is not a readable image
            hint = "; it is a video: send videos to POST /v1/videos" if is_video_header(data[:12]) else ""
            raise HTTPException(415, f"{exc}{hint}") from exc

    def detect(image, conf: float, all_classes: bool):
        detections = state["detector"](image, min_score=conf, all_classes=all_classes)
        faces = best_class_per_face(detections)  # counts are of people, whatever the listing
        return detections, class_counts(faces, state["detector"].classes)

    def encode_annotated(image, detections, format: str) -> bytes:
        """The image with the detections drawn, encoded as JPEG or PNG."""
        ok, encoded = cv2.imencode(".png" if format == "png" else ".jpg",
                                   annotate(image, detections, state["detector"].classes))
        return encoded.tobytes()

    @router.post("/v1/detect", responses=UPLOAD_ERRORS, response_model=DetectResult, response_model_exclude_unset=True,
              tags=TAGS)
    async def detect_image(request: Request, file: UploadFile = File(...),
                           conf: float = Query(FOR_PEOPLE.min_score, ge=0.0, le=1.0, allow_inf_nan=False,
                                               description="lowest score returned"),
                           all_classes: bool = Query(FOR_PEOPLE.all_classes,
                                                     description="one box per plausible class"),
                           annotated: bool = Query(False, description="also the image with every face drawn, as "
                                                   "a JPEG data URL in `annotated_image` (one detection for both)")
                           ) -> dict:
        """Detections in the project's predictions format, plus counts per class; with `annotated=true` also
        `annotated_image`, the image with one box per face drawn, as a `data:image/jpeg;base64,...` URL."""
        buffer = io.BytesIO()
        await read_upload(request, file, buffer, settings)
        name = Path(file.filename or "upload").name

        def work() -> dict:
            image, heard = decode_upload(buffer.getvalue(), name)
            detections, counts = detect(image, conf, all_classes)
            record = {**ImagePredictions(name, image.shape[1], image.shape[0], detections).to_record(),
                      "counts": counts, "compliance": compliance_of(counts), "warnings": heard}
            if annotated:
                drawn = encode_annotated(image, best_class_per_face(detections), "jpeg")  # one box per face
                record["annotated_image"] = "data:image/jpeg;base64," + base64.b64encode(drawn).decode("ascii")
            return record

        return await pool.run(work, request=request)

    @router.post("/v1/annotate", response_class=Response, tags=TAGS, responses={**binary_response(
        ("image/jpeg", "image/png"), "the image with one box per face",
        **{"X-Maskwatch-Counts": "faces per class: with_mask=2,without_mask=1,mask_weared_incorrect=0 (a class "
                                 "name outside ASCII percent-encoded as UTF-8)",
           "X-Maskwatch-Warnings": "only where the picture was read with a problem (a damaged JPEG, a TIFF of "
                                   "several pages): the warnings, separated by ' | '"}),
        **UPLOAD_ERRORS})
    async def annotate_image(request: Request, file: UploadFile = File(...),
                             format: str = Query("jpeg", pattern="^(jpeg|png)$"),
                             conf: float = Query(FOR_PEOPLE.min_score, ge=0.0, le=1.0, allow_inf_nan=False)
                             ) -> Response:
        """The image with every face drawn, as JPEG or PNG."""
        buffer = io.BytesIO()
        await read_upload(request, file, buffer, settings)

        def work() -> tuple[bytes, dict, list[str]]:
            image, heard = decode_upload(buffer.getvalue(), Path(file.filename or "upload").name)
            detections, counts = detect(image, conf, False)
            return encode_annotated(image, detections, format), counts, heard

        encoded, counts, heard = await pool.run(work, request=request)
        headers = {"X-Maskwatch-Counts": ",".join(f"{quote(k, safe='')}={v}" for k, v in counts.items())}
        if heard:  # (a header is one line of Latin-1: the file's name and message made safe for it)
            headers["X-Maskwatch-Warnings"] = " | ".join(map(one_line, heard)).strip().encode(
                "latin-1", "replace").decode("latin-1")  # (h11 refuses a value that starts or ends with a space)
        return Response(encoded, media_type=f"image/{format}", headers=headers)

    return router


def video_router(settings: Settings, pool: WorkerPool, state: dict) -> APIRouter:
    """/v1/videos: a video in, a job that runs it (JobQueue), its result video and summary out."""
    router = APIRouter()

    @router.post("/v1/videos", status_code=202, responses=UPLOAD_ERRORS, response_model=VideoJobCreated, tags=TAGS)
    async def submit_video(request: Request, file: UploadFile = File(...)) -> dict:
        """Queue a video; poll GET /v1/videos/{id}, then fetch /v1/videos/{id}/result."""
        if state["jobs"].queued() >= SERVE_MAX_QUEUED_VIDEOS:  # each waits with its upload on disk
            raise HTTPException(503, f"{SERVE_MAX_QUEUED_VIDEOS} video jobs are already waiting; try again once "
                                     f"some have run", headers={"Retry-After": "60"})
        uploads = settings.data_dir / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=uploads, delete=False) as target:
            temp = Path(target.name)

        def check_video() -> None:
            """The header's frame size, then the first frame: the content decides, not the name. A photo would
            open as a video of one frame (FFmpeg reads images too): it goes to /v1/detect."""
            if is_still_image(temp):
                raise HTTPException(415, photo_refusal(temp))
            try:
                FileSource(temp).close()
            except MaskwatchError as exc:
                text = str(exc).replace(f"{temp}: is ", "the upload is ")
                status = 413 if isinstance(exc, TooManyPixels) else 415
                raise HTTPException(status, text.replace(str(temp), "the upload")) from None

        try:
            with temp.open("wb") as target:
                await read_upload(request, file, target, settings)
            await pool.run(check_video, request=request)
            job_id = state["jobs"].create(temp, Path(file.filename or "video").name)
        except BaseException:  # refused (413, 415, 503) or failed (cv2.error, OSError, the job database): not kept
            temp.unlink(missing_ok=True)
            raise
        return {"id": job_id, "status": "queued", "status_url": f"/v1/videos/{job_id}",
                "result_url": f"/v1/videos/{job_id}/result", "summary_url": f"/v1/videos/{job_id}/summary"}

    def job_or_404(job_id: str):
        job = state["jobs"].get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, "no such video job")
        return job

    @router.get("/v1/videos", response_model=VideoJobList, response_model_exclude_unset=True, tags=TAGS,
             responses=error_responses(_403="the server has no API key"))
    def list_videos() -> dict:
        """Every video job the server keeps (a result video shows faces: find and DELETE what is no longer
        needed, also when its id was lost). Only on a server with an API key: without one, a job's random id is
        what keeps its result from others."""
        if not settings.api_key:
            raise HTTPException(403, "listing the video jobs needs a server with --api-key (without a key, each "
                                     "job's id is what keeps its result from others)")
        return {"jobs": [job.as_dict() for job in state["jobs"].all()]}

    @router.get("/v1/videos/{job_id}", responses=JOB_ERRORS, response_model=VideoJob, response_model_exclude_unset=True,
             tags=TAGS)
    def video_status(job_id: str) -> dict:
        return job_or_404(job_id).as_dict()

    @router.get("/v1/videos/{job_id}/result", response_class=Response, tags=TAGS, responses={
        **binary_response(("video/mp4",), "the annotated video (H.264)"), **JOB_ERRORS, **NOT_READY})
    def video_result(job_id: str) -> FileResponse:
        job = job_or_404(job_id)
        path = state["jobs"].result_path(job.id)
        if job.status != "finished" or not path.is_file():
            raise HTTPException(409, f"the job has {'failed' if job.status == 'failed' else 'not finished'} "
                                     f"({job.status}); there is no result")
        name = Path(job.filename or "video").stem + "_maskwatch.mp4"
        return FileResponse(path, media_type="video/mp4", filename=name, content_disposition_type="inline")

    @router.get("/v1/videos/{job_id}/summary", responses={**JOB_ERRORS, **NOT_READY}, response_model=RunSummary,
             response_model_exclude_unset=True, tags=TAGS)
    def video_summary(job_id: str) -> dict:
        job = job_or_404(job_id)
        if job.status != "finished":
            raise HTTPException(409, f"the job has {'failed' if job.status == 'failed' else 'not finished'} "
                                     f"({job.status}); there is no summary")
        return job.summary

    @router.delete("/v1/videos/{job_id}", status_code=204, tags=TAGS,
                responses={**JOB_ERRORS, **error_responses(_409="the running job did not stop in time")})
    def delete_video(job_id: str) -> Response:
        """Delete a job and everything kept for it (its upload, result video and events); a running job is
        stopped first."""
        job_or_404(job_id)
        if not state["jobs"].delete(job_id):
            raise HTTPException(409, "the job is running and did not stop within 30 s (a frame that takes long); "
                                     "try again")
        return Response(status_code=204)

    return router


async def read_upload(request: Request, file: UploadFile, target, settings: Settings) -> int:
    """Copy an upload into `target` (a binary file). The body's limit (the file plus room for the form's
    headers) was enforced while it was received; the file's own is checked here. One file per request:
    FastAPI would keep the last of several and drop the others without a word."""
    sent = len((await request.form()).getlist("file"))  # (the form FastAPI parsed, not read again)
    if sent > 1:
        raise HTTPException(422, f"one file per request, got {sent}: send each in a request of its own")
    size = 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > settings.max_upload_bytes:
            raise HTTPException(413, settings.too_large)
        target.write(chunk)
    if size == 0:
        raise HTTPException(422, "the uploaded file is empty")
    return size


def validation_error_body(errors) -> dict:
    """`{"detail": "query parameter conf: Input should be less than or equal to 1", "errors": [...]}`: what failed,
    in words, and FastAPI's list without the input (an upload's bytes would be echoed back)."""
    places = {"query": "query parameter", "body": "form field", "path": "path parameter", "header": "header"}
    kept = [{key: value for key, value in error.items() if key in ("type", "loc", "msg")} for error in errors]
    words = []
    for error in kept:
        where, *names = [str(part) for part in error.get("loc", ())] or [""]
        place = " ".join([places.get(where, where), ".".join(names)]).strip()
        message = str(error.get("msg", "invalid"))
        if "Expected UploadFile" in message:  # text where a file goes (curl -F file=photo.jpg, without @)
            message = "expected a file, got text (with curl: -F file=@photo.jpg)"
        words.append(f"{place}: {message}" if place else message)
    return {"detail": "; ".join(words) or "invalid request", "errors": jsonable_encoder(kept)}


def openapi_schema(app: FastAPI, keyed: bool) -> dict:
    """FastAPI's schema with the answers as they are: a 422 is an ErrorBody like every other refusal (see
    `validation_error_body`); and on a server with a key, the X-API-Key scheme, required by every operation but
    the open ones, so /docs shows its Authorize button and sends the key with what is tried from it."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        if keyed:
            components["securitySchemes"] = {API_KEY_SCHEME: {
                "type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": f"the server's --api-key (or {API_KEY_ENV})"}}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if path in OPEN_PATHS:
                    responses.pop("401", None)  # (the app's answer to every route; not these)
                can_be_invalid = "requestBody" in operation or any(
                    p.get("in") in ("query", "header") for p in operation.get("parameters", []))
                if not can_be_invalid:
                    responses.pop("422", None)
                invalid = responses.get("422")
                if invalid and "HTTPValidationError" in str(invalid):
                    operation["responses"]["422"] = {"description": "a parameter or form field missing or out of range",
                                                     "content": {"application/json": {"schema": {
                                                         "$ref": "#/components/schemas/ErrorBody"}}}}
                if keyed:
                    operation["security"] = [] if path in OPEN_PATHS else [{API_KEY_SCHEME: []}]
        app.openapi_schema = schema
    return app.openapi_schema


def clean_uploads(folder: Path) -> None:
    """Remove the partial uploads a server killed mid-upload left behind (only while holding the data lock)."""
    for path in folder.glob("tmp*"):
        if path.is_file():
            path.unlink(missing_ok=True)


def check_can_listen(host: str, port: int) -> None:
    """Refuse, before anything starts or is printed, an address the server could not listen on: a port out of
    range (a traceback from bind()), one in use (uvicorn's exit 3 after the 'maskwatch on' line), or a host
    that is not this machine's."""
    import socket

    if not 1 <= port <= 65535:
        raise MaskwatchError(f"--port {port}: a TCP port is a number from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise MaskwatchError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as uvicorn binds)
        try:
            probe.bind(address)
        except OSError as exc:
            why = ("in use (another server? give another --port)" if exc.errno == errno.EADDRINUSE else
                   "not this machine's (give 127.0.0.1 or 0.0.0.0)" if exc.errno == errno.EADDRNOTAVAIL else
                   exc.strerror or str(exc))
            raise MaskwatchError(f"cannot listen on {host}:{port}: {why}") from None


# What the cameras page asks for every second, per camera: answered, not worth a line each in the access log (one
# open tab with two cameras wrote three lines a second, about 19 MB a day).
PAGE_POLLS = re.compile(r"^/v1/cameras(/[^/?]+/snapshot\.jpg)?(\?.*)?$")


class QuietPagePolls(logging.Filter):
    """Leaves the pages' answered polls out of uvicorn's access log; uploads, other routes and every error stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 5:  # uvicorn's access record: client, method, path, HTTP version, status
            _, method, path, _, status = args
            if method == "GET" and isinstance(status, int) and status < 400 and PAGE_POLLS.match(str(path)):
                return False
        return True


def serve(host: str, port: int, settings: Settings, allowed_hosts: tuple[str, ...] = ()) -> None:
    """Run the server. allowed_hosts: names besides loopback's that a server listening on loopback answers for
    (a reverse proxy on this machine that passes the public Host header on)."""
    import uvicorn

    check_can_listen(host, port)
    # The model loaded here, not as the app starts: one that cannot load is one line, not Starlette's traceback.
    detector = Detector.load(settings.model, threads=settings.threads or usable_cores())
    app = create_app(settings, detector)  # refuses a data directory another server holds, before it listens
    count = len(settings.cameras.cameras) if settings.cameras else 0
    print(f"maskwatch on http://{host}:{port}/ (API docs at /docs)"
          + (f"; {count} camera(s) at /cameras" if count else "")
          + (f"; video results deleted {settings.keep_results_days:g} day(s) after their job ended"
             if settings.keep_results_days else ""), flush=True)
    gate = UploadGate(app, settings.max_body_bytes, settings.too_large, settings.api_key, OPEN_PATHS)
    if is_loopback(host) and "*" not in allowed_hosts:
        gate = LoopbackHostGate(gate, frozenset(allowed_hosts))
    if hasattr(signal, "SIGHUP"):  # (a closed terminal) stops the server as SIGTERM does, cleanly: uvicorn handles
        signal.signal(signal.SIGHUP, lambda *_: os.kill(os.getpid(), signal.SIGTERM))  # only SIGINT and SIGTERM
    # Live streams never end by themselves: a stop waits this long for them, then closes them.
    logging.getLogger("uvicorn.access").addFilter(QuietPagePolls())
    uvicorn.run(gate, host=host, port=port, log_level="info", timeout_graceful_shutdown=3)
