"""Imagination with per-range generators: a range's rollouts do not depend on the ranges batched with it, and one
range over the whole batch is the trainer's own rollout."""

from __future__ import annotations

import copy

import numpy as np
import torch

from system.imagination.generation import CachedSampler, GenerationConfig
from system.imagination.imagine import imagine
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.training.imagination_trainer import ImaginationTrainConfig, ImaginationTrainer
from tests.helpers.dynamics import TOY_SPACE, one_thread, random_actions, tiny_model  # noqa: F401

GENERATION = GenerationConfig(sampling_steps=2)
FIELDS = ("agent", "actions", "log_probs", "prior_log_probs", "rewards", "continues", "values")


def models():
    model = tiny_model(context=8).eval()
    heads = AgentHeads(AgentHeadsConfig(hidden=16, mtp=1, bins=31), TOY_SPACE.components, 1, 32).eval()
    with torch.no_grad():  # policy and prior differ, so the two log-probabilities are told apart
        torch.nn.init.normal_(heads.policy.outputs[0].weight, std=1.0)
    return model, heads, copy.deepcopy(heads.policy)


def starts(rows: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 3, 4, 8, generator=g), random_actions(rows, 3, generator=g), \
        torch.randint(-1, 3, (rows,), generator=g)


def run(model, heads, prior, parts, horizon=4, argmax=False):
    """parts: [(contexts, seed)] -> one batched imagine with one stream per part."""
    z, a, task = (torch.cat(x, 0) for x in zip(*[p for p, _ in parts]))
    sampler = CachedSampler(model, GENERATION, z.shape[0])
    streams = [(p[0].shape[0], torch.Generator().manual_seed(seed)) for p, seed in parts]
    return imagine(sampler, heads, prior, z, a, task, horizon, streams, argmax=argmax, policy_version=7)


def test_a_ranges_rollouts_do_not_depend_on_what_shares_its_batch():
    model, heads, prior = models()
    first, second = starts(2, 0), starts(3, 1)
    alone = [run(model, heads, prior, [(first, 10)]), run(model, heads, prior, [(second, 20)])]
    together = run(model, heads, prior, [(first, 10), (second, 20)])
    assert together.batch == 5 and together.policy_version == 7
    for name in FIELDS:
        joined = np.concatenate([getattr(alone[0], name), getattr(alone[1], name)])
        if name == "actions":
            assert np.array_equal(getattr(together, name), joined)
        else:  # the same arithmetic per row; a batch of 5 may round differently from one of 2
            np.testing.assert_allclose(getattr(together, name), joined, atol=1e-5, err_msg=name)
    assert len(np.unique(together.actions)) > 1  # sampled actions, not one class everywhere
    swapped = run(model, heads, prior, [(first, 20), (second, 10)])   # other seeds: other rollouts
    assert not np.array_equal(swapped.actions[:2], together.actions[:2])


def test_one_stream_is_the_trainers_rollout_bit_for_bit():
    model, heads, prior = models()
    z, a, task = starts(3, 2)
    trainer = ImaginationTrainer(model, heads, ImaginationTrainConfig(batch_size=3, context=3, horizon=4),
                                 GENERATION, seed=5)
    trainer.prior.load_state_dict(prior.state_dict())
    ours = run(model, heads, prior, [((z, a, task), 5)])
    theirs = trainer.imagine(z, a, task)
    for name in FIELDS:
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
