"""Training throughput of the dynamics model and the tokenizer against the card's own limits (issue 14).

    python benchmarks/gpu_train.py                      # every workload at the reference sizes (H100/H200)
    python benchmarks/gpu_train.py --tiny               # the same code at toy sizes on CPU in seconds (a test)
    python benchmarks/gpu_train.py --workloads dynamics --steps 10 --compile

Imports torch, system/ and benchmarks/card.py only (the GPU machine has neither Ray, Redis nor Crafter). One run
measures, in order:
1. the card: bf16 matmul rate (square matmuls of side 8192, fp32 on CPU) and copy bandwidth (a 1 GiB copy,
   read + write counted);
2. per workload, the model FLOPs of one training step, the predicted step time (FLOPs / that matmul rate), the
   measured step time (median of --steps steps after --warmup), frames/s, tokens/s and MFU = FLOPs / time /
   matmul rate; and the fast path (bf16 autocast, attention "auto" = FlexAttention on CUDA, fused AdamW on
   CUDA, optionally torch.compile of the model) against the reference path (float32, dense attention) on the
   same batch and the same random draws: relative error of the loss and of the whole gradient.

Workloads (sizes are flags; the defaults are the issue's reference points):
- dynamics: a shortcut-forcing step (system/training/dynamics_trainer.py) at width 1024, depth 16, 16/4 heads,
  a temporal layer every 4th, 256 packed latent tokens of 32 channels + 4 registers + signal + action + agent
  tokens per frame, batch 8 x 64 frames, the default bootstrap fraction (bootstrap from step 0). FLOPs counted
  analytically (`dynamics_step_flops`): 3 forward passes' worth for the step (forward + backward) and one more
  forward per bootstrap row for each of the two no-grad half-step passes of the target; matmuls and attention
  pairs only, attention over the pairs the masks allow. The --tiny test holds the count to torch's
  FlopCounterMode on the executed step.
- tokenizer64: the crafter config's tokenizer (64x64, patch 8, 64 x 16 latents, width 384, 8+8 layers),
  batch 32 x 8 frames; tokenizer384: 384x640, patch 16 (960 patches), 512 x 16 latents, width 1024, 16+16
  layers, batch 2 x 4 frames. FLOPs from FlopCounterMode on one step of the reference path (dense attention
  in float32: the fast kernels are not all counted by it).
Not here yet: workload 3 of the issue (phase-2 agent finetuning at workload 1's size).

Output: one JSON object per workload ({"name", "config", "device", "figures", "ratios"}), then a summary JSON
object last with the card's figures and each workload's MFU against its target (dynamics 0.5, tokenizer 0.4).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from anywhere

from benchmarks.card import CrafterLikeSpace, card_rates, counted_flops, sync, timed  # noqa: E402

from system.model.dynamics import Dynamics, DynamicsConfig  # noqa: E402
from system.model.tokenizer import TokenizerConfig  # noqa: E402
from system.model.transformer import TransformerConfig, temporal_mask  # noqa: E402
from system.objectives.shortcut import ShortcutConfig, num_bootstrap_rows  # noqa: E402
from system.training.dynamics_trainer import DynamicsTrainConfig, DynamicsTrainer  # noqa: E402
from system.training.tokenizer_trainer import TokenizerTrainConfig, TokenizerTrainer  # noqa: E402

TARGET_MFU = {"dynamics": 0.5, "tokenizer64": 0.4, "tokenizer384": 0.4}


# -- FLOPs ---------------------------------------------------------------------------------------------------

def transformer_forward_flops(cfg: TransformerConfig, space_pairs: int, tokens: int, frames: int,
                              sequences: int, allowed_only: bool = True) -> float:
    """Matmul FLOPs of one forward pass of a BlockCausalTransformer over `sequences` sequences of `frames`
    frames of `tokens` tokens; space_pairs: the (query, key) pairs one frame's space mask allows. allowed_only:
    attention over the pairs the masks allow (the model's FLOPs); False: over every pair, as a dense kernel
    computes before masking (what FlopCounterMode sees on the dense path)."""
    d, h_kv = cfg.dim, cfg.num_kv_heads * cfg.head_dim
    n = sequences * frames * tokens
    per_token = 2 * d * (d + 2 * h_kv + d) + 2 * d * 2 * cfg.mlp_hidden + 2 * cfg.mlp_hidden * d
    linear = cfg.depth * n * per_token
    temporal_pairs = int(temporal_mask(frames, cfg.context).sum()) if allowed_only else frames * frames
    space_pairs = space_pairs if allowed_only else tokens * tokens
    space = (cfg.depth - cfg.num_temporal_layers) * sequences * frames * space_pairs * 4 * d   # QK^T and AV
    temporal = cfg.num_temporal_layers * sequences * tokens * temporal_pairs * 4 * d
    return float(linear + space + temporal)


def dynamics_forward_flops(cfg: DynamicsConfig, model: Dynamics, sequences: int, frames: int,
                           allowed_only: bool = True) -> float:
    t = cfg.transformer
    space_pairs = int(model.layout.space_mask().sum())
    embed = sequences * frames * (2 * cfg.packed_tokens * cfg.packed_dim * t.dim * 2   # latents in and out
                                  + 2 * 2 * t.dim * t.dim)                             # signal projection
    return transformer_forward_flops(t, space_pairs, model.layout.num_tokens, frames, sequences,
                                     allowed_only) + embed


def dynamics_step_flops(cfg: DynamicsConfig, model: Dynamics, batch: int, frames: int,
                        shortcut: ShortcutConfig, step: int, allowed_only: bool = True) -> float:
    """Forward + backward (3 forwards) of every row, plus the target's two no-grad passes of the bootstrap rows."""
    boot = num_bootstrap_rows(batch, shortcut, step)
    return (3 * dynamics_forward_flops(cfg, model, batch, frames, allowed_only)
            + 2 * dynamics_forward_flops(cfg, model, boot, frames, allowed_only))


# -- workloads -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    dim: int = 1024
    depth: int = 16
    heads: int = 16
    kv_heads: int = 4
    packed_tokens: int = 256
    packed_dim: int = 32
    batch: int = 8
    frames: int = 64


REFERENCE = Sizes()
TINY = Sizes(dim=32, depth=4, heads=4, kv_heads=2, packed_tokens=8, packed_dim=8, batch=4, frames=6)


def dynamics_config(s: Sizes, attention: str) -> DynamicsConfig:
    return DynamicsConfig(
        transformer=TransformerConfig(dim=s.dim, depth=s.depth, num_heads=s.heads, num_kv_heads=s.kv_heads,
                                      temporal_every=4, context=s.frames, attention=attention),
        latent_tokens=s.packed_tokens * 2, latent_dim=s.packed_dim // 2, packed_tokens=s.packed_tokens,
        registers=4, action_tokens=1, agent_tokens=1, num_tasks=1, k_max=64)


def tokenizer_config(name: str, tiny: bool, attention: str) -> tuple[TokenizerConfig, int, int]:
    """(config, batch, frames) of a tokenizer workload."""
    if tiny:
        net = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=2,
                                attention=attention)
        size = (32, 32) if name == "tokenizer64" else (32, 48)
        return TokenizerConfig(image_size=size, patch_size=8, num_latents=8, latent_dim=4, encoder=net,
                               decoder=net), 2, 3
    if name == "tokenizer64":
        net = TransformerConfig(dim=384, depth=8, num_heads=6, num_kv_heads=2, temporal_every=4, context=2,
                                space_positions="grid", attention=attention)
        return TokenizerConfig(image_size=(64, 64), patch_size=8, num_latents=64, latent_dim=16, encoder=net,
                               decoder=net), 32, 8
    net = TransformerConfig(dim=1024, depth=16, num_heads=16, num_kv_heads=4, temporal_every=4, context=2,
                            space_positions="grid", attention=attention)
    return TokenizerConfig(image_size=(384, 640), patch_size=16, num_latents=512, latent_dim=16, encoder=net,
                           decoder=net), 2, 4


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def gradient(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1).float() for p in model.parameters() if p.grad is not None])


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def fused_adamw(optimizer: torch.optim.Optimizer, device: torch.device) -> torch.optim.Optimizer:
    """The same parameter groups and settings, with CUDA's fused AdamW kernel (CPU keeps the loop)."""
    if device.type != "cuda":
        return optimizer
    groups = [{key: group[key] for key in ("params", "lr", "betas", "weight_decay", "eps")}
              for group in optimizer.param_groups]
    return torch.optim.AdamW(groups, fused=True)


