"""Recomputes a run's quality figures from its checkpoints: `python -m system.evaluate RUN_DIR [options]`.

    python -m system.evaluate runs/crafter-cpu-20261202-182012 --episodes 20 --clips 16
    quality = evaluate_run(run_dir, episodes=20, clips=16)      # the same, as a function (returns the dict)

Reads RUN_DIR/config.yaml and checkpoints/{tokenizer,dynamics,agent,imagination}.pt (what exists: a run that
stopped after phase 1 gets the world-model figures only) and writes into RUN_DIR:
- quality.json: the figures below, with the targets and whether each is met, the settings and the machine;
- videos/quality_reconstructions.png (rows: real, reconstruction), quality_open_loop.png (rows: real,
  imagined), quality_open_loop.mp4 and .gif (real left, imagined right), quality_curves.png (metrics.jsonl).

Figures (Crafter, held-out worlds: collection seed + 1_000_003, windows at random offsets of each episode,
seeded by --seed, so every call on the same checkpoints gives the same numbers):
- tokenizer: held-out reconstruction PSNR (mean over frames of the per-frame PSNR), MSE, retrieval (target 30 dB);
- dynamics: open-loop PSNR over the first 8 and all `horizon` frames against copying the last context frame
  (target: beats it), true vs shuffled actions (a clear gap), K = sampling steps vs K = k_max (within 1 dB);
  "one_step": teacher-forced one-step latent errors on static and moving frames against copying, with the
  true and another action (system/imagination/one_step.py); the phase-1 model (dynamics.pt);
- agent: live Crafter return, score and achievement rates over --episodes episodes (eval worlds: seed +
  2_000_003) for a uniform random policy, the phase-2 BC policy (agent.pt) and the phase-3 policy
  (imagination.pt); target: phase 3 > phase 2 > random on the score. Needs Crafter (dataset runs: skipped).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from system.data.held_out import held_out_windows as crafter_held_out_windows
from system.data.ingested_tables import held_out_from_table, run_action_space
from system.envs.crafter_env import CrafterEnv
from system.imagination.acting_service import ActingService, ActResult
from system.imagination.one_step import one_step_figures
from system.imagination.open_loop import open_loop_figures
from system.model.agent_heads import AgentHeads
from system.model.dynamics import Dynamics
from system.model.tokenizer import Tokenizer
from system.objectives.image_metrics import psnr, retrieval_accuracy
from system.phases.frames import frames_to_float
from system.phases.live_eval import eval_seed, play_episodes
from system.run.config import Config, load
from system.run.curves import write_curves
from system.run.media import write_grid, write_video
from system.run.typed_config import ConfigError, to_dict
from system.training.checkpoint import load_checkpoint

TARGETS = {"tokenizer_psnr_db": 30.0, "k_gap_db": 1.0}
CURVES = [("tokenizer", "loss"), ("tokenizer", "psnr"), ("dynamics", "loss"), ("dynamics", "flow_mse"),
          ("agent", "bc_nll"), ("agent", "reward_ce"), ("imagination", "imagined_return"),
          ("imagination", "pmpo_loss"), ("live_eval", "mean_return"), ("live_eval", "score")]


class UniformPolicy:
    """The random baseline behind the acting-service interface play_episodes uses."""

    def __init__(self, nvec, seed: int):
        self.nvec, self.rng = np.asarray(nvec), np.random.default_rng(seed)

    def open_episode(self, seed: int = 0) -> int:
        return 0

    def close_episode(self, slot: int) -> None:
        pass

    def act(self, requests) -> list[ActResult]:
        return [ActResult(self.rng.integers(0, self.nvec), version=0, frame=0) for _ in requests]


def held_out_windows(cfg: Config, clips: int, frames: int, seed: int, store=None) -> tuple[np.ndarray, np.ndarray]:
    """The main job's kind of held-out clips (system/data/held_out.py), drawn with this evaluation's seed."""
    if cfg.env.name != "crafter":
        return held_out_from_table(store, cfg, clips, frames)
    return crafter_held_out_windows(cfg.data, clips, frames, seed)


def load_models(cfg: Config, run_dir: Path, device) -> dict:
    """The run's models from its checkpoints: tokenizer, dynamics (phase 1), and where they exist the phase-2
    dynamics and heads (agent.pt) and the phase-3 heads (imagination.pt; its dynamics when full-finetuned)."""
    checkpoints = run_dir / "checkpoints"
    path = checkpoints / "tokenizer.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no tokenizer checkpoint, nothing to evaluate (has phase 1 run?)")
    models = {}
    tokenizer = Tokenizer(cfg.tokenizer.model).to(device)
    tokenizer.load_state_dict(load_checkpoint(path, device)["model"])
    models["tokenizer"] = tokenizer.eval()
    space = run_action_space(cfg)

    def dynamics_from(state) -> Dynamics:
        model = Dynamics(cfg.dynamics.model, space).to(device)
        model.load_state_dict(state["model"])
        return model.eval()

    def heads_from(state) -> AgentHeads:
        heads = AgentHeads(cfg.agent.heads, space.components, cfg.dynamics.model.agent_tokens,
                           cfg.dynamics.model.transformer.dim).to(device)
        heads.load_state_dict(state["heads"])
        return heads.eval()

    if (checkpoints / "dynamics.pt").exists():
        models["dynamics"] = dynamics_from(load_checkpoint(checkpoints / "dynamics.pt", device))
    if (checkpoints / "agent.pt").exists():
        state = load_checkpoint(checkpoints / "agent.pt", device)
        models["bc"] = (dynamics_from(state), heads_from(state))
    if (checkpoints / "imagination.pt").exists() and "bc" in models:
        state = load_checkpoint(checkpoints / "imagination.pt", device)
        dynamics = dynamics_from(state) if "model" in state else models["bc"][0]
        models["imagination"] = (dynamics, heads_from(state))
    return models


@torch.no_grad()
def tokenizer_figures(tokenizer, frames: torch.Tensor, run_dir: Path) -> dict:
    recon = torch.cat([tokenizer.decode(tokenizer.encode(frames[i:i + 4])).clamp(0, 1)
                       for i in range(0, len(frames), 4)])
    rows = [r for pair in zip(frames[:4, :8], recon[:4, :8]) for r in pair]
    write_grid(run_dir / "videos" / "quality_reconstructions.png", rows)
    shown, truth = recon[:, ::4].flatten(0, 1), frames[:, ::4].flatten(0, 1)
    value = float(psnr(recon, frames))
    return {"held_out_psnr_db": value, "held_out_mse": float((recon - frames).square().mean()),
            "retrieval": float(retrieval_accuracy(shown, truth)), "retrieval_chance": 1.0 / len(truth),
            "target_psnr_db": TARGETS["tokenizer_psnr_db"], "meets_target": value >= TARGETS["tokenizer_psnr_db"]}


def dynamics_figures(cfg: Config, tokenizer, dynamics, frames, actions, seed: int, run_dir: Path) -> dict:
    c = cfg.dynamics.eval_context
    k = cfg.dynamics.generation.sampling_steps
    ks = (k,) if k == dynamics.k_max else (k, dynamics.k_max)
    generator = torch.Generator(device=frames.device).manual_seed(seed + 7)
    figures, result = open_loop_figures(tokenizer, dynamics, frames, actions, c, ks,
                                        cfg.dynamics.generation.context_noise, generator)
    horizon = frames.shape[1] - c
    out = {"context": c, "horizon": horizon, "sampling_steps": k, "k_max": dynamics.k_max,
           "shuffled_actions_psnr_db": figures["shuffled_actions_psnr"],
           "tokenizer_ceiling_psnr_db": figures["tokenizer_ceiling_psnr"],
           "open_loop_latent_mse": figures[f"open_loop_latent_mse_k{k}"],
           "copy_last_latent_mse": figures["copy_last_latent_mse"]}
    for h in sorted({min(8, horizon), horizon}):  # the first 8 frames (when the horizon is longer) and all
        part = "_first8" if h < horizon else ""
        out[f"open_loop_psnr_db_{h}"] = figures[f"open_loop_psnr_k{k}{part}"]
        out[f"copy_last_psnr_db_{h}"] = figures[f"copy_last_psnr{part}"]
        out[f"beats_copy_last_{h}"] = out[f"open_loop_psnr_db_{h}"] > out[f"copy_last_psnr_db_{h}"]
    out["action_gap_db"] = figures[f"open_loop_psnr_k{k}"] - figures["shuffled_actions_psnr"]
    if len(ks) > 1:
        out[f"open_loop_psnr_db_k{dynamics.k_max}"] = figures[f"open_loop_psnr_k{dynamics.k_max}"]
        out["k_gap_db"] = abs(figures[f"open_loop_psnr_k{k}"] - figures[f"open_loop_psnr_k{dynamics.k_max}"])
        out["k_within_target"] = out["k_gap_db"] <= TARGETS["k_gap_db"]
    out["one_step"] = one_step_figures(dynamics, result.true_z, actions, c, generator=generator)
    truth = frames[:, c:]
    rows = [row for pair in zip(truth[:4], result.imagined[:4]) for row in pair]
    write_grid(run_dir / "videos" / "quality_open_loop.png", rows)
    side = torch.cat([torch.cat([truth[i], result.imagined[i]], dim=2) for i in range(min(4, len(truth)))], dim=1)
    write_video(run_dir / "videos" / "quality_open_loop.mp4", side, fps=4)
    write_video(run_dir / "videos" / "quality_open_loop.gif", side, fps=4, scale=2)  # plays inline in markdown
    return out


def agent_figures(cfg: Config, models: dict, episodes: int, seed: int, device) -> dict:
    section = cfg.eval
    envs = max(1, min(section.envs, episodes))

    def make_env(k: int) -> CrafterEnv:
        return CrafterEnv(size=tuple(cfg.data.ingest.size), seed=eval_seed(cfg.seed) + k,
                          max_episode_steps=section.max_steps)

    def summary(service) -> dict:
        played = play_episodes(service, make_env, episodes, envs)
        return {k: played[k] for k in ("episodes", "mean_return", "std_return", "mean_length", "score",
                                       "success_rates", "returns")}

    out = {"episodes": episodes, "max_steps": section.max_steps, "argmax": section.argmax,
           "random": summary(UniformPolicy(run_action_space(cfg).nvec, seed))}
    for name in ("bc", "imagination"):
        if name in models:
            dynamics, heads = models[name]
            service = ActingService(models["tokenizer"], dynamics, heads.policy, cfg.dynamics.generation,
                                    slots=envs, argmax=section.argmax, seed=eval_seed(cfg.seed))
            out[name] = summary(service)
    scores = [out[name]["score"] for name in ("random", "bc", "imagination") if name in out]
    out["ordered_as_targeted"] = len(scores) == 3 and scores[2] > scores[1] > scores[0]
    return out


def evaluate_run(run_dir: str | Path, episodes: int = 20, clips: int = 16, seed: int = 0,
                 device: str = "cpu", say=print) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a run directory)")
    cfg = load(["--config", str(run_dir / "config.yaml"), f"run_dir={run_dir}"])
    device = torch.device(device)
    started = time.time()
    models = load_models(cfg, run_dir, device)
    say(f"evaluate: {run_dir} ({', '.join(models)}), {clips} held-out clips, {episodes} live episodes per policy")
    store = None
    if cfg.env.name != "crafter":  # a dataset run: the held-out clips are in its store
        from system.replay import make_store
        store = make_store(cfg.replay, run_dir, seed=seed)
    try:
        length = cfg.dynamics.eval_context + cfg.dynamics.eval_horizon
        frames_np, actions_np = held_out_windows(cfg, clips, length, seed, store)
    finally:
        if store is not None:
            store.close()
    frames = frames_to_float(frames_np, device)
    actions = torch.from_numpy(actions_np).to(device).long()
    quality = {"run_dir": str(run_dir), "config": cfg.name, "training_seed": cfg.seed, "seed": seed, "clips": clips,
               "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads, "
                          f"{device.type}".strip(),
               "date": time.strftime("%Y-%m-%d %H:%M"), "targets": TARGETS}
    threads = torch.get_num_threads()
    quality["tokenizer"] = tokenizer_figures(models["tokenizer"], frames, run_dir)
    say(f"evaluate: tokenizer {quality['tokenizer']['held_out_psnr_db']:.2f} dB held out")
    if "dynamics" in models:
        quality["dynamics"] = dynamics_figures(cfg, models["tokenizer"], models["dynamics"], frames, actions, seed,
                                               run_dir)
        d, h = quality["dynamics"], min(8, quality["dynamics"]["horizon"])
        say(f"evaluate: open loop {d[f'open_loop_psnr_db_{h}']:.2f} dB ({h} frames) vs copy-last "
            f"{d[f'copy_last_psnr_db_{h}']:.2f}; action gap {d['action_gap_db']:+.2f} dB")
    if cfg.env.name == "crafter" and episodes > 0:
        if device.type == "cpu":
            torch.set_num_threads(1)  # acting is a batch of a few frames (see live_eval.py)
        try:
            quality["agent"] = agent_figures(cfg, models, episodes, seed, device)
        finally:
            torch.set_num_threads(threads)
        say("evaluate: score " + ", ".join(f"{name} {quality['agent'][name]['score']:.2f}"
                                           for name in ("random", "bc", "imagination") if name in quality["agent"]))
    else:
        quality["agent"] = None  # no live environment for this run (a MineRL dataset run) or --episodes 0
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").exists() else []
    write_curves(run_dir / "videos" / "quality_curves.png", lines, CURVES)
    quality["wall_clock_s"] = round(time.time() - started, 1)
    quality["settings"] = {"eval": to_dict(cfg.eval)}
    (run_dir / "quality.json").write_text(json.dumps(quality, indent=1) + "\n")
    say(f"evaluate: {run_dir / 'quality.json'} and videos/quality_*.png in {quality['wall_clock_s']:.0f} s")
    return quality


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m system.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--episodes", type=int, default=20, help="live Crafter episodes per policy (0: none)")
    parser.add_argument("--clips", type=int, default=16, help="held-out clips for the world-model figures (>= 2)")
    parser.add_argument("--seed", type=int, default=0, help="draws the clip offsets and the random policy")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.clips < 2 or args.episodes < 0:
        print(f"evaluate: --clips {args.clips} must be >= 2 and --episodes {args.episodes} >= 0", file=sys.stderr)
        return 2
    try:
        evaluate_run(args.run_dir, args.episodes, args.clips, args.seed, args.device)
    except (FileNotFoundError, ConfigError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
