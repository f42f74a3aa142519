"""Reward head alone on FROZEN agent features of the test's dynamics architecture (random init or a checkpoint)."""
import pickle, sys, time, numpy as np, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from system.envs.action_space import crafter_action_space
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.scalar_heads import RewardHead
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.objectives.agent_losses import reward_loss
from system.training.agent_trainer import agent_features
from tests.helpers.small_tokenizer import small_net
d = pickle.load(open(WORK + "/eps.pkl", "rb"))
from tests.training.test_agent_learning import auc  # the long test's measure, not a copy
SEQ, ROWS, STEPS = 12, 8, int(sys.argv[1]) if len(sys.argv) > 1 else 400
torch.manual_seed(0)
tok = Tokenizer(TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=64, latent_dim=4, mask_prob_max=0.5,
                                encoder=small_net(64, 4, 4, 2, "index"), decoder=small_net(64, 4, 4, 2, "index"))).eval()
cfg = DynamicsConfig(transformer=small_net(64, 4, 2, 16, "index"), latent_tokens=64, latent_dim=4, packed_tokens=32,
                     registers=2, agent_tokens=1, num_tasks=1, k_max=16)
model = Dynamics(cfg, crafter_action_space()).eval()
t0 = time.time()
with torch.no_grad():
    Z = {k: [model.pack(tok.encode(torch.from_numpy(e[0]).float()[None] / 255)[0]) for e in d[k]] for k in ("train", "held")}
print("encode s", round(time.time() - t0, 1))
head = RewardHead(64, 128, 2, 255, 8)
opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=0.01)
g = torch.Generator().manual_seed(0); rng = np.random.default_rng(0)
none = torch.full((1,), -1)
def evaluate():
    with torch.no_grad():
        sc = np.concatenate([head.predict(agent_features(model, z[None], torch.from_numpy(e[1]).long()[None], none, 0.1, g))[0].numpy()
                             for z, e in zip(Z["held"], d["held"])])
    lab = np.concatenate([e[2] for e in d["held"]]) > 0.5
    return round(auc(sc, lab), 3)
for step in range(STEPS):
    zs, as_, rs, ts = [], [], [], []
    for _ in range(ROWS):
        p = rng.integers(len(Z["train"])); s = rng.integers(len(Z["train"][p]) - SEQ + 1); e = d["train"][p]
        zs.append(Z["train"][p][s:s + SEQ]); as_.append(torch.from_numpy(e[1][s:s + SEQ]).long())
        rs.append(torch.from_numpy(e[2][s:s + SEQ])); ts.append(torch.from_numpy(e[3][s:s + SEQ]))
    with torch.no_grad():
        h = agent_features(model, torch.stack(zs), torch.stack(as_), torch.full((ROWS,), -1), 0.1, g)
    loss, m = reward_loss(head, h, torch.stack(rs), torch.stack(ts))
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 200 == 0 or step == STEPS - 1:
        print(step, round(m["reward_ce"], 3), "held AUC", evaluate(), "t", round(time.time() - t0))