def dynamics_workload(s: Sizes, device: torch.device, steps: int, warmup: int, compile_model: bool,
                      rate: float, tiny: bool) -> dict:
    space = CrafterLikeSpace()
    torch.manual_seed(0)
    reference = Dynamics(dynamics_config(s, "dense"), space).to(device)
    fast = Dynamics(dynamics_config(s, "auto"), space).to(device)
    fast.load_state_dict(reference.state_dict())
    cfg = DynamicsTrainConfig(shortcut=ShortcutConfig(bootstrap_warmup=0), warmup_steps=1)
    generator = torch.Generator().manual_seed(1)
    z1 = torch.randn(s.batch, s.frames, s.packed_tokens, s.packed_dim, generator=generator).to(device)
    actions = torch.randint(0, space.components[0].num_classes, (s.batch, s.frames, 1), generator=generator)
    actions = actions.to(device)

    # the fast path against the reference on the same batch and draws (trainer seed and step fixed)
    losses, grads = {}, {}
    for name, model, bf16 in (("reference", reference, False), ("fast", fast, device.type == "cuda" or tiny)):
        trainer = DynamicsTrainer(model, cfg, seed=0)
        model.zero_grad(set_to_none=True)
        with autocast(device, bf16):
            loss, _ = trainer.loss(z1, actions)
        loss.backward()
        losses[name], grads[name] = loss.detach(), gradient(model)
    del reference
    flops = dynamics_step_flops(fast.cfg, fast, s.batch, s.frames, cfg.shortcut, step=0)
    figures = {"loss_rel_error": relative(losses["fast"], losses["reference"]),
               "grad_rel_error": relative(grads["fast"], grads["reference"]), "step_flops": flops}
    if tiny:   # the analytic count against what torch counts on the executed step (dense attention, fp32)
        check = Dynamics(dynamics_config(s, "dense"), space).to(device)
        trainer = DynamicsTrainer(check, cfg, seed=0)
        figures["counted_step_flops"] = counted_flops(lambda: trainer.loss(z1, actions)[0].backward())
        figures["dense_step_flops"] = dynamics_step_flops(fast.cfg, fast, s.batch, s.frames, cfg.shortcut, 0,
                                                          allowed_only=False)

    trainer = DynamicsTrainer(torch.compile(fast) if compile_model else fast, cfg, seed=0)
    trainer.optimizer = fused_adamw(trainer.optimizer, device)

    def step():
        with autocast(device, device.type == "cuda"):
            trainer.train_step(z1, actions)

    for _ in range(warmup):
        step()
    step_s = timed(step, device, steps)
    tokens = s.batch * s.frames * fast.layout.num_tokens
    figures.update(step_s=step_s, predicted_step_s=flops / rate, frames_per_s=s.batch * s.frames / step_s,
                   tokens_per_s=tokens / step_s, mfu=flops / step_s / rate,
                   params=sum(p.numel() for p in fast.parameters()))
    return {"config": {**s.__dict__, "tokens_per_frame": fast.layout.num_tokens, "compile": compile_model,
                       "bootstrap_fraction": cfg.shortcut.bootstrap_fraction}, "figures": figures}


