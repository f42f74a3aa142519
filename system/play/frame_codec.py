"""Frames on the wire: one binary WebSocket message per frame, a JSON header and a PNG or JPEG image.

    data = frame_message({"frame": 9, "action": [3], "k": 4}, encode_image(frame, "png"))   # frame (H, W, 3) uint8
    header, image = parse_frame_message(data)
    frame = decode_image(image)                                   # (H, W, 3) uint8

Layout: 4 bytes big-endian header length n, n bytes of UTF-8 JSON, then the image file's bytes. The page
draws the image at its native size (64x64) into a canvas and lets the browser scale it up with
nearest-neighbour, so only the small native frame crosses the socket. PNG is lossless (what the tests compare
against the sampler); JPEG (quality 90) is smaller for large frames.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
from PIL import Image

IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}
JPEG_QUALITY = 90


def encode_image(frame: np.ndarray, image_format: str = "png") -> bytes:
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {image_format!r}: expected one of {sorted(IMAGE_FORMATS)}")
    out = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    if image_format == "png":
        image.save(out, format="PNG", compress_level=1)   # 64x64 frames: level 1 is as small and much faster
    else:
        image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def frame_message(header: dict, image: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(text)) + text + image


def parse_frame_message(data: bytes) -> tuple[dict, bytes]:
    if len(data) < 4:
        raise ValueError(f"a frame message has at least 4 bytes, got {len(data)}")
    (length,) = struct.unpack(">I", data[:4])
    if 4 + length > len(data):
        raise ValueError(f"frame header of {length} bytes runs past the {len(data)}-byte message")
    return json.loads(data[4:4 + length]), data[4 + length:]
