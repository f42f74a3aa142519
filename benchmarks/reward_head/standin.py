"""Reward head + reward_loss on stand-in features that carry a_t exactly: can the head/loss learn r_t?"""
import pickle, sys, numpy as np, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from system.model.scalar_heads import RewardHead
from system.objectives.agent_losses import reward_loss
d = pickle.load(open(WORK + "/eps.pkl", "rb"))
from tests.training.test_agent_learning import auc  # the long test's measure, not a copy
def feats(actions, g):
    onehot = torch.nn.functional.one_hot(torch.from_numpy(actions[:, 0]).long() + 1, 18).float()
    return (onehot + 0.1 * torch.randn(onehot.shape, generator=g))[:, None, :]   # (T, 1, 18)
mtp = int(sys.argv[1]) if len(sys.argv) > 1 else 8
SEQ, ROWS, STEPS = 12, 8, 400
torch.manual_seed(0); g = torch.Generator().manual_seed(0); rng = np.random.default_rng(0)
head = RewardHead(18, 128, 2, 255, mtp)
opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=0.01)
F = [feats(e[1], g) for e in d["train"]]
for step in range(STEPS):
    hs, rs, ts = [], [], []
    for _ in range(ROWS):
        p = rng.integers(len(F)); s = rng.integers(len(F[p]) - SEQ + 1)
        hs.append(F[p][s:s + SEQ]); rs.append(torch.from_numpy(d["train"][p][2][s:s + SEQ])); ts.append(torch.from_numpy(d["train"][p][3][s:s + SEQ]))
    loss, m = reward_loss(head, torch.stack(hs), torch.stack(rs), torch.stack(ts))
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 100 == 0 or step == STEPS - 1:
        with torch.no_grad():
            sc = np.concatenate([head.predict(feats(e[1], g)).numpy() for e in d["held"]])
        lab = np.concatenate([e[2] for e in d["held"]]) > 0.5
        print(step, m, "held AUC", round(auc(sc, lab), 3), "pred range", sc.min(), sc.max())
