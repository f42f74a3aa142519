"""Learning check: a small tokenizer + dynamics model trained for minutes on real Crafter episodes imagines the
held-out future of each clip from its own context: judged against the other clips' futures, a baseline that a
model blind to its context cannot beat."""

import numpy as np
import pytest
import torch

from system.data.collect import crafter_sources
from system.data.config import CollectConfig
from system.envs.action_space import crafter_action_space
from system.imagination.open_loop import open_loop_figures
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.tokenizer import TokenizerConfig
from system.model.transformer import TransformerConfig
from system.objectives.shortcut import ShortcutConfig
from system.training.batch_schedule import BatchScheduleConfig
from system.training.dynamics_trainer import DynamicsTrainConfig, train_dynamics
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer

TRAIN_EPISODES, HELD_OUT_EPISODES, EPISODE_STEPS = 16, 16, 150
CONTEXT, HORIZON = 4, 4
TOKENIZER_STEPS, DYNAMICS_STEPS = 400, 600


def net(dim: int, depth: int, temporal_every: int, context: int) -> TransformerConfig:
    return TransformerConfig(dim=dim, depth=depth, num_heads=4, num_kv_heads=2, temporal_every=temporal_every,
                             context=context, mlp_ratio=2.0, attention="dense")


def train_tokenizer(episodes, seed: int) -> torch.nn.Module:
    cfg = TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=64, latent_dim=4, mask_prob_max=0.5,
                          encoder=net(64, 4, 4, 2), decoder=net(64, 4, 4, 2))
    train_cfg = TokenizerTrainConfig(steps=TOKENIZER_STEPS, batch_size=11, seq_len=3, lr=3e-3, warmup_steps=50)
    trainer = TokenizerTrainer(cfg, train_cfg, "cpu", torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    for _ in range(TOKENIZER_STEPS):
        windows = []
        for _ in range(train_cfg.batch_size):
            frames = episodes[rng.integers(len(episodes))].frames
            start = rng.integers(len(frames) - train_cfg.seq_len + 1)
            windows.append(frames[start:start + train_cfg.seq_len])
        trainer.step(torch.from_numpy(np.stack(windows)).float() / 255)
    return trainer.model.eval()


def learning_run(seed: int) -> dict[str, float]:
    collect = CollectConfig(episodes=TRAIN_EPISODES, policy="scripted", seed=0, max_episode_steps=EPISODE_STEPS)
    train = [source.read() for source in crafter_sources(collect)]
    held_cfg = CollectConfig(episodes=HELD_OUT_EPISODES, policy="scripted", seed=1_000_003,
                             max_episode_steps=CONTEXT + HORIZON + 20)
    held = [source.read() for source in crafter_sources(held_cfg)]
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(train, seed)

    cfg = DynamicsConfig(transformer=net(64, 4, 2, 8), latent_tokens=64, latent_dim=4, packed_tokens=32,
                         registers=2, agent_tokens=0, k_max=16)
    torch.manual_seed(seed)
    model = Dynamics(cfg, crafter_action_space())

    @torch.no_grad()
    def latents(frames, alone=False):
        x = torch.from_numpy(frames).float() / 255
        z = tokenizer.encode(x[:, None] if alone else x[None])
        return model.pack(z[:, 0] if alone else z[0])

    train_cfg = DynamicsTrainConfig(
        shortcut=ShortcutConfig(bootstrap_warmup=DYNAMICS_STEPS // 2),
        schedule=BatchScheduleConfig(batch_size=8, short_length=8, long_length=16, long_every=4),
        lr=1e-3, warmup_steps=20, log_every=200)
    train_dynamics(model, [latents(e.frames) for e in train], [torch.from_numpy(e.actions).long() for e in train],
                   train_cfg, steps=DYNAMICS_STEPS, seed=seed,
                   episodes_single_z=[latents(e.frames, alone=True) for e in train])
    model.eval()
    # one clip per held-out world, starting after the first steps (the explorer has begun to move)
    frames = torch.from_numpy(np.stack([e.frames[10:10 + CONTEXT + HORIZON] for e in held])).float() / 255
    actions = torch.from_numpy(np.stack([e.actions[10:10 + CONTEXT + HORIZON] for e in held])).long()
    figures, _ = open_loop_figures(tokenizer, model, frames, actions, CONTEXT, ks=(4, 16),
                                   generator=torch.Generator().manual_seed(0))
    return figures


@pytest.mark.slow
def test_small_world_model_imagines_each_clips_own_future():
    """16 held-out worlds, 4 real context frames, 4 frames imagined with K = 4 from the true actions.
    Baseline a content-blind model cannot beat: each clip's imagined future must be nearer (latent MSE) to its
    own real future than to the other clips' futures; a prediction that ignores the context scores a ratio of
    about 1. Margin: ratio < 0.4 (seed 0 measures 0.18; copying the last frame 0.14). K = 4 must be within 1 dB of K = 16 (K_max).
    Reported, not asserted: copying the last context frame and shuffled actions. At this size and budget the
    model does not beat them (measured latent MSE 0.069 vs copy 0.057 and shuffled 0.069): it keeps the scene
    but has not learned the moves; docs/benchmarks.md has the larger crafter-cpu run.
    Setup: 16 scripted-explorer episodes of 150 steps; tokenizer 400 steps, dynamics 600 steps (T1 = 8,
    T2 = 16, C = 8), K_max = 16. About 4 minutes on 2 cores."""
    f = learning_run(seed=0)
    print({k: round(v, 4) for k, v in f.items()})
    assert f["own_over_other_latent_mse"] < 0.4, f
    assert abs(f["open_loop_psnr_k4"] - f["open_loop_psnr_k16"]) < 1.0, f
