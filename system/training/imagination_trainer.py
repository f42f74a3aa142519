"""Phase 3 imagination training (paper section 4, Eq. 10-11): the policy acts inside the frozen world model,
the value head learns TD(lambda) returns, the policy learns with PMPO and a reverse KL to the frozen prior.

    trainer = ImaginationTrainer(dynamics, heads, ImaginationTrainConfig(), generation_cfg, seed=0)
    traj = trainer.imagine(context_z, context_actions, task)   # (B, T0, N_z, D_z), (B, T0, A) -> ImaginedTrajectory
    metrics = trainer.train_step(traj)

Imagination (system/imagination/imagine.py, the routine the imagination workers and the world-model service use
too; one rollout per start context; the CachedSampler, K shortcut steps per frame, each finished frame re-noised
to the context level): h_0 is the agent feature of the last context frame; for t < H the policy
samples a_{t+1} on h_t, the sampler generates frame t+1 with it and returns h_{t+1}. Reward, continuation and
slow-value heads annotate every h_t; log-probabilities under the acting policy and the prior are stored.
The cache window is the dynamics' own context C (the window it was trained with), and start contexts may not
be longer than C (checked by the config; ImaginationTrainer raises too).

Training on a trajectory: continuation probabilities are made hard (c > 0.5: a predicted end is an end);
returns from lambda_returns with the SLOW value head recomputed on the stored h_t; weights alive_weights(c)
drop every step from a predicted terminal frame on. Value loss: two-hot cross entropy of the online value head
on h_t (t < H) toward R_t, weighted. Policy: PMPO on the stored actions with A_t = R_t - v(h_t) (online value,
detached) and beta * KL[pi || prior] exact. By default only the policy and value heads train (the transformer,
reward, continuation and prior are frozen); the slow value copy follows the online one after every step.

Data parallel (system/training/data_parallel.py; phase 3 on learner actors, system/phases/train_imagination.py's
ImaginationSteps): `imagine_rows` draws each rollout's noise and actions from a seed of (trainer seed, step,
its global row), so a rank's rollouts are those one process imagines for the same rows; the value loss and
PMPO divide by the group's mean counts (`rank_mean`) and `grad_sync` averages the heads' gradients before
clipping, so N ranks take one process's step on the global batch. Not under full finetuning (its replay terms
draw from the one generator): ImaginationTrainer refuses a shard of several ranks there.

Full finetuning (`full_finetune`, paper section 4: "helps slightly but needs the dynamics, prior and reward
losses"): the transformer, reward and continuation heads train too, at `finetune_lr`, and every step also takes
a replay batch `(uniform, relevant)` of AgentBatch rows (agent_trainer.replay_losses): shortcut forcing on the
uniform rows keeps the world model, reward and continuation losses keep those heads true to the changing
features, and BC through the FROZEN prior head (gradient into the transformer only; the prior's weights never
move) keeps the features the prior reads meaning what they meant in phase 2. Each of these terms is divided by
its own running RMS; PMPO and the value loss are not. The imagined features are stored detached, so PMPO and
the value loss still reach only the heads: the transformer learns from the replay terms alone (recomputing h_t
of the imagined frames under gradient is not implemented).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from system.imagination.generation import CachedSampler, GenerationConfig
from system.imagination.imagine import imagine
from system.imagination.trajectory import ImaginedTrajectory
from system.objectives.lambda_returns import alive_weights, lambda_returns
from system.objectives.loss_norm import RunningRMS
from system.objectives.pmpo import pmpo_loss
from system.objectives.shortcut import ShortcutConfig
from system.training.agent_trainer import AgentBatch, replay_losses
from system.training.data_parallel import Shard


@dataclass
class ImaginationTrainConfig:
    steps: int = 1000              # policy updates (one imagined batch each); paper: not given
    batch_size: int = 16           # start contexts = rollouts per update (one rollout per context)
    context: int = 8               # real frames per start context; at most dynamics.model.transformer.context
    horizon: int = 16              # imagined steps H (paper: not given; nicklashansen/dreamer4 16)
    gamma: float = 0.997           # paper Eq. 10
    lam: float = 0.95              # TD(lambda); paper: not given, 0.95 as nicklashansen/dreamer4
    alpha: float = 0.5             # PMPO weight of the positive group (paper 0.5)
    beta: float = 0.3              # reverse-KL weight to the frozen prior (paper 0.3)
    policy_lr: float = 3e-5        # nicklashansen/dreamer4 (paper: not given)
    value_lr: float = 3e-4
    grad_clip: float = 1.0
    argmax_eval: bool = False      # evaluation with the arg-max action instead of samples (checklist 27: off)
    full_finetune: bool = False    # also train the transformer, reward, continuation with the replay losses kept on
    finetune_lr: float = 1e-5      # lr of the transformer, reward and continuation heads under full_finetune
    loss_rms_decay: float = 0.99   # running RMS of the replay terms under full_finetune

    def __post_init__(self) -> None:
        for key in ("batch_size", "context", "horizon"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} = {getattr(self, key)} must be >= 1")
        for key in ("gamma", "lam", "alpha"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} = {getattr(self, key)} must lie in [0, 1]")
        if self.beta < 0:
            raise ValueError(f"beta = {self.beta} must be >= 0")
        if self.finetune_lr <= 0:
            raise ValueError(f"finetune_lr = {self.finetune_lr} must be > 0")


class ImaginationTrainer:
    IMAGINE = 3   # the row seeds' key of imagine_rows

    def __init__(self, model, heads, cfg: ImaginationTrainConfig, generation: GenerationConfig, seed: int = 0,
                 shortcut: ShortcutConfig | None = None, dynamics_step: int = 0):
        """shortcut, dynamics_step: the dynamics loss and its step count, used only under full_finetune."""
        window = model.cfg.transformer.context
        if cfg.context > window:
            raise ValueError(f"imagination context = {cfg.context} frames is longer than the dynamics window "
                             f"dynamics.model.transformer.context = {window}")
        self.model, self.heads, self.cfg, self.generation = model, heads, cfg, generation
        self.shortcut, self.dynamics_step = shortcut or ShortcutConfig(), dynamics_step
        model.eval()
        # the prior is the frozen phase-2 policy: copied once, here, and never refreshed (checklist 23)
        self.prior = copy.deepcopy(heads.policy).requires_grad_(False).eval()
        groups = [{"params": list(heads.policy.parameters()), "lr": cfg.policy_lr},
                  {"params": list(heads.value.parameters()), "lr": cfg.value_lr}]
        finetuned = [m for m in (model, heads.reward, heads.continuation) if m is not None]
        for module in finetuned:
            module.requires_grad_(cfg.full_finetune)
        if cfg.full_finetune:
            groups.append({"params": [p for m in finetuned for p in m.parameters()], "lr": cfg.finetune_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.0, betas=(0.9, 0.95))
        device = next(model.parameters()).device
        self.norms = torch.nn.ModuleDict({k: RunningRMS(cfg.loss_rms_decay) for k in
                                          ("dynamics", "bc", "reward", "continuation")}).to(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.seed = seed
        self.step = 0
        self._sampler: CachedSampler | None = None
        self.shard = Shard()      # data parallel (system/training/data_parallel.py): set by DataParallelGroup.attach
        self.grad_sync = None
        self.rank_mean = None

    def data_parallel_parts(self):
        """(the trained module, the module holding the loss normalisers) for DataParallelGroup.attach."""
        if self.cfg.full_finetune:
            raise ValueError("imagination.train.full_finetune = true trains in one process only (its replay terms "
                             "draw from the trainer's one generator): set runtime.learners = 0 for phase 3")
        return torch.nn.ModuleDict({"policy": self.heads.policy, "value": self.heads.value}), self.norms

    def sampler(self, batch: int) -> CachedSampler:
        if self._sampler is None or self._sampler.batch != batch:
            param = next(self.model.parameters())
            self._sampler = CachedSampler(self.model, self.generation, batch, param.device, param.dtype)
        return self._sampler

    def imagine(self, context_z: torch.Tensor, context_actions: torch.Tensor, task: torch.Tensor | None = None,
                policy=None, argmax: bool = False, horizon: int | None = None) -> ImaginedTrajectory:
        """Rollouts of horizon cfg.horizon from (B, T0) real contexts with `policy` (default: the online head),
        drawing noise and actions from the trainer's generator (system/imagination/imagine.py)."""
        return imagine(self.sampler(context_z.shape[0]), self.heads, self.prior, context_z, context_actions, task,
                       self.cfg.horizon if horizon is None else horizon, [(context_z.shape[0], self.generator)],
                       policy=policy, argmax=argmax, policy_version=self.step)

    def imagine_rows(self, context_z: torch.Tensor, context_actions: torch.Tensor,
                     task: torch.Tensor | None = None) -> ImaginedTrajectory:
        """Rollouts of this rank's rows, each drawing from a seed of (seed, step, its global row): the rows a
        batch of every rank's contexts would imagine in one process (data parallel)."""
        seeds = self.shard.row_seeds(context_z.shape[0], self.seed, self.step, self.IMAGINE)
        device = context_z.device
        streams = [(1, torch.Generator(device=device).manual_seed(seed)) for seed in seeds]
        return imagine(self.sampler(context_z.shape[0]), self.heads, self.prior, context_z, context_actions, task,
                       self.cfg.horizon, streams, policy_version=self.step)

    def train_step(self, traj: ImaginedTrajectory,
                   replay: tuple[AgentBatch, AgentBatch] | None = None) -> dict[str, float]:
        """One update on an imagined batch; `replay` = (uniform, relevant) rows, required under full_finetune."""
        cfg, heads = self.cfg, self.heads
        if cfg.full_finetune and replay is None:
            raise ValueError("imagination.train.full_finetune = true needs a replay batch (uniform, relevant) per "
                             "step for the dynamics, prior and reward losses")
        device = next(heads.value.parameters()).device
        h = torch.from_numpy(traj.agent).to(device)
        actions = torch.from_numpy(traj.actions).to(device)
        rewards = torch.from_numpy(traj.rewards).to(device)
        continues = (torch.from_numpy(traj.continues).to(device) > 0.5).float()
        slow_values = heads.slow_value.predict(h)
        returns = lambda_returns(rewards, continues, slow_values, cfg.gamma, cfg.lam)       # (B, H)
        weights = alive_weights(continues)
        now = h[:, :-1]
        value_logits = heads.value(now)
        value_ce = heads.value.bins.cross_entropy(value_logits, returns)
        alive = self.rank_mean(weights.sum()) if self.rank_mean is not None else weights.sum()
        value_loss = (weights * value_ce).sum() / alive.clamp_min(1e-8)
        advantage = returns - heads.value.bins.decode(value_logits.detach())
        dist = heads.policy.act(now)
        kl = dist.kl(self.prior.act(now))
        policy_loss, metrics = pmpo_loss(dist.log_prob(actions), advantage, kl, weights, cfg.alpha, cfg.beta,
                                         self.rank_mean)
        total = policy_loss + value_loss
        if cfg.full_finetune:
            self.model.train()
            terms, m_replay = replay_losses(self.model, self.prior, heads.reward, heads.continuation, *replay,
                                            self.shortcut, self.dynamics_step + self.step,
                                            self.generation.context_noise, self.generator)
            self.model.eval()
            total = total + sum(self.norms[name](loss) for name, loss in terms.items())
            metrics.update(m_replay)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.data_parallel_parts()[0])
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if cfg.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        self.optimizer.step()
        heads.slow_value.update(heads.value)
        self.step += 1
        metrics.update(value_ce=float(value_loss.detach()), imagined_return=float(returns[:, 0].mean()),
                       alive_fraction=float(weights.mean()),   # imagined steps before a predicted episode end
                       imagined_reward=float((weights * rewards[:, 1:]).sum(1).mean()), step=self.step)
        return metrics

    def state_dict(self) -> dict:
        state = {"heads": self.heads.state_dict(), "prior": self.prior.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "loss_norm": self.norms.state_dict(), "step": self.step}
        if self.cfg.full_finetune:   # the transformer changes only under full finetuning
            state["model"] = self.model.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.heads.load_state_dict(state["heads"])
        self.prior.load_state_dict(state["prior"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "loss_norm" in state:
            self.norms.load_state_dict(state["loss_norm"])
        if "model" in state:
            self.model.load_state_dict(state["model"])
        self.step = int(state["step"])
