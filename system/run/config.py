"""The project's configuration schema: one dataclass per section, loaded by `system.run.typed_config`.

    cfg = load(["--config", "configs/smoke.yaml", "tokenizer.model.depth=4"])  # or load_config(Config, ...)

Sections are owned by the modules they configure (the tokenizer's hyperparameters live beside the tokenizer);
this file only assembles them. Defaults are the paper's values where it gives one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from system.data.config import DataConfig
from system.envs.config import EnvConfig
from system.model.dynamics import check_matches_tokenizer
from system.replay.config import ReplayConfig
from system.run.eval_config import EvalConfig
from system.run.runtime_config import RuntimeConfig
from system.run.typed_config import ConfigError, load_config
from system.training.config import AgentSection, DynamicsSection, ImaginationSection, TokenizerSection


@dataclass
class LoggingConfig:
    log_every: int = 10            # steps between metric lines in metrics.jsonl and on the console
    wandb: Literal["offline", "online", "disabled"] = "offline"
    wandb_project: str = "dreamer4"


@dataclass
class Config:
    name: str = "smoke"
    run_dir: str = ""              # empty: runs/<name>-<time>
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    dynamics: DynamicsSection = field(default_factory=DynamicsSection)
    agent: AgentSection = field(default_factory=AgentSection)
    imagination: ImaginationSection = field(default_factory=ImaginationSection)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        # Values that span sections, checked on load so that a run fails before it collects or reads anything.
        tables = self.replay.tables.names()
        table = self.data.ingest.table
        if table not in tables:
            raise ValueError(f"data.ingest.table = {table!r} is not a replay table (replay.tables has "
                             f"{', '.join(map(repr, tables))})")
        held_out = self.data.ingest.held_out_table
        if self.data.ingest.held_out_every and held_out not in tables:
            raise ValueError(f"data.ingest.held_out_table = {held_out!r} is not a replay table (replay.tables has "
                             f"{', '.join(map(repr, tables))})")
        if self.env.name != "crafter":  # a dataset run: phases 1 and 2 train from what ingest stored
            if self.eval.episodes or self.eval.every:
                raise ValueError(f"eval.episodes = {self.eval.episodes} and eval.every = {self.eval.every} with "
                                 f"env.name = {self.env.name!r}: the live evaluator plays Crafter only so far "
                                 "(set eval.episodes=0 and eval.every=0)")
            if self.runtime.env_runners:
                raise ValueError(f"runtime.env_runners = {self.runtime.env_runners} with env.name = "
                                 f"{self.env.name!r}: the data comes from `python -m system.data.ingest`; env "
                                 "runners collect Crafter only so far (set runtime.env_runners=0)")
        relevant = self.agent.train.relevant_table
        if relevant and relevant not in tables:
            raise ValueError(f"agent.train.relevant_table = {relevant!r} is not a replay table (replay.tables has "
                             f"{', '.join(map(repr, tables))})")
        check_matches_tokenizer(self.dynamics.model, self.tokenizer.model)  # latents and, with 2D RoPE, patch grid
        window = self.dynamics.model.transformer.context
        if self.imagination.train.context > window:
            raise ValueError(f"imagination.train.context = {self.imagination.train.context} is longer than the "
                             f"window the dynamics trains with, dynamics.model.transformer.context = {window}")
        if self.dynamics.model.agent_tokens < 1:
            raise ValueError(f"dynamics.model.agent_tokens = {self.dynamics.model.agent_tokens}: the agent phases "
                             "read agent tokens and need at least 1")
        if self.dynamics.generation.context_noise != self.agent.train.context_noise:
            raise ValueError(f"agent.train.context_noise = {self.agent.train.context_noise} must equal "
                             f"dynamics.generation.context_noise = {self.dynamics.generation.context_noise} "
                             "(heads read agent features at the level generation and acting produce them)")
        if self.imagination.train.full_finetune and self.runtime.imagination_workers:
            # Workers imagine with their own copy of the dynamics and receive only new heads: it would go stale.
            raise ValueError("imagination.train.full_finetune = true with runtime.imagination_workers = "
                             f"{self.runtime.imagination_workers}: the workers receive only the heads, not the "
                             "finetuned dynamics; use one or the other")
        learners = self.runtime.learners
        if learners:  # every learner takes an equal share of each step's batch
            schedule = self.dynamics.train.schedule
            long_batch = schedule.long_batch_size or max(1, schedule.batch_size * schedule.short_length
                                                         // schedule.long_length)
            uniform, relevant = self.agent.train.split()
            for key, rows in (("tokenizer.train.batch_size", self.tokenizer.train.batch_size),
                              ("dynamics.train.schedule.batch_size", schedule.batch_size),
                              ("dynamics.train.schedule.long_batch_size (0: batch_size x short_length / "
                               "long_length)", long_batch),
                              ("agent.train.batch_size x (1 - relevant_fraction) (the uniform rows)", uniform),
                              ("agent.train.batch_size x relevant_fraction (the relevant rows)", relevant)):
                if rows % learners:
                    raise ValueError(f"{key} = {rows} is not divisible by runtime.learners = {learners} "
                                     "(every learner takes an equal share of each step's batch)")
        capacity = self.replay.tables.get(table).capacity_steps
        if self.data.ingest.chunk_length > capacity:
            raise ValueError(f"data.ingest.chunk_length = {self.data.ingest.chunk_length} is more than the table "
                             f"holds (replay.tables.{table}.capacity_steps = {capacity})")


def load(argv: list[str]) -> Config:
    """Parses `[--config PATH] [dotted.key=value ...]` into a validated Config."""
    path = None
    overrides: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--config":
            if not args:
                raise ConfigError("--config needs a path")
            path = args.pop(0)
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        else:
            raise ConfigError(f"unexpected argument {arg!r}: use --config PATH and dotted.key=value overrides")
    return load_config(Config, path, overrides)
