"""Tokenizer training step: a small tokenizer learns the content of real Crafter frames (learning test, slow)."""

import numpy as np
import pytest
import torch

from system.data.collect import crafter_sources
from system.data.config import CollectConfig
from system.model.tokenizer import TokenizerConfig
from system.model.transformer import TransformerConfig
from system.objectives.image_metrics import psnr, retrieval_accuracy
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer

STEPS = 500


def episodes(policy: str, seed: int, count: int, steps: int) -> list[np.ndarray]:
    cfg = CollectConfig(episodes=count, policy=policy, seed=seed, max_episode_steps=steps)
    return [source.read().frames for source in crafter_sources(cfg)]


@pytest.mark.slow
def test_small_tokenizer_reconstructs_the_content_of_held_out_crafter_worlds():
    """Judged against each frame's own content, which a model that draws a generic frame cannot match:
    - retrieval: among one frame from each of 16 held-out worlds, the reconstruction of each must be nearer to
      its own frame than to the 15 others (chance 1/16). Margin: at least 8 of 16 (measured 11 of 16).
    - and its PSNR must beat the mean training frame by 2.5 dB (measured 19.7 vs 15.9 dB, +3.8 dB); a generic
      frame scores about the baseline.
    Setup: 12 scripted-explorer episodes of 150 steps (12 worlds); a tokenizer of the configs' shape (64 latent
    tokens, one per patch position, 4 + 4 layers of width 64, MAE p ~ U(0, 0.5)), 500 steps of 11 windows of 3
    frames. Held-out worlds: other collection seeds. About 2 minutes on 2 cores.
    """
    torch.manual_seed(0)
    train = episodes("scripted", 0, 12, 150)
    held = np.stack([frames[-1] for frames in episodes("scripted", 1_000_003, 16, 40)])  # 16 worlds
    net = TransformerConfig(dim=64, depth=4, num_heads=4, num_kv_heads=2, temporal_every=4, context=2,
                            mlp_ratio=2.0, attention="dense")
    cfg = TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=64, latent_dim=4, mask_prob_max=0.5,
                          encoder=net, decoder=net)
    train_cfg = TokenizerTrainConfig(steps=STEPS, batch_size=11, seq_len=3, lr=3e-3, warmup_steps=50)
    trainer = TokenizerTrainer(cfg, train_cfg, "cpu", torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        windows = []
        for _ in range(train_cfg.batch_size):
            frames = train[rng.integers(len(train))]
            start = rng.integers(len(frames) - train_cfg.seq_len + 1)
            windows.append(frames[start:start + train_cfg.seq_len])
        trainer.step(torch.from_numpy(np.stack(windows)).float() / 255)

    truth = torch.from_numpy(held).float()[:, None] / 255                      # (16, 1, 64, 64, 3)
    recon = trainer.reconstruct(truth)
    accuracy = float(retrieval_accuracy(recon[:, 0], truth[:, 0]))
    mean_frame = torch.from_numpy(np.concatenate(train)).float().mean(0) / 255
    baseline = float(psnr(mean_frame.expand_as(truth), truth))
    quality = float(psnr(recon, truth))
    print(f"retrieval {accuracy:.3f} (chance {1 / 16:.3f}); PSNR {quality:.2f} dB vs mean frame {baseline:.2f} dB")
    assert accuracy >= 8 / 16, (accuracy, quality, baseline)
    assert quality > baseline + 2.5, (accuracy, quality, baseline)
