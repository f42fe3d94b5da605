"""A camera setup in one YAML file: sources, zones, lines and sinks per camera (`watch --config`; the same
CameraConfig is what the command line builds, and what a server watching cameras can build from the file).

    defaults:                       # optional, merged into every camera (the camera's own keys win)
      db: out/maskwatch.sqlite
      mqtt: mqtt://127.0.0.1:1883/maskwatch/{camera}
      summary_every: 30
    cameras:
      door:
        source: rtsp://192.168.1.20:554/stream
        every: 2                    # detect every 2nd frame (default: chosen from the measured speed)
        zones: {queue: [100,200, 400,200, 400,470, 100,470]}
        lines: {entrance: "320,0,320,480"}
        webhooks:
          - url: http://127.0.0.1:8080/maskwatch
            secret: ${MASKWATCH_WEBHOOK_SECRET}

`${NAME}` in a value is read from the environment (secrets stay out of the file). Unknown keys are errors, so a
typo does not silently turn a feature off.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from maskwatch.data.dataset import read_text_file
from maskwatch.errors import MaskwatchError
from maskwatch.face_finder import AUTO, AUTO_FULL, ScalePolicy
from maskwatch.limits import WEBHOOK_TIMEOUT_S
from maskwatch.video.pipeline import OPTION_CHECKS, VideoPipeline, WatchOptions
from maskwatch.video.redact import without_password
from maskwatch.video.sinks import MqttSink, WebhookSink
from maskwatch.video.sinks.mqtt import check_mqtt_url
from maskwatch.video.store import DEFAULT_DB
from maskwatch.video.zones import Line, Zone

_DEFAULTS = WatchOptions()  # the pipeline's defaults are the camera's


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook of a camera: the URL events are posted to, the secret that signs them (X-Maskwatch-Signature-256) and
    how long a receiver may take to answer."""

    url: str
    secret: str | None = None
    timeout: float = WEBHOOK_TIMEOUT_S  # seconds a receiver may take to answer an event

    def __post_init__(self) -> None:
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 300:
            raise MaskwatchError(f"webhook {without_password(self.url)}: timeout (--webhook-timeout) is {t!r}; "
                                 f"expected seconds, above 0 and at most 300")


