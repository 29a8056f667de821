"""A media-processing job: decode, transcode, thumbnail and upload a batch of videos.

Each stage runs inside ``faultlens.capture(stage=..., video_hash=...)``, so every error
recorded while processing a video carries the stage it happened in and the video's hash, and
its event carries the process's memory state at that moment (``faultlens.resource.*``):
what you need to tell "this file is broken" from "this worker ran out of memory".

Run it: ``python examples/media_job`` or ``faultlens run -- python examples/media_job``.
"""