def tokenizer_workload(name: str, device: torch.device, steps: int, warmup: int, compile_model: bool,
                       rate: float, tiny: bool) -> dict:
    ref_cfg, batch, frames = tokenizer_config(name, tiny, "dense")
    fast_cfg = replace(ref_cfg, encoder=replace(ref_cfg.encoder, attention="auto"),
                       decoder=replace(ref_cfg.decoder, attention="auto"))
    train = TokenizerTrainConfig(batch_size=batch, seq_len=frames, warmup_steps=1)
    torch.manual_seed(0)
    reference = TokenizerTrainer(ref_cfg, train, device, torch.Generator(device=device).manual_seed(2))
    fast = TokenizerTrainer(fast_cfg, train, device, torch.Generator(device=device).manual_seed(2))
    fast.model.load_state_dict(reference.model.state_dict())
    h, w = ref_cfg.image_size
    images = torch.rand(batch, frames, h, w, 3, generator=torch.Generator().manual_seed(3)).to(device)
    mask = reference.model.sample_mask(batch, frames, device=device,
                                       generator=torch.Generator(device=device).manual_seed(4))

    def loss_of(trainer) -> tuple[torch.Tensor, torch.Tensor]:
        """(the RMS-normalised loss that trains, the raw reconstruction MSE that is compared)"""
        recon, _ = trainer.model(images, mask)
        loss, metrics = trainer.loss_fn(recon, images)
        return loss, metrics["mse"]

    losses, grads = {}, {}
    for key, trainer, bf16 in (("reference", reference, False), ("fast", fast, device.type == "cuda" or tiny)):
        trainer.model.zero_grad(set_to_none=True)
        with autocast(device, bf16):
            loss, mse = loss_of(trainer)
        loss.backward()
        losses[key], grads[key] = mse, gradient(trainer.model)
    flops = counted_flops(lambda: loss_of(reference)[0].backward())   # the reference path: every matmul counted
    del reference
    if compile_model:
        fast.model = torch.compile(fast.model)
    fast.optimizer = fused_adamw(fast.optimizer, device)

    def step():
        with autocast(device, device.type == "cuda"):
            fast.step(images)

    for _ in range(warmup):
        step()
    step_s = timed(step, device, steps)
    figures = {"loss_rel_error": relative(losses["fast"], losses["reference"]),
               "grad_rel_error": relative(grads["fast"], grads["reference"]), "step_flops": flops,
               "step_s": step_s, "predicted_step_s": flops / rate, "frames_per_s": batch * frames / step_s,
               "mfu": flops / step_s / rate}
    return {"config": {"image_size": list(ref_cfg.image_size), "patch_size": ref_cfg.patch_size,
                       "latents": [ref_cfg.num_latents, ref_cfg.latent_dim], "dim": ref_cfg.encoder.dim,
                       "depth": [ref_cfg.encoder.depth, ref_cfg.decoder.depth], "batch": batch, "frames": frames,
                       "compile": compile_model}, "figures": figures}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes on CPU in seconds (the test suite runs it)")
    parser.add_argument("--workloads", default="dynamics,tokenizer64,tokenizer384")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per workload (default 10; tiny 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; tiny 1)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model of each workload")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.tiny else args.device)
    steps = args.steps or (2 if args.tiny else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    card = card_rates(device, args.tiny)
    print(json.dumps({"name": "gpu_train_card", "device": name, "figures": card}), flush=True)
    rate = card["matmul_flops_per_s"]
    results = {}
    for workload in args.workloads.split(","):
        start = time.perf_counter()
        if workload == "dynamics":
            out = dynamics_workload(TINY if args.tiny else REFERENCE, device, steps, warmup, args.compile, rate,
                                    args.tiny)
        elif workload in ("tokenizer64", "tokenizer384"):
            out = tokenizer_workload(workload, device, steps, warmup, args.compile, rate, args.tiny)
        else:
            raise SystemExit(f"unknown workload {workload!r}: dynamics, tokenizer64, tokenizer384")
        out["figures"]["wall_s"] = time.perf_counter() - start
        results[workload] = out
        print(json.dumps({"name": f"gpu_train_{workload}", "device": name, **out,
                          "ratios": {"mfu_over_target": out["figures"]["mfu"] / TARGET_MFU[workload],
                                     "measured_over_predicted_s": out["figures"]["step_s"]
                                     / out["figures"]["predicted_step_s"]}}), flush=True)
    summary = {"name": "gpu_train", "device": name, "tiny": args.tiny, "card": card,
               "figures": {k: {"mfu": v["figures"]["mfu"], "target_mfu": TARGET_MFU[k],
                               "loss_rel_error": v["figures"]["loss_rel_error"],
                               "grad_rel_error": v["figures"]["grad_rel_error"]} for k, v in results.items()},
               "ratios": {k: v["figures"]["mfu"] / TARGET_MFU[k] for k, v in results.items()}}
    print(json.dumps(summary), flush=True)
    return {"summary": summary, **results}


if __name__ == "__main__":
    main()
