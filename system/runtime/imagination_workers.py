"""Phase 3's trajectories from Ray imagination workers, through the `imagined` table.

    source = imagined_source(cfg, store, tokenizer, trainer, workers=2)   # inside a ray_session
    traj = source.next()             # an ImaginedTrajectory from the table (rate limited against this learner)
    source.publish(trainer)          # the trainer's heads, version trainer.step, to the workers' next calls
    source.close()

Each worker is started from the trainer's current state (frozen tokenizer and dynamics, heads, the prior), so a
resumed phase 3 starts its workers from the resumed heads; with runtime.imagination_worker_gpus = g > 0 each
holds them on g GPUs of its own (`worker_placement`: device "cuda", num_gpus g), else on the CPU. The driver keeps one `produce` call in flight per
worker and passes the latest published heads (one object in Ray's object store per version) with each new call.
A sample that the limiter holds back is retried in short waits, relaunching finished calls in between, so the
learner never waits on a worker that has nothing to do. `next` raises the first error a worker raised.

With runtime.imagine_on = service the workers hold no models: one WorldModelService actor (the driver starts it
with the tokenizer, dynamics, heads and prior as service version trainer.step + 1, since the service counts from
1) rolls out every worker's start contexts, batching the requests that arrive within its imagine_wait_ms of
each other (up to all workers' rows), and `publish` sends the heads to the service instead of the workers
(without waiting for the swap; the next send checks the previous one). A trajectory's policy version is then the
service version that imagined it, minus that 1.

When env runners collect through phase 3 as well (runtime.online_steps_per_update > 0), there is one service
for both: the online collection's (system/runtime/online_collection.py), started with room for the workers'
rows and given phase 3's heads and prior when the phase begins. Its acts and the workers' rollouts share the
batching (an act waits for at most one imagined frame), the collection publishes the heads with its versions
(phase 2's and 3's updates + 1, so a trajectory's policy version is the service's minus 1 + agent.train.steps),
and `publish` here only notes the version.
"""

from __future__ import annotations

import time

import ray

from actors.imagination_worker import ImaginationWorkerActor, WorkerSpec
from actors.world_model_service import ServiceSpec, WorldModelService
from system.data.ingested_tables import run_action_space
from system.imagination.trajectory import ImaginedTrajectory, decode_trajectory
from system.replay.limiter import RateLimited
from system.replay.trajectory_table import trajectory_table
from system.run.weights_version import phase_version
from system.runtime.phase1_collection import runner_replay_config

WORKER_SEED_OFFSET = 7919  # worker k draws noise and contexts from seed + offset * (k + 1)
SERVICE_VERSION_OFFSET = 1  # service version = phase-3 updates + 1 (the service's version 0: no weights yet)