@dataclass(frozen=True)
class CameraConfig:
    """Everything one camera needs; its defaults (WatchOptions') are those of `maskwatch watch`."""

    name: str | None
    source: str
    out: Path | None = None
    db: Path | None = DEFAULT_DB
    zones: tuple[Zone, ...] = ()
    lines: tuple[Line, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    mqtt: tuple[str, ...] = ()
    every: int | None = _DEFAULTS.every  # None: chosen from the measured speed (video/realtime.py)
    max_fps: float | None = _DEFAULTS.max_fps
    max_frames: int | None = _DEFAULTS.max_frames
    blur_faces: bool = _DEFAULTS.blur_faces
    show: bool = _DEFAULTS.show
    window: float = _DEFAULTS.window_s
    summary_every: float | None = _DEFAULTS.summary_every
    event_snapshots: bool = _DEFAULTS.event_snapshots
    keep_faces: bool = _DEFAULTS.keep_faces
    scale: str = AUTO
    model: Path | None = None
    give_up_after: float | None = _DEFAULTS.give_up_after_s  # `watch` only: `serve` keeps retrying a camera
    wait_for_camera: float = _DEFAULTS.wait_for_camera_s  # `watch` only, as give_up_after

    def options(self) -> WatchOptions:
        return WatchOptions(every=self.every, max_fps=self.max_fps, max_frames=self.max_frames,
                            blur_faces=self.blur_faces, show=self.show, window_s=self.window,
                            summary_every=self.summary_every, event_snapshots=self.event_snapshots,
                            keep_faces=self.keep_faces, give_up_after_s=self.give_up_after,
                            wait_for_camera_s=self.wait_for_camera)

    def sinks(self) -> list:
        """The network sinks of this camera (the video file and database come from `out` and `db`)."""
        queue = self.db or DEFAULT_DB
        return ([WebhookSink(w.url, w.secret, queue_path=queue, timeout_s=w.timeout) for w in self.webhooks]
                + [MqttSink(url) for url in self.mqtt])

    def check(self) -> None:
        """Values given on the command line or in Python, checked as those from a file (MaskwatchError)."""
        for key in _CHECKS:
            where = (f"camera {self.name!r}" if self.name else f"camera {self.source}" if str(self.source).isdigit()
                     else str(self.source))
            check_value(key, getattr(self, key), where)

    def pipeline(self, detector) -> VideoPipeline:
        self.check()
        return VideoPipeline(detector, self.options(), self.db, self.sinks(), self.zones, self.lines, self.name)

    def with_overrides(self, **values: Any) -> "CameraConfig":
        """This camera with the values given (None: keep this camera's); zones, lines, webhooks and mqtt add up."""
        given = {k: v for k, v in values.items() if v is not None}
        for key in ("zones", "lines", "webhooks", "mqtt"):
            if key in given:
                given[key] = (*getattr(self, key), *given[key])
        return replace(self, **given)


_KEYS = {f.name for f in fields(CameraConfig)} - {"name"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# What each plain value may be: a test and what to write instead (None: the key may be left empty).
def _scale_ok(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        ScalePolicy.parse(value if isinstance(value, str) else float(value))
    except (MaskwatchError, TypeError, ValueError):
        return False
    return True


_CHECKS: dict[str, tuple[Any, str]] = {  # the pipeline's own checks for its options (window: window_s there)
    **{key: OPTION_CHECKS[key] for key in ("every", "max_fps", "max_frames", "summary_every")},
    "window": OPTION_CHECKS["window_s"],
    "give_up_after": OPTION_CHECKS["give_up_after_s"],
    "wait_for_camera": OPTION_CHECKS["wait_for_camera_s"],
    "blur_faces": (lambda v: isinstance(v, bool), "true or false"),
    "show": (lambda v: isinstance(v, bool), "true or false"),
    "event_snapshots": (lambda v: isinstance(v, bool), "true or false"),
    "keep_faces": (lambda v: isinstance(v, bool), "true or false"),
    "scale": (_scale_ok, f"auto, {AUTO_FULL} or a number from 0.1 to 4"),
}


def check_value(key: str, value: Any, where: str) -> None:
    """A type or range the pipeline cannot use is refused now, naming the camera and the key (also the option
    `watch` takes for it), not as a TypeError in the middle of a run."""
    test, expected = _CHECKS[key]
    if not test(value):
        raise MaskwatchError(f"{where}: {key} (--{key.replace('_', '-')}) is {value!r}; expected {expected}")


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):
        def env(match: re.Match) -> str:
            if match.group(1) not in os.environ:
                raise MaskwatchError(f"{where}: ${{{match.group(1)}}} is not set in the environment")
            return os.environ[match.group(1)]
        return _ENV.sub(env, value)
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, where) for k, v in value.items()}
    return value


