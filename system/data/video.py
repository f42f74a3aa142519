"""MP4 reading and writing with PyAV (no OpenCV): RGB uint8 frames in presentation order.

    info = probe_video(path)                     # VideoInfo(width, height, fps, declared_frames)
    for index, frame in iter_frames(path): ...   # frame: (H, W, 3) uint8 RGB
    frames = read_frames(path, start=2, count=101, size=(64, 64))   # (count, 64, 64, 3), or DataError
    write_video(path, frames, fps=20)            # (N, H, W, 3) uint8 -> H.264 mp4

Every failure (missing file, not a video, a stream that ends early or breaks mid-way) is a DataError naming the
file and the reason. PyAV decodes to RGB directly, which equals MineRL's and VPT's cv2 decode + BGR->RGB.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from system.data.errors import DataError
from system.envs.resize import ResizeMethod, resize_frames


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    declared_frames: int     # from the container header; 0 when unknown (count by decoding instead)


def _open(path: Path):
    if not path.is_file():
        raise DataError(path, "missing file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        detail = getattr(error, "strerror", None) or str(error)
        raise DataError(path, f"cannot open video, it is truncated or not a video ({detail})") from None
    if not container.streams.video:
        container.close()
        raise DataError(path, "no video stream")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, fps, int(stream.frames or 0))


def iter_frames(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (index, (H, W, 3) uint8 RGB frame); a decode error mid-stream is a DataError."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # One reformatter for the whole video: frame.to_ndarray(format=...) sets up a new colour converter for
        # every frame, which costs ~20x the decoding itself at 64x64.
        reformatter = VideoReformatter()
        index = 0
        try:
            for frame in container.decode(stream):
                yield index, reformatter.reformat(frame, format="rgb24").to_ndarray()
                index += 1
        except av.FFmpegError as error:
            detail = getattr(error, "strerror", None) or str(error)
            raise DataError(path, f"video is corrupt or truncated after {index} frames ({detail})") from None


def count_frames(path: str | Path) -> int:
    return sum(1 for _ in iter_frames(path))


def read_frames(path: str | Path, start: int = 0, count: int | None = None, size: tuple[int, int] | None = None,
                method: ResizeMethod = "area", expect_size: tuple[int, int] | None = None) -> np.ndarray:
    """Frames [start, start + count) as (count, h, w, 3) uint8, resized to `size` (height, width) if given.

    `expect_size` (height, width) checks the source resolution. Fewer than start + count frames is a DataError.
    """
    path = Path(path)
    batches, pending, total = [], [], 0
    end = None if count is None else start + count
    for index, frame in iter_frames(path):
        if index == 0 and expect_size is not None and frame.shape[:2] != tuple(expect_size):
            raise DataError(path, f"wrong resolution: frames are {frame.shape[1]}x{frame.shape[0]} (WxH), "
                                  f"expected {expect_size[1]}x{expect_size[0]}")
        total = index + 1
        if index < start:
            continue
        if end is not None and index >= end:
            break
        pending.append(frame)
        if len(pending) == 256:   # resize in batches: full-resolution video never sits in memory at once
            batches.append(_maybe_resize(np.stack(pending), size, method))
            pending = []
    if pending:
        batches.append(_maybe_resize(np.stack(pending), size, method))
    if end is not None and total < end:
        raise DataError(path, f"video has only {total} frames, need {end} (frames {start}..{end - 1})")
    if not batches:
        raise DataError(path, f"video has no frames from index {start} (it has {total})")
    return np.concatenate(batches)


def _maybe_resize(frames: np.ndarray, size, method) -> np.ndarray:
    return frames if size is None else resize_frames(frames, size, method)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 20, crf: int = 0, codec: str = "libx264") -> None:
    """Writes (N, H, W, 3) uint8 RGB frames as an mp4 (yuv420p; crf 0 keeps grey levels exact)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
