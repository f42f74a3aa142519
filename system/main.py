"""The main job: `python -m system.main --config configs/smoke.yaml [dotted.key=value ...]`.

What it runs (Ray where runtime.* asks for it: system/runtime/):
  1. collect `data.collect.episodes` Crafter episodes with the configured policy into the replay table
     `data.ingest.table` (idempotent: a resumed run does not collect them again), plus held-out clips
     (windows at random offsets of episodes from other world seeds), kept in memory for evaluation. With env.name = minerl:<Env> nothing is collected:
     the phases train from what `python -m system.data.ingest minerl|vpt` stored, and the held-out clips come
     from the episodes ingest put in data.ingest.held_out_table (system/data/ingested_tables.py); a run whose
     tables are empty or of another layout stops here, naming the command that fills them;
  2. train the tokenizer on replay sequences (checkpoint, metrics, reconstructions in the run directory), in
     the driver or, with runtime.learners=N, on N data-parallel Ray learner actors (so are steps 3 and 4);
  3. train the dynamics model with shortcut forcing on tokenized replay sequences, then imagine held-out
     futures open-loop (PSNR against copying the last frame, a real-vs-imagined video);
  4. phase 2, agent finetuning: policy, reward and continuation heads on the agent tokens (BC + reward with
     MTP) while the dynamics loss continues (checkpoints/agent.pt); with runtime.online_steps_per_update > 0
     the env runners keep collecting into the replay through phases 2 and 3, acting through the world-model
     service with the policy as it trains (system/runtime/online_collection.py);
  5. phase 3, imagination training: PMPO and TD(lambda) values inside the frozen world model, with the
     phase-2 policy as the frozen prior (checkpoints/imagination.pt); rollouts imagined in the driver, by the
     runtime.learners=N learner actors that train it (each its share), or with runtime.imagination_workers=N
     by N Ray actors through the `imagined` table (rate limited);
  6. final evaluation: `eval.episodes` live Crafter episodes with the phase-3 policy (system/phases/live_eval.py;
     eval.backend: in the driver, through the world-model service actor on Ray, or through an RLlib
     EnvRunnerGroup acting through the service) into eval.json and a metrics
     line of phase "eval"; the policy version is its number of phase-3 updates. With eval.every = N, phase 3
     also plays eval.periodic_episodes live episodes every N updates (phase "live_eval"; in the driver, or
     with eval.backend=rllib on RLlib env runners through a service kept for the phase). Each evaluation
     writes its first episode to videos/<phase>_policy_v<version>.mp4 (and wandb).
Everything lands in the run directory (see system/run/run_dir.py); `run_dir=PATH` (or `--resume PATH`, which
reads the run's own config.yaml) resumes a run there: the
replay table from its store (redis: the AOF in run_dir/redis), each phase from its checkpoint (step counter and
optimiser state), and phases.json names the finished phases, which are loaded, not trained or evaluated again.
"""

from __future__ import annotations

import contextlib
import random
import sys
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from system.data.episode_writer import ingest
from system.data.held_out import held_out_windows
from system.data.ingest import crafter_ingest_sources
from system.data.ingested_tables import check_ingested_tables, held_out_from_table, run_action_space
from system.envs.action_space import crafter_action_space
from system.phases.live_eval import InDriverLiveEval, run_live_evaluation
from system.phases.train_agent import run_agent_phase
from system.phases.train_dynamics import run_dynamics_phase
from system.phases.train_imagination import run_imagination_phase
from system.phases.train_tokenizer import run_tokenizer_phase
from system.replay import ReplayError, make_store
from system.run.config import Config, load
from system.run.metrics_log import MetricsLog
from system.run.phase_record import mark_finished, phase_finished
from system.run.run_dir import create_run_dir
from system.run.typed_config import ConfigError, to_dict


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available (use device=auto or device=cpu)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def collect_training_data(cfg: Config, store, console: Console) -> None:
    if cfg.env.name != "crafter":  # a dataset run: ingest filled the tables, nothing is collected
        console.print(check_ingested_tables(cfg, store, run_action_space(cfg)))
        return
    if cfg.runtime.env_runners:  # Ray env runners (RLlib) instead of the in-process collection
        from system.runtime.phase1_collection import collect_with_env_runners
        return collect_with_env_runners(cfg, store, console)
    sources = crafter_ingest_sources(cfg.data)
    report = ingest(store, sources, cfg.data.ingest, crafter_action_space(), total=len(sources), console=console)
    console.print(f"replay: {report.ingested} episodes collected, {report.already_stored} already stored, "
                  f"{store.stats(cfg.data.ingest.table).steps} steps in table {cfg.data.ingest.table!r}")


