"""Two tokenizer learner actors in a gloo group take the same step as one process on the same global batch."""

from __future__ import annotations

import numpy as np
import torch

from learners.world_model_learner import TokenizerLearner
from system.model.tokenizer import TokenizerConfig
from system.model.transformer import TransformerConfig
from system.training.config import TokenizerSection
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer

SEED = 5
# Masks are drawn per rank (as rows are), so an exact comparison switches MAE masking off; everything else
# (loss normalisers, clipping, AdamW, warm-up) runs as in training.
NET = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=2, attention="dense")
SECTION = TokenizerSection(
    model=TokenizerConfig(image_size=(16, 16), patch_size=8, num_latents=4, latent_dim=3, mask_prob_max=0.0,
                          encoder=NET, decoder=NET),
    train=TokenizerTrainConfig(steps=10, batch_size=4, seq_len=3, lr=1e-3, warmup_steps=1))
# max |param difference| after 3 steps: float32 sums in another order differ by ~1e-7 per step, and Adam's
# normalisation amplifies that on near-zero gradients (measured up to 1.01e-5 on an AMD EPYC box)
TOLERANCE = 3e-5


def _reference(batches) -> dict[str, torch.Tensor]:
    torch.manual_seed(SEED)
    trainer = TokenizerTrainer(SECTION.model, SECTION.train, "cpu", torch.Generator().manual_seed(0))
    for frames in batches:
        trainer.step(torch.from_numpy(frames).float() / 255.0)
    return trainer.model.state_dict()


def _max_difference(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_two_rank_gloo_step_equals_one_process_step(local_ray):
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (4, 3, 16, 16, 3), dtype=np.uint8) for _ in range(3)]
    learners = [TokenizerLearner.remote(SECTION, None, rank=r, world_size=2, seed=SEED) for r in range(2)]
    try:
        addr, port = local_ray.get(learners[0].address.remote())
        local_ray.get([learner.join_group.remote(addr, port) for learner in learners])
        for frames in batches:  # rank r takes rows [2r, 2r + 2) of the global batch
            local_ray.get([learners[r].train_on.remote(frames[2 * r:2 * r + 2]) for r in range(2)])
        states = local_ray.get([learner.state_dict.remote() for learner in learners])
        version, ref = local_ray.get(learners[0].publish.remote())
        published = local_ray.get(ref)
    finally:
        for learner in learners:
            local_ray.kill(learner)
    reference = _reference(batches)
    assert _max_difference(states[0]["model"], states[1]["model"]) == 0.0  # replicas stay identical
    assert _max_difference(states[0]["model"], reference) < TOLERANCE
    assert version == 1 and _max_difference(published, reference) < TOLERANCE
    # the check can fail: one rank training alone on its half of each batch ends elsewhere
    wrong = _max_difference(_reference([b[:2] for b in batches]), reference)
    assert wrong > 100 * TOLERANCE, wrong
