"""Learning checks of phases 2 and 3 on real Crafter: a small world model plus agent heads, trained for minutes
on scripted-explorer episodes, (1) played live in Crafter the BC policy shows the explorer's behaviour far above
the random policy, (2) on held-out episodes the reward head separates steps with and without reward, (3) phase 3
raises the imagined return over the phase-2 prior without the KL to the prior exploding (live Crafter return of
prior vs trained is reported, not asserted)."""

import os

import numpy as np
import pytest
import torch

from system.data.collect import crafter_sources
from system.data.config import CollectConfig
from system.envs.action_space import crafter_action_space
from system.envs.crafter_env import CrafterEnv
from system.imagination.acting import LiveActor
from system.imagination.generation import GenerationConfig
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.policy_head import FactoredPolicy
from system.phases.train_imagination import imagined_return
from system.objectives.shortcut import ShortcutConfig
from system.training.agent_trainer import AgentBatch, AgentTrainConfig, AgentTrainer, agent_features
from system.training.batch_schedule import BatchScheduleConfig
from system.training.dynamics_trainer import DynamicsTrainConfig, train_dynamics
from system.training.imagination_trainer import ImaginationTrainConfig, ImaginationTrainer
from tests.helpers.small_tokenizer import small_net, train_small_tokenizer

TRAIN_EPISODES, HELD_OUT_EPISODES, EPISODE_STEPS = 48, 12, 150
DYNAMICS_STEPS, AGENT_STEPS, SEQ = 400, 400, 12
REWARDED_SHARE = 0.5   # of the relevant rows: windows that hold a reward
LIVE_EPISODES, LIVE_STEPS = 20, 100
PHASE3_STEPS, PHASE3_CONTEXT, PHASE3_HORIZON, PHASE3_EVAL_CONTEXTS, PHASE3_EVAL_SEEDS = 150, 8, 16, 32, 3


def rewarded_windows(episodes) -> list[tuple[int, int]]:
    """(episode, start) of every SEQ-step window that holds an achievement reward (r > 0.5)."""
    return [(p, s) for p, e in enumerate(episodes) for s in range(len(e.frames) - SEQ + 1)
            if (e.rewards[s:s + SEQ] > 0.5).any()]


def windows(episodes, z, rows, rng, rewarded=(), rewarded_share=0.0):
    """Uniform SEQ-step windows; with `rewarded`, each row is one of those windows with probability
    `rewarded_share` (the task-relevant half of the phase-2 mixture: for Crafter's one task, score, the
    windows where the agent earned a reward)."""
    parts = []
    for _ in range(rows):
        if rewarded and rng.random() < rewarded_share:
            p, start = rewarded[rng.integers(len(rewarded))]
        else:
            p = rng.integers(len(episodes))
            start = rng.integers(len(episodes[p].frames) - SEQ + 1)
        e = episodes[p]
        parts.append((z[p][start:start + SEQ], torch.from_numpy(e.actions[start:start + SEQ]).long(),
                      torch.from_numpy(e.rewards[start:start + SEQ]).float(),
                      torch.from_numpy(e.terminals[start:start + SEQ])))
    z1, a, r, d = (torch.stack(x) for x in zip(*parts))
    return AgentBatch(z1, a, r, d, torch.full((rows,), -1))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a rewarded step scores above an unrewarded one (ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    return float(greater)


def play(actor_or_none, world_seeds, seed):
    """collect_wood success and return over live episodes; actor None = uniform random actions."""
    rng = np.random.default_rng(seed)
    envs = [CrafterEnv(size=(64, 64), seed=int(s), max_episode_steps=LIVE_STEPS) for s in world_seeds]
    frames = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, world_seeds)])
    last = torch.full((len(envs), 1), -1)
    starts = torch.ones(len(envs), dtype=torch.bool)
    wood, returns, alive = np.zeros(len(envs), bool), np.zeros(len(envs)), np.ones(len(envs), bool)
    for _ in range(LIVE_STEPS):
        if actor_or_none is None:
            actions = torch.from_numpy(rng.integers(17, size=(len(envs), 1)))
        else:
            actions = actor_or_none.step(torch.from_numpy(frames), last, starts)
        starts = torch.zeros_like(starts)
        for i, env in enumerate(envs):
            if not alive[i]:
                continue
            frame, reward, terminated, truncated, info = env.step(actions[i].numpy().astype(np.int32))
            frames[i] = frame
            returns[i] += reward
            wood[i] |= info["achievements"]["collect_wood"] > 0
            alive[i] = not (terminated or truncated)
        last = actions
    return wood, returns


