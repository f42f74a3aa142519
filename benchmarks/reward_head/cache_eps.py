import pickle, sys, torch
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
if "--extra" in sys.argv:   # episodes 24..47 of the same collection (the first 24 are the ones above), for mixture.py
    more = [s.read() for s in crafter_sources(CollectConfig(episodes=48, policy="scripted", seed=0, max_episode_steps=150))]
    pickle.dump([(e.frames, e.actions, e.rewards, e.terminals) for e in more[24:]], open(WORK + "/extra.pkl", "wb"))
