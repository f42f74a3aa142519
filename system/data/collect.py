"""Crafter dataset collection: run a policy in the real Crafter env and record Episodes for the replay store.

    for source in crafter_sources(CollectConfig(episodes=100, policy="scripted"), size=(64, 64)):
        episode = source.read()      # runs episode `index`: frames (T, 64, 64, 3), actions (T, 1), ...

Lets a user without the MineRL data produce an offline dataset in the same store (`python -m system.data.ingest
crafter`). Episode i is reproducible on its own: its world seed and policy seed derive from (seed, i), so an
interrupted collection re-run regenerates exactly the missing episodes, and its id
`crafter/<policy>/seed<seed>/ep<i>` says which run produced it. Step convention as in episode.py: step 0 is the
reset frame with action -1; step t is the frame after action t-1, with its reward and `terminated` (death);
a run cut by the length limit ends without a terminal step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from system.data.config import CollectConfig
from system.data.crafter_policies import Policy, make_policy
from system.data.episode import Episode, make_episode_id
from system.envs.action_space import NO_LABEL, crafter_action_space
from system.envs.crafter_env import CrafterEnv


@dataclass(frozen=True)
class CollectSource:
    """One episode still to be collected: its id is known before it runs, so the ingest can skip it."""
    episode_id: str
    index: int
    read: Callable[[], Episode]


def policy_tag(policy: str, checkpoint: str = "") -> str:
    """'random', 'scripted', or '<factory>@<checkpoint stem>' so different checkpoints give different ids."""
    if policy in ("random", "scripted"):
        return policy
    return f"{policy.rpartition(':')[2]}@{Path(checkpoint).stem or 'none'}"


def episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """(world seed, policy seed) of episode `index`, independent of every other episode."""
    world, policy = np.random.SeedSequence([seed, index]).generate_state(2)
    return int(world % (2**31 - 1)), int(policy)


def run_crafter_episode(env: CrafterEnv, policy: Policy, world_seed: int, policy_seed: int, episode_id: str,
                        policy_name: str = "") -> Episode:
    space = env.action_spec
    frame, info = env.reset(seed=world_seed)
    policy.reset(policy_seed)
    frames, actions, rewards, terminals = [frame], [np.full(len(space), NO_LABEL, np.int32)], [0.0], [False]
    while True:
        action = space.validate(np.asarray(policy.act(frame, info)).reshape(1, -1), where="policy action")[0]
        if (action == NO_LABEL).any():
            raise ValueError(f"policy {policy_name!r} returned -1 (no label), which an env cannot execute")
        frame, reward, terminated, truncated, info = env.step(action)
        frames.append(frame)
        actions.append(action)
        rewards.append(reward)
        terminals.append(terminated)
        if terminated or truncated:
            break
    summary = info["episode"]
    return Episode(episode_id, np.stack(frames), np.stack(actions), np.array(rewards, np.float32),
                   np.array(terminals), metadata={
                       "source": "crafter", "policy": policy_name, "world_seed": world_seed,
                       "policy_seed": policy_seed, "action_space": space.name, "fps": 20,
                       "return": summary["return"], "length": summary["length"], "truncated": bool(truncated),
                       "achievements": summary["achievements"], "total_reward": summary["return"],
                   })


def crafter_sources(cfg: CollectConfig, size: tuple[int, int] = (64, 64),
                    policy: Policy | None = None) -> Iterator[CollectSource]:
    """The episodes of a collection run, each collected only when its `read()` is called."""
    env = CrafterEnv(size=size, seed=cfg.seed, max_episode_steps=cfg.max_episode_steps)
    if policy is None:
        policy = make_policy(cfg.policy, cfg.checkpoint, crafter_action_space())
    tag = policy_tag(cfg.policy, cfg.checkpoint)
    for index in range(cfg.episodes):
        episode_id = make_episode_id("crafter", tag, f"seed{cfg.seed}", f"ep{index:06d}")
        world_seed, policy_seed = episode_seeds(cfg.seed, index)

        def read(world_seed=world_seed, policy_seed=policy_seed, episode_id=episode_id) -> Episode:
            return run_crafter_episode(env, policy, world_seed, policy_seed, episode_id, cfg.policy)

        yield CollectSource(episode_id, index, read)
