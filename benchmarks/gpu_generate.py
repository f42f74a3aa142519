"""Interactive generation and batched imagination against the card's own limits (issue 15).

    python benchmarks/gpu_generate.py                   # every workload at the reference sizes (H100/H200)
    python benchmarks/gpu_generate.py --tiny            # the same code at toy sizes on CPU in seconds (a test)
    python benchmarks/gpu_generate.py --workloads medium,act --compile

Imports torch, system/ and benchmarks/card.py only. One run measures the card (bf16 matmul rate, copy bandwidth; fp32 on CPU),
then per workload the analytic FLOPs and bytes of a generated frame, the floors they give (FLOPs / matmul
rate, bytes / copy bandwidth), the measured figures, and checks of the fast path: cached generation against
uncached recomputation (rollout vs rollout_uncached over a short history, max |difference| of the latents) and,
with --compile, the compiled frame step against eager (max |difference|).

Workloads (sizes are flags of the code; the defaults are the issue's reference points):
- paper: a dynamics model of width 2048, depth 32, 16/4 heads, temporal every 4th (1.6B parameters), 256
  packed tokens of 32 channels per frame, context window 192 frames (prefilled full), K = 4, batch 1, KV cache,
  and the tokenizer decoder of configs/minerl.yaml for each frame (over its receptive field of frames):
  frames/s. A frame is K denoising passes plus one context pass over its 263 tokens against the cache.
- medium: width 1024, depth 16, 16/4 heads, 256 tokens per frame, context 32, K = 4, batch 1: frames/s.
- imagine: 256 rollouts of horizon 16 from the medium model (8 start frames), K = 4, the policy sampling each
  action (system/imagination/imagine.py, phase 3's path): imagined frames/s and the share of the FLOP floor.
- act: the world-model service's acting path (system/imagination/acting_service.py: encode the new frame,
  step it into the slot's cache, read h_t, sample the action) with the medium model and a tokenizer of the
  crafter config's width and depth (384, 8 + 8 layers, 64x64 frames, patch 8) holding the medium model's
  512 x 16 latents, at 1, 16 and 64 live episodes: per-step latency p50 and p99.

FLOPs per frame (`frame_flops`): (K + 1) passes of S tokens; linear layers 2 x parameters per token; space
attention over S x S pairs, temporal attention of S tokens over the C cached frames, 4 x width FLOPs per pair
(QK^T and AV). Bytes per frame (`frame_bytes`): every pass reads the transformer's weights once (batch 1) and
the temporal layers' cached keys and values of the window. The --tiny test holds the FLOP count to torch's
FlopCounterMode on an executed frame step (the dense path, which computes against the whole cache window).
Output: one JSON object per workload, then a summary JSON object last with each figure against its target.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from anywhere

from benchmarks.card import CrafterLikeSpace, card_rates, counted_flops, sync, timed  # noqa: E402

from system.imagination.acting_service import ActingService, ActRequest  # noqa: E402
from system.imagination.generation import (CachedSampler, GenerationConfig, draw_noise, rollout,  # noqa: E402
                                           rollout_uncached)
from system.imagination.imagine import imagine  # noqa: E402
from system.model.agent_heads import AgentHeads, AgentHeadsConfig  # noqa: E402
from system.model.dynamics import Dynamics, DynamicsConfig  # noqa: E402
from system.model.tokenizer import Tokenizer, TokenizerConfig  # noqa: E402
from system.model.transformer import TransformerConfig  # noqa: E402

TARGETS = {"paper_fps": 100.0, "medium_fps": 300.0, "imagine_floor_fraction": 0.4}


SPACE = CrafterLikeSpace()


# -- models and counts ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Size:
    dim: int
    depth: int
    heads: int
    kv_heads: int
    tokens: int            # packed latent tokens per frame
    channels: int          # channels per packed token
    context: int           # temporal window C (frames in the cache)


PAPER = Size(2048, 32, 16, 4, 256, 32, 192)
MEDIUM = Size(1024, 16, 16, 4, 256, 32, 32)
TINY = Size(32, 4, 4, 2, 8, 8, 6)


def dynamics(size: Size, attention: str = "auto") -> Dynamics:
    cfg = DynamicsConfig(
        transformer=TransformerConfig(dim=size.dim, depth=size.depth, num_heads=size.heads,
                                      num_kv_heads=size.kv_heads, temporal_every=4, context=size.context,
                                      attention=attention),
        latent_tokens=size.tokens * 2, latent_dim=size.channels // 2, packed_tokens=size.tokens, registers=4,
        action_tokens=1, agent_tokens=1, num_tasks=1, k_max=64)
    return Dynamics(cfg, SPACE)


def tokenizer_config(kind: str, tiny: bool, latents: tuple[int, int]) -> TokenizerConfig:
    """The decoder of configs/minerl.yaml ("paper") or the crafter config's tokenizer ("crafter"), with the
    latent shape the dynamics model packs."""
    if tiny:
        net = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=2)
        return TokenizerConfig(image_size=(32, 32), patch_size=8, num_latents=latents[0], latent_dim=latents[1],
                               encoder=net, decoder=net)
    if kind == "paper":
        net = TransformerConfig(dim=1024, depth=16, num_heads=16, num_kv_heads=4, temporal_every=4, context=2,
                                space_positions="grid")
        return TokenizerConfig(image_size=(64, 64), patch_size=4, num_latents=latents[0], latent_dim=latents[1],
                               encoder=net, decoder=net)
    net = TransformerConfig(dim=384, depth=8, num_heads=6, num_kv_heads=2, temporal_every=4, context=2,
                            space_positions="grid")
    return TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=latents[0], latent_dim=latents[1],
                           encoder=net, decoder=net)


def transformer_params(model: Dynamics) -> int:
    return sum(p.numel() for p in model.transformer.parameters())


def pass_flops(model: Dynamics, batch: int = 1) -> float:
    """One forward pass of one frame's S tokens per row against a full cache of C frames."""
    t, s = model.cfg.transformer, model.layout.num_tokens
    d, h_kv = t.dim, t.num_kv_heads * t.head_dim
    per_token = 2 * d * (d + 2 * h_kv + d) + 2 * d * 2 * t.mlp_hidden + 2 * t.mlp_hidden * d
    linear = t.depth * s * per_token
    space = (t.depth - t.num_temporal_layers) * s * s * 4 * d
    temporal = t.num_temporal_layers * s * t.context * 4 * d
    embed = 2 * model.cfg.packed_tokens * model.cfg.packed_dim * d * 2 + 2 * 2 * d * d
    return float(batch * (linear + space + temporal + embed))


