"""The small tokenizer of the learning tests (tests/training/): the configs' shape at width 64, trained on
windows of real Crafter episodes drawn uniformly in memory.

    trainer = train_small_tokenizer(episodes, steps=300, seed=0)   # episodes: Episodes (frames (T, 64, 64, 3))
    trainer.model  -> the Tokenizer; trainer.reconstruct(frames (N, T, 64, 64, 3) in [0, 1])
"""

import numpy as np
import torch

from system.model.tokenizer import TokenizerConfig
from system.model.transformer import TransformerConfig
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer


def small_net(dim: int, depth: int, temporal_every: int, context: int,
              space_positions: str = "grid") -> TransformerConfig:
    """A dense-attention transformer; 2D space positions by default, as the configs use."""
    return TransformerConfig(dim=dim, depth=depth, num_heads=4, num_kv_heads=2, temporal_every=temporal_every,
                             context=context, mlp_ratio=2.0, attention="dense", space_positions=space_positions)


def train_small_tokenizer(episodes, steps: int, seed: int, space_positions: str = "grid") -> TokenizerTrainer:
    """64 latent tokens (one per 8x8 patch) of 4 numbers, 4 + 4 layers, MAE p ~ U(0, 0.5); `steps` steps of 11
    windows of 3 frames (the tokenizer's temporal receptive field), lr 3e-3."""
    torch.manual_seed(seed)
    net = small_net(64, 4, 4, 2, space_positions)
    cfg = TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=64, latent_dim=4, mask_prob_max=0.5,
                          encoder=net, decoder=net)
    train_cfg = TokenizerTrainConfig(steps=steps, batch_size=11, seq_len=3, lr=3e-3, warmup_steps=50)
    trainer = TokenizerTrainer(cfg, train_cfg, "cpu", torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        windows = []
        for _ in range(train_cfg.batch_size):
            frames = episodes[rng.integers(len(episodes))].frames
            start = rng.integers(len(frames) - train_cfg.seq_len + 1)
            windows.append(frames[start:start + train_cfg.seq_len])
        trainer.step(torch.from_numpy(np.stack(windows)).float() / 255)
    trainer.model.eval()
    return trainer
