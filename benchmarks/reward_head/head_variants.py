"""Frozen phase-2 features (whole episodes): which part of the reward head / loss fails to use what a linear probe finds?"""
import pickle, numpy as np, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from system.envs.action_space import crafter_action_space
from system.model.dynamics import Dynamics
from system.model.scalar_heads import RewardHead
from system.objectives.agent_losses import reward_loss
from system.training.agent_trainer import agent_features
raw = pickle.load(open(WORK + "/eps.pkl", "rb"))
p1 = torch.load(WORK + "/phase1.pt", weights_only=False)
tok, cfg = p1["tokenizer"], p1["cfg"]
model = Dynamics(cfg, crafter_action_space()); model.load_state_dict(torch.load(WORK + "/phase2.pt")["model"]); model.eval()
from tests.training.test_agent_learning import auc  # the long test's measure, not a copy
H = {}
with torch.no_grad():
    for k in ("train", "held"):
        H[k] = [agent_features(model, model.pack(tok.encode(torch.from_numpy(e[0]).float()[None] / 255)[0])[None],
                               torch.from_numpy(e[1]).long()[None], torch.full((1,), -1), 0.1, torch.Generator().manual_seed(0))[0]
                for e in raw[k]]
torch.save(H, WORK + "/h_phase2.pt")
allh = torch.cat(H["train"]); mu, sd = allh.mean(0), allh.std(0) + 1e-6
lab = np.concatenate([e[2] for e in raw["held"]]) > 0.5
def run(name, mtp=8, standardize=False, bins=255, steps=300, lr=1e-3):
    torch.manual_seed(0)
    head = RewardHead(64, 128, 2, bins, mtp); opt = torch.optim.AdamW(head.parameters(), lr, weight_decay=0.01)
    f = (lambda h: (h - mu) / sd) if standardize else (lambda h: h)
    for step in range(steps):
        loss = sum(reward_loss(head, f(h)[None], torch.from_numpy(e[2])[None], torch.from_numpy(e[3])[None])[0]
                   for h, e in zip(H["train"], raw["train"])) / len(H["train"])
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        sc = np.concatenate([head.predict(f(h)).numpy() for h in H["held"]])
        tr = np.concatenate([head.predict(f(h)).numpy() for h in H["train"]])
    trl = np.concatenate([e[2] for e in raw["train"]]) > 0.5
    print(f"{name}: train AUC {auc(tr, trl):.3f} held AUC {auc(sc, lab):.3f}", flush=True)
run("as-is mtp8")
run("as-is mtp0", mtp=0)
run("standardized mtp8", standardize=True)
run("as-is mtp8 lr3e-3 600 steps", lr=3e-3, steps=600)
