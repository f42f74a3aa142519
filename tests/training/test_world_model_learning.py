"""Learning check: a small tokenizer + dynamics model trained for minutes on real Crafter episodes imagines the
held-out future of each clip from its own context: judged against the other clips' futures, a baseline that a
model blind to its context cannot beat."""

import numpy as np
import pytest
import torch

from system.envs.action_space import crafter_action_space
from system.imagination.open_loop import open_loop_figures
from system.model.dynamics import Dynamics, DynamicsConfig
from system.objectives.shortcut import ShortcutConfig
from system.training.batch_schedule import BatchScheduleConfig
from system.training.dynamics_trainer import DynamicsTrainConfig, train_dynamics
from tests.helpers.small_tokenizer import small_net

TRAIN_EPISODES, HELD_OUT_EPISODES, EPISODE_STEPS = 16, 16, 150
CONTEXT, HORIZON = 4, 4
DYNAMICS_STEPS = 500


def learning_run(scripted_episodes, tokenizer, seed: int) -> dict[str, float]:
    train = scripted_episodes(0, TRAIN_EPISODES, EPISODE_STEPS)
    held = scripted_episodes(1_000_003, HELD_OUT_EPISODES, CONTEXT + HORIZON + 20)

    cfg = DynamicsConfig(transformer=small_net(64, 4, 2, 8), latent_tokens=64, latent_dim=4, packed_tokens=32,
                         registers=2, agent_tokens=0, k_max=16, patch_grid=(8, 8))
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
def test_small_world_model_imagines_each_clips_own_future(scripted_episodes, small_tokenizer):
    """16 held-out worlds, 4 real context frames, 4 frames imagined with K = 4 from the true actions.
    Baseline a content-blind model cannot beat: each clip's imagined future must be nearer (latent MSE) to its
    own real future than to the other clips' futures; a prediction that ignores the context scores a ratio of
    about 1. Margin: ratio < 0.4 (seed 0 measures 0.18; copying the last frame 0.15). K = 4 must be within 1 dB of
    K = 16 (K_max; measured 0.08 dB).
    Reported, not asserted: copying the last context frame and shuffled actions. At this size and budget the
    model does not beat them (measured latent MSE 0.089 vs copy 0.076 and shuffled 0.090): it keeps the scene
    but has not learned the moves; docs/benchmarks.md has the larger crafter-cpu run.
    Setup: the small_tokenizer fixture (tests/training/conftest.py: 300 steps on the same 16 scripted-explorer
    episodes of 150 steps), dynamics 500 steps (2D space positions, T1 = 8, T2 = 16, C = 8), K_max = 16. About a
    minute on 2 cores after the tokenizer."""
    f = learning_run(scripted_episodes, small_tokenizer.model, seed=0)
    print({k: round(v, 4) for k, v in f.items()})
    assert f["own_over_other_latent_mse"] < 0.4, f
    assert abs(f["open_loop_psnr_k4"] - f["open_loop_psnr_k16"]) < 1.0, f
