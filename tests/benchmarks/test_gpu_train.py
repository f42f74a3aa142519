"""benchmarks/gpu_train.py stays runnable: its --tiny mode on CPU prints one JSON object per workload and the
summary last, its fast paths agree with the reference, and its FLOP count is the one torch counts."""

from __future__ import annotations

import dataclasses

import json

import pytest
import torch

from benchmarks import gpu_train
from system.model.dynamics import Dynamics
from system.model.transformer import TransformerConfig
from tests.helpers.gpu_machine import absent_packages_imported


def test_transformer_flops_match_a_hand_count():
    # dim 8, 2 heads of 4, 1 KV head, SwiGLU hidden int(2 * 4 * 8 / 3) = 21 -> 24; layer 0 space, layer 1 temporal
    cfg = TransformerConfig(dim=8, depth=2, num_heads=2, num_kv_heads=1, temporal_every=2, context=3)
    # per token and layer: q 2*8*8, k and v 2 * 2*8*4, out 2*8*8, gate_up 2*8*48, down 2*24*8 -> 1536; 15 tokens
    linear = 2 * 15 * 1536
    space = 1 * 3 * 25 * 4 * 8               # one space layer, 3 frames of 25 (query, key) pairs, QK^T + AV
    temporal = 1 * 5 * 6 * 4 * 8             # one temporal layer, 5 token positions, 6 causal pairs of 3 frames
    assert gpu_train.transformer_forward_flops(cfg, space_pairs=25, tokens=5, frames=3, sequences=1) == \
        linear + space + temporal
    dense = gpu_train.transformer_forward_flops(cfg, 20, 5, 3, 1, allowed_only=False)
    assert dense == linear + space + 1 * 5 * 9 * 4 * 8    # every pair: 25 per frame, 9 in time


def test_the_suite_imports_torch_and_system_only():
    """The GPU machine has PyTorch but not Ray, Redis, Crafter or gymnasium."""
    assert absent_packages_imported("benchmarks.gpu_train") == []


def test_tiny_mode_runs_every_workload_on_cpu(capsys):
    results = gpu_train.main(["--tiny"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["name"] for line in lines] == ["gpu_train_card", "gpu_train_dynamics", "gpu_train_tokenizer64",
                                                "gpu_train_tokenizer384", "gpu_train"]
    summary = lines[-1]
    assert summary["tiny"] and summary["card"]["matmul_flops_per_s"] > 0 and summary["card"]["copy_bytes_per_s"] > 0
    for name in ("dynamics", "tokenizer64", "tokenizer384"):
        figures = results[name]["figures"]
        assert figures["step_s"] > 0 and figures["mfu"] > 0 and figures["frames_per_s"] > 0
        # bf16 autocast against float32: close, not equal
        assert 0 < figures["grad_rel_error"] < 0.05 and figures["loss_rel_error"] < 0.02, (name, figures)
        assert summary["figures"][name]["mfu"] == figures["mfu"]
    dynamics = results["dynamics"]["figures"]
    # the analytic count of a dense-kernel step is what FlopCounterMode counts on it (the input projection's
    # unused input gradient is the only matmul it does not run); the model's count drops the masked pairs
    assert dynamics["counted_step_flops"] == pytest.approx(dynamics["dense_step_flops"], rel=0.01)
    assert dynamics["step_flops"] < dynamics["dense_step_flops"]
    # the bootstrap rows' two no-grad target passes are in the count: without them it would be 3 forwards only
    s = gpu_train.TINY
    model_cfg = gpu_train.dynamics_config(s, "dense")
    model = Dynamics(model_cfg, gpu_train.CrafterLikeSpace())
    forward = gpu_train.dynamics_forward_flops(model_cfg, model, s.batch, s.frames)
    boot = round(0.25 * s.batch)
    assert dynamics["step_flops"] == pytest.approx(3 * forward + 2 * forward * boot / s.batch)


def test_the_dynamics_training_forward_compiles_without_graph_breaks():
    """fullgraph=True: torch.compile raises on any graph break; the compiled step's loss is the eager one's."""
    s = gpu_train.TINY
    cfg = gpu_train.DynamicsTrainConfig(shortcut=gpu_train.ShortcutConfig(bootstrap_warmup=0), warmup_steps=1)
    z1 = torch.randn(s.batch, s.frames, s.packed_tokens, s.packed_dim, generator=torch.Generator().manual_seed(0))
    actions = torch.randint(0, 17, (s.batch, s.frames, 1), generator=torch.Generator().manual_seed(1))
    losses = []
    # two layers, one space and one temporal: every kind of layer the suite compiles, at half the compile time
    model_cfg = gpu_train.dynamics_config(s, "auto")
    model_cfg = dataclasses.replace(model_cfg, transformer=dataclasses.replace(model_cfg.transformer, depth=2,
                                                                               temporal_every=2))
    for compiled in (False, True):
        torch.manual_seed(0)
        model = Dynamics(model_cfg, gpu_train.CrafterLikeSpace())
        trainer = gpu_train.DynamicsTrainer(torch.compile(model, fullgraph=True) if compiled else model, cfg, seed=0)
        losses.append([trainer.train_step(z1, actions)["loss"] for _ in range(2)])
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
