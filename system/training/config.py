"""The `tokenizer:`, `dynamics:`, `agent:` and `imagination:` sections of a run's config: what to build, how to train it, how the phase
checkpoints and (for the dynamics model) how it generates and what it is evaluated on.

    cfg.tokenizer.model.depth, cfg.tokenizer.train.lr, cfg.dynamics.generation.sampling_steps,
    cfg.agent.heads.mtp, cfg.agent.train.relevant_fraction, cfg.imagination.train.horizon, ...

They live here, beside the trainers they configure, so that the config schema (system/run/config.py) is
assembled from component dataclasses without importing the phases that read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from system.imagination.generation import GenerationConfig
from system.model.agent_heads import AgentHeadsConfig
from system.model.dynamics import DynamicsConfig
from system.model.tokenizer import TokenizerConfig
from system.training.agent_trainer import AgentTrainConfig
from system.training.dynamics_trainer import DynamicsTrainConfig
from system.training.imagination_trainer import ImaginationTrainConfig
from system.training.tokenizer_trainer import TokenizerTrainConfig


@dataclass
class TokenizerSection:
    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TokenizerTrainConfig = field(default_factory=TokenizerTrainConfig)
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        # Training windows must cover every frame a reconstruction reads: the dynamics encodes windows of 64
        # to 256 frames, and a frame that sees more past than any training frame saw gets drifted latents.
        needed = self.model.temporal_receptive_field
        if self.train.seq_len < needed:
            raise ValueError(f"tokenizer.train.seq_len = {self.train.seq_len} is shorter than the tokenizer's "
                             f"temporal receptive field of {needed} frames (temporal layers x (context - 1) + 1, "
                             "encoder and decoder): raise tokenizer.train.seq_len or lower "
                             "tokenizer.model.encoder.context / decoder.context")


@dataclass
class DynamicsSection:
    model: DynamicsConfig = field(default_factory=DynamicsConfig)
    train: DynamicsTrainConfig = field(default_factory=DynamicsTrainConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    checkpoint_every: int = 1000
    eval_context: int = 8          # real frames given before open-loop generation in the evaluation
    eval_horizon: int = 8          # frames imagined open-loop (paper-style 8-frame prediction)
    eval_clips: int = 8            # held-out clips (one per held-out world) both world-model evaluations use

    def __post_init__(self) -> None:
        if self.eval_clips < 2:
            raise ValueError(f"dynamics.eval_clips = {self.eval_clips}: the evaluation compares clips with each "
                             "other (retrieval, shuffled actions) and needs at least 2")


@dataclass
class AgentSection:
    """Phase 2: agent heads and finetuning (BC + reward with MTP while the dynamics loss continues)."""
    heads: AgentHeadsConfig = field(default_factory=AgentHeadsConfig)
    train: AgentTrainConfig = field(default_factory=AgentTrainConfig)
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        if self.train.seq_len < 2:
            raise ValueError(f"agent.train.seq_len = {self.train.seq_len} must be >= 2")


@dataclass
class ImaginationSection:
    """Phase 3: imagination training with PMPO (policy and value heads; the world model frozen)."""
    train: ImaginationTrainConfig = field(default_factory=ImaginationTrainConfig)
    checkpoint_every: int = 1000
    eval_contexts: int = 16        # held-out start contexts on which policy and prior imagine (same noise seed)
