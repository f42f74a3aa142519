"""Two learner actors in a gloo group take the same step as one process on the same global batch: the tokenizer,
the dynamics model (shortcut forcing: per-row noise, bootstrap and single-image rows of the global batch) and
phase 2 (masked BC and reward means over the whole batch) and phase 3 (row-keyed imagination, the value and
PMPO means over the whole batch)."""

from __future__ import annotations

import numpy as np
import torch

from learners.world_model_learner import WorldModelLearner
from system.envs.action_space import crafter_action_space
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.model.transformer import TransformerConfig
from system.objectives.shortcut import ShortcutConfig
from system.phases.train_agent import AgentLearnerSpec
from system.phases.train_dynamics import DynamicsLearnerSpec
from system.phases.train_imagination import ImaginationLearnerSpec
from system.phases.train_tokenizer import TokenizerLearnerSpec
from system.replay.store import Batch
from system.training.agent_trainer import AgentTrainConfig
from system.training.batch_schedule import BatchScheduleConfig
from system.training.config import AgentSection, DynamicsSection, ImaginationSection, TokenizerSection
from system.training.data_parallel import Shard
from system.training.dynamics_trainer import DynamicsTrainConfig
from system.training.imagination_trainer import ImaginationTrainConfig
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

SPACE = crafter_action_space()
# Bootstrap rows from step 0 and 30% single images: a global batch of 4 has 1 image row (rank 0's) and 1
# bootstrap row in each part (the first sequence row, global row 1, is rank 1's; single image 0 is rank 0's).
DYNAMICS = DynamicsSection(
    model=DynamicsConfig(transformer=TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2,
                                                       temporal_every=2, context=4, attention="dense"),
                         latent_tokens=4, latent_dim=3, packed_tokens=2, registers=1, action_tokens=1,
                         agent_tokens=1, num_tasks=1, k_max=16),
    train=DynamicsTrainConfig(steps=10, lr=1e-3, warmup_steps=1, shortcut=ShortcutConfig(bootstrap_warmup=0),
                              schedule=BatchScheduleConfig(batch_size=4, short_length=3, long_length=5,
                                                           image_fraction=0.3)))
AGENT = AgentSection(heads=AgentHeadsConfig(hidden=16, layers=1, mtp=2, bins=15),
                     train=AgentTrainConfig(steps=10, batch_size=8, seq_len=4, lr=1e-3, warmup_steps=1))


def _reference(batches) -> dict[str, torch.Tensor]:
    torch.manual_seed(SEED)
    trainer = TokenizerTrainer(SECTION.model, SECTION.train, "cpu", torch.Generator().manual_seed(0))
    for frames in batches:
        trainer.step(torch.from_numpy(frames).float() / 255.0)
    return trainer.model.state_dict()


