"""Learning check: a tiny tokenizer + dynamics trained briefly on real Crafter episodes (random policy) predicts
held-out next frames better than the mean latent."""

import numpy as np
import pytest
import torch

from system.data.collect import crafter_sources
from system.data.config import CollectConfig
from system.envs.action_space import crafter_action_space
from system.imagination.generation import GenerationConfig, rollout
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.tokenizer import TokenizerConfig
from system.model.transformer import TransformerConfig
from system.objectives.shortcut import ShortcutConfig
from system.training.batch_schedule import BatchScheduleConfig
from system.training.dynamics_trainer import DynamicsTrainConfig, sample_windows, train_dynamics
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer
from tests.helpers.dynamics import one_thread  # noqa: F401 (autouse fixture)

TRAIN_EPISODES, HELD_OUT_EPISODES, EPISODE_STEPS = 16, 4, 150
CONTEXT_FRAMES = 6
DYNAMICS_STEPS = 1500


def tiny_net(depth: int) -> TransformerConfig:
    return TransformerConfig(dim=64, depth=depth, num_heads=4, num_kv_heads=2, temporal_every=2, context=8,
                             mlp_ratio=2.0, attention="dense")


def train_tokenizer(episodes, seed: int, steps: int = 300) -> torch.nn.Module:
    cfg = TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=16, latent_dim=16, encoder=tiny_net(2),
                          decoder=tiny_net(2))
    train_cfg = TokenizerTrainConfig(steps=steps, batch_size=8, seq_len=2, lr=3e-3, warmup_steps=20)
    torch.manual_seed(seed)
    trainer = TokenizerTrainer(cfg, train_cfg, "cpu", torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        windows = []
        for _ in range(train_cfg.batch_size):
            frames = episodes[rng.integers(len(episodes))].frames
            start = rng.integers(len(frames) - train_cfg.seq_len + 1)
            windows.append(frames[start:start + train_cfg.seq_len])
        trainer.step(torch.from_numpy(np.stack(windows)).float() / 255)
    return trainer.model.eval()


def learning_run(seed: int, dynamics_steps: int = DYNAMICS_STEPS, train_episodes: int = TRAIN_EPISODES,
                 held_out_episodes: int = HELD_OUT_EPISODES) -> tuple[float, float, float]:
    """Trains tokenizer + dynamics with `seed`; returns held-out latent MSE of (model, mean latent, copy last)."""
    sources = list(crafter_sources(CollectConfig(episodes=train_episodes + held_out_episodes, policy="random",
                                                 seed=0, max_episode_steps=EPISODE_STEPS)))
    episodes = [source.read() for source in sources]
    train, held_out = episodes[:train_episodes], episodes[train_episodes:]
    tokenizer = train_tokenizer(train, seed)

    cfg = DynamicsConfig(transformer=tiny_net(4), latent_tokens=16, latent_dim=16, packed_tokens=8, registers=2,
                         agent_tokens=0, k_max=16)
    torch.manual_seed(seed)
    model = Dynamics(cfg, crafter_action_space())

    @torch.no_grad()
    def latents(episode):
        return model.pack(tokenizer.encode(torch.from_numpy(episode.frames).float()[None] / 255)[0])

    def actions(episode):
        return torch.from_numpy(episode.actions).long()

    train_z, held_z = [latents(e) for e in train], [latents(e) for e in held_out]
    train_cfg = DynamicsTrainConfig(
        shortcut=ShortcutConfig(bootstrap_warmup=dynamics_steps // 2),
        schedule=BatchScheduleConfig(batch_size=8, short_length=8, long_length=16, long_every=4),
        lr=1e-3, warmup_steps=20, log_every=250)
    train_dynamics(model, train_z, [actions(e) for e in train], train_cfg, steps=dynamics_steps, seed=seed)

    model.eval()
    z, a = sample_windows(held_z, [actions(e) for e in held_out], 64, CONTEXT_FRAMES + 1,
                          torch.Generator().manual_seed(123))
    target = z[:, CONTEXT_FRAMES]
    out = rollout(model, GenerationConfig(sampling_steps=4), z[:, :CONTEXT_FRAMES], a[:, :CONTEXT_FRAMES],
                  a[:, CONTEXT_FRAMES:], generator=torch.Generator().manual_seed(0))
    model_mse = (out.z[:, 0] - target).square().mean().item()
    baseline_mse = (torch.cat(train_z).mean(0) - target).square().mean().item()
    copy_mse = (z[:, CONTEXT_FRAMES - 1] - target).square().mean().item()  # reported, not asserted
    return model_mse, baseline_mse, copy_mse


@pytest.mark.slow
def test_tiny_dynamics_beats_the_mean_latent_on_held_out_crafter_sequences():
    """Baseline: the training-set mean latent, predicted for every held-out next frame.
    Model: the next frame sampled with K = 4 shortcut steps from 6 real (re-noised) context frames and the true
    action, through the KV cache.
    Margin: the model's latent MSE must be at most 0.5x the baseline's, on 64 windows of 4 held-out episodes
    (other world seeds). Measured model/baseline ratios with seeds 0, 1, 2, 3 (one thread, reproducible Crafter):
    0.36, 0.04, 0.12, 0.36, so the asserted seed 0 has 1.4x headroom (~1.5-2 min on 2 cores). Copying the last
    context frame is reported, not asserted: at this size the model does not reliably beat it (measured
    model/copy ratios 3.7, 0.46, 1.2, 4.2; see docs/benchmarks.md, Dynamics).
    Setup: 16 + 4 random-policy episodes of 150 steps; tokenizer 300 steps; dynamics 1500 steps, K_max = 16.
    """
    model_mse, baseline_mse, copy_mse = learning_run(seed=0)
    print(f"held-out next-frame latent MSE: model {model_mse:.4f}, mean latent {baseline_mse:.4f}, "
          f"copy last frame {copy_mse:.4f}; ratio {model_mse / baseline_mse:.3f}")
    assert model_mse < 0.5 * baseline_mse, (model_mse, baseline_mse, copy_mse)
