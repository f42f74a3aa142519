"""benchmarks/gpu_generate.py stays runnable: its --tiny mode on CPU prints one JSON object per workload and the
summary last, cached generation equals uncached recomputation, and its FLOP count is the one torch counts."""

from __future__ import annotations

import json

import pytest

from benchmarks import gpu_generate
from tests.helpers.gpu_machine import absent_packages_imported


def test_the_suite_imports_torch_and_system_only():
    """The GPU machine has PyTorch but not Ray, Redis, Crafter or gymnasium."""
    assert absent_packages_imported("benchmarks.gpu_generate") == []


def test_frame_counts_of_a_hand_sized_model():
    model = gpu_generate.dynamics(gpu_generate.TINY, attention="dense")
    t, s = model.cfg.transformer, model.layout.num_tokens      # 32 wide, 4 layers (1 temporal), 15 tokens
    assert (t.dim, t.depth, t.num_temporal_layers, s, t.context) == (32, 4, 1, 15, 6)
    per_token = 2 * 32 * (32 + 2 * 16 + 32) + 2 * 32 * 2 * t.mlp_hidden + 2 * t.mlp_hidden * 32
    one_pass = 4 * s * per_token + 3 * s * s * 4 * 32 + 1 * s * 6 * 4 * 32 + (2 * 8 * 8 * 32 * 2 + 2 * 2 * 32 * 32)
    assert gpu_generate.frame_flops(model, k=4) == 5 * one_pass                   # K passes + the context pass
    kv = 1 * s * 6 * 2 * 2 * 8                                                      # 1 temporal layer, C = 6
    assert gpu_generate.frame_bytes(model, k=4) == 5 * (gpu_generate.transformer_params(model) + kv) * 2


def test_tiny_mode_runs_every_workload_on_cpu(capsys):
    results = gpu_generate.main(["--tiny"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["name"] for line in lines] == ["gpu_generate_card", "gpu_generate_medium", "gpu_generate_imagine",
                                                "gpu_generate_act", "gpu_generate_paper", "gpu_generate"]
    for name in ("medium", "paper"):
        figures = results[name]
        assert figures["cached_vs_uncached_max_abs"] < 1e-5      # float32 on CPU: the cache changes nothing
        assert figures["counted_frame_flops"] == pytest.approx(figures["analytic_frame_flops_fp32"], rel=1e-6)
        assert 0 < figures["fps"] and figures["floor_fps"] == min(figures["flop_floor_fps"],
                                                                  figures["byte_floor_fps"])
    assert results["imagine"]["imagined_frames_per_s"] > 0 and 0 < results["imagine"]["floor_fraction"]
    assert all(results["act"][f"p{q}_s_{n}"] > 0 for q in (50, 99) for n in (1, 2))
    assert lines[-1]["ratios"]["medium_fps_over_target"] == results["medium"]["fps"] / 300.0
