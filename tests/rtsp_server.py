"""A real RTSP server for tests, on loopback: Debian's gst-rtsp-server streaming a photo as H.264.

Run with the system Python (it needs python3-gi): /usr/bin/python3 tests/rtsp_server.py PORT PHOTO.jpg [FPS]
PHOTO may be a numbered pattern (frames/%03d.jpg): the frames are played in a loop.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, photo = sys.argv[1], sys.argv[2]
fps = int(sys.argv[3]) if len(sys.argv) > 3 else 10
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f'( multifilesrc location="{photo}" loop=true caps="image/jpeg,framerate={fps}/1" ! jpegdec ! videoconvert ! '
    "videoscale ! video/x-raw,width=640,height=480 ! x264enc tune=zerolatency speed-preset=ultrafast "
    "key-int-max=10 ! rtph264pay name=pay0 pt=96 )")
factory.set_shared(True)
server.get_mount_points().add_factory("/live", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
