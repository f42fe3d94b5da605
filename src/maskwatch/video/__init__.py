"""Moving pictures: sources (files, folders, webcams, RTSP), tracking, zones, events on a bus of peer sinks
(video file, SQLite, window, progress, webhook, MQTT), the pipeline, and the YAML camera config."""

from maskwatch.video.bus import CallbackSink, FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.events import Event
from maskwatch.video.pipeline import VideoPipeline, WatchOptions, watch
from maskwatch.video.sources import ArraySource, Frame, FrameSource
from maskwatch.video.sinks import MqttSink, WebhookSink
from maskwatch.video.summary import WatchSummary
from maskwatch.video.zones import Line, Zone

__all__ = ["ArraySource", "CallbackSink", "Event", "Frame", "FrameSource", "FrameView", "Line", "MqttSink", "RunEnd",
           "RunInfo", "Sink", "VideoPipeline", "WatchOptions", "WatchSummary", "WebhookSink", "Zone", "watch"]
