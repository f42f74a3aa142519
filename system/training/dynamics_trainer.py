"""One training step of the dynamics model, plus a small in-memory trainer for smoke runs, tests and benchmarks.

    trainer = DynamicsTrainer(model, DynamicsTrainConfig(), seed=0)
    metrics = trainer.train_step(z1, actions, images=spec.images)   # z1 (B, T, N_z, D_z) packed clean latents
    history = train_dynamics(model, episodes_z, episodes_a, cfg, steps)  # episodes: lists of (T_i, ...) tensors

A step splits the batch into sequences and single images (batch_schedule.split_images), computes the shortcut
forcing loss of each part (weighted by its frame count), divides the total by its running RMS (the paper's
loss normalisation; the dynamics loss is one term here, detached divisor) and takes an AdamW step. Every row
draws its noise and signal levels from its own seed (trainer seed, step, row), so with data parallelism
(`shard`, `grad_sync`: system/training/data_parallel.py) N ranks take the step one process takes on the
global batch. The world-model learner (learners/) wraps this; nothing here imports Ray.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from system.objectives.loss_norm import RunningRMS
from system.objectives.shortcut import FrameDraws, ShortcutConfig, num_bootstrap_rows, shortcut_loss
from system.training.batch_schedule import BatchSchedule, BatchScheduleConfig, split_images
from system.training.data_parallel import Shard
from system.training.optim import make_optimizer, warmup_cosine


@dataclass
class DynamicsTrainConfig:
    shortcut: ShortcutConfig = field(default_factory=ShortcutConfig)
    schedule: BatchScheduleConfig = field(default_factory=BatchScheduleConfig)
    steps: int = 100_000           # paper: not given
    lr: float = 3e-4               # AdamW; paper: optimizer and learning rate not given (ours)
    weight_decay: float = 0.01
    warmup_steps: int = 1000       # linear learning-rate warm-up, then cosine decay over `steps`
    min_lr_ratio: float = 0.1      # the cosine decay ends at min_lr_ratio * lr (1.0: constant)
    grad_clip: float = 1.0         # global gradient-norm clip; 0 disables
    loss_rms_decay: float = 0.99   # running-RMS loss normalisation (paper: used, decay not given)
    log_every: int = 100           # steps between progress lines of train_dynamics


def lr_at(step: int, cfg: DynamicsTrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to min_lr_ratio * lr at cfg.steps."""
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)


