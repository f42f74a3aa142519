import pickle, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from system.data.collect import crafter_sources
from system.data.config import CollectConfig
tr = [s.read() for s in crafter_sources(CollectConfig(episodes=24, policy="scripted", seed=0, max_episode_steps=150))]
he = [s.read() for s in crafter_sources(CollectConfig(episodes=12, policy="scripted", seed=2_000_003, max_episode_steps=150))]
pickle.dump({"train": [(e.frames, e.actions, e.rewards, e.terminals) for e in tr],
             "held": [(e.frames, e.actions, e.rewards, e.terminals) for e in he]}, open(WORK + "/eps.pkl", "wb"))
