"""Tokenizer training step: a small tokenizer learns the content of real Crafter frames (learning test, slow)."""

import numpy as np
import pytest
import torch

from system.objectives.image_metrics import psnr, retrieval_accuracy


@pytest.mark.slow
def test_small_tokenizer_reconstructs_the_content_of_held_out_crafter_worlds(
        scripted_episodes, small_tokenizer):
    """Judged against each frame's own content, which a model that draws a generic frame cannot match:
    - retrieval: among one frame from each of 16 held-out worlds, the reconstruction of each must be nearer to
      its own frame than to the 15 others (chance 1/16). Margin: at least 8 of 16 (measured 10 of 16).
    - and its PSNR must beat the mean training frame by 2.5 dB (measured 19.6 vs 16.3 dB, +3.3 dB); a generic
      frame scores about the baseline.
    Setup (tests/training/conftest.py, small_tokenizer): 16 scripted-explorer episodes of 150 steps (16 worlds);
    a tokenizer of the configs' shape (64 latent tokens, one per patch position, 2D space positions, 4 + 4 layers
    of width 64, MAE p ~ U(0, 0.5)), 300 steps of 11 windows of 3 frames. Held-out worlds: other collection
    seeds, the frame after 28 steps. About 2 minutes on 2 cores (the world-model learning test reuses it).
    """
    train = [episode.frames for episode in scripted_episodes(0, 16, 150)]
    held = np.stack([episode.frames[-1] for episode in scripted_episodes(1_000_003, 16, 28)])  # 16 worlds
    trainer = small_tokenizer
    truth = torch.from_numpy(held).float()[:, None] / 255                      # (16, 1, 64, 64, 3)
    recon = trainer.reconstruct(truth)
    accuracy = float(retrieval_accuracy(recon[:, 0], truth[:, 0]))
    mean_frame = torch.from_numpy(np.concatenate(train)).float().mean(0) / 255
    baseline = float(psnr(mean_frame.expand_as(truth), truth))
    quality = float(psnr(recon, truth))
    print(f"retrieval {accuracy:.3f} (chance {1 / 16:.3f}); PSNR {quality:.2f} dB vs mean frame {baseline:.2f} dB")
    assert accuracy >= 8 / 16, (accuracy, quality, baseline)
    assert quality > baseline + 2.5, (accuracy, quality, baseline)
