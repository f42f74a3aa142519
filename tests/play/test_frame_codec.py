"""Frame messages: header and image round-trip, PNG exactly, JPEG closely; malformed input is refused."""

import numpy as np
import pytest

from system.play.frame_codec import decode_image, encode_image, frame_message, parse_frame_message


def test_a_frame_message_round_trips():
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    header = {"frame": 12, "action": [3], "k": 4, "ms": 1.5, "context": False}
    got_header, image = parse_frame_message(frame_message(header, encode_image(frame, "png")))
    assert got_header == header and np.array_equal(decode_image(image), frame)
    smooth = np.repeat(np.repeat(frame[::8, ::8], 8, 0), 8, 1)     # JPEG is for pictures, not noise
    jpeg = decode_image(encode_image(smooth, "jpeg"))
    # chroma subsampling blurs the 8x8 colour blocks a little; an unrelated picture would be ~85 grey levels off
    assert jpeg.shape == smooth.shape and np.abs(jpeg.astype(int) - smooth.astype(int)).mean() < 16


def test_malformed_input_is_refused():
    with pytest.raises(ValueError, match="image format 'gif'"):
        encode_image(np.zeros((2, 2, 3), np.uint8), "gif")
    with pytest.raises(ValueError, match="at least 4 bytes"):
        parse_frame_message(b"\x00")
    with pytest.raises(ValueError, match="runs past"):
        parse_frame_message(b"\x00\x00\x01\x00{}")
