import numpy as np, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from system.data.collect import crafter_sources
from system.data.config import CollectConfig
from tests.training.test_agent_learning import auc  # the long test's measure, not a copy
tr = [s.read() for s in crafter_sources(CollectConfig(episodes=24, policy="scripted", seed=0, max_episode_steps=150))]
he = [s.read() for s in crafter_sources(CollectConfig(episodes=12, policy="scripted", seed=2_000_003, max_episode_steps=150))]
a = np.concatenate([e.actions[:, 0] for e in tr]); r = np.concatenate([e.rewards for e in tr]) > 0.5
p = np.array([r[a == k].mean() if (a == k).any() else 0 for k in range(-1, 17)])
ah = np.concatenate([e.actions[:, 0] for e in he]); rh = np.concatenate([e.rewards for e in he]) > 0.5
print("P(reward|action)", np.round(p, 3))
print("action-only AUC held-out", auc(p[ah + 1], rh))
# previous action (a_{t+1} leakage check): if the head saw the NEXT action instead
print("next-action AUC", auc(np.concatenate([p[np.r_[e.actions[1:, 0], -1] + 1] for e in he]), rh))
np.savez(WORK + "/eps.npz", p=p)
