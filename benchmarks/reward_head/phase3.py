"""Phase 3 (tests/training/test_agent_learning.imagination_run) on the phase-2 model that phase_probe.py saved."""
import pickle, time, numpy as np, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from types import SimpleNamespace
from system.envs.action_space import crafter_action_space
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics
from tests.training.test_agent_learning import imagination_run
t0 = time.time()
raw = pickle.load(open(WORK + "/eps.pkl", "rb"))
E = lambda x: SimpleNamespace(frames=x[0], actions=x[1], rewards=x[2], terminals=x[3])
train, held = [E(x) for x in raw["train"]], [E(x) for x in raw["held"]]
p1 = torch.load(WORK + "/phase1.pt", weights_only=False); p2 = torch.load(WORK + "/phase2.pt")
tokenizer, space = p1["tokenizer"], crafter_action_space()
model = Dynamics(p1["cfg"], space); model.load_state_dict(p2["model"]); model.eval()
heads = AgentHeads(AgentHeadsConfig(hidden=128, mtp=8, bins=255), space.components, 1, 64)
heads.load_state_dict(p2["heads"]); heads.eval()
with torch.no_grad():
    lat = lambda f: model.pack(tokenizer.encode(torch.from_numpy(f).float()[None] / 255)[0])
    z_train, z_held = [lat(e.frames) for e in train], [lat(e.frames) for e in held]
print("setup s", round(time.time() - t0), flush=True)
f = imagination_run(model, heads, tokenizer, train, z_train, held, z_held, seed=0)
print({k: round(v, 4) for k, v in f.items()})
print("total s", round(time.time() - t0))