def _coords(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        flat = [v for item in value for v in (item if isinstance(item, list) else [item])]
        return ",".join(str(v) for v in flat)
    raise MaskwatchError(f"{where}: give the points as a list [x1, y1, x2, y2, ...] or a string 'x1,y1,x2,y2,...'")


def _beside(value: str, base: Path | None) -> str:
    """An input path of a config file (a video, a folder, a model): relative ones are looked for beside the file
    first (where whoever wrote it most likely put them), then in the working directory, as before."""
    path = Path(value)
    if base is None or path.is_absolute() or "://" in value or value.isdigit() or path.exists():
        return value
    return str(base / path) if (base / path).exists() else value


def camera_from_dict(name: str | None, data: dict[str, Any], where: str, base: Path | None = None) -> CameraConfig:
    """base: the config file's folder, where relative input paths (source, model) are looked for first."""
    if not isinstance(data, dict):
        raise MaskwatchError(f"{where}: expected a mapping of keys (source, zones, lines, webhooks, mqtt, ...)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise MaskwatchError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    data = _expand(data, where)
    if "source" not in data:
        raise MaskwatchError(f"{where}: no source (a video file, webcam index, rtsp:// URL or folder)")
    values: dict[str, Any] = {"source": _beside(str(data["source"]), base)}
    for key in ("zones", "lines"):
        items = data.get(key) or {}
        if not isinstance(items, dict):
            raise MaskwatchError(f"{where}: {key} is a mapping NAME: [x1, y1, x2, y2, ...]")
        parse = Zone.parse if key == "zones" else Line.parse
        values[key] = tuple(parse(f"{n}={_coords(v, f'{where}: {key}.{n}')}", f"{where}: {key}.{n}")
                            for n, v in items.items())
    webhooks = data.get("webhooks") or []
    if isinstance(webhooks, (str, dict)):
        webhooks = [webhooks]
    values["webhooks"] = tuple(
        WebhookConfig(w) if isinstance(w, str) else _webhook(w, f"{where}: webhooks") for w in webhooks)
    mqtt = data.get("mqtt") or []
    values["mqtt"] = tuple([mqtt] if isinstance(mqtt, str) else map(str, mqtt))
    for url in values["mqtt"]:  # (checked here, so a mistake names the file and camera, not only --mqtt)
        try:
            check_mqtt_url(url)
        except MaskwatchError as exc:
            raise MaskwatchError(f"{where}: mqtt: {exc}") from None
    for key in ("out", "db", "model"):  # outputs (out, db) are relative to the working directory
        if key in data:
            values[key] = Path(_beside(str(data[key]), base) if key == "model" else data[key]) if data[key] else None
    for key in _KEYS - set(values) - {"out", "db", "model"}:
        if key in data:
            if isinstance(data[key], str) and key in _CHECKS and key != "scale":  # `every: ${EVERY}` is text
                try:
                    number = yaml.safe_load(data[key])
                except yaml.YAMLError:
                    number = None  # (check_value says what was expected)
                if isinstance(number, (int, float)) and not isinstance(number, bool):
                    data[key] = number
            check_value(key, data[key], where)
            values[key] = data[key]
    if "scale" in values:
        values["scale"] = str(values["scale"])
    camera = CameraConfig(name=name, **values)
    camera.sinks()  # URLs checked now, not when the camera starts
    return camera


def _webhook(value: Any, where: str) -> WebhookConfig:
    if not isinstance(value, dict) or "url" not in value or set(value) - {"url", "secret", "timeout"}:
        unknown = sorted(set(value) - {"url", "secret", "timeout"}) if isinstance(value, dict) else []
        raise MaskwatchError(f"{where}: each webhook is a URL or {{url: ..., secret: ..., timeout: SECONDS}}" +
                             (f" (unknown key(s): {', '.join(map(str, unknown))})" if unknown else ""))
    if "secret" in value and not value["secret"]:  # (an environment variable set to nothing)
        raise MaskwatchError(f"{where}: the secret of {without_password(str(value['url']))} is empty, so its bodies "
                             f"would go unsigned; give the secret, or leave `secret:` out to send them unsigned on "
                             f"purpose")
    try:
        return WebhookConfig(str(value["url"]), value.get("secret"), value.get("timeout", WEBHOOK_TIMEOUT_S))
    except MaskwatchError as exc:
        raise MaskwatchError(f"{where}: {exc}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last silently: two cameras or
    zones of one name would lose one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"{key!r} is given twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: Path) -> dict[str, CameraConfig]:
    """The cameras of a config file, by name."""
    path = Path(path)
    cameras, defaults = _read_cameras(path)
    return {name: _camera(name, camera, defaults, path) for name, camera in cameras.items()}


def load_camera(path: Path, name: str | None) -> CameraConfig:
    """The camera of a config file that --camera names (None: the only one there is). The others are only
    named, not read: another camera's unset ${VAR} is not this one's error."""
    path = Path(path)
    cameras, defaults = _read_cameras(path)
    picked = pick_camera(list(cameras), name, path)
    return _camera(picked, cameras[picked], defaults, path)


def _camera(name: str, raw: dict | None, defaults: dict, path: Path) -> CameraConfig:
    return camera_from_dict(name, {**defaults, **(raw or {})}, f"{path}: camera {name!r}", path.parent)


def _read_cameras(path: Path) -> tuple[dict[str, Any], dict]:
    """A config file's cameras as written (by name) and its defaults; MaskwatchError for a file that is not one."""
    try:
        data = yaml.load(read_text_file(path), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise MaskwatchError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise MaskwatchError(f"{path}: a folder; give the camera config file (YAML)") from None
    except OSError as exc:
        raise MaskwatchError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:  # (one line: where, and what; YAML's own message quotes the lines around it)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise MaskwatchError(f"{path}: not valid YAML{where} ({what})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict) or not data["cameras"]:
        raise MaskwatchError(f"{path}: expected a 'cameras:' mapping of NAME: {{source: ..., zones: ...}} "
                             f"(see the README's config example)")
    unknown = sorted(set(data) - {"cameras", "defaults"})
    if unknown:
        raise MaskwatchError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; known: cameras, defaults")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise MaskwatchError(f"{path}: defaults must be a mapping of camera keys")
    return {str(name): camera for name, camera in data["cameras"].items()}, defaults


def pick_camera(names: list[str], name: str | None, path: Path) -> str:
    """The camera of the config file at `path` that --camera names (None: the only one there is)."""
    if name is None and len(names) == 1:
        return names[0]
    if name in names:
        return name
    what = f"no camera {name!r}" if name else "several cameras"
    raise MaskwatchError(f"{path}: {what}; choose one with --camera ({', '.join(names)})")
