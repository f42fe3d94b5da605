"""Sinks: peers on the event bus. Each is one kind of output; add one by subclassing maskwatch.video.bus.Sink."""

from maskwatch.video.bus import CallbackSink, Sink
from maskwatch.video.sinks.database import DatabaseSink
from maskwatch.video.sinks.files import SummaryFilesSink, VideoFileSink
from maskwatch.video.sinks.local import DisplaySink, ProgressSink
from maskwatch.video.sinks.mqtt import MqttSink
from maskwatch.video.sinks.webhook import WebhookSink

__all__ = ["CallbackSink", "DatabaseSink", "DisplaySink", "MqttSink", "ProgressSink", "Sink", "SummaryFilesSink",
           "VideoFileSink", "WebhookSink"]
