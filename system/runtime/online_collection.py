"""Collection while phases 2 and 3 train: env runners acting through the world-model service with the policy
being trained (the main job's runtime.online_steps_per_update > 0).

    online = OnlineCollection(cfg, store, tokenizer, log)       # inside a ray_session; starts nothing yet
    online.begin(version, dynamics, heads.policy)               # first call: service + runners; later: new weights
                                                                # (version: system/run/weights_version.py)
    online.updated(version, dynamics=..., policy=heads.policy)  # after each update: paces, publishes
    online.updated(version, weights=ref)                        # the same, with the weights a learner put into
                                                                # the object store (when online.wants(version))
    report = online.close()                                     # waits for calls in flight, stops the actors

One WorldModelService actor (actors/world_model_service.py, slots = runtime.env_runners x envs_per_runner) holds
the frozen tokenizer, the dynamics and the policy; runtime.env_runners CrafterEnvRunner actors with
policy="service" ask it for every action and write their episodes into table data.ingest.table, next to the
phase-1 data, where the phases sample from. A background thread keeps one collect call in flight per runner
while the env steps acknowledged stay below runtime.online_steps_per_update x the updates since `begin`, so the
ratio of fresh env steps to updates holds whatever the relative speeds (overshoot: at most one call per
runner). A runner call lost to a crash is counted and the restarted runner goes on with fresh episodes.
Weights travel through Ray's object store as versions: `updated` sends the given parts every
runtime.publish_every-th version without waiting for the swap (the next send first checks the previous one); the
tokenizer is frozen after phase 1 and sent once. When phase 2 trains on learner actors
(system/runtime/phase_learners.py), rank 0 puts its weights into the object store and the driver forwards the
reference (`weights=`): the tensors go from the learner to the service without passing through the driver, and
with `placement` (system/runtime/placement.py) the service runs in the learners' placement group (on a GPU node,
next to rank 0). A version not newer than the last one sent (steps redone after a learner group restart) is
not sent again. Versions: 1 + the updates of phases 2 and 3 so far
(system/run/weights_version.py), so they only increase across the phases of one process.
Progress: at most every runtime.report_every_s (checked at each update), when calls answered since the last one,
a metrics line of phase "online" (step = the weights version; MetricsLog prints it too): env steps and finished
episodes of this driver process so far, env steps/s, the mean return of the episodes finished since the
previous line, lost calls, replay size. The lines are not
rewound on resume: the steps they count are in the replay.
Worlds: the runners' seeds derive from data.collect.seed and the version they start at, so a resumed run
visits other worlds than before; held-out worlds come from another seed range (system/data/held_out.py).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import ray
from ray.exceptions import ObjectLostError

from actors.crafter_env_runner import CrafterEnvRunner, EnvRunnerSpec
from actors.world_model_service import ServiceSpec, WorldModelService
from system.envs.action_space import crafter_action_space
from system.runtime.collection import CollectionReport, drive_runners
from system.runtime.phase1_collection import runner_replay_config
from system.runtime.placement import runner_options

ONLINE_SEED_TAG = 2  # phase-1 runners use data.collect.seed itself


def cpu_state(module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


class OnlineCollection:
    def __init__(self, cfg, store, tokenizer, log, placement=None):
        self.cfg, self.store, self.tokenizer, self.log = cfg, store, tokenizer, log
        self.placement = placement       # the learners' placement, where the service goes too (or None)
        self.table = cfg.data.ingest.table
        self.rt = cfg.runtime
        # phase 3's imagination workers roll out through this service too (runtime.imagine_on = service)
        self.imagines = self.rt.imagination_workers > 0 and self.rt.imagine_on == "service"
        self.service = None
        self.runners: list = []
        self.updates = 0                 # since the first begin
        self.version = 0
        self.sending = None              # the last set_weights call, checked before the next
        self.report = CollectionReport()
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.last_line = 0.0
        self.returns_shown = 0
        self.steps_shown = 0

    # -- driver side ---------------------------------------------------------------------------------------------
    def begin(self, version: int, dynamics=None, policy=None, weights: ray.ObjectRef | None = None, heads=None,
              prior=None) -> None:
        """Starts the service and the runners with these weights, or (later phases) sends them as `version`.
        `weights`: instead of the modules, an object reference to their state dicts ("tokenizer", "dynamics",
        "policy"; the tokenizer is needed when this call starts the service). `heads` and `prior`: phase 3's,
        when the service imagines for the imagination workers too (`imagines`)."""
        extra = {name: cpu_state(module) for name, module in (("heads", heads), ("prior", prior))
                 if module is not None}
        if self.service is None:
            self._start(version, weights if weights is not None else {
                "tokenizer": cpu_state(self.tokenizer), "dynamics": cpu_state(dynamics), "policy": cpu_state(policy),
                **extra})
        elif version > self.version:  # equal: phase 3 starts from the weights phase 2 sent last
            self._send(version, weights if weights is not None else
                       {"dynamics": cpu_state(dynamics), "policy": cpu_state(policy), **extra})
        elif extra:                   # ... and adds the heads and prior of that same version
            self._send(self.version, extra, same_version=True)

    def wants(self, version: int) -> bool:
        """Whether `updated(version, ...)` would send weights (every runtime.publish_every-th, newer version)."""
        return (version - 1) % self.rt.publish_every == 0 and version > self.version

    def updated(self, version: int, dynamics=None, policy=None, weights: ray.ObjectRef | None = None,
                heads=None) -> None:
        """One training update done (the weights are now `version`): more env steps are allowed, and every
        runtime.publish_every-th version the given parts (modules, or an object reference to their state dicts)
        go to the service (`heads`, which hold the policy, when it imagines too)."""
        self._raise_if_failed()
        self.updates += 1
        if time.perf_counter() - self.last_line >= self.rt.report_every_s:
            self._line()
        if self.wants(version):
            if weights is not None:
                self._send(version, weights)
                return
            parts = {name: cpu_state(module) for name, module in (("dynamics", dynamics), ("policy", policy),
                                                                   ("heads", heads)) if module is not None}
            if parts:
                self._send(version, parts)

    def published(self) -> int:
        """Waits until the service holds the last version sent; returns that version."""
        if self.sending is not None:
            ray.get(self.sending)
            self.sending = None
        return self.version

    def close(self) -> CollectionReport:
        """Stops collecting (the calls in flight finish and count), frees the slots, stops the actors."""
        if self.service is None:  # never begun (the phases were finished already)
            return self.report
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        try:
            if self.runners:
                ray.get([runner.release.remote() for runner in self.runners])
        finally:
            for actor in [*self.runners, *([self.service] if self.service is not None else [])]:
                ray.kill(actor)
            self.runners, self.service = [], None
        self._line(final=True)
        self._raise_if_failed()
        return self.report

    # -- internals -----------------------------------------------------------------------------------------------
    def _start(self, version: int, weights) -> None:
        cfg, rt = self.cfg, self.rt
        slots = rt.env_runners * rt.envs_per_runner
        placed = self.placement is not None and self.placement.plan.service is not None
        workers = rt.imagination_workers if self.imagines else 0   # each sends batch_size start contexts
        spec = ServiceSpec(cfg.tokenizer.model, cfg.dynamics.model, cfg.agent.heads, crafter_action_space(),
                           cfg.dynamics.generation, slots=slots,
                           max_batch=max(slots, workers * cfg.imagination.train.batch_size),
                           seed=cfg.seed + 11, threads=max(1, workers),
                           device="cuda" if placed or str(cfg.device).startswith("cuda") else "cpu")
        if placed:  # its bundle beside the learner ranks (placement.py)
            options = self.placement.service_options()
        else:       # one GPU device shared with the driver's training where the run has one
            options = {"num_gpus": 0.5} if spec.device == "cuda" else {}
        self.service = WorldModelService.options(**options).remote(spec)
        self._send(version, weights)
        seed = int(np.random.SeedSequence([cfg.data.collect.seed, ONLINE_SEED_TAG, version]).generate_state(1)[0]
                   % 2**30)
        replay_cfg = runner_replay_config(cfg, self.store)
        self.runners = [CrafterEnvRunner.options(**runner_options(max_restarts=-1)).remote(
            EnvRunnerSpec(index=k, table=self.table, envs=rt.envs_per_runner, size=tuple(cfg.data.ingest.size),
                          max_episode_steps=cfg.data.collect.max_episode_steps, seed=seed, policy="service",
                          service=self.service), replay_cfg) for k in range(rt.env_runners)]
        print(f"online: {rt.env_runners} env runners act through the world-model service (policy version "
              f"{version}), {rt.online_steps_per_update:g} env steps per update into table {self.table!r}",
              flush=True)
        self.thread = threading.Thread(target=self._collect, name="online-collection", daemon=True)
        self.thread.start()

    def _send(self, version: int, parts, same_version: bool = False) -> None:
        """parts: state dicts by name, or an object reference to them (passed on: Ray resolves it in the service)."""
        if self.sending is not None:
            try:
                ray.get(self.sending)  # the previous swap's error (a bad state dict) surfaces here
            except ObjectLostError:
                pass  # a learner that owned those weights died before the service fetched them: this one is newer
        ref = parts if isinstance(parts, ray.ObjectRef) else ray.put(parts)
        self.sending = self.service.set_weights.remote(int(version), ref, same_version)
        self.version = version

    def _collect(self) -> None:
        def wants_call(report: CollectionReport) -> bool:
            return report.env_steps < self.rt.online_steps_per_update * self.updates

        def on_report(report: CollectionReport) -> None:
            self.report = report  # read by the driver thread, which prints and logs (MetricsLog is not shared)

        try:
            self.report = drive_runners(self.runners, self.rt.steps_per_call, wants_call, stop=self.stop,
                                        on_report=on_report)
        except BaseException as error:  # noqa: BLE001 - handed to the driver thread at its next update
            self.error = error

    def _line(self, final: bool = False) -> None:
        """A metrics line of phase "online" (MetricsLog echoes it), when calls answered since the last one."""
        self.last_line = time.perf_counter()
        report = self.report
        if report.env_steps == self.steps_shown and not final:
            return
        self.steps_shown = report.env_steps
        recent = report.returns[self.returns_shown:]  # the episodes finished since the last line
        self.returns_shown = len(report.returns)
        self.log.write("online", self.version, {"env_steps": report.env_steps,
                                                "env_steps_per_s": report.env_steps_per_s,
                                                "episodes": report.episodes_done,
                                                "mean_return": float(np.mean(recent)) if recent else None,
                                                "lost_calls": report.lost_calls,
                                                "replay_steps": self.store.stats(self.table).steps})

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f"online collection failed: {error}") from error
