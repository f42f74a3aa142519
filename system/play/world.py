"""What every connection of a play server shares: the models, the start frames, the controls, the slots, the
worker threads and the settings.

    world, models = open_world("runs/smoke-20261207", slots=4)    # or PlayWorld(...) from models in memory
    world.k_choices                                           # [1, 2, 4, 8, 16] up to the checkpoint's K_max
    world.close()                                             # stops the worker threads

Two worker threads, one each: `compute` runs every tensor operation of every connection (their frames take
turns, and two connections never run the model at once on a CPU that has few cores), `envs` runs Crafter
(a world generation takes seconds and must not stall the frames of other connections).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from system.imagination.generation import GenerationConfig
from system.play.controls import Controls, controls_for
from system.play.frame_codec import IMAGE_FORMATS
from system.play.run_models import PlayModels, load_play_models
from system.play.slots import SlotPool
from system.play.start_frames import CrafterStarts, TableStarts

K_CHOICES = (1, 2, 4, 8, 16)   # the page's K slider


@dataclass
class PlayWorld:
    tokenizer: object
    dynamics: object
    generation: GenerationConfig     # the run's: default K and the context noise level
    controls: Controls
    starts: object                   # CrafterStarts or TableStarts
    slots: SlotPool
    env_name: str
    image_format: str = "png"
    max_fps: float = 15.0            # the page's default frame-rate cap (0: as fast as the model goes)
    compute: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "play-compute"))
    envs: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "play-envs"))

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format {self.image_format!r}: expected one of {sorted(IMAGE_FORMATS)}")

    @property
    def k_choices(self) -> list[int]:
        return [k for k in K_CHOICES if k <= self.dynamics.k_max]

    @property
    def default_k(self) -> int:
        k = self.generation.sampling_steps
        return k if k in self.k_choices else max(self.k_choices)

    def close(self) -> None:
        self.compute.shutdown(wait=True, cancel_futures=True)
        self.envs.shutdown(wait=True, cancel_futures=True)


def default_context_frames(models: PlayModels) -> int:
    """The run's dynamics evaluation context, within the cache window."""
    cfg = models.cfg
    return max(1, min(cfg.dynamics.eval_context, cfg.dynamics.model.transformer.context))


def make_starts(models: PlayModels, context_frames: int, held_out: int):
    cfg = models.cfg
    if cfg.env.name == "crafter":
        return CrafterStarts(cfg, context_frames, held_out)
    from system.replay import make_store   # dataset runs only: their held-out clips are in the run's store
    store = make_store(cfg.replay, models.run_dir, seed=cfg.seed)
    try:
        return TableStarts(store, cfg, context_frames, held_out)
    finally:
        store.close()


def open_world(run_dir: str | Path | None = None, checkpoint: str | Path | None = None, slots: int = 4,
               device: str = "cpu", context_frames: int | None = None, held_out: int = 8,
               image_format: str = "png", max_fps: float = 15.0) -> tuple[PlayWorld, PlayModels]:
    models = load_play_models(run_dir, checkpoint, device)
    frames = context_frames or default_context_frames(models)
    window = models.cfg.dynamics.model.transformer.context
    if frames > window:
        raise ValueError(f"--context-frames {frames} exceeds the dynamics' context window C = {window}")
    world = PlayWorld(models.tokenizer, models.dynamics, models.cfg.dynamics.generation, controls_for(models.space),
                      make_starts(models, frames, held_out), SlotPool(models.dynamics, slots), models.cfg.env.name,
                      image_format, max_fps)
    return world, models
