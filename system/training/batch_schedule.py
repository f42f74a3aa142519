"""Batch shapes for dynamics training: alternating lengths and single-image sequences (paper section 3.2).

    schedule = BatchSchedule(BatchScheduleConfig(batch_size=16, short_length=64, long_length=256))
    spec = schedule.spec(step)                          # BatchSpec(batch, length, images), fixed per step
    z = encode_batch(tokenizer, frames, spec.images)   # the image rows' frames encoded one by one
    (z_seq, a_seq), (z_img, a_img) = split_images(z, actions, spec.images)

- Alternating lengths: most batches are short (T1 = 64), every `long_every`-th batch is long (T2 = 256); the
  paper alternates "many short batches with occasional long ones" without giving the ratio (ours: 1 in 10).
  Long batches hold batch_size * T1 / T2 sequences by default, so every batch has about the same frames.
  Optionally, from `long_only_after` on, every batch is long (the paper's final long-batch finetuning).
- Start frames: a fraction (paper: 30%) of the sequences of every batch are treated as single images. Our
  choice of the two readings: such a sequence of T frames becomes T independent sequences of length 1 (T = 1),
  so each of its frames is generated from no context at all. Their action labels are dropped (-1 / NaN): the
  action that led to a frame means nothing without the frame before it, and generation from no context feeds
  the no-action embedding for frame 0 too (step 0's action is -1 by the shared step convention). Their latents
  are those of the frame encoded alone (`encode_batch`), as the tokenizer encodes a start frame, not latents
  encoded with the temporal context of the sequence they were cut from.
The paper warns that the (long) batch length must exceed the context length C of the model (Minecraft: T2 = 256
> C = 192), or the model overfits to seeing a start frame at the beginning of its context; `check_context`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from system.model.action_embedding import no_action_like


@dataclass
class BatchScheduleConfig:
    batch_size: int = 16           # sequences per short batch (paper: 1 per device on 256-1024 TPUs; ours)
    short_length: int = 64         # T1 (paper App. A, Minecraft)
    long_length: int = 256         # T2 (paper App. A, Minecraft)
    long_every: int = 10           # every n-th batch is long (paper: "occasional"; ratio ours)
    long_batch_size: int = 0       # sequences per long batch; 0: batch_size * T1 // T2 (at least 1)
    image_fraction: float = 0.3    # sequences treated as single images (paper: 30%)
    long_only_after: int = -1      # from this step on every batch is long (final finetuning); -1: never

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.short_length < 1 or self.long_length < self.short_length:
            raise ValueError("batch schedule: need batch_size >= 1 and 1 <= short_length <= long_length")
        if self.long_every < 1:
            raise ValueError(f"batch schedule: long_every must be >= 1, got {self.long_every}")
        if not 0.0 <= self.image_fraction <= 1.0:
            raise ValueError(f"batch schedule: image_fraction must be in [0, 1], got {self.image_fraction}")


@dataclass(frozen=True)
class BatchSpec:
    batch: int      # sequences to sample
    length: int     # frames per sequence
    images: int     # of which the first `images` are treated as single images


class BatchSchedule:
    def __init__(self, cfg: BatchScheduleConfig):
        self.cfg = cfg

    def is_long(self, step: int) -> bool:
        cfg = self.cfg
        if cfg.long_only_after >= 0 and step >= cfg.long_only_after:
            return True
        return step % cfg.long_every == cfg.long_every - 1

    def spec(self, step: int) -> BatchSpec:
        cfg = self.cfg
        if self.is_long(step):
            batch = cfg.long_batch_size or max(1, cfg.batch_size * cfg.short_length // cfg.long_length)
            length = cfg.long_length
        else:
            batch, length = cfg.batch_size, cfg.short_length
        return BatchSpec(batch, length, int(round(cfg.image_fraction * batch)))

    def __iter__(self):
        step = 0
        while True:
            yield self.spec(step)
            step += 1

    def check_context(self, context: int) -> None:
        """The paper: long batches must exceed the context C, or length generalisation fails."""
        if self.cfg.long_length <= context:
            raise ValueError(f"long batch length T2={self.cfg.long_length} must exceed the model context "
                             f"C={context} (paper 3.2); raise batch_schedule.long_length or lower the context")


def split_images(z: torch.Tensor, actions: torch.Tensor | None, images: int):
    """Splits a batch (B, T, ...) into ((B - n, T, ...) sequences, (n * T, 1, ...) single images).

    Returns ((z_seq, actions_seq), (z_img, actions_img)); a part with no rows has zero batch size."""
    b, t = z.shape[:2]
    z_img = z[:images].reshape(images * t, 1, *z.shape[2:])
    a_seq = a_img = None
    if actions is not None:
        a_img = no_action_like(actions[:images].reshape(images * t, 1, *actions.shape[2:]))
        a_seq = actions[images:]
    return (z[images:], a_seq), (z_img, a_img)


@torch.no_grad()
def encode_batch(tokenizer, frames: torch.Tensor, images: int) -> torch.Tensor:
    """Frames (B, T, H, W, 3) -> latents (B, T, N_b, D_b). Rows `images`.. are encoded as sequences; the first
    `images` rows, which become single images, frame by frame (each as a one-frame sequence)."""
    b, t = frames.shape[:2]
    parts = []
    if images:
        alone = tokenizer.encode(frames[:images].reshape(images * t, 1, *frames.shape[2:]))
        parts.append(alone.reshape(images, t, *alone.shape[2:]))
    if images < b:
        parts.append(tokenizer.encode(frames[images:]))
    return torch.cat(parts, 0)
