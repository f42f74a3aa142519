"""Phase 1a: train the causal tokenizer on replay sequences and leave a checkpoint and reconstructions.

    tokenizer = run_tokenizer_phase(cfg, store, held_out, run_dir, log, device)

In:  the replay table cfg.data.ingest.table holding episodes; held_out (N, T, H, W, 3) uint8 frames the
     tokenizer never trains on.
Out: checkpoints/tokenizer.pt ({"model", "optimizer", "loss_norm", "step", "config"}), metrics lines of phase
     "tokenizer" in metrics.jsonl, videos/tokenizer_reconstructions.png (rows: real, reconstruction), and the
     trained Tokenizer in eval mode. A finished checkpoint in the run directory is loaded instead of retraining,
     an unfinished one is resumed; a finished phase (system/run/phase_record.py) is not evaluated again.
     `train_elsewhere(path)` (the main job with runtime.learners > 0: Ray learner actors,
     system/runtime/phase_learners.py) takes the training steps and leaves the same checkpoint at `path`; the
     evaluation is the same either way. A step, in the driver or on a learner: TokenizerSteps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from system.model.tokenizer import Tokenizer
from system.phases.frames import frames_to_float
from system.phases.steps import PhaseSteps, rank_store
from system.replay import ReplayConfig
from system.run.media import write_grid
from system.run.phase_record import mark_finished, phase_finished
from system.run.progress import progress
from system.run.typed_config import to_dict
from system.training.checkpoint import load_checkpoint, save_checkpoint
from system.training.config import TokenizerSection
from system.training.data_parallel import Shard
from system.training.tokenizer_trainer import TokenizerTrainer


class TokenizerSteps(PhaseSteps):
    """Each step: this rank's tokenizer.train.batch_size / ranks sequences of seq_len frames, one TokenizerTrainer
    step (system/phases/steps.py)."""

    def __init__(self, trainer: TokenizerTrainer, store, section: TokenizerSection, table: str,
                 shard: Shard = Shard()):
        self.trainer, self.store, self.section, self.table, self.shard = trainer, store, section, table, shard
        self.config = to_dict(section.model)
        self.parts = {"tokenizer": trainer.model}
        self.rows = shard.share(section.train.batch_size, "tokenizer.train.batch_size")

    def sample(self) -> tuple:
        return (self.store.sample(self.table, self.rows, self.section.train.seq_len).frames,)

    def train_on(self, frames) -> dict[str, float]:
        """frames (B_local, T, H, W, 3) uint8."""
        return self.trainer.step(frames_to_float(frames, self.trainer.device))


@dataclass(frozen=True)
class TokenizerLearnerSpec:
    """A learner actor's TokenizerSteps. MAE masks come from seed + 1 + rank (drawn per rank), replay samples
    from seed + rank; replay None: no store (batches come through train_on)."""
    section: TokenizerSection
    replay: ReplayConfig | None = None
    table: str = "real"
    seed: int = 0

    def build(self, shard: Shard, device, weights: dict) -> TokenizerSteps:
        torch.manual_seed(self.seed)  # every rank builds the same initial model; rank 0 broadcasts it anyway
        generator = torch.Generator(device=device).manual_seed(self.seed + 1 + shard.rank)
        trainer = TokenizerTrainer(self.section.model, self.section.train, device, generator)
        return TokenizerSteps(trainer, rank_store(self.replay, self.seed, shard), self.section, self.table, shard)


def run_tokenizer_phase(cfg, store, held_out: np.ndarray, run_dir: Path, log, device,
                        train_elsewhere: Callable[[Path], object] | None = None) -> Tokenizer:
    section: TokenizerSection = cfg.tokenizer
    train_cfg = section.train
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    trainer = TokenizerTrainer(section.model, train_cfg, device, generator)
    path = Path(run_dir) / "checkpoints" / "tokenizer.pt"
    elsewhere = train_elsewhere is not None and not phase_finished(run_dir, "tokenizer", train_cfg.steps)
    if elsewhere:
        train_elsewhere(path)  # leaves the finished checkpoint, loaded and evaluated below
    if path.exists():
        trainer.load_state_dict(load_checkpoint(path, device))
        if phase_finished(run_dir, "tokenizer", train_cfg.steps) and trainer.step_count >= train_cfg.steps:
            print(f"tokenizer: finished at step {trainer.step_count} ({path}), not trained or evaluated again")
            return trainer.model.eval()
        if not elsewhere:
            print(f"tokenizer: resumed from {path} at step {trainer.step_count}")
    log.rewind("tokenizer", trainer.step_count, drop=("tokenizer_eval",))  # lines of steps about to be redone

    steps = TokenizerSteps(trainer, store, section, cfg.data.ingest.table)

    def checkpoint() -> None:
        save_checkpoint(path, steps.checkpoint())

    held = frames_to_float(held_out, device)
    bar = progress(range(trainer.step_count, train_cfg.steps), "tokenizer", train_cfg.steps, trainer.step_count)
    for step in bar:
        metrics = steps.train(1)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", psnr=f"{metrics['psnr']:.1f}", refresh=False)
        if (step + 1) % cfg.logging.log_every == 0 or step + 1 == train_cfg.steps:
            log.write("tokenizer", step + 1, metrics)
        if (step + 1) % section.checkpoint_every == 0:
            checkpoint()
    bar.close()
    checkpoint()

    evaluation = trainer.evaluate(held)
    log.write("tokenizer_eval", trainer.step_count, {f"held_out_{k}": v for k, v in evaluation.items()})
    with torch.no_grad():
        shown = held[:2, :8]
        recon = trainer.model.decode(trainer.model.encode(shown)).clamp(0, 1)
    rows = [r for pair in zip(shown, recon) for r in pair]  # real, reconstruction, real, reconstruction
    log.media("tokenizer_eval", trainer.step_count, "reconstructions",
              write_grid(Path(run_dir) / "videos" / "tokenizer_reconstructions.png", rows))
    mark_finished(run_dir, "tokenizer", trainer.step_count)
    return trainer.model.eval()
