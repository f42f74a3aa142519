"""Reward, value and continuation heads on the agent features h_t (paper section 4, Eq. 9-10).

    reward = RewardHead(in_dim=S_g * D, bins=255, mtp=8)
    reward(h)                    # h (..., S_g, D) -> logits (..., L + 1, bins); distance n predicts r_{t+n}
    reward.predict(h)            # (...,) expected reward of step t (distance 0), symexp of the two-hot mean
    value = ValueHead(in_dim, bins=255);  value(h) -> logits (..., bins);  value.predict(h) -> (...,)
    cont = ContinuationHead(in_dim);  cont(h) -> logit (...,) that frame t is NOT terminal

Every head first standardises h with `inputs` (feature_standardizer.py; AgentHeads gives all heads one).

Index convention: replay step t holds frame t, the action a_t that produced it and the reward r_t received on
arriving at frame t; h_t sees frame t and a_t. So the reward head on h_t predicts r_t (n = 0) and, with multi-
token prediction, r_{t+1} .. r_{t+L}; r_t can depend on a_t (checklist 22). The continuation head predicts
c_t = 1 - terminal_t from the same h_t, so an imagined trajectory ends at the frame predicted terminal.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from system.model.feature_standardizer import FeatureStandardizer
from system.model.policy_head import mlp
from system.model.twohot import TwoHotBins


class RewardHead(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 256, layers: int = 2, bins: int = 255, mtp: int = 8,
                 inputs: FeatureStandardizer | None = None):
        super().__init__()
        if mtp < 0:
            raise ValueError(f"reward mtp = {mtp} must be >= 0")
        self.mtp = mtp
        self.bins = TwoHotBins(bins)
        self.inputs = inputs if inputs is not None else FeatureStandardizer(in_dim)
        self.trunk = mlp(in_dim, hidden, layers)
        self.outputs = nn.ModuleList(nn.Linear(hidden, bins) for _ in range(mtp + 1))
        for out in self.outputs:  # zero init: every prediction starts at symexp(0) = 0 (as DreamerV3)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.trunk(self.inputs(h.flatten(-2)))
        return torch.stack([out(x) for out in self.outputs], -2)

    def predict(self, h: torch.Tensor) -> torch.Tensor:
        return self.bins.decode(self.outputs[0](self.trunk(self.inputs(h.flatten(-2)))))


class ValueHead(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 256, layers: int = 2, bins: int = 255,
                 inputs: FeatureStandardizer | None = None):
        super().__init__()
        self.bins = TwoHotBins(bins)
        self.inputs = inputs if inputs is not None else FeatureStandardizer(in_dim)
        self.net = nn.Sequential(mlp(in_dim, hidden, layers), nn.Linear(hidden, bins))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(self.inputs(h.flatten(-2)))

    def predict(self, h: torch.Tensor) -> torch.Tensor:
        return self.bins.decode(self(h))


class ContinuationHead(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 256, layers: int = 2, inputs: FeatureStandardizer | None = None):
        super().__init__()
        self.inputs = inputs if inputs is not None else FeatureStandardizer(in_dim)
        self.net = nn.Sequential(mlp(in_dim, hidden, layers), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(self.inputs(h.flatten(-2))).squeeze(-1)

    def predict(self, h: torch.Tensor) -> torch.Tensor:
        """(...,) probability that frame t is not terminal."""
        return torch.sigmoid(self(h).float())
