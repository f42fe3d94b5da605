"""The FastAPI app: `maskwatch serve` runs it with uvicorn.

Uploads are checked by decoding, never by file name; sizes are capped (413); job ids are random and checked
against the database before any path is built from them; an optional API key guards every route but health.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import tempfile
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from maskwatch.annotate import annotate
from maskwatch.data.images import decode_image
from maskwatch.detector import Detector, best_class_per_face
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import ImagePredictions
from maskwatch.serve.jobs import JobQueue
from maskwatch.video.sources import FileSource

STATIC = Path(__file__).parent / "static"
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{20,40}$")
CHUNK = 1 << 20


@dataclass
class Settings:
    data_dir: Path = Path("out/serve")
    max_upload_mb: float = 200.0
    api_key: str | None = None
    threads: int | None = None
    model: Path | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def create_app(settings: Settings | None = None, detector: Detector | None = None) -> FastAPI:
    settings = settings or Settings(api_key=os.environ.get("MASKWATCH_API_KEY") or None)
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["detector"] = detector or Detector.load(settings.model, threads=settings.threads)
        state["jobs"] = JobQueue(settings.data_dir / "jobs", state["detector"])
        yield
        state["jobs"].close()

    app = FastAPI(title="maskwatch", version="0.1.0", lifespan=lifespan,
                  description="Detect faces and whether they wear a mask correctly, wrongly, or not at all.")

    def check_key(request: Request) -> None:
        if not settings.api_key:
            return
        given = request.headers.get("x-api-key") or request.query_params.get("api_key") or ""
        if not secrets.compare_digest(given.encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send it as the X-API-Key header)")

    async def read_upload(request: Request, file: UploadFile, target) -> int:
        """Copy an upload into `target` (a binary file), refusing more than the configured size."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + 64 * 1024:
            raise HTTPException(413, f"upload larger than the limit of {settings.max_upload_mb:g} MB")
        size = 0
        while chunk := await file.read(CHUNK):
            size += len(chunk)
            if size > settings.max_upload_bytes:
                raise HTTPException(413, f"upload larger than the limit of {settings.max_upload_mb:g} MB")
            target.write(chunk)
        if size == 0:
            raise HTTPException(422, "the uploaded file is empty")
        return size

    async def read_image_upload(request: Request, file: UploadFile):
        buffer = io.BytesIO()
        await read_upload(request, file, buffer)
        try:
            return decode_image(buffer.getvalue(), file.filename or "upload")
        except MaskwatchError as exc:
            raise HTTPException(415, f"not a readable image: {exc}") from exc

    def detect(image, conf: float, all_classes: bool):
        detections = state["detector"](image, min_score=conf, all_classes=all_classes)
        faces = best_class_per_face(detections)  # counts are of people, whatever the listing
        counts = Counter(str(n) for n in faces.data.get("class_name", []))
        return detections, {c: counts.get(c, 0) for c in state["detector"].classes}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "model_loaded": "detector" in state}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.post("/v1/detect", dependencies=[Depends(check_key)])
    async def detect_image(request: Request, file: UploadFile = File(...),
                           conf: float = Query(0.4, ge=0.0, le=1.0, description="lowest score returned"),
                           all_classes: bool = Query(False, description="one box per plausible class")) -> dict:
        """Detections in the project's predictions format, plus counts per class."""
        image = await read_image_upload(request, file)
        detections, counts = detect(image, conf, all_classes)
        record = ImagePredictions(Path(file.filename or "upload").name, image.shape[1], image.shape[0],
                                  detections).to_record()
        return {**record, "counts": counts}

    @app.post("/v1/annotate", dependencies=[Depends(check_key)],
              responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
    async def annotate_image(request: Request, file: UploadFile = File(...),
                             format: str = Query("jpeg", pattern="^(jpeg|png)$"),
                             conf: float = Query(0.4, ge=0.0, le=1.0)) -> Response:
        """The image with every face drawn, as JPEG or PNG."""
        image = await read_image_upload(request, file)
        detections, counts = detect(image, conf, False)
        ok, encoded = cv2.imencode(".png" if format == "png" else ".jpg", annotate(image, detections,
                                                                                  state["detector"].classes))
        headers = {"X-Maskwatch-Counts": ",".join(f"{k}={v}" for k, v in counts.items())}
        return Response(encoded.tobytes(), media_type=f"image/{format}", headers=headers)

    @app.post("/v1/videos", status_code=202, dependencies=[Depends(check_key)])
    async def submit_video(request: Request, file: UploadFile = File(...)) -> dict:
        """Queue a video; poll GET /v1/videos/{id}, then fetch /v1/videos/{id}/result."""
        uploads = settings.data_dir / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=uploads, delete=False) as target:
            temp = Path(target.name)
            try:
                await read_upload(request, file, target)
            except HTTPException:
                temp.unlink(missing_ok=True)
                raise
        try:
            FileSource(temp).close()  # decodes the first frame: the content decides, not the name
        except MaskwatchError:
            temp.unlink(missing_ok=True)
            raise HTTPException(415, "not a readable video (no frame could be decoded)") from None
        job_id = state["jobs"].create(temp, Path(file.filename or "video").name)
        return {"id": job_id, "status": "queued", "status_url": f"/v1/videos/{job_id}",
                "result_url": f"/v1/videos/{job_id}/result", "summary_url": f"/v1/videos/{job_id}/summary"}

    def job_or_404(job_id: str):
        job = state["jobs"].get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, "no such video job")
        return job

    @app.get("/v1/videos/{job_id}", dependencies=[Depends(check_key)])
    def video_status(job_id: str) -> dict:
        return job_or_404(job_id).as_dict()

    @app.get("/v1/videos/{job_id}/result", dependencies=[Depends(check_key)],
             responses={200: {"content": {"video/mp4": {}}}})
    def video_result(job_id: str) -> FileResponse:
        job = job_or_404(job_id)
        path = state["jobs"].job_dir(job.id) / "result.mp4"
        if job.status != "finished" or not path.is_file():
            raise HTTPException(409, f"the job is {job.status}; the result is not ready")
        name = Path(job.filename or "video").stem + "_maskwatch.mp4"
        return FileResponse(path, media_type="video/mp4", filename=name, content_disposition_type="inline")

    @app.get("/v1/videos/{job_id}/summary", dependencies=[Depends(check_key)])
    def video_summary(job_id: str) -> JSONResponse:
        job = job_or_404(job_id)
        if job.status != "finished":
            raise HTTPException(409, f"the job is {job.status}; the summary is not ready")
        return JSONResponse(job.summary)

    return app


def serve(host: str, port: int, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