def _max_difference(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _two_ranks(ray, spec, weights, shares) -> list[dict]:
    """Both ranks' trainer states after one train_on per step; shares[step][rank] = that rank's arguments."""
    learners = [WorldModelLearner.remote(spec, r, 2, weights) for r in range(2)]
    try:
        addr, port = ray.get(learners[0].address.remote())
        ray.get([learner.join_group.remote(addr, port) for learner in learners])
        for step in shares:
            ray.get([learners[r].train_on.remote(*step[r]) for r in range(2)])
        return ray.get([learner.state_dict.remote() for learner in learners])
    finally:
        for learner in learners:
            ray.kill(learner)


def _rows(batch, rank: int):
    """Rank `rank`'s rows of a global batch (an array or a replay Batch): Shard(rank, 2)."""
    if isinstance(batch, Batch):
        return Batch(*[_rows(x, rank) for x in (batch.frames, batch.actions, batch.rewards, batch.terminals,
                                                 batch.steps, batch.episode_ids, batch.task_ids)])
    return batch[Shard(rank, 2).rows(len(batch) // 2)]


def test_two_rank_gloo_step_equals_one_process_step(local_ray):
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (4, 3, 16, 16, 3), dtype=np.uint8) for _ in range(3)]
    learners = [WorldModelLearner.remote(TokenizerLearnerSpec(SECTION, seed=SEED), r, 2) for r in range(2)]
    try:
        addr, port = local_ray.get(learners[0].address.remote())
        local_ray.get([learner.join_group.remote(addr, port) for learner in learners])
        for frames in batches:  # rank r takes rows [2r, 2r + 2) of the global batch
            local_ray.get([learners[r].train_on.remote(frames[2 * r:2 * r + 2]) for r in range(2)])
        states = local_ray.get([learner.state_dict.remote() for learner in learners])
        version, ref = local_ray.get(learners[0].publish.remote())
        published = local_ray.get(ref)["tokenizer"]
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


def _tokenizer_weights() -> dict:
    torch.manual_seed(0)
    return {"tokenizer": Tokenizer(SECTION.model).state_dict()}


def _actions(rng, shape) -> np.ndarray:
    """Crafter actions with a quarter unlabeled (-1): masked BC targets differ between the ranks."""
    actions = rng.integers(0, SPACE.components[0].num_classes, (*shape, 1)).astype(np.int32)
    actions[rng.random(shape) < 0.25] = -1
    return actions


def test_two_dynamics_learners_take_the_one_process_step_of_the_global_batch(local_ray):
    rng = np.random.default_rng(1)
    steps = [(rng.integers(0, 256, (4, 3, 16, 16, 3), dtype=np.uint8), _actions(rng, (4, 3))) for _ in range(3)]
    spec = DynamicsLearnerSpec(DYNAMICS, SECTION.model, SPACE, seed=SEED)
    weights = _tokenizer_weights()
    images = DYNAMICS.train.schedule.image_fraction * 4
    assert round(images) == 1
    states = _two_ranks(local_ray, spec, weights, [[(_rows(f, r), _rows(a, r), 1) for r in range(2)]
                                                   for f, a in steps])
    one = spec.build(Shard(), "cpu", weights)
    for frames, actions in steps:
        metrics = one.train_on(frames, actions, 1)
    assert metrics["bootstrap_mse"] > 0  # bootstrap rows were trained
    reference = one.trainer.model.state_dict()
    assert _max_difference(states[0]["model"], states[1]["model"]) == 0.0
    # measured 1.5e-7 after 3 steps (the tokenizer's 3e-5 holds with room to spare)
    assert _max_difference(states[0]["model"], reference) < TOLERANCE
    assert int(states[0]["loss_norm"]["updates"]) == 3
    # the check can fail: rank 0 alone on its rows ends elsewhere
    alone = DynamicsLearnerSpec(DYNAMICS, SECTION.model, SPACE, seed=SEED).build(Shard(), "cpu", weights)
    for frames, actions in steps:
        alone.train_on(_rows(frames, 0), _rows(actions, 0), 1)
    wrong = _max_difference(alone.trainer.model.state_dict(), reference)
    assert wrong > 100 * TOLERANCE, wrong


def _replay_batch(rng, rows: int, length: int = 4) -> Batch:
    frames = rng.integers(0, 256, (rows, length, 16, 16, 3), dtype=np.uint8)
    terminals = rng.random((rows, length)) < 0.2   # episode ends: masked BC and reward targets
    return Batch(frames, _actions(rng, (rows, length)), (rng.random((rows, length)) < 0.3).astype(np.float32),
                 terminals, np.zeros((rows, length), np.int64), np.array([f"e{k}" for k in range(rows)]),
                 np.full(rows, -1, np.int32))


def test_two_agent_learners_take_the_one_process_step_of_the_global_batch(local_ray):
    rng = np.random.default_rng(2)
    steps = [(_replay_batch(rng, 4), _replay_batch(rng, 4)) for _ in range(3)]
    spec = AgentLearnerSpec(AGENT, DYNAMICS, SECTION.model, SPACE, seed=SEED)
    torch.manual_seed(1)
    weights = {**_tokenizer_weights(), "dynamics": Dynamics(DYNAMICS.model, SPACE).state_dict()}
    states = _two_ranks(local_ray, spec, weights, [[(_rows(u, r), _rows(v, r)) for r in range(2)]
                                                   for u, v in steps])
    def flat(state: dict) -> dict:
        return {**{f"model.{k}": v for k, v in state["model"].items()},
                **{f"heads.{k}": v for k, v in state["heads"].items()}}

    one = spec.build(Shard(), "cpu", weights)
    for uniform, relevant in steps:
        one.train_on(uniform, relevant)
    reference = flat(one.trainer.state_dict())
    assert _max_difference(flat(states[0]), flat(states[1])) == 0.0
    # measured 1.8e-6 after 3 steps; each rank dividing its BC and reward sums by its own count of valid steps
    # instead of the group's mean count (agent_losses, rank_mean) lands about 1e-2 away
    assert _max_difference(flat(states[0]), reference) < TOLERANCE
    assert {int(v) for k, v in states[0]["loss_norm"].items() if k.endswith("updates")} == {3}
    alone = spec.build(Shard(), "cpu", weights)  # the check can fail: rank 0 alone on its rows ends elsewhere
    for uniform, relevant in steps:
        alone.train_on(_rows(uniform, 0), _rows(relevant, 0))
    wrong = _max_difference(flat(alone.trainer.state_dict()), reference)
    assert wrong > 100 * TOLERANCE, wrong


IMAGINATION = ImaginationSection(train=ImaginationTrainConfig(batch_size=4, context=2, horizon=3, policy_lr=1e-3,
                                                              value_lr=1e-3))


def test_two_imagination_learners_take_the_one_process_step_of_the_global_batch(local_ray):
    """Phase 3: each rank imagines its share of the start contexts (row-keyed noise and action draws) and the
    value and PMPO means are the group's, so 2 ranks end where one process ends on all 4 contexts."""
    rng = np.random.default_rng(3)
    steps = [_replay_batch(rng, 4, length=IMAGINATION.train.context) for _ in range(3)]
    spec = ImaginationLearnerSpec(IMAGINATION, AGENT, DYNAMICS, SECTION.model, SPACE, seed=SEED)
    torch.manual_seed(2)
    heads = AgentHeads(AGENT.heads, SPACE.components, DYNAMICS.model.agent_tokens, DYNAMICS.model.transformer.dim)
    with torch.no_grad():   # values that vary from step to step (advantages of both signs) and predicted episode
        for name, p in heads.named_parameters():   # ends after one to four steps: group sizes differ by rank
            p.add_(torch.randn_like(p) * 0.05 * (not name.startswith("reward.")))
        heads.slow_value.module.load_state_dict(heads.value.state_dict())
        heads.continuation.net[1].weight.mul_(40.0)
        heads.continuation.net[1].bias.fill_(4.7)
    weights = {**_tokenizer_weights(), "dynamics": Dynamics(DYNAMICS.model, SPACE).state_dict(),
               "heads": heads.state_dict()}
    states = _two_ranks(local_ray, spec, weights, [[(_rows(contexts, r),) for r in range(2)] for contexts in steps])

    one = spec.build(Shard(), "cpu", weights)
    for contexts in steps:
        metrics = one.train_on(contexts)
    assert 0 < metrics["positive_fraction"] < 1 and 0 < metrics["alive_fraction"] < 1, metrics
    reference = one.trainer.state_dict()["heads"]
    assert _max_difference(states[0]["heads"], states[1]["heads"]) == 0.0
    assert _max_difference(states[0]["heads"], reference) < TOLERANCE
    prior = {k[len("policy."):]: v for k, v in weights["heads"].items() if k.startswith("policy.")}
    assert _max_difference(states[0]["prior"], prior) == 0.0   # the frozen phase-2 policy, on every rank
    assert states[0]["step"] == 3
    alone = spec.build(Shard(), "cpu", weights)  # the check can fail: rank 0 alone on its contexts ends elsewhere
    for contexts in steps:
        alone.train_on(_rows(contexts, 0))
    wrong = _max_difference(alone.trainer.state_dict()["heads"], reference)
    assert wrong > 100 * TOLERANCE, wrong
