"""What stands between a client and the detector: the API key and the upload limit, checked before the body is
read, and a bounded pool of worker threads for the CPU work, so one heavy request cannot stall the server."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Callable, TypeVar

import anyio
import anyio.to_thread
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from maskwatch.errors import MaskwatchError

T = TypeVar("T")


def has_key(scope: Scope, api_key: bytes, open_paths: frozenset[str]) -> bool:
    """Whether a request may go on: its path is open, or its X-API-Key header is the key."""
    if scope["path"] in open_paths:
        return True
    return secrets.compare_digest(Headers(scope=scope).get("x-api-key", "").encode(), api_key)


def no_key(headers: dict[str, str] | None = None) -> JSONResponse:
    """The 401 answer to a request without the right X-API-Key, the same from both middlewares that refuse one."""
    return JSONResponse({"detail": "missing or wrong API key (send it as the X-API-Key header)"}, status_code=401,
                        headers=headers)


class ApiKeyMiddleware:
    """Checks X-API-Key before the request reaches FastAPI, which reads the whole body before it runs any
    dependency: a client without the key is turned away before it can upload anything. Only the header counts
    (a key in the URL ends up in access logs)."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: frozenset[str]):
        self.app = app
        self.api_key = api_key.encode()
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not has_key(scope, self.api_key, self.open_paths):
            await no_key()(scope, receive, send)
            return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """Whether a host name or address (IPv6 with or without its brackets) is this machine's loopback; a name
    that merely starts like one (127.0.0.1.example.org) is not."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def host_of(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:8000" -> "[::1]")."""
    if header.startswith("["):  # an IPv6 address: [::1]:8000
        return header.partition("]")[0] + "]"
    return header.partition(":")[0]


class LoopbackHostGate:
    """On a server listening on loopback only (the default), a request must name a loopback host or one of
    `allowed` (the public name a reverse proxy on this machine passes on): a web page the user visits cannot
    reach the server by a name of its own that resolves to 127.0.0.1 (DNS rebinding) and read its answers,
    camera pictures included."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] = frozenset()):
        self.app = app
        self.allowed = frozenset(name.lower() for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # (not the lifespan's, which has no headers)
            host = host_of(Headers(scope=scope).get("host", "localhost")).lower()
            if not (is_loopback(host) or host in self.allowed):
                await JSONResponse({"detail": f"this server listens on loopback only and answers for loopback names "
                                              f"(127.0.0.1, localhost) and those given with serve --allowed-host; "
                                              f"not {host!r}"}, status_code=421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class UploadGate:
    """The connection side of the upload limit, outside the app: a request whose Content-Length is over the
    limit is answered 413 before anything is read (FastAPI's `max_body_size` stops the ones that declare no
    length once they pass it), and a response sent before the body was read to its end (a refusal: 401, 413)
    closes the connection. Otherwise uvicorn would go on reading, and throwing away, the rest of the upload to
    keep the connection alive, and a client refused at the first byte could still stream gigabytes in."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, too_large: str, api_key: str | None = None,
                 open_paths: frozenset[str] = frozenset()):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.too_large = too_large
        self.api_key = api_key.encode() if api_key else None  # a client without it hears 401, not the limit
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            if self.api_key is not None and not has_key(scope, self.api_key, self.open_paths):
                response = no_key({"Connection": "close"})
            else:
                response = JSONResponse({"detail": self.too_large}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        body_read = declared == "0" and "transfer-encoding" not in headers

        async def tracked_receive():
            nonlocal body_read
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body_read = True
            return message

        async def closing_send(message) -> None:
            if message["type"] == "http.response.start" and not body_read:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracked_receive, closing_send)


class WorkerPool:
    """Decoding and detection on a few threads (OpenCV and onnxruntime release the GIL), so the event loop is
    free for other requests; when `workers + max_queue` requests are already in, the next one gets 503."""

    def __init__(self, workers: int, max_queue: int):
        if workers < 1 or max_queue < 0:
            raise MaskwatchError(f"--workers must be 1 or more and --max-queue 0 or more (got {workers}, {max_queue})")
        self.limiter = anyio.CapacityLimiter(workers)  # the gate: a worker's turn
        self.threads = anyio.CapacityLimiter(workers)  # its thread (anyio's own pool stops at 40)
        self.capacity = workers + max_queue
        self.busy = 0  # requests in the pool, running or waiting; only the event loop touches it

    async def run(self, function: Callable[..., T], *args, request: Request | None = None) -> T:
        """`function(*args)` on a worker thread once one is free; with `request`, not at all when its client has
        gone meanwhile (a client that gave up must not leave seconds of work for the others to wait behind)."""
        if self.busy >= self.capacity:
            raise HTTPException(503, f"the server is busy ({self.busy} requests in work); retry in a moment",
                                headers={"Retry-After": "1"})
        self.busy += 1
        try:
            async with self.limiter:
                if request is not None and await request.is_disconnected():
                    raise HTTPException(499, "the client closed the connection before its turn")
                return await anyio.to_thread.run_sync(function, *args, limiter=self.threads)
        finally:
            self.busy -= 1
