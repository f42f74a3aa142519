"""A run's world model for play: its config, tokenizer and dynamics from checkpoints (torch.load(weights_only=True)).

    models = load_play_models("runs/smoke-20261207")                      # the run's most trained dynamics
    models = load_play_models(checkpoint="runs/smoke-20261207/checkpoints/dynamics.pt")
    models.tokenizer   # frames (B, T, H, W, 3) in [0, 1] <-> latents (B, T, N_b, D_b)
    models.dynamics    # packed latents (B, T, N_z, D_z); steps through the cached sampler
    models.space       # the run's action space (env.name: crafter or minerl:<Env>; data.ingest.action_space)

Without --checkpoint the dynamics come from the latest phase that trained them: imagination.pt when phase 3
finetuned the whole model, else agent.pt (phase 2 continues the dynamics loss), else dynamics.pt (phase 1).
Every missing or unreadable file is an error naming its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from system.data.ingested_tables import run_action_space
from system.envs.action_space import ActionSpace
from system.model.dynamics import Dynamics
from system.model.tokenizer import Tokenizer
from system.run.config import Config, load
from system.training.checkpoint import load_checkpoint

# newest first: the first of these holding the dynamics' weights ("model") is played
DYNAMICS_CHECKPOINTS = ("imagination.pt", "agent.pt", "dynamics.pt")


class RunError(ValueError):
    """The run directory or checkpoint cannot be played; the message names the path and what is wrong."""


@dataclass
class PlayModels:
    cfg: Config
    run_dir: Path
    checkpoint: Path        # the checkpoint the dynamics came from
    tokenizer: Tokenizer
    dynamics: Dynamics
    space: ActionSpace


def find_run(run_dir: str | Path | None, checkpoint: str | Path | None) -> tuple[Path, Path | None]:
    """(run directory, the dynamics checkpoint asked for or None). A checkpoint alone names its run:
    <run>/checkpoints/<name>.pt."""
    if run_dir is None and checkpoint is None:
        raise RunError("give a run directory (runs/<name>) or --checkpoint runs/<name>/checkpoints/<file>.pt")
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise RunError(f"{checkpoint}: no such checkpoint file")
    run_dir = Path(run_dir) if run_dir is not None else checkpoint.resolve().parent.parent
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"{run_dir}: no config.yaml, so not a run directory (python -m system.main writes one)")
    return run_dir, checkpoint


def dynamics_state(run_dir: Path, checkpoint: Path | None, device) -> tuple[Path, dict]:
    """The checkpoint asked for, or the newest of DYNAMICS_CHECKPOINTS that holds the dynamics' weights."""
    if checkpoint is not None:
        return checkpoint, _load(checkpoint, device)
    for name in DYNAMICS_CHECKPOINTS:
        path = run_dir / "checkpoints" / name
        if path.is_file():
            state = _load(path, device)
            if "model" in state:
                return path, state
    raise RunError(f"{run_dir / 'checkpoints'}: no checkpoint with the dynamics' weights "
                   f"({', '.join(DYNAMICS_CHECKPOINTS)}); has phase 1 trained the world model?")


def _load(path: Path, device) -> dict:
    try:
        return load_checkpoint(path, device)
    except (FileNotFoundError, ValueError) as error:
        raise RunError(str(error)) from None


def _weights_into(module: torch.nn.Module, state: dict, path: Path, what: str) -> None:
    if "model" not in state:
        raise RunError(f"{path}: holds no {what} weights (no 'model' entry; keys: {sorted(state)})")
    try:
        module.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).splitlines()[:3]
        raise RunError(f"{path}: its {what} weights do not fit the run's config.yaml: {' '.join(first)}") from None


def load_play_models(run_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                     device: str | torch.device = "cpu") -> PlayModels:
    run_dir, checkpoint = find_run(run_dir, checkpoint)
    try:
        cfg = load(["--config", str(run_dir / "config.yaml"), f"run_dir={run_dir}"])
    except ValueError as error:
        raise RunError(f"{run_dir / 'config.yaml'}: {error}") from None
    device = torch.device(device)
    space = run_action_space(cfg)
    tokenizer_path = run_dir / "checkpoints" / "tokenizer.pt"
    tokenizer = Tokenizer(cfg.tokenizer.model).to(device)
    _weights_into(tokenizer, _load(tokenizer_path, device), tokenizer_path, "tokenizer")
    checkpoint, state = dynamics_state(run_dir, checkpoint, device)
    dynamics = Dynamics(cfg.dynamics.model, space).to(device)
    _weights_into(dynamics, state, checkpoint, "dynamics")
    return PlayModels(cfg, run_dir, checkpoint, tokenizer.eval(), dynamics.eval(), space)
