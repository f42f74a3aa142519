"""Batch schedule: alternating short/long batches, single-image sequences."""

import pytest
import torch

from system.training.batch_schedule import BatchSchedule, BatchScheduleConfig, split_images


def test_paper_defaults_and_alternation():
    cfg = BatchScheduleConfig()
    assert (cfg.short_length, cfg.long_length, cfg.image_fraction) == (64, 256, 0.3)
    schedule = BatchSchedule(BatchScheduleConfig(batch_size=16, long_every=4))
    specs = [schedule.spec(step) for step in range(8)]
    assert [s.length for s in specs] == [64, 64, 64, 256] * 2
    assert [s.batch for s in specs[:4]] == [16, 16, 16, 4]      # long batches hold the same frames
    assert [s.images for s in specs[:4]] == [5, 5, 5, 1]         # round(0.3 * batch)
    finetune = BatchSchedule(BatchScheduleConfig(long_every=4, long_only_after=5))
    assert [finetune.spec(step).length for step in range(3, 8)] == [256, 64, 256, 256, 256]


def test_long_batches_must_exceed_the_context():
    BatchSchedule(BatchScheduleConfig()).check_context(192)
    with pytest.raises(ValueError, match="exceed the model context"):
        BatchSchedule(BatchScheduleConfig(long_length=128)).check_context(192)


def test_single_images_become_independent_length_one_sequences_without_actions():
    z = torch.arange(4 * 3).float().view(4, 3, 1, 1)
    actions = torch.arange(4 * 3).view(4, 3, 1)
    (z_seq, a_seq), (z_img, a_img) = split_images(z, actions, images=1)
    assert torch.equal(z_seq, z[1:]) and torch.equal(a_seq, actions[1:])
    assert z_img.shape == (3, 1, 1, 1) and torch.equal(z_img.flatten(), z[0].flatten())
    assert (a_img == -1).all()
    (z_seq, _), (z_img, a_img) = split_images(z, None, images=0)
    assert z_seq.shape[0] == 4 and z_img.shape[0] == 0 and a_img is None


def test_single_image_rows_get_the_latents_of_their_frame_encoded_alone():
    """A start frame is encoded with no temporal context at generation; the image rows train on exactly that."""
    from system.model.tokenizer import Tokenizer, TokenizerConfig
    from system.model.transformer import TransformerConfig
    from system.training.batch_schedule import encode_batch

    net = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=2,
                            attention="dense")
    tok = Tokenizer(TokenizerConfig(image_size=(16, 16), patch_size=8, num_latents=4, latent_dim=3, encoder=net,
                                    decoder=net)).eval()
    frames = torch.rand(3, 4, 16, 16, 3)
    z = encode_batch(tok, frames, images=2)
    assert z.shape == (3, 4, 4, 3)
    with torch.no_grad():
        for row in range(2):
            for t in range(4):
                torch.testing.assert_close(z[row, t], tok.encode(frames[row:row + 1, t:t + 1])[0, 0])
        torch.testing.assert_close(z[2:], tok.encode(frames[2:]))
        assert (z[0, 1:] - tok.encode(frames[:1])[0, 1:]).abs().max() > 1e-4   # in-sequence latents differ
