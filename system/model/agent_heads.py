"""The agent's heads on the dynamics model's agent tokens, built from one config (paper section 4).

    heads = AgentHeads(AgentHeadsConfig(), action_space.components, agent_tokens=S_g, dim=D)
    heads.policy(h) / heads.reward(h) / heads.value(h) / heads.continuation(h)   # h (..., S_g, D)
    heads.slow_value                     # SlowCopy of the value head: the bootstrap values of phase 3
    heads.features.observe(h)            # the running statistics every head standardises h with (phase 2 only)

See policy_head.py and scalar_heads.py for the index conventions of each head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch.nn as nn

from system.model.feature_standardizer import FeatureStandardizer
from system.model.policy_head import PolicyHead
from system.model.scalar_heads import ContinuationHead, RewardHead, ValueHead
from system.model.slow_copy import SlowCopy


@dataclass
class AgentHeadsConfig:
    hidden: int = 256              # MLP width of every head (paper: "small MLP heads", size not given)
    layers: int = 2                # hidden layers per head
    mtp: int = 8                   # L: multi-token prediction distances 0..L for policy and reward (paper: 8)
    bins: int = 255                # symlog two-hot bins of reward and value (paper: not stated; DreamerV3 255)
    value_ema_decay: float = 0.98  # slow value copy for bootstrapping (DreamerV3's slow critic; paper silent)
    continuation: bool = True      # continuation head: imagined trajectories can end (Crafter deaths)

    def __post_init__(self) -> None:
        for key in ("hidden", "layers", "bins"):
            if getattr(self, key) < 1 + (key == "bins"):
                raise ValueError(f"agent heads {key} = {getattr(self, key)} is too small")
        if self.mtp < 0:
            raise ValueError(f"agent heads mtp = {self.mtp} must be >= 0")
        if not 0.0 <= self.value_ema_decay < 1.0:
            raise ValueError(f"agent heads value_ema_decay = {self.value_ema_decay} must be in [0, 1)")


class AgentHeads(nn.Module):
    def __init__(self, cfg: AgentHeadsConfig, components: Sequence, agent_tokens: int, dim: int):
        super().__init__()
        if agent_tokens < 1:
            raise ValueError("the agent heads need dynamics.model.agent_tokens >= 1")
        self.cfg = cfg
        in_dim = agent_tokens * dim
        # one standardizer of h for every head: phase 2 observes the features, all heads read them alike
        self.features = FeatureStandardizer(in_dim)
        self.policy = PolicyHead(components, in_dim, cfg.hidden, cfg.layers, cfg.mtp, self.features)
        self.reward = RewardHead(in_dim, cfg.hidden, cfg.layers, cfg.bins, cfg.mtp, self.features)
        self.value = ValueHead(in_dim, cfg.hidden, cfg.layers, cfg.bins, self.features)
        self.continuation = (ContinuationHead(in_dim, cfg.hidden, cfg.layers, self.features) if cfg.continuation
                             else None)
        self.slow_value = SlowCopy(self.value, cfg.value_ema_decay)
