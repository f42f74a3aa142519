"""Does h_t carry a_t (and the reward)? Feature scale and linear probes, random-init vs phase-1 vs phase-2."""
import pickle, sys, numpy as np, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from system.envs.action_space import crafter_action_space
from system.model.dynamics import Dynamics
from system.training.agent_trainer import agent_features
raw = pickle.load(open(WORK + "/eps.pkl", "rb"))
p1 = torch.load(WORK + "/phase1.pt", weights_only=False)
tok, cfg = p1["tokenizer"], p1["cfg"]
from tests.training.test_agent_learning import auc  # the long test's measure, not a copy
with torch.no_grad():
    Z = {k: [tok.encode(torch.from_numpy(e[0]).float()[None] / 255)[0] for e in raw[k]] for k in ("train", "held")}
def feats(model, split):
    out = []
    with torch.no_grad():
        for z, e in zip(Z[split], raw[split]):
            out.append(agent_features(model, model.pack(z)[None], torch.from_numpy(e[1]).long()[None], torch.full((1,), -1), 0.1,
                                      torch.Generator().manual_seed(0))[0, :, 0])
    return torch.cat(out)
def probe(H, y, Hh, yh, classes):
    mu, sd = H.mean(0), H.std(0) + 1e-6
    X, Xh = (H - mu) / sd, (Hh - mu) / sd
    lin = torch.nn.Linear(X.shape[1], classes); opt = torch.optim.Adam(lin.parameters(), 1e-2)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(lin(X), y); opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        return lin(Xh)
A = {k: torch.from_numpy(np.concatenate([e[1][:, 0] for e in raw[k]])).long() + 1 for k in ("train", "held")}
R = {k: torch.from_numpy(np.concatenate([e[2] for e in raw[k]]) > 0.5).long() for k in ("train", "held")}
torch.manual_seed(0)
models = {"random-init": Dynamics(cfg, crafter_action_space())}
m = Dynamics(cfg, crafter_action_space()); m.load_state_dict(p1["model"]); models["phase-1"] = m
if len(sys.argv) > 1:
    m = Dynamics(cfg, crafter_action_space()); m.load_state_dict(torch.load(sys.argv[1])["model"]); models["phase-2"] = m
for name, model in models.items():
    model.eval()
    H, Hh = feats(model, "train"), feats(model, "held")
    spread = (H.std(0).norm() / H.mean(0).norm()).item()
    acc = (probe(H, A["train"], Hh, A["held"], 18).argmax(-1) == A["held"]).float().mean().item()
    rew = probe(H, R["train"], Hh, R["held"], 2)
    print(f"{name}: |h| {H.norm(dim=-1).mean():.2f}  across-step spread/mean-norm {spread:.3f}  "
          f"linear probe a_t accuracy (held) {acc:.3f}  linear probe reward AUC (held) {auc((rew[:, 1] - rew[:, 0]).numpy(), R['held'].numpy().astype(bool)):.3f}", flush=True)
