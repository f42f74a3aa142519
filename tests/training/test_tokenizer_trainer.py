"""Tokenizer training step: a tiny tokenizer learns real Crafter frames (learning test, slow)."""

import numpy as np
import pytest
import torch

from system.model.tokenizer import TokenizerConfig
from system.model.transformer import TransformerConfig
from system.objectives.image_metrics import psnr
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer


@pytest.mark.slow
def test_tiny_tokenizer_beats_the_mean_frame_on_held_out_crafter_frames(crafter_frames):
    """Baseline: the mean training frame predicted for every held-out frame (about 20 dB PSNR on Crafter).
    Margin: the tokenizer's held-out reconstruction PSNR must exceed it by 3 dB after 600 CPU steps
    (measured 24.5 vs 19.9 dB, +4.6 dB, ~30 s on 2 idle cores). Held-out frames come from two other world seeds.
    """
    train = [crafter_frames(seed, 100) for seed in range(3)]
    held_out = np.concatenate([crafter_frames(100, 100), crafter_frames(101, 100)])
    held_out = torch.from_numpy(held_out).float()[None] / 255
    net = TransformerConfig(dim=64, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=8,
                            mlp_ratio=2.0, attention="dense")
    cfg = TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=16, latent_dim=16, encoder=net, decoder=net)
    train_cfg = TokenizerTrainConfig(steps=600, batch_size=8, seq_len=2, lr=3e-3, warmup_steps=20)
    trainer = TokenizerTrainer(cfg, train_cfg, "cpu", torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    for _ in range(train_cfg.steps):
        windows = []
        for _ in range(train_cfg.batch_size):
            episode = train[rng.integers(len(train))]
            start = rng.integers(len(episode) - train_cfg.seq_len + 1)
            windows.append(episode[start:start + train_cfg.seq_len])
        trainer.step(torch.from_numpy(np.stack(windows)).float() / 255)
    mean_frame = torch.from_numpy(np.concatenate(train)).float().mean(0) / 255
    baseline = float(psnr(mean_frame.expand_as(held_out[0]), held_out[0]))
    result = trainer.evaluate(held_out)
    assert result["psnr"] > baseline + 3.0, (result, baseline)
