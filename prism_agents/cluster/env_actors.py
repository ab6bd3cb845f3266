"""Environment workers as Ray actors (``cluster.backend: ray``): :class:`RayEnvPool`.

The pool is :class:`~prism_agents.environments.pool.SlotPool` with Ray actors for workers:
``cluster.env_workers`` actors of ``cluster.env_worker_cpus`` CPUs each, slot ``i`` on actor
``i % env_workers``, each actor holding the environments of its slots. Every reset, step or
whole-episode call is one actor method call, and an actor runs its calls in the order they were sent,
so the task order, seeds and results are those of the local :class:`~prism_agents.environments.EnvPool`.

Failures are counted as the local pool counts them:

- an actor that dies during a call, or does not answer within ``environment.step_timeout_s`` /
  ``reset_timeout_s`` (Ray cannot see a hang), is killed for good and replaced by a new actor (the
  pool's own re-creation: a new handle, so no later call can reach the dying one and the episodes that
  fail do not depend on how fast Ray notices); its episodes end as failed;
- an actor that dies while idle is brought back by Ray (``max_restarts=cluster.max_actor_restarts``),
  so a reset sent to it just plays; a step of an episode whose environment died with it is answered
  as failed by the new actor (it holds no environment for that slot). Once Ray has spent those
  restarts, the next call fails and the pool replaces the actor as above: like the local pool, a
  crashing environment costs episodes, never the run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Hashable
from contextlib import ExitStack
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from prism_agents.cluster.runtime import ray_runtime
from prism_agents.config.cluster import ClusterConfig
from prism_agents.environments.base import TextEnv
from prism_agents.environments.pool import (
    Answer,
    Call,
    CallOutcome,
    EnvSpec,
    EnvWorkerError,
    SlotPool,
    Worker,
    limit_threads,
    run_call,
    step_env,
)

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 5.0
"""How long an actor may take to close its environments before it is killed."""
FREE_CPU_WAIT_S = 10.0
"""How long a new pool waits for the CPUs of actors just stopped to come free in Ray's scheduler."""
CPU_EPSILON = 1e-6
"""Slack in comparing fractional CPU counts."""
IDLE_RESTART_FAILURE = "env actor died while idle and Ray restarted it (its environments are gone)"


class EnvActor:
    """The environments of one actor's slots, built on first use; runs one call at a time."""

    def __init__(self, spec: EnvSpec) -> None:
        limit_threads(spec.config.worker_threads)
        self._spec = spec
        self._envs: dict[Hashable, TextEnv] = {}

    def ready(self) -> int:
        """The actor's process id, once it is placed and started."""
        return os.getpid()

    def call(self, key: Hashable, function: Callable, args: tuple) -> CallOutcome:
        """``function(environment of key, *args)``; a step of an episode this actor does not hold fails."""
        if function is step_env and key not in self._envs:
            return CallOutcome(False, None, IDLE_RESTART_FAILURE)
        return run_call(self._envs, self._spec, key, function, args)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs = {}


RemoteEnvActor = ray.remote(EnvActor)


class _Actor(Worker):
    """One env actor and its calls in flight (one object reference per call, in the order sent)."""

    def __init__(self, spec: EnvSpec, options: dict[str, Any]) -> None:
        super().__init__()
        self._spec = spec
        self._options = options
        self.calls: dict[ray.ObjectRef, Hashable] = {}
        self._start()

    def _start(self) -> None:
        self.actor = RemoteEnvActor.options(**self._options).remote(self._spec)

    def _send(self, calls: list[Call]) -> None:
        self.calls = {self.actor.call.remote(key, function, args): key for key, function, args in calls}

    def restart(self) -> None:
        ray.kill(self.actor, no_restart=True)
        self.calls = {}
        self.pending = []
        self._start()

    def close(self) -> None:
        try:
            ray.get(self.actor.close.remote(), timeout=CLOSE_WAIT_S)
        except (RayActorError, GetTimeoutError):
            pass
        ray.kill(self.actor, no_restart=True)


