"""Frames per second of KV-cached generation against uncached recomputation, at a given model size.

    python -m benchmarks.generation_speed                          # tiny size, any device
    python -m benchmarks.generation_speed --preset 174m --device cuda --compile

Cached: CachedSampler.prefill with `--context-frames` real frames, then `--frames` world-model steps (K
denoising passes + one context pass each) through the ring KV cache. Uncached: rollout_uncached, which runs the
full model over [context..., current frame] for every pass (cost grows with the history; measured over fewer
frames). Both use random weights (speed does not depend on training). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from system.imagination.generation import CachedSampler, GenerationConfig, draw_noise, rollout, rollout_uncached
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.transformer import TransformerConfig

PRESETS = {
    # name: (dim, depth, heads, kv_heads, packed tokens N_z, latent dim per token D_z)
    "tiny": (64, 4, 4, 2, 16, 16),
    "small": (256, 8, 4, 1, 64, 32),
    "174m": (768, 28, 12, 3, 256, 32),         # 174.8M parameters, the paper's N_z = 256 tokens of 32
}


class Component:
    name, kind, num_classes = "action", "categorical", 17


class Space:
    name, components = "crafter-like", (Component(),)


def build(preset: str, context: int, k_max: int, attention: str) -> Dynamics:
    dim, depth, heads, kv_heads, n_z, d_z = PRESETS[preset]
    cfg = DynamicsConfig(
        transformer=TransformerConfig(dim=dim, depth=depth, num_heads=heads, num_kv_heads=kv_heads, temporal_every=4,
                                      context=context, attention=attention),
        latent_tokens=n_z, latent_dim=d_z, packed_tokens=n_z, agent_tokens=1, k_max=k_max)
    return Dynamics(cfg, Space())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", type=int, default=192, help="window C of the temporal layers")
    parser.add_argument("--context-frames", type=int, default=16, help="real frames prefilled before generating")
    parser.add_argument("--frames", type=int, default=32, help="generated frames timed (cached)")
    parser.add_argument("--uncached-frames", type=int, default=8, help="generated frames timed (uncached)")
    parser.add_argument("--k", type=int, default=4, help="sampling steps per frame")
    parser.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0: torch default)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the frame step (fullgraph)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = build(args.preset, args.context, 64, "auto").to(device=device, dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    cfg = GenerationConfig(sampling_steps=args.k)
    shape = (model.cfg.packed_tokens, model.cfg.packed_dim)
    b, t0 = args.batch, args.context_frames
    gen = torch.Generator(device=device).manual_seed(0)
    context = torch.randn(b, t0, *shape, device=device, dtype=dtype)
    actions = torch.randint(17, (b, t0 + args.frames, 1), device=device)

    sampler = CachedSampler(model, cfg, b, device, dtype)
    if args.compile:
        sampler.step = torch.compile(sampler.step, fullgraph=True, dynamic=False)

    def cached(frames: int) -> float:
        noise = draw_noise(b, t0, frames, shape, gen, device, dtype)
        sync(device)
        start = time.perf_counter()
        rollout(model, cfg, context, actions[:, :t0], actions[:, t0:t0 + frames], noise=noise, sampler=sampler)
        sync(device)
        return time.perf_counter() - start

    def uncached(frames: int) -> float:
        noise = draw_noise(b, t0, frames, shape, gen, device, dtype)
        sync(device)
        start = time.perf_counter()
        rollout_uncached(model, cfg, context, actions[:, :t0], actions[:, t0:t0 + frames], noise=noise)
        sync(device)
        return time.perf_counter() - start

    with torch.no_grad():
        cached(min(4, args.frames))       # warm-up (and compilation)
        cached_s = cached(args.frames)
        uncached(1)
        uncached_s = uncached(args.uncached_frames)
    # frames/s counts generated frames of all batch rows; each frame is K + 1 model passes
    cached_fps = b * args.frames / cached_s
    uncached_fps = b * args.uncached_frames / uncached_s
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    result = {
        "name": "generation_speed",
        "config": {"preset": args.preset, "params": params, "dim": model.cfg.transformer.dim,
                   "depth": model.cfg.transformer.depth, "tokens_per_frame": model.layout.num_tokens,
                   "context_window": args.context, "context_frames": t0, "batch": b, "k": args.k,
                   "dtype": args.dtype, "compile": args.compile, "frames_cached": args.frames,
                   "frames_uncached": args.uncached_frames},
        "device": device_name,
        "figures": {"cached_fps": round(cached_fps, 3), "uncached_fps": round(uncached_fps, 3)},
        "ratios": {"cached_over_uncached": round(cached_fps / uncached_fps, 3)},
    }
    print(f"{args.preset}: {params / 1e6:.1f}M parameters, cached {cached_fps:.2f} frames/s, "
          f"uncached {uncached_fps:.2f} frames/s (history {t0}..{t0 + args.uncached_frames} frames)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
