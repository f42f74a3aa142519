"""World-model quality on Crafter: open-loop prediction PSNR of a small tokenizer + dynamics model.

    python -m benchmarks.dynamics_quality                      # CPU-sized defaults (minutes)
    python -m benchmarks.dynamics_quality --device cuda --dim 256 --depth 8 --dynamics-steps 20000 --save wm.pt
    python -m benchmarks.dynamics_quality --load wm.pt         # evaluate a saved tokenizer + dynamics

Data: random-policy Crafter episodes (the project's collector, 64x64), training episodes and held-out episodes
from other world seeds. Trains a tokenizer, then the dynamics model with shortcut forcing, then evaluates on
held-out windows: `--context-frames` real frames as context, then `--horizon` frames generated open-loop (each
from the model's own previous frames) with the true actions, decoded with the tokenizer decoder (causal, run
over [real context latents, generated latents]). Figures: PSNR in dB against the real frames, computed from the
pixel MSE averaged over windows (per horizon step) and over the horizon (overall); averaging per-frame PSNRs
instead would let the many unchanged Crafter frames (infinite PSNR for a copy) dominate.
  model_k4            true actions, K = 4 sampling steps (the paper's inference setting)
  model_k64           true actions, K = 64 (the same model; the paper's diffusion-forcing baseline uses 64)
  shuffled_actions_k4 actions of another window (action sensitivity: true should beat shuffled)
  copy_last_context   the last real context frame repeated (the baseline to beat)
  tokenizer_recon     decoded true latents: the ceiling the dynamics model can reach through this tokenizer
  latent_mse_*        the same comparisons as MSE in packed latent space (plus the training-set mean latent),
                      which separates the dynamics model from the tokenizer's reconstruction error
The last line is one JSON object (name, config, device, figures, ratios).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from system.data.collect import crafter_sources
from system.data.config import CollectConfig
from system.envs.action_space import crafter_action_space
from system.imagination.generation import draw_noise
from system.imagination.open_loop import decode_after, open_loop, pixel_mse_per_step, psnr_db
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.model.transformer import TransformerConfig
from system.objectives.shortcut import ShortcutConfig
from system.training.batch_schedule import BatchScheduleConfig
from system.training.dynamics_trainer import DynamicsTrainConfig, train_dynamics
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (tiny models: 1 is fastest)")
    p.add_argument("--train-episodes", type=int, default=16)
    p.add_argument("--held-out-episodes", type=int, default=4)
    p.add_argument("--episode-steps", type=int, default=200)
    p.add_argument("--tokenizer-steps", type=int, default=600)
    p.add_argument("--dynamics-steps", type=int, default=2000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4, help="dynamics depth (temporal attention every 2nd layer)")
    p.add_argument("--latents", type=int, default=16, help="tokenizer latents N_b (of 16 channels)")
    p.add_argument("--packed", type=int, default=8, help="dynamics latent tokens N_z")
    p.add_argument("--context", type=int, default=16, help="temporal window C of the dynamics")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--short-length", type=int, default=16)
    p.add_argument("--long-length", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--context-frames", type=int, default=8)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--eval-windows", type=int, default=64)
    p.add_argument("--save", default="", help="write tokenizer + dynamics weights here after training")
    p.add_argument("--load", default="", help="skip training: load weights written by --save")
    return p.parse_args()


def net(dim: int, depth: int, context: int) -> TransformerConfig:
    return TransformerConfig(dim=dim, depth=depth, num_heads=4, num_kv_heads=2, temporal_every=2, context=context,
                             mlp_ratio=2.0)


def collect(args):
    total = args.train_episodes + args.held_out_episodes
    sources = crafter_sources(CollectConfig(episodes=total, policy="random", seed=args.seed,
                                            max_episode_steps=args.episode_steps))
    episodes = [s.read() for s in sources]
    return episodes[:args.train_episodes], episodes[args.train_episodes:]


def train_tokenizer(cfg: TokenizerConfig, episodes, steps: int, seed: int, device) -> Tokenizer:
    train_cfg = TokenizerTrainConfig(steps=steps, batch_size=8, seq_len=2, lr=3e-3, warmup_steps=20)
    trainer = TokenizerTrainer(cfg, train_cfg, device, torch.Generator(device=device).manual_seed(seed))
    rng = np.random.default_rng(seed)
    start = time.time()
    for step in range(steps):
        windows = []
        for _ in range(train_cfg.batch_size):
            frames = episodes[rng.integers(len(episodes))].frames
            s = rng.integers(len(frames) - 1)
            windows.append(frames[s:s + 2])
        m = trainer.step(torch.from_numpy(np.stack(windows)).float().div(255).to(device))
        if (step + 1) % 100 == 0:
            print(f"tokenizer step {step + 1}/{steps}  psnr {m['psnr']:.2f}  {time.time() - start:.0f}s", flush=True)
    return trainer.model.eval()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    torch.manual_seed(args.seed)
    started = time.time()
    train, held_out = collect(args)
    print(f"collected {len(train)} + {len(held_out)} episodes ({sum(len(e) for e in train)} training frames)")

    tok_cfg = TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=args.latents, latent_dim=16,
                              encoder=net(args.dim, 2, 8), decoder=net(args.dim, 2, 8))
    dyn_cfg = DynamicsConfig(transformer=net(args.dim, args.depth, args.context), latent_tokens=args.latents,
                             latent_dim=16, packed_tokens=args.packed, registers=4, agent_tokens=0, k_max=64)
    if args.load:
        state = torch.load(args.load, map_location=device, weights_only=True)
        tokenizer = Tokenizer(tok_cfg).to(device).eval()
        tokenizer.load_state_dict(state["tokenizer"])
    else:
        tokenizer = train_tokenizer(tok_cfg, train, args.tokenizer_steps, args.seed, device)
    model = Dynamics(dyn_cfg, crafter_action_space()).to(device)

    @torch.no_grad()
    def latents(episode):
        return model.pack(tokenizer.encode(torch.from_numpy(episode.frames).float().div(255)[None].to(device))[0])

    def actions(episode):
        return torch.from_numpy(episode.actions).long().to(device)

    train_z, held_z = [latents(e) for e in train], [latents(e) for e in held_out]
    if args.load:
        model.load_state_dict(state["dynamics"])
    else:
        train_cfg = DynamicsTrainConfig(
            shortcut=ShortcutConfig(bootstrap_warmup=args.dynamics_steps // 2),
            schedule=BatchScheduleConfig(batch_size=args.batch, short_length=args.short_length,
                                         long_length=args.long_length, long_every=4),
            lr=args.lr, warmup_steps=50, log_every=100)
        train_dynamics(model, train_z, [actions(e) for e in train], train_cfg, args.dynamics_steps, args.seed)
    if args.save:
        torch.save({"tokenizer": tokenizer.state_dict(), "dynamics": model.state_dict()}, args.save)
    model.eval()
    train_time = time.time() - started

    # -- evaluation on held-out windows ----------------------------------------------------------------------
    c, h, n = args.context_frames, args.horizon, args.eval_windows
    gen = torch.Generator().manual_seed(args.seed + 1000)
    picks = []  # (episode, start) of each window, never crossing an episode end
    for _ in range(n):
        k = int(torch.randint(len(held_out), (1,), generator=gen))
        picks.append((k, int(torch.randint(len(held_out[k]) - (c + h) + 1, (1,), generator=gen))))
    z = torch.stack([held_z[k][s:s + c + h] for k, s in picks])
    a = torch.stack([actions(held_out[k])[s:s + c + h] for k, s in picks])
    frames = torch.stack([torch.from_numpy(held_out[k].frames[s:s + c + h]) for k, s in picks])
    frames = frames.float().div(255).to(device)                               # (n, c + h, 64, 64, 3)
    truth = frames[:, c:]
    shape = z.shape[2:]
    noise_gen = torch.Generator(device=device).manual_seed(args.seed + 2000)
    noise = draw_noise(n, c, h, shape, noise_gen, device)   # the same noise for every variant

    def decode(future_z):
        return decode_after(tokenizer, model, z[:, :c], future_z)

    latent_mse = {}  # the same comparisons in packed latent space, where the tokenizer is out of the picture

    def generate(name: str, k: int, acts: torch.Tensor) -> torch.Tensor:
        out = open_loop(tokenizer, model, frames, torch.cat([a[:, :c], acts], 1), c, k, noise=noise, true_z=z)
        latent_mse[name] = float((out.z - z[:, c:]).square().mean())
        return out.imagined

    start = time.time()
    mse = {
        "model_k4": pixel_mse_per_step(generate("model_k4", 4, a[:, c:]), truth),
        "model_k64": pixel_mse_per_step(generate("model_k64", 64, a[:, c:]), truth),
        "shuffled_actions_k4": pixel_mse_per_step(generate("shuffled_actions_k4", 4,
                                                 a[:, c:][torch.randperm(n, generator=gen)]), truth),
        "copy_last_context": pixel_mse_per_step(frames[:, c - 1:c].expand_as(truth), truth),
        "tokenizer_recon": pixel_mse_per_step(decode(z[:, c:]), truth),
    }
    latent_mse["copy_last_context"] = float((z[:, c - 1:c] - z[:, c:]).square().mean())
    latent_mse["mean_latent"] = float((torch.cat(train_z).mean(0) - z[:, c:]).square().mean())
    eval_time = time.time() - start
    figures = {name: round(float(psnr_db(v.mean())), 3) for name, v in mse.items()}
    figures.update({f"{name}_per_step": [round(float(x), 2) for x in psnr_db(v)] for name, v in mse.items()
                    if name in ("model_k4", "shuffled_actions_k4", "copy_last_context")})
    figures.update({f"latent_mse_{name}": round(v, 5) for name, v in latent_mse.items()})
    ratios = {
        "model_k4_minus_copy_db": round(figures["model_k4"] - figures["copy_last_context"], 3),
        "true_minus_shuffled_actions_db": round(figures["model_k4"] - figures["shuffled_actions_k4"], 3),
        "k4_minus_k64_db": round(figures["model_k4"] - figures["model_k64"], 3),
        "model_k4_minus_tokenizer_ceiling_db": round(figures["model_k4"] - figures["tokenizer_recon"], 3),
        "latent_mse_model_k4_over_copy": round(latent_mse["model_k4"] / latent_mse["copy_last_context"], 3),
        "latent_mse_model_k4_over_mean_latent": round(latent_mse["model_k4"] / latent_mse["mean_latent"], 3),
    }
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
    config = {k: v for k, v in vars(args).items() if k not in ("save", "load", "device")}
    config.update(loaded=bool(args.load), dynamics_params=sum(p.numel() for p in model.parameters()),
                  tokenizer_params=sum(p.numel() for p in tokenizer.parameters()),
                  train_seconds=round(train_time), eval_seconds=round(eval_time))
    print(json.dumps({"name": "dynamics_quality", "config": config, "device": device_name, "figures": figures,
                      "ratios": ratios}))


if __name__ == "__main__":
    main()
