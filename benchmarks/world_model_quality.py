"""World-model quality on Crafter, through the main job's own phases: collect, train the tokenizer, train the
dynamics model, evaluate on held-out worlds.

    python -m benchmarks.world_model_quality --config configs/crafter-cpu.yaml            # about 30 min, 2 cores
    python -m benchmarks.world_model_quality --config configs/smoke.yaml run_dir=runs/wm  # a few minutes

Any `dotted.key=value` override of the config applies. Runs exactly what `python -m system.main` runs for phase
1 (system/phases/train_tokenizer.py, train_dynamics.py) in a run directory (resumable), then prints the
held-out figures the phases logged (tokenizer: PSNR and retrieval of reconstructions; dynamics: open-loop
PSNR with K and K_max steps, shuffled actions, copying the last context frame, the tokenizer's ceiling, latent
MSEs, retrieval of the last imagined frame; see system/imagination/open_loop.py). The last line is one JSON
object: name, config, device, figures, and ratios against copying the last context frame.
"""

from __future__ import annotations

import json
import platform
import sys
import time

import torch

from system.envs.action_space import crafter_action_space
from system.main import collect_training_data, held_out_clips, resolve_device, seed_everything
from system.phases.train_dynamics import run_dynamics_phase
from system.phases.train_tokenizer import run_tokenizer_phase
from system.replay import make_store
from system.run.config import load
from system.run.metrics_log import MetricsLog
from system.run.run_dir import create_run_dir
from system.run.typed_config import to_dict


def last_line(run_dir, phase: str) -> dict:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["phase"] == phase][-1]


def main(argv: list[str]) -> None:
    from rich.console import Console

    cfg = load(argv)
    console = Console(stderr=True)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    run_dir = create_run_dir(cfg)
    log = MetricsLog(run_dir, cfg.logging.wandb, cfg.logging.wandb_project, to_dict(cfg))
    store = make_store(cfg.replay, run_dir, seed=cfg.seed)
    started = time.time()
    try:
        collect_training_data(cfg, store, console)
        length = max(cfg.tokenizer.train.seq_len * 4, cfg.dynamics.eval_context + cfg.dynamics.eval_horizon)
        held_out = held_out_clips(cfg, store, episodes=cfg.dynamics.eval_clips, frames=length)
        phase_started = time.time()
        tokenizer = run_tokenizer_phase(cfg, store, held_out[0], run_dir, log, device)
        tokenizer_s = time.time() - phase_started
        run_dynamics_phase(cfg, store, tokenizer, held_out, crafter_action_space(), run_dir, log, device)
    finally:
        store.close()
        log.close()
    tok, dyn = last_line(run_dir, "tokenizer_eval"), last_line(run_dir, "dynamics_eval")
    figures = {k: v for k, v in {**tok, **dyn}.items() if k not in ("phase", "step", "time")}
    k, k_max = cfg.dynamics.generation.sampling_steps, cfg.dynamics.model.k_max
    result = {
        "name": "world_model_quality",
        "config": {"config": cfg.name, "overrides": [a for a in argv if "=" in a], "run_dir": str(run_dir),
                   "tokenizer_steps": cfg.tokenizer.train.steps, "dynamics_steps": cfg.dynamics.train.steps,
                   "held_out_clips": cfg.dynamics.eval_clips, "context": cfg.dynamics.eval_context,
                   "horizon": cfg.dynamics.eval_horizon},
        "device": f"{device} ({platform.machine()}, {torch.get_num_threads()} threads)",
        "figures": {**figures, "wall_s": round(time.time() - started), "tokenizer_s": round(tokenizer_s)},
        "ratios": {
            "model_minus_copy_db": round(dyn["open_loop_psnr"] - dyn["copy_last_psnr"], 3),
            "latent_mse_model_over_copy": round(dyn["open_loop_latent_mse"] / dyn["copy_last_latent_mse"], 3),
            "true_minus_shuffled_db": round(dyn["open_loop_psnr"] - dyn["shuffled_actions_psnr"], 3),
            f"k{k}_minus_k{k_max}_db": round(dyn[f"open_loop_psnr_k{k}"] - dyn[f"open_loop_psnr_k{k_max}"], 3),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