def _cpu_state(module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def imagination_service(cfg, workers: int):
    """A world-model service actor that imagines for `workers` workers (runtime.imagine_on = service)."""
    spec = ServiceSpec(cfg.tokenizer.model, cfg.dynamics.model, cfg.agent.heads, run_action_space(cfg),
                       cfg.dynamics.generation, slots=1, max_batch=workers * cfg.imagination.train.batch_size,
                       seed=cfg.seed, threads=workers,  # the workers' threads
                       device="cuda" if str(cfg.device).startswith("cuda") else "cpu")
    # one GPU device shared with the driver's training where the run has one
    return WorldModelService.options(**({"num_gpus": 0.5} if spec.device == "cuda" else {})).remote(spec)


def worker_placement(cfg) -> tuple[str, dict]:
    """(device, actor options) of an imagination worker holding its own models: runtime.imagination_worker_gpus
    GPUs each (its own GPU, or a share of one), else the CPU."""
    gpus = cfg.runtime.imagination_worker_gpus
    return ("cuda", {"num_gpus": gpus}) if gpus else ("cpu", {})


def imagined_source(cfg, store, tokenizer, trainer, workers: int, table: str = "imagined",
                    online=None) -> "ImaginedSource":
    """The main job's source: `workers` workers from the run's config sections, on the run's Redis. With
    runtime.imagine_on = service and an online collection (`online`, begun with phase 3's heads and prior), the
    workers imagine through the collection's service, which the collection publishes to."""
    shared = online is not None and online.imagines   # imagines: imagine_on = service with workers
    if shared:
        service, offset = online.service, phase_version(cfg, "imagination", 0)
    else:
        service = imagination_service(cfg, workers) if cfg.runtime.imagine_on == "service" else None
        offset = SERVICE_VERSION_OFFSET
    device, options = worker_placement(cfg) if service is None else ("cpu", {})
    specs = [WorkerSpec(tokenizer=cfg.tokenizer.model, dynamics=cfg.dynamics.model, heads=cfg.agent.heads,
                        action_space=run_action_space(cfg), train=cfg.imagination.train,
                        generation=cfg.dynamics.generation, context_table=cfg.data.ingest.table, table=table,
                        seed=cfg.seed + WORKER_SEED_OFFSET * (k + 1), service=service, version_offset=offset,
                        device=device) for k in range(workers)]
    table_ = trajectory_table(store, table, seed=cfg.seed)
    table_.check_fits(cfg.imagination.train.batch_size * cfg.imagination.train.horizon)
    print(f"imagination: {workers} Ray imagination workers write table {table!r} "
          f"(samples_per_insert {cfg.replay.tables.get(table).samples_per_insert}), policy version {trainer.step}"
          + (", rolling out through the online collection's world-model service" if shared else
             ", rolling out through the world-model service" if service is not None else ""), flush=True)
    return ImaginedSource(table_, specs, runner_replay_config(cfg, store), tokenizer, trainer,
                          timeout=cfg.replay.block_timeout_s, service=service, shared=shared, worker_options=options)


class ImaginedSource:
    def __init__(self, table, specs: list[WorkerSpec], replay_cfg, tokenizer, trainer, timeout: float = 600.0,
                 service=None, shared: bool = False, worker_options: dict | None = None):
        """shared: the service belongs to the online collection, which loaded and publishes the weights;
        worker_options: the workers' actor options (their GPUs, worker_placement)."""
        self.table, self.timeout, self.service, self.shared, self.sending = table, timeout, service, shared, None
        state = None
        if service is None:
            state = ray.put({"tokenizer": _cpu_state(tokenizer), "dynamics": _cpu_state(trainer.model),
                             "heads": _cpu_state(trainer.heads), "prior": _cpu_state(trainer.prior)})
        elif not shared:   # the models go to the service; the workers hold none
            ray.get(service.set_weights.remote(trainer.step + SERVICE_VERSION_OFFSET, ray.put(
                {"tokenizer": _cpu_state(tokenizer), "dynamics": _cpu_state(trainer.model),
                 "heads": _cpu_state(trainer.heads), "prior": _cpu_state(trainer.prior)})))
        self.workers = [ImaginationWorkerActor.options(**(worker_options or {})).remote(spec, replay_cfg, state,
                                                                                       trainer.step)
                        for spec in specs]
        self.version, self.heads = trainer.step, None  # None: the workers already hold this version
        self.calls = {worker.produce.remote(self.version): worker for worker in self.workers}
        self.produced = 0

    def publish(self, trainer) -> None:
        if self.shared:   # the online collection sends the heads with its versions
            self.version = trainer.step
            return
        if self.service is None:
            self.version, self.heads = trainer.step, ray.put(_cpu_state(trainer.heads))
            return
        if self.sending is not None:
            ray.get(self.sending)  # the previous swap's error surfaces here
        self.sending = self.service.set_weights.remote(trainer.step + SERVICE_VERSION_OFFSET,
                                                       ray.put({"heads": _cpu_state(trainer.heads)}))
        self.version = trainer.step

    def _relaunch(self) -> None:
        done, _ = ray.wait(list(self.calls), num_returns=len(self.calls), timeout=0)
        for ref in done:
            worker = self.calls.pop(ref)
            ray.get(ref)  # a worker's error surfaces here, naming the worker's traceback
            self.produced += 1
            self.calls[worker.produce.remote(self.version, self.heads)] = worker

    def next(self) -> ImaginedTrajectory:
        deadline = time.monotonic() + self.timeout
        while True:
            self._relaunch()
            try:
                _, data = self.table.sample(timeout=0.05)
                return decode_trajectory(data)
            except RateLimited:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        for actor in [*self.workers, *([self.service] if self.service is not None and not self.shared else [])]:
            ray.kill(actor)