def learning_run(seed: int) -> tuple[dict[str, float], dict]:
    """Phase 1 and 2 and their figures; also the pieces phase 3 continues from."""
    collect = CollectConfig(episodes=TRAIN_EPISODES, policy="scripted", seed=0, max_episode_steps=EPISODE_STEPS)
    train = [s.read() for s in crafter_sources(collect)]
    held = [s.read() for s in crafter_sources(CollectConfig(episodes=HELD_OUT_EPISODES, policy="scripted",
                                                            seed=2_000_003, max_episode_steps=EPISODE_STEPS))]
    torch.manual_seed(seed)
    # index positions and 400 steps: the settings these opt-in checks were measured with
    tokenizer = train_small_tokenizer(train, 400, seed, space_positions="index").model
    space = crafter_action_space()
    cfg = DynamicsConfig(transformer=small_net(64, 4, 2, 16, "index"), latent_tokens=64, latent_dim=4,
                         packed_tokens=32,
                         registers=2, agent_tokens=1, num_tasks=1, k_max=16)
    torch.manual_seed(seed)
    model = Dynamics(cfg, space)

    @torch.no_grad()
    def latents(frames):
        return model.pack(tokenizer.encode(torch.from_numpy(frames).float()[None] / 255)[0])

    z_train = [latents(e.frames) for e in train]
    shortcut = ShortcutConfig(bootstrap_warmup=DYNAMICS_STEPS // 2)
    train_dynamics(model, z_train, [torch.from_numpy(e.actions).long() for e in train],
                   DynamicsTrainConfig(shortcut=shortcut, lr=1e-3, warmup_steps=20, log_every=200,
                                       schedule=BatchScheduleConfig(batch_size=8, short_length=8, long_length=16,
                                                                    long_every=4)),
                   steps=DYNAMICS_STEPS, seed=seed)
    heads = AgentHeads(AgentHeadsConfig(hidden=128, mtp=8, bins=255), space.components, 1, 64)
    agent_cfg = AgentTrainConfig(steps=AGENT_STEPS, batch_size=16, seq_len=SEQ, lr=1e-3, warmup_steps=20)
    trainer = AgentTrainer(model, heads, agent_cfg, shortcut, seed=seed, dynamics_step=DYNAMICS_STEPS)
    rng = np.random.default_rng(seed)
    uniform_rows, relevant_rows = agent_cfg.split()
    rewarded = rewarded_windows(train)
    for _ in range(AGENT_STEPS):
        trainer.train_step(windows(train, z_train, uniform_rows, rng),
                           windows(train, z_train, relevant_rows, rng, rewarded, REWARDED_SHARE))
    model.eval()
    heads.eval()
    figures = {}
    with torch.no_grad():   # reward head on held-out episodes: distance 0 on h_t against r_t > 0.5
        scores, labels = [], []
        for e in held:
            z = latents(e.frames)[None]
            h = agent_features(model, z, torch.from_numpy(e.actions).long()[None], torch.full((1,), -1), 0.1,
                               torch.Generator().manual_seed(seed))
            scores.append(heads.reward.predict(h)[0].numpy())
            labels.append(e.rewards > 0.5)
        figures["reward_auc"] = auc(np.concatenate(scores), np.concatenate(labels))
        z_held = [latents(e.frames) for e in held]
        figures["rewarded_steps"] = int(np.concatenate(labels).sum())
    world_seeds = np.arange(LIVE_EPISODES) + 3_000_017
    actor = LiveActor(model, heads.policy, GenerationConfig(sampling_steps=4), batch=LIVE_EPISODES,
                      tokenizer=tokenizer, generator=torch.Generator().manual_seed(seed))
    wood_bc, ret_bc = play(actor, world_seeds, seed)
    wood_random, ret_random = play(None, world_seeds, seed)
    figures.update(bc_wood_rate=float(wood_bc.mean()), random_wood_rate=float(wood_random.mean()),
                   bc_return=float(ret_bc.mean()), bc_return_std=float(ret_bc.std()),
                   random_return=float(ret_random.mean()), random_return_std=float(ret_random.std()))
    return figures, dict(model=model, heads=heads, tokenizer=tokenizer, train=train, z_train=z_train, held=held,
                         z_held=z_held)


class FixedPolicy:
    """A content-blind policy for the phase-3 baselines: the same action distribution whatever h_t says
    (uniform with `action=None`, else always `action`)."""

    def __init__(self, classes: int, action: int | None = None):
        self.logits = torch.zeros(classes) if action is None else torch.full((classes,), -30.0).index_fill(
            0, torch.tensor([action]), 30.0)

    def act(self, h):
        return FactoredPolicy(("categorical",), [self.logits.expand(*h.shape[:-2], -1)])


def imagination_run(model, heads, tokenizer, train, z_train, held, z_held, seed: int) -> dict[str, float]:
    """Phase 3 on the phase-2 model: PMPO inside the frozen world model from 8-frame training contexts, then the
    imagined return (sum of predicted rewards over H = 16 alive steps) from held-out contexts for the trained
    policy, the prior and content-blind baselines with the same noise draws, and live Crafter returns."""
    cfg = ImaginationTrainConfig(steps=PHASE3_STEPS, batch_size=16, context=PHASE3_CONTEXT, horizon=PHASE3_HORIZON,
                                 policy_lr=1e-4, value_lr=1e-3)
    trainer = ImaginationTrainer(model, heads, cfg, GenerationConfig(sampling_steps=4), seed=seed)
    rng = np.random.default_rng(seed + 5)

    def contexts(episodes, z, rows):
        picks = [(p, rng.integers(len(episodes[p].frames) - PHASE3_CONTEXT + 1))
                 for p in rng.integers(len(episodes), size=rows)]
        return (torch.stack([z[p][s:s + PHASE3_CONTEXT] for p, s in picks]),
                torch.stack([torch.from_numpy(episodes[p].actions[s:s + PHASE3_CONTEXT]).long() for p, s in picks]))

    def evaluate(policy, eval_seed) -> tuple[float, float]:
        trainer.generator.manual_seed(eval_seed)   # the same noise and sampling stream for every policy
        traj = trainer.imagine(*held_contexts, policy=policy)
        h = torch.from_numpy(traj.agent[:, :-1])
        kl = float(heads.policy.act(h).kl(trainer.prior.act(h)).mean())
        return imagined_return(traj), kl

    held_contexts = contexts(held, z_held, PHASE3_EVAL_CONTEXTS)
    figures = {}
    with torch.no_grad():
        before = [evaluate(None, 100 + i)[0] for i in range(PHASE3_EVAL_SEEDS)]
    history = []
    for _ in range(PHASE3_STEPS):
        history.append(trainer.train_step(trainer.imagine(*contexts(train, z_train, cfg.batch_size))))
    with torch.no_grad():
        prior = [evaluate(trainer.prior, 100 + i)[0] for i in range(PHASE3_EVAL_SEEDS)]
        trained = [evaluate(None, 100 + i) for i in range(PHASE3_EVAL_SEEDS)]
        uniform = [evaluate(FixedPolicy(17), 100 + i)[0] for i in range(PHASE3_EVAL_SEEDS)]
        constant = [evaluate(FixedPolicy(17, k), 100)[0] for k in range(17)]
    figures.update(prior_return=float(np.mean(prior)), prior_return_seed_std=float(np.std(prior)),
                   untrained_policy_return=float(np.mean(before)),
                   trained_return=float(np.mean([r for r, _ in trained])),
                   trained_return_seed_std=float(np.std([r for r, _ in trained])),
                   trained_kl_prior=float(np.mean([k for _, k in trained])),
                   uniform_return=float(np.mean(uniform)), best_constant_return=float(max(constant)),
                   best_constant_action=int(np.argmax(constant)),
                   train_kl_last=float(np.mean([m["kl_prior"] for m in history[-10:]])),
                   train_return_first=float(np.mean([m["imagined_return"] for m in history[:10]])),
                   train_return_last=float(np.mean([m["imagined_return"] for m in history[-10:]])))
    world_seeds = np.arange(LIVE_EPISODES) + 4_000_037
    for name, policy in (("prior", trainer.prior), ("trained", heads.policy)):
        actor = LiveActor(model, policy, GenerationConfig(sampling_steps=4), batch=LIVE_EPISODES,
                          tokenizer=tokenizer, generator=torch.Generator().manual_seed(seed))
        _, returns = play(actor, world_seeds, seed)
        figures[f"live_{name}_return"], figures[f"live_{name}_return_std"] = float(returns.mean()), float(returns.std())
    return figures


# Too long for the suite (28 minutes for all three checks on the 2-core box, 2026-12-07; the suite's budget is
# 20): opt in with
# DREAMER4_LONG_TESTS=1 python -m pytest tests/training/test_agent_learning.py
long_test = pytest.mark.skipif(os.environ.get("DREAMER4_LONG_TESTS") != "1",
                               reason="long learning check (~30 min on 2 cores): set DREAMER4_LONG_TESTS=1")


@pytest.fixture(scope="module")
def figures() -> dict[str, float]:
    f, state = learning_run(seed=0)
    f.update({f"phase3_{k}": v for k, v in imagination_run(**state, seed=0).items()})   # after phase 2's figures
    print({k: round(v, 4) for k, v in f.items()})
    return f


@pytest.mark.slow
@long_test
def test_bc_policy_collects_wood_far_more_often_than_random(figures):
    """Setup: 48 scripted-explorer episodes of 150 steps (seed 0); tokenizer 400 steps, dynamics 400 steps
    (C = 16, K_max = 16), phase 2 400 steps (8 uniform + 8 relevant rows of 12 steps, half of the relevant ones
    windows that hold a reward; MTP L = 8; heads on standardised features), seed 0.
    Live: 20 Crafter worlds (seeds 3000017..), 100 steps each, sampled actions from the BC policy through
    LiveActor, against uniform random actions in the same worlds.
    Measure: share of episodes that unlock collect_wood; margin: BC at least 0.25 above random.
    Measured (seed 0, 2026-12-07): BC collect_wood 0.65 vs random 0.05 (margin 0.60); return BC 2.80 +- 0.88
    vs random 1.51 +- 1.15. (With 24 episodes, uniform relevant rows and raw features: 0.60 vs 0.05.)"""
    assert figures["bc_wood_rate"] >= figures["random_wood_rate"] + 0.25, figures


@pytest.mark.slow
@long_test
def test_reward_head_separates_rewarded_steps_on_held_out_episodes(figures):
    """AUC of the reward head's distance-0 prediction separating steps with reward > 0.5 (achievements) from the
    rest on 12 held-out episodes (47 rewarded steps of 1686); asserted > 0.75 (a content-blind head: 0.5; a
    predictor that sees only a_t: 0.83).
    Measured (seed 0, 2026-12-07): 0.776, a thin margin (one AUC's standard error here is about 0.04). Before the
    standardised head inputs, the 48 episodes and the rewarded windows: 0.55 (docs/architecture.md, "Reward
    head"; benchmarks/reward_head/mixture.py: the same phase 2 from a cached phase-1 model gives 0.79 with all
    three, 0.57 without the standardizer, 0.81 without the rewarded windows: that lever is within the spread
    between sample streams, which is about 0.05-0.1 here)."""
    assert figures["reward_auc"] > 0.75, figures


@pytest.mark.slow
@long_test
def test_imagination_training_raises_the_imagined_return_over_the_prior_without_the_kl_exploding(figures):
    """Phase 3 from the phase-2 model of the figures fixture: 150 PMPO updates (16 rollouts of H = 16 from 8-frame
    training contexts, K = 4, policy lr 1e-4, value lr 1e-3, alpha 0.5, beta 0.3), seed 0.
    Measure: imagined return (predicted rewards summed over 16 alive steps, the world model's own judge) from 32
    held-out contexts, the same noise draws for every policy, mean over 3 noise seeds. Bar: the trained policy
    beats the frozen prior by more than 3 times the prior's spread over those seeds (and by at least 0.05), and
    the mean per-step KL[pi || prior] stays under 0.5 nats. Content-blind baselines (uniform and the best single
    constant action) are reported alongside: beating the prior but not them means phase 3 only moved the
    marginal action frequencies, which a policy that ignores h_t could do too.
    Measured (seed 0, 2026-12-07): imagined return prior 0.791 (seed spread 0.009), trained 0.898 (KL to the prior
    0.033), uniform 0.824, best constant action 1.560 (place_table: the small world model predicts the
    achievement's reward for placing a table whatever the inventory holds, so always placing one earns most
    inside it: reward exploitation that a better world model removes, not asserted against). Training contexts:
    0.54 over the first 10 updates, 1.35 over the last 10. Live Crafter return (reported): prior 3.30 +- 0.97,
    trained 2.99 +- 1.13 over 20 episodes: the imagined gain does not carry over to the real game at this size."""
    f = {k[len("phase3_"):]: v for k, v in figures.items() if k.startswith("phase3_")}
    margin = max(0.05, 3 * f["prior_return_seed_std"])
    assert f["trained_return"] >= f["prior_return"] + margin, f
    assert f["trained_kl_prior"] < 0.5, f
