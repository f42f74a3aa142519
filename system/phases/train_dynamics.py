"""Phase 1b: train the dynamics model with shortcut forcing on tokenized replay sequences, then imagine.

    dynamics = run_dynamics_phase(cfg, store, tokenizer, held_out, run_dir, log, device)

In:  replay table cfg.data.ingest.table; a trained, frozen tokenizer; held_out = (frames (N, T, H, W, 3) uint8,
     actions (N, T, A) int32) from worlds the model never trains on, T >= eval_context + eval_horizon.
Each step samples the batch schedule's (B, T) sequences from replay, encodes them with the frozen tokenizer
(no gradient; the rows that become single images frame by frame), packs the latents and takes one
shortcut-forcing step (system/training/dynamics_trainer.py).
Out: checkpoints/dynamics.pt ({"model", "optimizer", "loss_norm", "step", "config"}), metric lines of phase
     "dynamics" and "dynamics_eval" (open-loop PSNR of imagined frames with K and K_max steps, against
     copying the last context frame and against shuffled actions; retrieval of the last imagined frame),
     videos/dynamics_open_loop.png and .mp4 (per held-out clip: the real future above the imagined one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from system.envs.action_space import ActionSpace
from system.imagination.open_loop import open_loop_figures
from system.model.dynamics import Dynamics, check_matches_tokenizer
from system.phases.frames import frames_to_float
from system.run.media import write_grid, write_video
from system.run.phase_record import mark_finished, phase_finished
from system.run.progress import progress
from system.run.typed_config import to_dict
from system.training.batch_schedule import BatchSchedule, encode_batch
from system.training.checkpoint import load_checkpoint, save_checkpoint
from system.training.config import DynamicsSection
from system.training.dynamics_trainer import DynamicsTrainer


def run_dynamics_phase(cfg, store, tokenizer, held_out: tuple[np.ndarray, np.ndarray], action_space: ActionSpace,
                       run_dir: Path, log, device) -> Dynamics:
    section: DynamicsSection = cfg.dynamics
    check_matches_tokenizer(section.model, cfg.tokenizer.model)
    schedule = BatchSchedule(section.train.schedule)
    schedule.check_context(section.model.transformer.context)
    model = Dynamics(section.model, action_space).to(device)
    trainer = DynamicsTrainer(model, section.train, seed=cfg.seed)
    path = Path(run_dir) / "checkpoints" / "dynamics.pt"
    if path.exists():
        trainer.load_state_dict(load_checkpoint(path, device))
        if phase_finished(run_dir, "dynamics", section.train.steps) and trainer.step >= section.train.steps:
            print(f"dynamics: finished at step {trainer.step} ({path}), not trained or evaluated again")
            return model.eval()
        print(f"dynamics: resumed from {path} at step {trainer.step}")
    log.rewind("dynamics", trainer.step, drop=("dynamics_eval",))  # lines of steps about to be redone

    def checkpoint() -> None:
        save_checkpoint(path, {**trainer.state_dict(), "config": to_dict(section.model)})

    tokenizer.eval().requires_grad_(False)
    table, steps = cfg.data.ingest.table, section.train.steps
    bar = progress(range(trainer.step, steps), "dynamics", steps, trainer.step)
    for step in bar:
        spec = schedule.spec(step)
        batch = store.sample(table, spec.batch, spec.length)
        z1 = model.pack(encode_batch(tokenizer, frames_to_float(batch.frames, device), spec.images))
        actions = torch.from_numpy(batch.actions).to(device).long()
        metrics = trainer.train_step(z1, actions, spec.images)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
        if (step + 1) % cfg.logging.log_every == 0 or step + 1 == steps:
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
    log.write("dynamics_eval", step, figures)
    truth = frames[:, c:]
    rows = [row for pair in zip(truth[:4], result.imagined[:4]) for row in pair]  # real above imagined
    log.media("dynamics_eval", step, "open_loop", write_grid(Path(run_dir) / "videos" / "dynamics_open_loop.png", rows))
    side_by_side = torch.cat([torch.cat([truth[i], result.imagined[i]], dim=2) for i in range(min(4, len(truth)))],
                             dim=1)  # (H, 4*h, 2*w, 3): each clip a row, real left, imagined right
    log.media("dynamics_eval", step, "imagined_vs_real",
              write_video(Path(run_dir) / "videos" / "dynamics_open_loop.mp4", side_by_side, fps=4))
    return figures