class DynamicsTrainer:
    def __init__(self, model, cfg: DynamicsTrainConfig, seed: int = 0):
        self.model, self.cfg, self.seed = model, cfg, seed
        device = next(model.parameters()).device
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
        self.norm = RunningRMS(cfg.loss_rms_decay).to(device)
        self.step = 0
        # data parallel (system/training/data_parallel.py): the rows this rank holds, the gradient average
        self.shard = Shard()
        self.grad_sync = None

    def data_parallel_parts(self):
        return self.model, self.norm

    def loss(self, z1: torch.Tensor, actions: torch.Tensor | None, images: int = 0,
             task: torch.Tensor | None = None):
        """Shortcut forcing loss of a batch: this rank's rows (all of them in one process) of a global batch
        whose first `images` rows are single images. Each row's noise and signal levels come from a seed of
        (trainer seed, step, its global row), and the bootstrap rows are the first ones of each part of the
        global batch, so a row is trained alike whichever rank holds it."""
        b, t = z1.shape[:2]
        shard, local_images = self.shard, self.shard.count_below(images)
        total = b * shard.world_size
        draws = FrameDraws.draw(shard.row_seeds(b, self.seed, self.step), t, tuple(z1.shape[2:]), z1.device,
                                z1.dtype)
        seq_draws, img_draws = draws.split_images(local_images)
        ids = shard.rows(b)
        # bootstrap rows: the first of the global sequence rows, and of the global single-image rows (row i,
        # frame f is single image i * t + f)
        seq_boot = num_bootstrap_rows(total - images, self.cfg.shortcut, self.step)
        img_boot = num_bootstrap_rows(images * t, self.cfg.shortcut, self.step)
        boot = {"seq": shard.count_below(images + seq_boot) - local_images,
                "img": sum(min(max(img_boot - i * t, 0), t) for i in ids[:local_images])}
        parts = split_images(z1, actions, local_images)
        frames = b * t
        total_loss, metrics = 0.0, {}
        for name, (z, a), part_draws in zip(("seq", "img"), parts, (seq_draws, img_draws)):
            if z.shape[0] == 0:
                continue
            part_task = None
            if task is not None:
                part_task = task[local_images:] if name == "seq" else task[:local_images].repeat_interleave(t)
            loss, m = shortcut_loss(self.model, z, a, self.cfg.shortcut, self.step, task=part_task,
                                    draws=part_draws, bootstrap_rows=boot[name])
            share = z.shape[0] * z.shape[1] / frames
            total_loss = total_loss + share * loss
            for key, value in m.items():
                metrics[key] = metrics.get(key, 0.0) + share * value
        return total_loss, metrics

    def train_step(self, z1: torch.Tensor, actions: torch.Tensor | None, images: int = 0,
                   task: torch.Tensor | None = None) -> dict[str, float]:
        """One step on this rank's rows; `images`: single-image rows of the global batch (see loss)."""
        self.model.train()
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, metrics = self.loss(z1, actions, images, task)
        self.optimizer.zero_grad(set_to_none=True)
        self.norm(loss).backward()
        if self.grad_sync is not None:
            self.grad_sync(self.model)
        if cfg.grad_clip > 0:
            metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        out = {key: float(value) for key, value in metrics.items()}
        out.update(step=self.step, lr=lr, loss_rms=float(self.norm.rms))
        return out

    def state_dict(self) -> dict:
        """Model, optimizer, loss normaliser and step: what a resumed run needs (tensors and primitives only)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "loss_norm": self.norm.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.norm.load_state_dict(state["loss_norm"])
        self.step = int(state["step"])


def sample_windows(episodes_z: list[torch.Tensor], episodes_a: list[torch.Tensor] | None, batch: int,
                   length: int, generator: torch.Generator, episodes_single_z: list[torch.Tensor] | None = None,
                   images: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """B random windows of `length` consecutive steps, never crossing an episode boundary.

    episodes_z: (T_i, N_z, D_z) per episode; episodes_a: (T_i, A) per episode (step convention: row t holds
    the action that led to frame t). episodes_single_z: the same episodes' frames encoded one by one; the
    first `images` windows (those that become single images) are taken from them. Returns z (B, L, N_z, D_z),
    actions (B, L, A) or None."""
    long_enough = [i for i, z in enumerate(episodes_z) if z.shape[0] >= length]
    if not long_enough:
        raise ValueError(f"no episode has {length} steps (longest: {max(z.shape[0] for z in episodes_z)})")
    picks = torch.randint(len(long_enough), (batch,), generator=generator).tolist()
    zs, acts = [], []
    for row, p in enumerate(picks):
        i = long_enough[p]
        start = int(torch.randint(episodes_z[i].shape[0] - length + 1, (1,), generator=generator))
        source = episodes_single_z if episodes_single_z is not None and row < images else episodes_z
        zs.append(source[i][start:start + length])
        if episodes_a is not None:
            acts.append(episodes_a[i][start:start + length])
    return torch.stack(zs), (torch.stack(acts) if episodes_a is not None else None)


def train_dynamics(model, episodes_z: list[torch.Tensor], episodes_a: list[torch.Tensor] | None,
                   cfg: DynamicsTrainConfig, steps: int | None = None, seed: int = 0,
                   log=print, episodes_single_z: list[torch.Tensor] | None = None) -> list[dict[str, float]]:
    """Trains `model` on in-memory episodes with the batch schedule; logs a line every cfg.log_every steps.
    episodes_single_z (the frames encoded one by one) give the single-image rows their latents; without them
    those rows use the in-sequence latents."""
    steps = cfg.steps if steps is None else steps
    cfg = dataclasses.replace(cfg, steps=steps)  # the learning-rate schedule spans this run
    trainer = DynamicsTrainer(model, cfg, seed)
    schedule = BatchSchedule(cfg.schedule)
    data_gen = torch.Generator().manual_seed(seed + 1)
    device = next(model.parameters()).device
    history, start = [], time.time()
    for step in range(steps):
        spec = schedule.spec(step)
        z, a = sample_windows(episodes_z, episodes_a, spec.batch, spec.length, data_gen, episodes_single_z,
                              spec.images)
        metrics = trainer.train_step(z.to(device), a.to(device) if a is not None else None, spec.images)
        history.append(metrics)
        if log and (step + 1) % cfg.log_every == 0:
            log(f"dynamics step {step + 1}/{steps}  loss {metrics['loss']:.4f}  flow {metrics['flow_mse']:.4f}  "
                f"bootstrap {metrics['bootstrap_mse']:.4f}  {time.time() - start:.0f}s")
    return history
