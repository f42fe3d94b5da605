"""Moving pictures: sources (files, webcams, RTSP, folders), H.264 writing, tracking, events, the pipeline."""

from maskwatch.video.pipeline import VideoPipeline, WatchSummary, watch

__all__ = ["VideoPipeline", "WatchSummary", "watch"]