class RayEnvPool(SlotPool):
    """Environment slots stepped in lockstep across Ray actors (see the module docstring).

    Uses the Ray this process is connected to (a run enters :func:`~prism_agents.cluster.runtime.ray_runtime`
    once for all its stages), else connects as ``cluster`` says until :meth:`close`. ``num_workers`` defaults
    to ``cluster.env_workers``. Raises before any episode when the actors cannot be placed.
    """

    def __init__(self, spec: EnvSpec, num_slots: int, cluster: ClusterConfig, num_workers: int | None = None) -> None:
        self._runtime = ExitStack()
        self._runtime.enter_context(ray_runtime(cluster))
        self._workers: list[_Actor] = []
        try:
            super().__init__(spec, num_slots, num_workers or cluster.env_workers)
            self._check_resources(cluster)
            options = {
                "num_cpus": cluster.env_worker_cpus,
                "max_restarts": cluster.max_actor_restarts,
                "max_task_retries": 0,  # a step is not repeatable: a call the actor died in fails its episode
            }
            self._workers = [_Actor(spec, options) for _ in range(self.num_workers)]
            self._wait_until_placed(cluster, spec.config.reset_timeout_s)
            log.info("%d env actors started (%s CPUs each)", self.num_workers, cluster.env_worker_cpus)
        except BaseException:
            self.close()
            raise

    def _check_resources(self, cluster: ClusterConfig) -> None:
        """On a Ray of fixed size (``cluster.address`` unset), refuse actors that could never all be placed, rather
        than wait for them; the CPUs of a pool that just closed are given a few seconds to come free."""
        if cluster.address is not None:  # a cluster may grow (autoscaler): Ray queues the actors
            return
        needed = self.num_workers * cluster.env_worker_cpus
        total = ray.cluster_resources().get("CPU", 0.0)
        keys = f"cluster.env_workers / cluster.env_worker_cpus: {self.num_workers} env actors x {cluster.env_worker_cpus} CPUs"
        if needed > total + CPU_EPSILON:
            raise ValueError(
                f"{keys} = {needed} CPUs, but this Ray has {total} (cluster.local_cpus); lower env_worker_cpus "
                "(fractions pack several actors on a CPU) or raise local_cpus"
            )
        deadline = time.monotonic() + FREE_CPU_WAIT_S
        while (free := ray.available_resources().get("CPU", 0.0)) < needed - CPU_EPSILON:
            if time.monotonic() > deadline:
                raise ValueError(
                    f"{keys} = {needed} CPUs, but only {free} of this Ray's {total} are free (the generator replicas "
                    "and learner workers hold the rest); lower env_worker_cpus or raise cluster.local_cpus"
                )
            time.sleep(0.1)

    def _wait_until_placed(self, cluster: ClusterConfig, timeout_s: float) -> None:
        started = [worker.actor.ready.remote() for worker in self._workers]
        ready, _ = ray.wait(started, num_returns=len(started), timeout=timeout_s)
        if len(ready) < len(started):
            raise RuntimeError(
                f"cluster.env_workers: only {len(ready)} of {len(started)} env actors "
                f"({cluster.env_worker_cpus} CPUs each) started within environment.reset_timeout_s={timeout_s} s; "
                f"Ray has {ray.available_resources().get('CPU', 0.0)} CPUs free (other actors hold the rest)"
            )
        try:
            ray.get(ready)
        except RayActorError as error:
            raise EnvWorkerError(f"an env actor could not start:\n{error}") from error

    def close(self) -> None:
        """Close the actors' environments, stop the actors, and leave the Ray this pool connected to."""
        super().close()
        self._runtime.close()

    def _wait(self, waiting: dict[int, _Actor], timeout: float) -> list[tuple[int, Answer]]:  # type: ignore[override]
        in_flight = [call for worker in waiting.values() for call in worker.calls]
        done, _ = ray.wait(in_flight, num_returns=1, timeout=timeout)
        if done:  # take every answer already there, not only the first
            done, _ = ray.wait(in_flight, num_returns=len(in_flight), timeout=0)
        arrived = set(done)
        answers: list[tuple[int, Answer]] = []
        for w, worker in waiting.items():
            for call in [call for call in worker.calls if call in arrived]:
                key = worker.calls.pop(call)
                try:
                    answers.append((w, (key, ray.get(call))))
                except RayActorError as error:
                    if error.actor_init_failed:
                        raise EnvWorkerError(f"an env actor could not start:\n{error}") from error
                    answers.append((w, f"env actor died ({type(error).__name__})"))
                    break
        return answers
