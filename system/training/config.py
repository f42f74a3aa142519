"""The `tokenizer:` and `dynamics:` sections of a run's config: what to build, how to train it, how the phase
checkpoints and (for the dynamics model) how it generates and what it is evaluated on.

    cfg.tokenizer.model.depth, cfg.tokenizer.train.lr, cfg.dynamics.generation.sampling_steps, ...

They live here, beside the trainers they configure, so that the config schema (system/run/config.py) is
assembled from component dataclasses without importing the phases that read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from system.imagination.generation import GenerationConfig
from system.model.dynamics import DynamicsConfig
from system.model.tokenizer import TokenizerConfig
from system.training.dynamics_trainer import DynamicsTrainConfig
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