def held_out_clips(cfg: Config, store, episodes: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """frames (episodes, frames, H, W, 3) uint8 and actions (episodes, frames, A) int32: windows at seeded
    random offsets of worlds the training collection never visits (Crafter, system/data/held_out.py), or of
    the held-out table of an ingested dataset."""
    if cfg.env.name != "crafter":
        return held_out_from_table(store, cfg, episodes, frames)
    return held_out_windows(cfg.data, episodes, frames, seed=cfg.seed)


def on_learners(cfg: Config, store, log, phase: str, **inputs):
    """With runtime.learners > 0: the phase's training on Ray learner actors (its `train_elsewhere`), else None
    (the driver trains). inputs: action_space, tokenizer, dynamics, online, as the phase needs them."""
    if not cfg.runtime.learners:
        return None
    from system.runtime.phase_learners import train_elsewhere  # Ray only where it is used

    return train_elsewhere(cfg, store, log, phase, **inputs)


def check_imagined_table(cfg: Config, store) -> None:
    from system.replay.trajectory_table import trajectory_table  # redis only where it is used

    try:
        trajectory_table(store).check_fits(cfg.imagination.train.batch_size * cfg.imagination.train.horizon)
    except ValueError as error:
        raise ReplayError(f"replay.tables.imagined (runtime.imagination_workers > 0): {error}") from None


def imagination_phase(cfg: Config, store, tokenizer, dynamics, heads, held_out, run_dir, log, device, online=None):
    """Phase 3, imagining in the driver, on runtime.learners learner actors (each imagining its share), or, with
    runtime.imagination_workers > 0, in the driver from Ray imagination workers' rollouts; with eval.every > 0
    the policy plays live episodes along the way: in the driver, or with eval.backend=rllib on RLlib env runners
    through a world-model service kept for the phase, beside training."""
    done = phase_finished(run_dir, "imagination", cfg.imagination.train.steps)
    workers = cfg.runtime.imagination_workers and not done
    rllib_eval = cfg.eval.backend == "rllib" and cfg.eval.every > 0 and cfg.eval.periodic_episodes > 0 and not done
    learners = cfg.runtime.learners and not workers and not done
    if not workers and not rllib_eval and not learners:
        return run_imagination_phase(cfg, store, tokenizer, dynamics, heads, held_out, run_dir, log, device,
                                     live_eval=InDriverLiveEval(cfg, tokenizer, dynamics, heads, run_dir, log,
                                                                device), online=online)
    from system.runtime.ray_cluster import ray_session  # Ray only where it is used

    with ray_session(num_cpus=cfg.runtime.num_cpus or None):
        if rllib_eval:
            from system.runtime.rllib_eval import PeriodicRllibEvaluator
            live_eval = PeriodicRllibEvaluator(cfg, tokenizer, dynamics, heads, run_dir, log)
        else:
            live_eval = InDriverLiveEval(cfg, tokenizer, dynamics, heads, run_dir, log, device)
        make_source = elsewhere = None
        if workers:
            from system.runtime.imagination_workers import imagined_source
            make_source = lambda trainer: imagined_source(cfg, store, tokenizer, trainer,  # noqa: E731
                                                          cfg.runtime.imagination_workers, online=online)
        elif learners:  # the learners imagine their own shares
            elsewhere = on_learners(cfg, store, log, "imagination", action_space=run_action_space(cfg),
                                    tokenizer=tokenizer, dynamics=dynamics, heads=heads, online=online,
                                    live_eval=live_eval)
        try:
            return run_imagination_phase(cfg, store, tokenizer, dynamics, heads, held_out, run_dir, log, device,
                                         make_source=make_source, live_eval=live_eval, online=online,
                                         train_elsewhere=elsewhere)
        finally:
            if rllib_eval:
                live_eval.close()


@contextlib.contextmanager
def online_collection(cfg: Config, store, tokenizer, log, run_dir=None):
    """With runtime.online_steps_per_update > 0: env runners collecting through phases 2 and 3 (on Ray), else
    None. With runtime.learners > 0 and phase 2 still to train, the learner ranks and the world-model service
    share one placement (a GPU node's group), reserved here for as long as the service lives."""
    if not cfg.runtime.online_steps_per_update:
        yield None
        return
    from system.runtime.online_collection import OnlineCollection  # Ray only where it is used
    from system.runtime.phase_learners import reserve_learner_placement
    from system.runtime.ray_cluster import ray_session

    with ray_session(num_cpus=cfg.runtime.num_cpus or None):
        agent_left = run_dir is None or not phase_finished(run_dir, "agent", cfg.agent.train.steps)
        placement = reserve_learner_placement(cfg) if cfg.runtime.learners and agent_left else None
        online = OnlineCollection(cfg, store, tokenizer, log, placement=placement)
        try:
            yield online
        finally:
            try:
                online.close()
            finally:
                if placement is not None:
                    placement.remove()


def run(cfg: Config, console: Console | None = None) -> dict:
    console = console or Console()
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    run_dir = create_run_dir(cfg)
    console.print(f"run directory: {run_dir} (device {device})")
    log = MetricsLog(run_dir, cfg.logging.wandb, cfg.logging.wandb_project, to_dict(cfg))
    store = make_store(cfg.replay, run_dir, seed=cfg.seed)
    try:
        store.check_table(cfg.data.ingest.table)  # a table created with other settings fails now, not after collecting
        if cfg.runtime.imagination_workers:  # they need Redis and limiter settings that cannot deadlock: say so now
            check_imagined_table(cfg, store)
        collect_training_data(cfg, store, console)
        length = max(cfg.tokenizer.train.seq_len * 4, cfg.dynamics.eval_context + cfg.dynamics.eval_horizon,
                     cfg.imagination.train.context, cfg.agent.train.seq_len)
        held_out = held_out_clips(cfg, store, episodes=cfg.dynamics.eval_clips, frames=length)
        space = run_action_space(cfg)
        tokenizer = run_tokenizer_phase(cfg, store, held_out[0], run_dir, log, device,
                                        train_elsewhere=on_learners(cfg, store, log, "tokenizer"))
        dynamics = run_dynamics_phase(cfg, store, tokenizer, held_out, space, run_dir, log, device,
                                      train_elsewhere=on_learners(cfg, store, log, "dynamics", action_space=space,
                                                                  tokenizer=tokenizer))
        with online_collection(cfg, store, tokenizer, log, run_dir) as online:
            heads = run_agent_phase(cfg, store, tokenizer, dynamics, space, held_out, run_dir, log, device,
                                    online=online, train_elsewhere=on_learners(
                                        cfg, store, log, "agent", action_space=space, tokenizer=tokenizer,
                                        dynamics=dynamics, online=online))
            heads = imagination_phase(cfg, store, tokenizer, dynamics, heads, held_out, run_dir, log, device,
                                      online=online)
        version = cfg.imagination.train.steps
        if phase_finished(run_dir, "eval", version) and (run_dir / "eval.json").exists():
            console.print(f"eval: finished for policy version {version}, eval.json kept")
            summary = None
        else:
            log.rewind("eval", 0, drop=("eval",))  # an evaluation the driver died in is played again
            if cfg.eval.backend == "service":  # the world-model service actor on Ray
                from system.runtime.service_eval import evaluate_through_service
                summary = evaluate_through_service(cfg, tokenizer, dynamics, heads, version, run_dir, log)
            elif cfg.eval.backend == "rllib":  # an RLlib EnvRunnerGroup acting through the service
                from system.runtime.rllib_eval import evaluate_with_rllib
                summary = evaluate_with_rllib(cfg, tokenizer, dynamics, heads, version, run_dir, log)
            else:
                summary = run_live_evaluation(cfg, tokenizer, dynamics, heads, version, run_dir, log, device)
        if summary is not None:
            mark_finished(run_dir, "eval", version)
            console.print(f"eval: {summary['episodes']} live episodes, return {summary['mean_return']:.2f} "
                          f"+- {summary['std_return']:.2f}, Crafter score {summary['score']:.2f} -> eval.json")
    finally:
        store.close()
        log.close()
    console.print(f"done: {run_dir}")
    return {"run_dir": run_dir}


def resume_argv(argv: list[str]) -> list[str]:
    """`--resume RUN_DIR [overrides]` -> the run's own config.yaml, the overrides, and run_dir=RUN_DIR."""
    if "--resume" not in argv:
        return argv
    at = argv.index("--resume")
    if at + 1 >= len(argv) or "--config" in argv:
        raise ConfigError("--resume takes the run directory (and no --config: the run's config.yaml is used)")
    run_dir = Path(argv[at + 1])
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume {run_dir}: no config.yaml there (not a run directory)")
    rest = argv[:at] + argv[at + 2:]
    return ["--config", str(run_dir / "config.yaml"), *rest, f"run_dir={run_dir}"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        from system.run.usage import usage
        print(usage())
        return 0
    try:
        cfg = load(resume_argv(argv))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    try:
        run(cfg)
    except ReplayError as error:  # names the server and what to do; a traceback would only hide that
        print(f"replay store: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