def frame_flops(model: Dynamics, k: int, batch: int = 1) -> float:
    return (k + 1) * pass_flops(model, batch)


def frame_bytes(model: Dynamics, k: int, batch: int = 1, bytes_per_value: int = 2) -> float:
    """Weights once per pass, and the temporal layers' cached K and V of the window for every row."""
    t, s = model.cfg.transformer, model.layout.num_tokens
    kv = t.num_temporal_layers * batch * s * t.context * 2 * t.num_kv_heads * t.head_dim
    return float((k + 1) * (transformer_params(model) + kv) * bytes_per_value)


# -- workloads -----------------------------------------------------------------------------------------------

def check_cached_against_uncached(model: Dynamics, k: int, device, dtype, history: int, frames: int) -> float:
    """max |latent difference| of `frames` frames generated with the cache and by full recomputation."""
    cfg = GenerationConfig(sampling_steps=k)
    shape = (model.cfg.packed_tokens, model.cfg.packed_dim)
    gen = torch.Generator(device=device).manual_seed(5)
    context = torch.randn(1, history, *shape, device=device, generator=gen).to(dtype)
    actions = torch.randint(17, (1, history + frames, 1), device=device, generator=gen)
    noise = draw_noise(1, history, frames, shape, gen, device, dtype)
    with torch.no_grad():
        cached = rollout(model, cfg, context, actions[:, :history], actions[:, history:], noise=noise).z
        uncached = rollout_uncached(model, cfg, context, actions[:, :history], actions[:, history:], noise=noise).z
    return float((cached.float() - uncached.float()).abs().max())


