"""Run directory: where a run leaves everything it produces (a contract the checks rely on).

    runs/<name>-<YYYYmmdd-HHMMSS>/   (or the path given by the override run_dir=PATH)
        config.yaml      the resolved configuration
        metrics.jsonl    one JSON object per log step: {"phase", "step", "time", <scalar name>: value, ...}
        checkpoints/     per phase, loadable with torch.load(weights_only=True)
        eval.json        evaluation summary (later phases)
        phases.json      the finished phases (system/run/phase_record.py)
        videos/          reconstructions, imagined vs real rollouts (PNG grids, MP4), live evaluation episodes
        wandb/, wandb_run_id   the wandb mirror (offline by default) and the id a resumed run continues
"""

from __future__ import annotations

import time
from pathlib import Path

from system.run.typed_config import dump_yaml


def create_run_dir(config, root: str | Path = "runs") -> Path:
    """Creates (or reuses, to resume) the run directory of `config` and writes config.yaml into it."""
    path = Path(config.run_dir) if config.run_dir else Path(root) / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for sub in ("", "checkpoints", "videos"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    dump_yaml(config, path / "config.yaml")
    return path
