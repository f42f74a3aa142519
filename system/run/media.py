"""Images and videos people would rather see than read: reconstruction grids, real vs imagined rollouts.

    write_grid(path, rows)        rows: list of (T, H, W, 3) arrays/tensors in [0, 1] or uint8 -> one PNG,
                                  each row a strip of T frames, rows stacked (e.g. [real, reconstruction])
    write_video(path, frames)     frames (T, H, W, 3) -> MP4 (or GIF by suffix), upscaled for visibility
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_uint8(frames) -> np.ndarray:
    array = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return array


def grid_image(rows, gap: int = 2, scale: int = 2) -> np.ndarray:
    """(R*H + gaps, T*W + gaps, 3) uint8 image of R strips of T frames, nearest-upscaled by `scale`."""
    strips = [to_uint8(r) for r in rows]
    t, h, w, c = strips[0].shape
    if any(s.shape != strips[0].shape for s in strips):
        raise ValueError(f"grid rows must share one shape, got {[s.shape for s in strips]}")
    canvas = np.full((len(strips) * (h + gap) - gap, t * (w + gap) - gap, c), 255, np.uint8)
    for i, strip in enumerate(strips):
        for j, frame in enumerate(strip):
            canvas[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = frame
    return canvas.repeat(scale, 0).repeat(scale, 1)


def write_grid(path: str | Path, rows, scale: int = 2) -> Path:
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, grid_image(rows, scale=scale))
    return path


def write_video(path: str | Path, frames, fps: int = 10, scale: int = 4) -> Path:
    """MP4 through PyAV (H.264), or GIF when the suffix says so; frames are upscaled `scale` times."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    video = to_uint8(frames).repeat(scale, 1).repeat(scale, 2)
    if path.suffix == ".gif":
        import imageio.v3 as iio

        iio.imwrite(path, video, duration=1000 / fps, loop=0)
        return path
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
