"""Phase 1b: train the dynamics model with shortcut forcing on tokenized replay sequences, then imagine.

    dynamics = run_dynamics_phase(cfg, store, tokenizer, held_out, run_dir, log, device)

In:  replay table cfg.data.ingest.table; a trained, frozen tokenizer; held_out = (frames (N, T, H, W, 3) uint8,
     actions (N, T, A) int32) from worlds the model never trains on, T >= eval_context + eval_horizon.
Each step samples the batch schedule's (B, T) sequences from replay, encodes them with the frozen tokenizer
(no gradient; the rows that become single images frame by frame), packs the latents and takes one
shortcut-forcing step (system/training/dynamics_trainer.py).
Out: checkpoints/dynamics.pt ({"model", "optimizer", "loss_norm", "step", "config"}), metric lines of phase
     "dynamics" and "dynamics_eval" (open-loop PSNR of imagined frames with K and K_max steps, against
     copying the last context frame and against shuffled actions; retrieval of the last imagined frame; and
     one_step_*: teacher-forced one-step errors on static and moving frames, system/imagination/one_step.py),
     videos/dynamics_open_loop.png and .mp4 (per held-out clip: the real future above the imagined one).
`train_elsewhere(path)` (the main job with runtime.learners > 0: Ray learner actors,
system/runtime/phase_learners.py) takes the training steps and leaves the same checkpoint at `path`; the
evaluation is the same either way. A step, in the driver or on a learner: DynamicsSteps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from system.envs.action_space import ActionSpace
from system.imagination.one_step import one_step_figures
from system.imagination.open_loop import open_loop_figures
from system.model.dynamics import Dynamics, check_matches_tokenizer
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.phases.frames import frames_to_float
from system.phases.steps import PhaseSteps, loaded, rank_store
from system.replay import ReplayConfig
from system.run.media import write_grid, write_video
from system.run.phase_record import mark_finished, phase_finished
from system.run.progress import progress
from system.run.typed_config import to_dict
from system.training.batch_schedule import BatchSchedule, encode_batch
from system.training.checkpoint import load_checkpoint, save_checkpoint
from system.training.config import DynamicsSection
from system.training.data_parallel import Shard
from system.training.dynamics_trainer import DynamicsTrainer


class DynamicsSteps(PhaseSteps):
    """Each step: this rank's share of the batch schedule's (B, T) sequences, encoded by the frozen tokenizer
    (the single-image rows frame by frame), one DynamicsTrainer step (system/phases/steps.py)."""

    def __init__(self, trainer: DynamicsTrainer, tokenizer, store, section: DynamicsSection, table: str,
                 shard: Shard = Shard()):
        self.trainer, self.store, self.section, self.table, self.shard = trainer, store, section, table, shard
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.schedule = BatchSchedule(section.train.schedule)
        self.config = to_dict(section.model)
        self.parts = {"dynamics": trainer.model, "tokenizer": self.tokenizer}
        self.device = next(trainer.model.parameters()).device
        trainer.shard = shard

    def sample(self) -> tuple:
        spec = self.schedule.spec(self.trainer.step)
        batch = self.store.sample(self.table, self.shard.share(spec.batch, "dynamics batch (schedule)"), spec.length)
        return batch.frames, batch.actions, spec.images

    def train_on(self, frames, actions, images: int) -> dict[str, float]:
        """frames (B_local, T, H, W, 3) uint8, actions (B_local, T, A); images: single-image rows of the global
        batch (this rank's are its rows among the first `images`, DynamicsTrainer.loss)."""
        model = self.trainer.model
        local = self.shard.count_below(images)
        z1 = model.pack(encode_batch(self.tokenizer, frames_to_float(frames, self.device), local))
        return self.trainer.train_step(z1, torch.from_numpy(actions).to(self.device).long(), images)


@dataclass(frozen=True)
class DynamicsLearnerSpec:
    """A learner actor's DynamicsSteps: the tokenizer from weights["tokenizer"], the trainer seeded like the
    driver's (its rows' noise follows the global row), replay samples from sample_seed + rank."""
    section: DynamicsSection
    tokenizer: TokenizerConfig
    action_space: ActionSpace
    replay: ReplayConfig | None = None
    table: str = "real"
    seed: int = 0
    sample_seed: int = 0

    def build(self, shard: Shard, device, weights: dict) -> DynamicsSteps:
        tokenizer = loaded(Tokenizer(self.tokenizer), weights["tokenizer"], device)
        torch.manual_seed(self.seed)  # every rank builds the same initial model; rank 0 broadcasts it anyway
        trainer = DynamicsTrainer(Dynamics(self.section.model, self.action_space).to(device), self.section.train,
                                  seed=self.seed)
        return DynamicsSteps(trainer, tokenizer, rank_store(self.replay, self.sample_seed, shard), self.section,
                             self.table, shard)


def run_dynamics_phase(cfg, store, tokenizer, held_out: tuple[np.ndarray, np.ndarray], action_space: ActionSpace,
                       run_dir: Path, log, device, train_elsewhere: Callable[[Path], object] | None = None) -> Dynamics:
    section: DynamicsSection = cfg.dynamics
    check_matches_tokenizer(section.model, cfg.tokenizer.model)
    schedule = BatchSchedule(section.train.schedule)
    schedule.check_context(section.model.transformer.context)
    model = Dynamics(section.model, action_space).to(device)
    trainer = DynamicsTrainer(model, section.train, seed=cfg.seed)
    path = Path(run_dir) / "checkpoints" / "dynamics.pt"
    elsewhere = train_elsewhere is not None and not phase_finished(run_dir, "dynamics", section.train.steps)
    if elsewhere:
        train_elsewhere(path)  # leaves the finished checkpoint, loaded and evaluated below
    if path.exists():
        trainer.load_state_dict(load_checkpoint(path, device))
        if phase_finished(run_dir, "dynamics", section.train.steps) and trainer.step >= section.train.steps:
            print(f"dynamics: finished at step {trainer.step} ({path}), not trained or evaluated again")
            return model.eval()
        if not elsewhere:
            print(f"dynamics: resumed from {path} at step {trainer.step}")
    log.rewind("dynamics", trainer.step, drop=("dynamics_eval",))  # lines of steps about to be redone
    steps = DynamicsSteps(trainer, tokenizer, store, section, cfg.data.ingest.table)

    def checkpoint() -> None:
        save_checkpoint(path, steps.checkpoint())

    total = section.train.steps
    bar = progress(range(trainer.step, total), "dynamics", total, trainer.step)
    for step in bar:
        metrics = steps.train(1)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
        if (step + 1) % cfg.logging.log_every == 0 or step + 1 == total:
            log.write("dynamics", step + 1, {k: v for k, v in metrics.items() if k != "step"})
        if (step + 1) % section.checkpoint_every == 0:
            checkpoint()
    bar.close()
    checkpoint()
    model.eval()
    evaluate(section, tokenizer, model, held_out, run_dir, log, trainer.step, cfg.seed, device)
    mark_finished(run_dir, "dynamics", trainer.step)
    return model


@torch.no_grad()
def evaluate(section: DynamicsSection, tokenizer, model, held_out, run_dir: Path, log, step: int, seed: int,
             device) -> dict[str, float]:
    """Open-loop prediction on held-out clips (imagination/open_loop.py): PSNR of imagined frames with the
    configured K and with K = K_max, against copying the last context frame and against shuffled actions."""
    c, h = section.eval_context, section.eval_horizon
    frames_np, actions_np = held_out
    if frames_np.shape[1] < c + h:
        raise ValueError(f"held-out clips have {frames_np.shape[1]} frames, the evaluation needs {c + h}")
    frames = frames_to_float(frames_np[:, :c + h], device)
    actions = torch.from_numpy(actions_np[:, :c + h]).to(device).long()
    generator = torch.Generator(device=device).manual_seed(seed + 7)
    k = section.generation.sampling_steps
    ks = (k,) if k == model.k_max else (k, model.k_max)
    figures, result = open_loop_figures(tokenizer, model, frames, actions, c, ks, section.generation.context_noise,
                                        generator)
    figures["open_loop_psnr"] = figures[f"open_loop_psnr_k{k}"]
    figures["open_loop_latent_mse"] = figures[f"open_loop_latent_mse_k{k}"]
    one_step = one_step_figures(model, result.true_z, actions, c, generator=generator)
    figures.update({f"one_step_{key}": value for key, value in one_step.items()})
    log.write("dynamics_eval", step, figures)
    truth = frames[:, c:]
    rows = [row for pair in zip(truth[:4], result.imagined[:4]) for row in pair]  # real above imagined
    log.media("dynamics_eval", step, "open_loop", write_grid(Path(run_dir) / "videos" / "dynamics_open_loop.png", rows))
    side_by_side = torch.cat([torch.cat([truth[i], result.imagined[i]], dim=2) for i in range(min(4, len(truth)))],
                             dim=1)  # (H, 4*h, 2*w, 3): each clip a row, real left, imagined right
    log.media("dynamics_eval", step, "imagined_vs_real",
              write_video(Path(run_dir) / "videos" / "dynamics_open_loop.mp4", side_by_side, fps=4))
    return figures
