"""The policy head and its factored action distribution (paper section 4, phase 2 and 3).

    head = PolicyHead(action_space.components, in_dim=S_g * D, hidden=256, mtp=8)
    dist = head(h)             # h (..., S_g, D) agent features -> FactoredPolicy, batch shape (..., L + 1)
    dist.log_prob(a)           # a (..., L + 1, A) int -> (..., L + 1): sum over components
    dist.sample(generator)     # (..., L + 1, A) int64;  dist.mode(): arg-max per component
    dist.kl(prior)             # (..., L + 1): exact KL[dist || prior], summed over components
    head.act(h)                # FactoredPolicy of distance 0 only, batch shape (...)

Index convention (docs/architecture.md, "Agent"): replay step t holds frame t and the action that produced it,
and the agent token h_t sees both. Output layer n (0..L) of the head on h_t predicts the action of step t+1+n:
n = 0 is the action the agent takes now (it leads to frame t+1); n >= 1 are the multi-token-prediction (MTP)
targets, used by behaviour cloning only. h_t cannot see the action it predicts (block-causal transformer).

Components: a binary component (Minecraft keys) is a Bernoulli with one logit; a categorical one (Crafter's 17
actions, the 121-way camera, MineRL enums) a softmax. The components are independent given h_t.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from system.model.feature_standardizer import FeatureStandardizer


def mlp(in_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """The small trunk every agent head uses: `layers` x (Linear, RMSNorm, SiLU)."""
    parts: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), nn.RMSNorm(hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*parts)


class FactoredPolicy:
    """Independent per-component distributions; `logits[k]` is (..., 1) for a binary component, (..., n_k)
    for a categorical one."""

    def __init__(self, kinds: Sequence[str], logits: Sequence[torch.Tensor]):
        self.kinds, self.logits = tuple(kinds), [x.float() for x in logits]

    def _component_log_probs(self, k: int) -> torch.Tensor:
        """(..., n_k) log-probabilities of every class of component k (binary: [P(0), P(1)])."""
        x = self.logits[k]
        if self.kinds[k] == "binary":
            return torch.cat([F.logsigmoid(-x), F.logsigmoid(x)], -1)
        return F.log_softmax(x, -1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (..., A) int with classes in range (no -1: mask those before) -> (...,)."""
        total = 0.0
        for k in range(len(self.kinds)):
            logp = self._component_log_probs(k)
            total = total + logp.gather(-1, actions[..., k:k + 1].long().clamp_min(0)).squeeze(-1)
        return total

    def component_log_probs(self, actions: torch.Tensor) -> torch.Tensor:
        """(..., A) -> (..., A): per-component log-probabilities (behaviour cloning masks unlabeled ones)."""
        out = [self._component_log_probs(k).gather(-1, actions[..., k:k + 1].long().clamp_min(0))
               for k in range(len(self.kinds))]
        return torch.cat(out, -1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        columns = []
        for k in range(len(self.kinds)):
            probs = self._component_log_probs(k).exp()
            flat = probs.reshape(-1, probs.shape[-1])
            columns.append(torch.multinomial(flat, 1, generator=generator).view(*probs.shape[:-1]))
        return torch.stack(columns, -1)

    def mode(self) -> torch.Tensor:
        return torch.stack([self._component_log_probs(k).argmax(-1) for k in range(len(self.kinds))], -1)

    def kl(self, other: "FactoredPolicy") -> torch.Tensor:
        """Exact KL[self || other] = sum_a self(a) (log self(a) - log other(a)), summed over components."""
        total = 0.0
        for k in range(len(self.kinds)):
            p_log, q_log = self._component_log_probs(k), other._component_log_probs(k)
            total = total + (p_log.exp() * (p_log - q_log)).sum(-1)
        return total

    def entropy(self) -> torch.Tensor:
        total = 0.0
        for k in range(len(self.kinds)):
            logp = self._component_log_probs(k)
            total = total - (logp.exp() * logp).sum(-1)
        return total

    def select(self, index) -> "FactoredPolicy":
        """The distribution at batch index `index` (applied to every component's logits)."""
        return FactoredPolicy(self.kinds, [x[index] for x in self.logits])


class PolicyHead(nn.Module):
    def __init__(self, components: Sequence, in_dim: int, hidden: int = 256, layers: int = 2, mtp: int = 8,
                 inputs: FeatureStandardizer | None = None):
        """inputs: the standardizer of h shared by the agent's heads (AgentHeads); a fresh one (the identity
        until observed) when None."""
        super().__init__()
        if mtp < 0:
            raise ValueError(f"policy mtp = {mtp} must be >= 0 (0: the current action only)")
        if not components:
            raise ValueError("the policy head needs an action space with at least one component")
        self.kinds = tuple(c.kind for c in components)
        self.sizes = [1 if c.kind == "binary" else c.num_classes for c in components]
        self.mtp = mtp
        self.inputs = inputs if inputs is not None else FeatureStandardizer(in_dim)
        self.trunk = mlp(in_dim, hidden, layers)
        self.outputs = nn.ModuleList(nn.Linear(hidden, sum(self.sizes)) for _ in range(mtp + 1))

    def _dist(self, logits: torch.Tensor) -> FactoredPolicy:
        return FactoredPolicy(self.kinds, list(torch.split(logits, self.sizes, dim=-1)))

    def forward(self, h: torch.Tensor) -> FactoredPolicy:
        """h (..., S_g, D) -> distribution with batch shape (..., L + 1): distance n predicts step t+1+n."""
        x = self.trunk(self.inputs(h.flatten(-2)))
        return self._dist(torch.stack([out(x) for out in self.outputs], -2))

    def act(self, h: torch.Tensor) -> FactoredPolicy:
        """h (..., S_g, D) -> the distribution of the action taken now (distance 0), batch shape (...)."""
        return self._dist(self.outputs[0](self.trunk(self.inputs(h.flatten(-2)))))
