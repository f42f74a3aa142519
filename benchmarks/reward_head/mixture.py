"""Phase 2 from phase_probe.py's phase-1 model (WORK/phase1.pt), held-out reward AUC every 100 steps, for the
levers of the fix: standardised head inputs or not, 24 or 48 training episodes, a share of rewarded windows in
the relevant rows. Usage: mixture.py NAME EPISODES REWARDED_SHARE [STEPS]; NAME starting with "nostd" switches the
standardizer off. 48 episodes need WORK/extra.pkl (episodes 24..47 of the same collection: cache_eps.py --extra)."""
import os, pickle, sys, time, numpy as np, torch
torch.set_num_threads(1)
from types import SimpleNamespace
from system.envs.action_space import crafter_action_space
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics
from system.objectives.shortcut import ShortcutConfig
from system.training.agent_trainer import AgentBatch, AgentTrainConfig, AgentTrainer, agent_features
from tests.training.test_agent_learning import auc, rewarded_windows, windows  # the long test's own
variant = sys.argv[1]; eps_n = int(sys.argv[2]); rewarded_share = float(sys.argv[3]); steps = int(sys.argv[4]) if len(sys.argv) > 4 else 400
t0 = time.time()
def say(*a): print(f"[{time.time() - t0:6.0f}s]", variant, *a, flush=True)
WORK = os.environ.get("WORK", "/tmp/reward_head")   # episodes and checkpoints pass between the scripts here
raw = pickle.load(open(WORK + "/eps.pkl", "rb"))
E = lambda x: SimpleNamespace(frames=x[0], actions=x[1], rewards=x[2], terminals=x[3])
train, held = [E(x) for x in raw["train"]], [E(x) for x in raw["held"]]
if eps_n > 24:
    extra = pickle.load(open(WORK + "/extra.pkl", "rb"))
    train += [E(x) for x in extra[: eps_n - 24]]
SEQ, seed = 12, 0
p1 = torch.load(WORK + "/phase1.pt", weights_only=False)
tokenizer, cfg = p1["tokenizer"], p1["cfg"]
space = crafter_action_space()
model = Dynamics(cfg, space); model.load_state_dict(p1["model"])
@torch.no_grad()
def latents(frames):
    return model.pack(tokenizer.encode(torch.from_numpy(frames).float()[None] / 255)[0])
z_train = [latents(e.frames) for e in train]; z_held = [latents(e.frames) for e in held]
say("latents", len(train))
shortcut = ShortcutConfig(bootstrap_warmup=200)
rewarded = rewarded_windows(train)
def held_auc(heads):
    with torch.no_grad():
        sc, lab = [], []
        for z, e in zip(z_held, held):
            h = agent_features(model, z[None], torch.from_numpy(e.actions).long()[None], torch.full((1,), -1), 0.1,
                               torch.Generator().manual_seed(seed))
            sc.append(heads.reward.predict(h)[0].numpy()); lab.append(e.rewards > 0.5)
    return round(auc(np.concatenate(sc), np.concatenate(lab)), 3)
torch.manual_seed(seed)
heads = AgentHeads(AgentHeadsConfig(hidden=128, mtp=8, bins=255), space.components, 1, 64)
if variant.startswith("nostd"):
    heads.features.observe = lambda h: None
agent_cfg = AgentTrainConfig(steps=steps, batch_size=16, seq_len=SEQ, lr=1e-3, warmup_steps=20)
trainer = AgentTrainer(model, heads, agent_cfg, shortcut, seed=seed, dynamics_step=400)
rng = np.random.default_rng(seed)
for step in range(steps):
    m = trainer.train_step(windows(train, z_train, 8, rng), windows(train, z_train, 8, rng, rewarded, rewarded_share))
    if (step + 1) % 100 == 0:
        model.eval(); heads.eval()
        say("phase 2 step", step + 1, "held AUC", held_auc(heads), {k: round(m[k], 3) for k in ("reward_ce", "bc_nll", "bc_accuracy")})
