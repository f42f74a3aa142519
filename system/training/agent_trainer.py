"""Phase 2 agent finetuning step (paper section 4, Eq. 9): BC + reward (+ continuation) with MTP, while the
shortcut-forcing dynamics loss continues.

    trainer = AgentTrainer(dynamics, heads, AgentTrainConfig(), shortcut_cfg, seed=0)
    metrics = trainer.train_step(uniform, relevant)       # AgentBatch each, see below

Data mixture (paper: 50% uniform sequences for the dynamics loss, 50% task-relevant ones for BC and reward):
`uniform` rows train only the dynamics loss, `relevant` rows only the agent heads; the caller draws them from
replay tables in the proportion `relevant_fraction`.
Agent features: the relevant sequences are re-noised to the context level generation and acting read them at
(generation.context_signal, d = d_min) and run through the dynamics model with their task ids; h_t of that
pass feeds the heads (so heads train on the same features they read at test time). Gradients of BC and reward
reach the transformer through the agent tokens only (nothing reads agent tokens, the latents are unaffected).
Every term is divided by its own running RMS (detached; system/objectives/loss_norm.py). The heads read h
standardised by running per-feature statistics that this phase alone updates (system/model/feature_standardizer.py).
Every row draws its noise from its own seed (trainer seed, step, row), so with data parallelism (`shard`,
`grad_sync`, `rank_mean`: system/training/data_parallel.py) N ranks take the step one process takes on the
global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from system.imagination.generation import context_signal
from system.objectives.agent_losses import behaviour_cloning_loss, continuation_loss, reward_loss
from system.objectives.loss_norm import RunningRMS
from system.objectives.shortcut import FrameDraws, ShortcutConfig, noise_latents, num_bootstrap_rows, shortcut_loss
from system.training.data_parallel import Shard
from system.training.optim import make_optimizer, warmup_cosine


@dataclass
class AgentTrainConfig:
    steps: int = 10_000            # paper: not given
    batch_size: int = 16           # sequences per step, uniform + relevant
    seq_len: int = 32              # steps per sequence; must cover L + 2 for the farthest MTP target
    relevant_fraction: float = 0.5  # share of rows that are task-relevant (BC, reward); the rest dynamics (paper 0.5)
    relevant_table: str = ""       # replay table of task-relevant sequences; empty: data.ingest.table
    rewarded_share: float = 0.0    # of the relevant rows: windows holding a reward (Crafter: task = score)
    rewarded_threshold: float = 0.5  # |reward| that makes a window "rewarded" (Crafter achievements: 1)
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    loss_rms_decay: float = 0.99
    context_noise: float = 0.1     # agent features are read at this context level (as generation reads them)

    def __post_init__(self) -> None:
        if not 0.0 < self.relevant_fraction < 1.0:
            raise ValueError(f"relevant_fraction = {self.relevant_fraction} must lie strictly between 0 and 1 "
                             "(both halves of the mixture need rows)")
        if not 0.0 <= self.rewarded_share <= 1.0:
            raise ValueError(f"rewarded_share = {self.rewarded_share} must lie in [0, 1]")
        if self.rewarded_threshold <= 0.0:
            raise ValueError(f"rewarded_threshold = {self.rewarded_threshold} must be > 0")
        if self.batch_size < 2:
            raise ValueError(f"batch_size = {self.batch_size} must be >= 2 (uniform and relevant rows)")
        if self.steps < 0 or self.seq_len < 2:
            raise ValueError(f"steps = {self.steps} / seq_len = {self.seq_len}: need steps >= 0, seq_len >= 2")

    def split(self) -> tuple[int, int]:
        """(uniform rows, relevant rows), each at least 1."""
        relevant = min(max(1, round(self.batch_size * self.relevant_fraction)), self.batch_size - 1)
        return self.batch_size - relevant, relevant


class AgentBatch(NamedTuple):
    z1: torch.Tensor               # (B, T, N_z, D_z) clean packed latents
    actions: torch.Tensor          # (B, T, A) int, -1 = unlabeled
    rewards: torch.Tensor          # (B, T) float
    terminals: torch.Tensor        # (B, T) bool
    task: torch.Tensor             # (B,) int, -1 = no task


def agent_features(model, z1: torch.Tensor, actions: torch.Tensor, task: torch.Tensor, context_noise: float,
                   generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """h (B, T, S_g, D) of clean latents re-noised to the context level (fresh noise, or `noise` (B, T, N, D))."""
    b, t = z1.shape[:2]
    tau = torch.full((b, t), context_signal(model.k_max, context_noise), device=z1.device)
    d = torch.full((b, t), 1.0 / model.k_max, device=z1.device)
    if noise is None:
        noise = torch.randn(z1.shape, generator=generator, device=z1.device, dtype=z1.dtype)
    return model(noise_latents(z1, noise, tau), tau, d, actions, task).agent


class ReplayDraws(NamedTuple):
    """The random numbers of one phase-2 step, drawn row by row (AgentTrainer.draws)."""
    uniform: FrameDraws            # shortcut forcing on the uniform rows
    bootstrap_rows: int            # how many of the first uniform rows bootstrap
    relevant_noise: torch.Tensor   # (B_rel, T, N, D): the re-noising of the relevant rows' agent features


def replay_losses(model, policy, reward, continuation, uniform: AgentBatch, relevant: AgentBatch,
                  shortcut: ShortcutConfig, dynamics_step: int, context_noise: float,
                  generator: torch.Generator | None = None, draws: ReplayDraws | None = None,
                  rank_mean=None, observe=None) -> tuple[dict[str, torch.Tensor], dict]:
    """The phase-2 terms on replay rows: shortcut forcing on `uniform`; BC of `policy`, reward and (if the head
    exists) continuation on the agent features of `relevant`. Phase 3's full finetuning reuses them with the
    frozen prior as `policy` (its BC keeps the features the prior reads meaningful). Random numbers come from
    `generator`, or from `draws` (drawn row by row); rank_mean: data parallel (agent_losses). observe: the heads'
    FeatureStandardizer, updated with the relevant rows' features before the heads read them (phase 2; phase 3
    keeps the statistics phase 2 left)."""
    dyn, metrics = shortcut_loss(model, uniform.z1, uniform.actions, shortcut, dynamics_step, generator,
                                 uniform.task, draws=draws.uniform if draws else None,
                                 bootstrap_rows=draws.bootstrap_rows if draws else None)
    h = agent_features(model, relevant.z1, relevant.actions, relevant.task, context_noise, generator,
                       noise=draws.relevant_noise if draws else None)
    if observe is not None:
        observe.observe(h)
    bc, m_bc = behaviour_cloning_loss(policy(h), relevant.actions, relevant.terminals, rank_mean)
    rew, m_rew = reward_loss(reward, h, relevant.rewards, relevant.terminals, rank_mean)
    terms = {"dynamics": dyn, "bc": bc, "reward": rew}
    metrics = {**{k: float(v) for k, v in metrics.items()}, **m_bc, **m_rew}
    if continuation is not None:
        terms["continuation"], m_con = continuation_loss(continuation, h, relevant.terminals)
        metrics.update(m_con)
    return terms, metrics


class AgentTrainer:
    TERMS = ("dynamics", "bc", "reward", "continuation")
    UNIFORM, RELEVANT = 0, 1       # seed streams of the two row sets

    def __init__(self, model, heads, cfg: AgentTrainConfig, shortcut: ShortcutConfig, seed: int = 0,
                 dynamics_step: int = 0):
        """dynamics_step: the phase-1 step the dynamics continues from (the shortcut's bootstrap warm-up)."""
        self.model, self.heads, self.cfg, self.shortcut = model, heads, cfg, shortcut
        self.dynamics_step, self.seed = dynamics_step, seed
        device = next(model.parameters()).device
        trained = torch.nn.ModuleDict({"model": model, "policy": heads.policy, "reward": heads.reward})
        if heads.continuation is not None:
            trained["continuation"] = heads.continuation
        self.optimizer = make_optimizer(trained, cfg.lr, cfg.weight_decay)
        self.trained = trained
        self.norms = torch.nn.ModuleDict({k: RunningRMS(cfg.loss_rms_decay) for k in self.TERMS}).to(device)
        self.step = 0
        # data parallel (system/training/data_parallel.py): rows held, gradient average, masked-mean counts
        self.shard = Shard()
        self.grad_sync = None
        self.rank_mean = None

    def data_parallel_parts(self):
        return self.trained, self.norms

    def draws(self, uniform: AgentBatch, relevant: AgentBatch) -> ReplayDraws:
        """Each row's numbers from a seed of (trainer seed, step, row set, its global row): the uniform and
        relevant rows of a rank are its shares of the global uniform and relevant rows."""
        shard, z = self.shard, uniform.z1
        rows = uniform.z1.shape[0]
        boot = num_bootstrap_rows(rows * shard.world_size, self.shortcut, self.dynamics_step + self.step)
        rel = FrameDraws.draw(shard.row_seeds(relevant.z1.shape[0], self.seed, self.step, self.RELEVANT),
                              relevant.z1.shape[1], tuple(relevant.z1.shape[2:]), z.device, z.dtype)
        return ReplayDraws(FrameDraws.draw(shard.row_seeds(rows, self.seed, self.step, self.UNIFORM), z.shape[1],
                                           tuple(z.shape[2:]), z.device, z.dtype),
                           shard.count_below(boot), rel.noise)

    def losses(self, uniform: AgentBatch, relevant: AgentBatch) -> tuple[dict[str, torch.Tensor], dict]:
        return replay_losses(self.model, self.heads.policy, self.heads.reward, self.heads.continuation, uniform,
                             relevant, self.shortcut, self.dynamics_step + self.step, self.cfg.context_noise,
                             draws=self.draws(uniform, relevant), rank_mean=self.rank_mean,
                             observe=self.heads.features)

    def train_step(self, uniform: AgentBatch, relevant: AgentBatch) -> dict[str, float]:
        """One step on this rank's uniform and relevant rows (all of them in one process)."""
        self.model.train()
        self.heads.train()
        cfg = self.cfg
        lr = warmup_cosine(self.step, cfg.lr, cfg.warmup_steps, max(cfg.steps, 1), 0.1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        terms, metrics = self.losses(uniform, relevant)
        total = sum(self.norms[name](loss) for name, loss in terms.items())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.trained)
        if cfg.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.trained.parameters(), cfg.grad_clip))
        self.optimizer.step()
        self.step += 1
        metrics.update(step=self.step, lr=lr, loss=float(total.detach()))
        return metrics

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "heads": self.heads.state_dict(),
                "optimizer": self.optimizer.state_dict(), "loss_norm": self.norms.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.norms.load_state_dict(state["loss_norm"])
        self.step = int(state["step"])
