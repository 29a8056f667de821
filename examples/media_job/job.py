"""The media job. Videos are simulated (a name, a size, a codec), so the job is instant and
its failures are fixed: a truncated file, an unsupported codec, a frame too large for the
worker's memory budget, a CDN that refuses an upload."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import faultlens

# The worker's budget for one decoded frame buffer; bigger videos fail with MemoryError,
# as a real decoder does when it cannot allocate.
FRAME_BUDGET_BYTES = 64 * 1024 * 1024
SUPPORTED_CODECS = frozenset({"h264", "vp9", "av1"})


class UnsupportedCodec(faultlens.FaultError):
    code = "MEDIA_UNSUPPORTED_CODEC"


def register_codes() -> None:
    faultlens.catalog.register(
        "MEDIA_UNSUPPORTED_CODEC",
        category="validation",
        severity="medium",
        hint="transcode the source to h264, vp9 or av1 before submitting it",
    )


@dataclass(frozen=True)
class Video:
    name: str
    size: int  # bytes on disk
    codec: str
    width: int
    height: int
    truncated: bool = False

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.name}:{self.size}".encode()).hexdigest()[:16]


VIDEOS = [
    Video("intro.mp4", 12_000_000, "h264", 1920, 1080),
    Video("keynote.mkv", 800_000_000, "vp9", 3840, 2160),
    Video("broken.mp4", 5_000_000, "h264", 1280, 720, truncated=True),
    Video("legacy.avi", 30_000_000, "mpeg2", 720, 576),
    Video("drone.mp4", 2_000_000_000, "h264", 7680, 4320),
    Video("teaser.webm", 8_000_000, "av1", 1280, 720),
    Video("upload-fails.mp4", 9_000_000, "h264", 1920, 1080),
]


def decode(video: Video) -> int:
    """Returns the size of one decoded frame, in bytes."""
    if video.truncated:
        raise EOFError(f"{video.name}: unexpected end of stream at byte {video.size}")
    if video.codec not in SUPPORTED_CODECS:
        raise UnsupportedCodec(f"{video.name}: codec {video.codec} is not supported")
    frame = video.width * video.height * 4 * 2  # RGBA, double-buffered
    if frame > FRAME_BUDGET_BYTES:
        raise MemoryError(
            f"{video.name}: a {video.width}x{video.height} frame needs {frame:,} bytes, "
            f"over the {FRAME_BUDGET_BYTES:,} byte budget"
        )
    return frame


def transcode(video: Video, frame: int) -> bytes:
    return hashlib.sha256(f"{video.hash}:{frame}".encode()).digest()


def thumbnail(video: Video, data: bytes) -> str:
    return f"thumbs/{video.hash}.jpg"


def upload(video: Video, data: bytes) -> str:
    if video.name.startswith("upload-fails"):
        raise ConnectionRefusedError("cdn-origin:443 refused the upload")
    return f"https://cdn.example/{video.hash}"


def process(video: Video) -> str:
    """One video through every stage; each stage scoped, so errors carry stage and hash."""
    with faultlens.capture(stage="decode", video_hash=video.hash, video=video.name):
        frame = decode(video)
    with faultlens.capture(stage="transcode", video_hash=video.hash):
        data = transcode(video, frame)
    with faultlens.capture(stage="thumbnail", video_hash=video.hash):
        thumbnail(video, data)
    with faultlens.capture(stage="upload", video_hash=video.hash):
        return upload(video, data)


def run(videos: list[Video] | None = None) -> Counter[str]:
    """Process the batch; returns outcomes (``ok`` or the exception type) per video."""
    register_codes()
    outcomes: Counter[str] = Counter()
    for video in VIDEOS if videos is None else videos:
        try:
            process(video)
            outcomes["ok"] += 1
        except Exception as exc:  # recorded by capture() on the way out, with its stage
            outcomes[type(exc).__name__] += 1
    return outcomes


def main(argv: list[str] | None = None) -> int:
    if not faultlens.is_configured():
        faultlens.configure(service_name="media-job")
    outcomes = run()
    print("media job: " + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    return 0