def generation_workload(size: Size, device, dtype, k: int, frames: int, decoder: Tokenizer | None,
                        compile_step: bool, card: dict, tiny: bool) -> dict:
    torch.manual_seed(0)
    model = dynamics(size).to(device=device, dtype=dtype).eval()
    cfg = GenerationConfig(sampling_steps=k)
    shape = (size.tokens, size.channels)
    sampler = CachedSampler(model, cfg, 1, device, dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    context = torch.randn(1, size.context, *shape, device=device, generator=gen).to(dtype)
    actions = torch.randint(17, (1, size.context + frames, 1), device=device, generator=gen)
    noise = draw_noise(1, size.context, frames, shape, gen, device, dtype)
    eager_step = sampler.step
    figures: dict = {"cached_vs_uncached_max_abs": check_cached_against_uncached(
        model, k, device, dtype, history=4, frames=2)}
    if compile_step:
        sampler.step = torch.compile(sampler.step, mode="reduce-overhead", fullgraph=True, dynamic=False)
    window = decoder.cfg.decoder_receptive_field if decoder is not None else 0

    def generate() -> torch.Tensor:
        sampler.prefill(context, actions[:, :size.context], noise.context)
        t = torch.full((1,), size.context, dtype=torch.long, device=device)
        recent = context[:, context.shape[1] - window + 1:] if window > 1 else context[:, :0]
        for h in range(frames):
            z, _ = sampler.step(t, actions[:, size.context + h:size.context + h + 1].clone(),
                                noise.start[:, h:h + 1].clone(), noise.renoise[:, h:h + 1].clone())
            if decoder is not None:   # the frame, decoded over the decoder's receptive field of latents
                recent = torch.cat([recent, z], 1)[:, -window:]
                decoder.decode(model.unpack(recent))
            t = t + 1
        return z

    with torch.no_grad():
        generate()                                  # warm-up (and compilation)
        if compile_step:   # the compiled step against the eager one on the same inputs
            fast = generate()
            sampler.step = eager_step
            figures["compiled_vs_eager_max_abs"] = float((fast.float() - generate().float()).abs().max())
            sampler.step = torch.compile(eager_step, mode="reduce-overhead", fullgraph=True, dynamic=False)
            generate()
        prefill_s = timed(lambda: sampler.prefill(context, actions[:, :size.context], noise.context), device, 1)
        total_s = timed(generate, device, 1 if tiny else 2)
    step_s = max(total_s - prefill_s, 1e-9) / frames
    flops, nbytes = frame_flops(model, k), frame_bytes(model, k, bytes_per_value=dtype.itemsize)
    flop_floor_s, byte_floor_s = flops / card["matmul_flops_per_s"], nbytes / card["copy_bytes_per_s"]
    figures.update(frame_s=step_s, fps=1.0 / step_s, frame_flops=flops, frame_bytes=nbytes,
                   flop_floor_fps=1.0 / flop_floor_s, byte_floor_fps=1.0 / byte_floor_s,
                   floor_fps=1.0 / max(flop_floor_s, byte_floor_s),
                   params=transformer_params(model), tokens_per_frame=model.layout.num_tokens)
    if tiny:   # the analytic count against what torch counts on one executed frame step (dense kernels)
        check = dynamics(size, attention="dense").eval()
        check_sampler = CachedSampler(check, cfg, 1, device, torch.float32)
        with torch.no_grad():
            check_sampler.prefill(context.float(), actions[:, :size.context], noise.context.float())
            t = torch.full((1,), size.context, dtype=torch.long, device=device)
            figures["counted_frame_flops"] = counted_flops(lambda: check_sampler.step(
                t, actions[:, size.context:size.context + 1], noise.start[:, :1].float(),
                noise.renoise[:, :1].float()))
        figures["analytic_frame_flops_fp32"] = frame_flops(check, k)
    return figures


def imagine_workload(size: Size, device, dtype, k: int, rollouts: int, horizon: int, start: int,
                     card: dict) -> dict:
    torch.manual_seed(0)
    model = dynamics(size).to(device=device, dtype=dtype).eval()
    heads = AgentHeads(AgentHeadsConfig(), SPACE.components, 1, size.dim).to(device=device, dtype=dtype).eval()
    prior = copy.deepcopy(heads.policy)
    sampler = CachedSampler(model, GenerationConfig(sampling_steps=k), rollouts, device, dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    context = torch.randn(rollouts, start, size.tokens, size.channels, device=device, generator=gen).to(dtype)
    actions = torch.randint(17, (rollouts, start, 1), device=device, generator=gen)

    def run():
        with torch.no_grad():
            imagine(sampler, heads, prior, context, actions, None, horizon,
                    [(rollouts, torch.Generator(device=device).manual_seed(1))])

    seconds = timed(run, device, 1)
    frames = rollouts * horizon
    flops = horizon * frame_flops(model, k, rollouts) + start * pass_flops(model, rollouts)   # + the prefill
    return {"imagined_frames_per_s": frames / seconds, "seconds": seconds, "flops": flops,
            "floor_fraction": flops / seconds / card["matmul_flops_per_s"], "rollouts": rollouts,
            "horizon": horizon}


def act_workload(size: Size, device, dtype, k: int, episodes: list[int], steps: int, tiny: bool) -> dict:
    torch.manual_seed(0)
    model = dynamics(size).to(device=device, dtype=dtype).eval()
    tokenizer = Tokenizer(tokenizer_config("crafter", tiny, (size.tokens * 2, size.channels // 2)))
    tokenizer = tokenizer.to(device=device, dtype=dtype).eval()
    heads = AgentHeads(AgentHeadsConfig(), SPACE.components, 1, size.dim).to(device=device, dtype=dtype).eval()
    h, w = tokenizer.cfg.image_size
    rng = np.random.default_rng(0)
    figures = {}
    for n in episodes:
        service = ActingService(tokenizer, model, heads.policy, GenerationConfig(sampling_steps=k), slots=n)
        slots = [service.open_episode(seed=i) for i in range(n)]
        last = [np.full(1, -1)] * n
        latencies = []
        with torch.no_grad():
            for step in range(steps + 2):
                frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
                sync(device)
                start = time.perf_counter()
                results = service.act([ActRequest(slot, frames[i], last[i]) for i, slot in enumerate(slots)])
                sync(device)
                if step >= 2:   # two warm-up steps
                    latencies.append(time.perf_counter() - start)
                last = [np.asarray(r.action) for r in results]
        figures[f"p50_s_{n}"] = float(np.percentile(latencies, 50))
        figures[f"p99_s_{n}"] = float(np.percentile(latencies, 99))
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes on CPU in seconds (the test suite runs it)")
    parser.add_argument("--workloads", default="medium,imagine,act,paper")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--frames", type=int, default=None, help="generated frames timed (default 32; tiny 3)")
    parser.add_argument("--compile", action="store_true", help="compile the frame step (reduce-overhead graphs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.tiny else args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    frames = args.frames or (3 if args.tiny else 32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    card = card_rates(device, args.tiny)
    print(json.dumps({"name": "gpu_generate_card", "device": name, "figures": card}), flush=True)
    medium, paper = (TINY, TINY) if args.tiny else (MEDIUM, PAPER)
    results, ratios = {}, {}
    for workload in args.workloads.split(","):
        start = time.perf_counter()
        if workload in ("medium", "paper"):
            size = medium if workload == "medium" else paper
            decoder = None
            if workload == "paper":
                decoder = Tokenizer(tokenizer_config("paper", args.tiny, (size.tokens * 2, size.channels // 2)))
                decoder = decoder.to(device=device, dtype=dtype).eval()
            figures = generation_workload(size, device, dtype, args.k, frames, decoder, args.compile, card,
                                          args.tiny)
            ratios[f"{workload}_fps_over_target"] = figures["fps"] / TARGETS[f"{workload}_fps"]
            ratios[f"{workload}_fps_over_floor"] = figures["fps"] / figures["floor_fps"]
        elif workload == "imagine":
            figures = imagine_workload(medium, device, dtype, args.k, 4 if args.tiny else 256,
                                       3 if args.tiny else 16, 2 if args.tiny else 8, card)
            ratios["imagine_floor_fraction_over_target"] = figures["floor_fraction"] / TARGETS["imagine_floor_fraction"]
        elif workload == "act":
            figures = act_workload(medium, device, dtype, args.k, [1, 2] if args.tiny else [1, 16, 64],
                                   3 if args.tiny else 30, args.tiny)
        else:
            raise SystemExit(f"unknown workload {workload!r}: medium, imagine, act, paper")
        figures["wall_s"] = time.perf_counter() - start
        results[workload] = figures
        print(json.dumps({"name": f"gpu_generate_{workload}", "device": name,
                          "config": {"k": args.k, "frames": frames, "compile": args.compile,
                                     "dtype": str(dtype).replace("torch.", "")}, "figures": figures}), flush=True)
    summary = {"name": "gpu_generate", "device": name, "tiny": args.tiny, "card": card, "targets": TARGETS,
               "figures": {k: {key: v for key, v in f.items() if not key.startswith("counted")}
                           for k, f in results.items()}, "ratios": ratios}
    print(json.dumps(summary), flush=True)
    return {"summary": summary, **results}


if __name__ == "__main__":
    main()
