"""Metric logging: metrics.jsonl in the run directory, a console line, and an optional wandb mirror.

    log = MetricsLog(run_dir, wandb_mode="offline", project="dreamer4", config=cfg_dict)
    log.write("tokenizer", step, {"loss": 0.1, "psnr": 21.3})     # one JSON line; console every call
    log.rewind("dynamics", 8, drop=("dynamics_eval",))   # resuming from a step-8 checkpoint
    log.close()

    log.media("tokenizer", step, "reconstructions", run_dir / "videos" / "x.png")  # a .png or .mp4 -> wandb

A driver killed after logging step s but before the checkpoint of step s resumes from an earlier step and logs
the steps after it again: `rewind` drops those lines first, so metrics.jsonl has each step once (the wandb
mirror keeps what it was sent).
wandb runs offline by default (files under run_dir/wandb, nothing leaves the machine); "disabled" skips it,
and a missing or failing wandb never stops training: it is reported once and metrics.jsonl stays the record.
The wandb run id is kept in run_dir/wandb_run_id, so a resumed run continues the same wandb run (online:
resume="allow"; offline, each driver writes its own offline-run-* directory under that id, and `wandb sync`
puts them into the one run). Images and videos go to wandb as they are written to run_dir/videos.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from pathlib import Path

WANDB_ID_FILE = "wandb_run_id"


def wandb_run_id(run_dir: str | Path) -> str:
    """The run's wandb id: made once (8 random lowercase hex digits, as wandb's own) and kept in the run directory."""
    path = Path(run_dir) / WANDB_ID_FILE
    if path.exists():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(run_id + "\n")
    os.replace(tmp, path)  # a kill mid-write leaves no half-written id
    return run_id


class MetricsLog:
    def __init__(self, run_dir: str | Path, wandb_mode: str = "disabled", project: str = "dreamer4",
                 config: dict | None = None, console=print):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.file = self.path.open("a", buffering=1)
        self.console = console
        self.start = time.time()
        self.wandb_run = None
        if wandb_mode != "disabled":
            try:
                import wandb

                self.wandb_run = wandb.init(project=project, mode=wandb_mode, dir=str(run_dir), config=config,
                                            name=Path(run_dir).name, id=wandb_run_id(run_dir), resume="allow",
                                            reinit="finish_previous")
            except Exception as error:  # logging must never take the run down
                console(f"wandb unavailable ({type(error).__name__}: {error}); metrics.jsonl only")

    def write(self, phase: str, step: int, scalars: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in scalars.items() if v is not None and math.isfinite(float(v))}
        record = {"phase": phase, "step": int(step), "time": round(time.time() - self.start, 3), **clean}
        self.file.write(json.dumps(record) + "\n")
        if self.console is not None:
            shown = " ".join(f"{k}={v:.4g}" for k, v in clean.items())
            self.console(f"[{phase}] step {step}: {shown}")
        if self.wandb_run is not None:
            self.wandb_run.log({f"{phase}/{k}": v for k, v in clean.items()}, step=None)

    def media(self, phase: str, step: int, name: str, path: str | Path) -> None:
        """Sends an image (.png) or video (.mp4) that is already in the run directory to wandb as
        `<phase>/<name>`; the file stays the record."""
        if self.wandb_run is None:
            return
        try:
            import wandb

            item = wandb.Video(str(path), format="mp4") if str(path).endswith(".mp4") else wandb.Image(str(path))
            self.wandb_run.log({f"{phase}/{name}": item, f"{phase}/media_step": step}, step=None)
        except Exception as error:  # a missing video codec or a wandb failure costs the picture, not the run
            if self.console is not None:
                self.console(f"wandb: {path} not sent ({type(error).__name__}: {error})")

    def rewind(self, phase: str, step: int, drop: tuple[str, ...] = (), cut: tuple[str, ...] = ()) -> None:
        """Drops the lines of `phase` and of the phases in `cut` after `step`, and every line of the phases in
        `drop` (rewritten in place, atomically: a kill mid-rewrite leaves the old file)."""
        self.file.close()
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill: nothing to keep
                continue
            if record.get("phase") in drop or (record.get("phase") in (phase, *cut) and record.get("step", 0) > step):
                continue
            kept.append(line)
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)
        self.file = self.path.open("a", buffering=1)

    def close(self) -> None:
        self.file.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None
