"""Where does the reward head lose it? Phase 1 as in test_agent_learning (seed 0), then
 probe A: reward head alone on FROZEN phase-1 features; then phase 2 exactly as the test, AUC every 100 steps."""
import copy, pickle, sys, time, numpy as np, torch
torch.set_num_threads(1)
import os
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
os.makedirs(WORK, exist_ok=True)
from types import SimpleNamespace
from system.envs.action_space import crafter_action_space
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.scalar_heads import RewardHead
from system.objectives.agent_losses import reward_loss
from system.objectives.shortcut import ShortcutConfig
from system.training.agent_trainer import AgentBatch, AgentTrainConfig, AgentTrainer, agent_features
from system.training.batch_schedule import BatchScheduleConfig
from system.training.dynamics_trainer import DynamicsTrainConfig, train_dynamics
from tests.helpers.small_tokenizer import small_net, train_small_tokenizer
t0 = time.time()
def say(*a): print(f"[{time.time() - t0:6.0f}s]", *a, flush=True)
raw = pickle.load(open(WORK + "/eps.pkl", "rb"))
E = lambda x: SimpleNamespace(frames=x[0], actions=x[1], rewards=x[2], terminals=x[3])
train, held = [E(x) for x in raw["train"]], [E(x) for x in raw["held"]]
SEQ, seed = 12, 0
from tests.training.test_agent_learning import auc  # the long test's measure, not a copy
torch.manual_seed(seed)
tokenizer = train_small_tokenizer(train, 400, seed, space_positions="index").model; say("tokenizer done")
space = crafter_action_space()
cfg = DynamicsConfig(transformer=small_net(64, 4, 2, 16, "index"), latent_tokens=64, latent_dim=4, packed_tokens=32,
                     registers=2, agent_tokens=1, num_tasks=1, k_max=16)
torch.manual_seed(seed)
model = Dynamics(cfg, space)
@torch.no_grad()
def latents(frames):
    return model.pack(tokenizer.encode(torch.from_numpy(frames).float()[None] / 255)[0])
z_train = [latents(e.frames) for e in train]; z_held = [latents(e.frames) for e in held]
shortcut = ShortcutConfig(bootstrap_warmup=200)
train_dynamics(model, z_train, [torch.from_numpy(e.actions).long() for e in train],
               DynamicsTrainConfig(shortcut=shortcut, lr=1e-3, warmup_steps=20, log_every=200,
                                   schedule=BatchScheduleConfig(batch_size=8, short_length=8, long_length=16, long_every=4)),
               steps=400, seed=seed)
say("dynamics done")
torch.save({"tokenizer": tokenizer, "model": model.state_dict(), "cfg": cfg}, WORK + "/phase1.pt")
def windows(rows, rng):
    parts = []
    for _ in range(rows):
        p = rng.integers(len(train)); s = rng.integers(len(train[p].frames) - SEQ + 1); e = train[p]
        parts.append((z_train[p][s:s + SEQ], torch.from_numpy(e.actions[s:s + SEQ]).long(),
                      torch.from_numpy(e.rewards[s:s + SEQ]).float(), torch.from_numpy(e.terminals[s:s + SEQ])))
    z1, a, r, d = (torch.stack(x) for x in zip(*parts))
    return AgentBatch(z1, a, r, d, torch.full((rows,), -1))
def held_auc(reward_head):
    with torch.no_grad():
        sc, lab = [], []
        for z, e in zip(z_held, held):
            h = agent_features(model, z[None], torch.from_numpy(e.actions).long()[None], torch.full((1,), -1), 0.1,
                               torch.Generator().manual_seed(seed))
            sc.append(reward_head.predict(h)[0].numpy()); lab.append(e.rewards > 0.5)
    return round(auc(np.concatenate(sc), np.concatenate(lab)), 3)
# probe A: frozen phase-1 features, reward head alone
model.eval()
head = RewardHead(64, 128, 2, 255, 8); opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=0.01)
rng = np.random.default_rng(seed); g = torch.Generator().manual_seed(seed)
for step in range(400):
    b = windows(8, rng)
    with torch.no_grad():
        h = agent_features(model, b.z1, b.actions, b.task, 0.1, g)
    loss, m = reward_loss(head, h, b.rewards, b.terminals)
    opt.zero_grad(); loss.backward(); opt.step()
    if (step + 1) % 200 == 0:
        say("probe A frozen phase-1 features step", step + 1, "held AUC", held_auc(head))
# phase 2 as in the test
heads = AgentHeads(AgentHeadsConfig(hidden=128, mtp=8, bins=255), space.components, 1, 64)
agent_cfg = AgentTrainConfig(steps=400, batch_size=16, seq_len=SEQ, lr=1e-3, warmup_steps=20)
trainer = AgentTrainer(model, heads, agent_cfg, shortcut, seed=seed, dynamics_step=400)
rng = np.random.default_rng(seed)
for step in range(400):
    m = trainer.train_step(windows(8, rng), windows(8, rng))
    if (step + 1) % 100 == 0:
        model.eval(); heads.eval()
        say("phase 2 step", step + 1, "held AUC", held_auc(heads.reward), {k: round(m[k], 3) for k in ("reward_ce", "bc_nll", "bc_accuracy")})
torch.save({"model": model.state_dict(), "heads": heads.state_dict()}, WORK + "/phase2.pt")
# probe B: a fresh reward head on the FROZEN phase-2 features
head = RewardHead(64, 128, 2, 255, 8); opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=0.01)
rng = np.random.default_rng(seed)
model.eval()
for step in range(400):
    b = windows(8, rng)
    with torch.no_grad():
        h = agent_features(model, b.z1, b.actions, b.task, 0.1, g)
    loss, m = reward_loss(head, h, b.rewards, b.terminals)
    opt.zero_grad(); loss.backward(); opt.step()
say("probe B fresh head on frozen phase-2 features: held AUC", held_auc(head))
