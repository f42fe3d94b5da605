"""Real servers on free loopback ports for tests: `maskwatch serve`, a webhook receiver, an MQTT broker, an RTSP
camera."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float, output=lambda: "") -> None:
    """Until the server answers /healthz; RuntimeError (with `output()`) when it exits or takes too long."""
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"the server did not start: {output()}")
        time.sleep(0.2)


@contextmanager
def running_server(data_dir: Path, *args: str, env: dict | None = None):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "serve", "--port", str(port), "--data-dir",
                                str(data_dir), "--threads", "2", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, 60, lambda: process.stdout.read())
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


class WebhookReceiver:
    """tests/webhook_receiver.py as a process that can be killed and started again on the same port; what it
    received survives in its log file."""

    def __init__(self, port: int, log: Path):
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}/hook"
        self.process: subprocess.Popen | None = None

    def start(self, status: int = 200, delay_s: float = 0.0) -> "WebhookReceiver":
        script = Path(__file__).with_name("webhook_receiver.py")
        self.process = subprocess.Popen([sys.executable, str(script), str(self.port), str(self.log), str(status),
                                         str(delay_s)],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def posts(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def wait_for(self, predicate, what: str, timeout: float = 120) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            posts = self.posts()
            if predicate(posts):
                return posts
            time.sleep(0.1)
        raise AssertionError(f"the receiver never got {what}; it has {len(self.posts())} posts")


class Mosquitto:
    """Debian's mosquitto as a real MQTT broker on loopback, with persistence on, so a broker stopped and started
    again keeps its sessions, like a production one."""

    def __init__(self, port: int, folder: Path, anonymous: bool = True):
        import shutil

        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        assert Path(self.binary).exists(), "needs Debian's mosquitto (tools/ensure_system_packages.sh)"
        self.port, self.folder = port, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous {str(anonymous).lower()}\n"
                               f"persistence true\npersistence_location {folder}/\nuser root\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"mosquitto did not start: {self.process.stderr.read()}")
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM: the broker saves its sessions and queued messages, then exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


SYSTEM_PYTHON = "/usr/bin/python3"


def gst_available() -> bool:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                           capture_output=True)
    return probe.returncode == 0


class RtspCamera:
    """tests/rtsp_server.py (Debian's gst-rtsp-server) as a camera on loopback that can be killed and started
    again on the same port. `location` is a JPEG, or a numbered pattern such as frames/%03d.jpg (played in a loop)."""

    def __init__(self, port: int, location: Path, fps: int = 10):
        self.port, self.location, self.fps = port, location, fps
        self.url = f"rtsp://127.0.0.1:{port}/live"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RtspCamera":
        assert gst_available(), "needs Debian's gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-ugly"
        script = Path(__file__).with_name("rtsp_server.py")
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(script), str(self.port), str(self.location), str(self.fps)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready", self.process.stderr.read()
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_until(check, what: str, timeout: float = 120, every: float = 0.5):
    """Poll `check()` until it returns something truthy; that value, or AssertionError naming `what`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"never saw {what} within {timeout:.0f} s (last: {last!r})")
