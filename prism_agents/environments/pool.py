"""Many text environments stepped in parallel workers.

:class:`EnvPool` holds ``num_slots`` environment slots spread over
``num_workers`` processes (slot ``i`` lives in worker ``i % num_workers``). A
lockstep rollout loop reads::

    pool = EnvPool(EnvSpec(config, "train"), num_slots=8)
    results = pool.reset([task_index] * 8)                # [(obs, info), ...]
    while any(active):
        actions = [policy(obs) if alive else None for ...]  # None: slot not stepped
        results = pool.step(actions)                       # None where no action was given

:meth:`SlotPool.submit_reset` / :meth:`SlotPool.submit_step` send the same calls
without waiting, and :meth:`SlotPool.collect` waits for their results, so the
caller can generate for other slots meanwhile (the rollout loop overlaps the
workers' stepping with generation that way). A worker holds one submission at a
time: slots of a worker that still has one can only be submitted again after
its collect.

A worker that crashes (during a call, or while idle between calls), or does
not answer within the reset/step timeout, is killed and started again; every
episode it held ends with ``truncated=True`` and ``info["failure"]`` saying
why, and the run goes on. An exception raised by
an environment is a bug and is raised in the caller as :class:`EnvWorkerError`
with the worker's traceback. :meth:`SlotPool.imap` runs whole-episode functions
(e.g. expert demonstrations) on the same workers, one task per free worker.

:class:`SlotPool` is that bookkeeping, whatever the workers are: :class:`EnvPool`'s
are processes on this machine, :class:`~prism_agents.cluster.env_actors.RayEnvPool`'s
are Ray actors (``cluster.backend: ray``). :func:`open_env_pool` opens the one a
config asks for.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import time
import traceback
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments.base import TextEnv
from prism_agents.registry import ENVIRONMENTS
from prism_agents.types import Task

EXIT_WAIT_S = 1.0
"""How long to wait for a worker whose pipe closed to exit, before reporting its exit code."""

ResetResult = tuple[str, dict[str, Any]]
StepResult = tuple[str, float, bool, bool, dict[str, Any]]
Call = tuple[Hashable, Callable, tuple]
"""``(key, function, args)``: run ``function(environment of key, *args)`` in a worker."""


@dataclass(frozen=True)
class EnvSpec:
    """Picklable recipe for an environment: registry name and settings (in ``config``), split, expert on/off."""

    config: EnvironmentConfig
    split: str
    expert: bool = False

    def env_class(self) -> type[TextEnv]:
        return ENVIRONMENTS.get(self.config.name)

    def build(self) -> TextEnv:
        return self.env_class().from_config(self.config, self.split, expert=self.expert)

    def tasks(self) -> list[Task]:
        return self.env_class().list_tasks(self.config, self.split)


class EnvWorkerError(RuntimeError):
    """An environment raised inside a worker; the message carries the worker's traceback."""


@dataclass
class CallOutcome:
    """What one call in a worker gave: its return value, or the traceback of what it raised (``ok`` false)."""

    ok: bool
    value: Any
    failure: Optional[str] = None  # set when the call's episode was lost: the worker died or timed out


# -- worker side ----------------------------------------------------------------------


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Environment variables that size the thread pools of OpenMP, MKL and OpenBLAS when they load."""


def limit_threads(threads: int) -> None:
    """Let the numeric libraries of this process use ``threads`` threads (``environment.worker_threads``):
    those loaded later read the environment variables, torch (when already imported) is told directly."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def run_call(envs: dict[Hashable, TextEnv], spec: EnvSpec, key: Hashable, function: Callable, args: tuple) -> CallOutcome:
    """``function(envs[key], *args)`` in a worker, building the environment of ``key`` on first use."""
    try:
        if key not in envs:
            envs[key] = spec.build()
        return CallOutcome(True, function(envs[key], *args))
    except Exception:
        return CallOutcome(False, traceback.format_exc())


def _worker_main(conn: multiprocessing.connection.Connection, spec: EnvSpec) -> None:
    """Serve calls ``(key, function, args)``: ``function(env_of_key, *args)``, one reply per call."""
    limit_threads(spec.config.worker_threads)
    envs: dict[Hashable, TextEnv] = {}
    while True:
        try:
            calls = conn.recv()
        except EOFError:
            break
        if calls is None:
            break
        for key, function, args in calls:
            conn.send((key, run_call(envs, spec, key, function, args)))
    for env in envs.values():
        env.close()


def reset_env(env: TextEnv, task_index: int, seed: Optional[int]) -> ResetResult:
    return env.reset(seed=seed, options={"task": task_index})


def step_env(env: TextEnv, action: str) -> StepResult:
    """One step of a running episode (a worker that no longer holds the episode's environment cannot run it)."""
    return env.step(action)


# -- parent side ----------------------------------------------------------------------


class Worker:
    """One worker (process or actor) and the calls it has not answered yet, each answer restarting the clock."""

    def __init__(self) -> None:
        self.pending: list[Hashable] = []
        self.timeout_s = 0.0
        self.deadline = 0.0

    def submit(self, calls: list[Call], timeout_s: float) -> None:
        """Send ``calls``; a worker that died before running them shows up when collecting."""
        self.pending = [key for key, _, _ in calls]
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self._send(calls)

    def answered(self, key: Hashable) -> None:
        self.pending.remove(key)
        self.deadline = time.monotonic() + self.timeout_s

    def _send(self, calls: list[Call]) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Kill the worker and start a fresh one (no environments, nothing pending)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Process(Worker):
    """A worker process on this machine, spoken to through a pipe."""

    def __init__(self, context: Any, spec: EnvSpec) -> None:
        super().__init__()
        self._context = context
        self._spec = spec
        self._start()

    def _start(self) -> None:
        self.conn, child_conn = self._context.Pipe()
        self.process = self._context.Process(target=_worker_main, args=(child_conn, self._spec), daemon=True)
        self.process.start()
        child_conn.close()

    def _send(self, calls: list[Call]) -> None:
        try:
            self.conn.send(calls)
        except OSError:  # BrokenPipeError / ConnectionResetError: the process is gone
            pass

    def restart(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()
        self.pending = []
        self._start()

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


Answer = Union[tuple[Hashable, CallOutcome], str]
"""What :meth:`SlotPool._wait` found for a worker: ``(key, outcome)`` of one call, or why the worker died."""


@dataclass
class PendingCalls:
    """Resets or steps sent to the workers and not collected yet (see :meth:`SlotPool.collect`)."""

    kind: str
    """``reset`` or ``step``."""
    workers: list[int]
    """The workers holding the calls."""
    results: list[Any]
    """One entry per slot: filled by collect; slots whose episode was already lost are filled at submission."""


class SlotPool:
    """Environment slots stepped in lockstep across workers (see the module docstring). A subclass starts the
    workers (``self._workers``) and says how to wait for their answers (:meth:`_wait`)."""

    def __init__(self, spec: EnvSpec, num_slots: int, num_workers: int) -> None:
        if num_slots < 1:
            raise ValueError(f"{type(self).__name__}: num_slots must be at least 1 (got {num_slots})")
        self.spec = spec
        self.num_slots = num_slots
        self.num_workers = min(num_workers, num_slots)
        self._tasks = spec.tasks()
        self._workers: list[Worker] = []
        self._slot_task: list[Optional[Task]] = [None] * num_slots
        self._active = [False] * num_slots
        self._lost: dict[int, str] = {}  # active slot -> why its environment is gone

    # -- lockstep API ------------------------------------------------------------------

    def reset(self, task_indices: Sequence[Optional[int]], seeds: Optional[Sequence[Optional[int]]] = None) -> list[Optional[ResetResult]]:
        """Start task ``task_indices[i]`` in slot ``i`` (None leaves the slot alone); one result per slot."""
        return self.collect(self.submit_reset(task_indices, seeds))

    def step(self, actions: Sequence[Optional[str]]) -> list[Optional[StepResult]]:
        """Apply ``actions[i]`` in slot ``i`` (None skips it); one result per slot, None where skipped."""
        return self.collect(self.submit_step(actions))

    # -- the same calls without waiting ---------------------------------------------------

    def submit_reset(self, task_indices: Sequence[Optional[int]], seeds: Optional[Sequence[Optional[int]]] = None) -> PendingCalls:
        """Send the resets of :meth:`reset` to the workers and return at once; :meth:`collect` gives the results."""
        self._check_length(task_indices, "task_indices")
        seeds = seeds if seeds is not None else [None] * self.num_slots
        self._check_length(seeds, "seeds")
        calls: dict[int, tuple[Callable, tuple]] = {}
        for slot, task_index in enumerate(task_indices):
            if task_index is None:
                continue
            if not 0 <= task_index < len(self._tasks):
                raise IndexError(
                    f"{type(self).__name__}.reset: slot {slot}: task index {task_index} is outside [0, {len(self._tasks)})"
                )
            calls[slot] = (reset_env, (task_index, seeds[slot]))
        self._check_idle(calls, "reset")
        self._restart_dead_workers()
        for slot, (_, (task_index, _)) in calls.items():
            self._slot_task[slot] = self._tasks[task_index]
            self._lost.pop(slot, None)
        return self._submit("reset", calls, [None] * self.num_slots, self.spec.config.reset_timeout_s)

    def submit_step(self, actions: Sequence[Optional[str]]) -> PendingCalls:
        """Send the steps of :meth:`step` to the workers and return at once; :meth:`collect` gives the results."""
        self._check_length(actions, "actions")
        calls: dict[int, tuple[Callable, tuple]] = {}
        for slot, action in enumerate(actions):
            if action is None:
                continue
            if not self._active[slot]:
                raise ValueError(f"{type(self).__name__}.step: slot {slot} has no running episode (reset it, or pass None)")
            calls[slot] = (step_env, (action,))
        self._check_idle(calls, "step")
        self._restart_dead_workers()
        results: list[Optional[StepResult]] = [None] * self.num_slots
        for slot in [slot for slot in calls if slot in self._lost]:
            results[slot] = self._failed_step(slot, self._lost.pop(slot))
            del calls[slot]
        return self._submit("step", calls, results, self.spec.config.step_timeout_s)

    def collect(self, pending: PendingCalls) -> list[Any]:
        """Wait for the calls of ``pending`` and return one result per slot, as :meth:`reset` or :meth:`step` would."""
        results = pending.results
        outcomes = dict(self._collect({w: self._workers[w] for w in pending.workers}, first_only=False, per_key=True))
        for slot, outcome in outcomes.items():
            self._raise_on_error(outcome)
            if pending.kind == "reset":
                results[slot] = outcome.value if outcome.failure is None else ("", self._failure_info(slot, outcome.failure))
                self._active[slot] = outcome.failure is None
            elif outcome.failure is not None:
                results[slot] = self._failed_step(slot, outcome.failure)
            else:
                results[slot] = outcome.value
                _, _, terminated, truncated, _ = outcome.value
                self._active[slot] = not (terminated or truncated)
        return results

    def worker_of(self, slot: int) -> int:
        """Index of the worker that holds ``slot``."""
        return slot % self.num_workers

    # -- whole episodes on free workers ---------------------------------------------------

    def imap(self, function: Callable[..., Any], items: Sequence[tuple], timeout_s: float) -> Iterator[tuple[int, CallOutcome]]:
        """Run ``function(env, *items[i])`` on free workers; yield ``(i, outcome)`` as each finishes.

        Each worker reuses one environment for the items it runs. A worker that
        dies or exceeds ``timeout_s`` on an item is restarted and the item's
        outcome carries ``failure``; an exception in ``function`` raises here.
        """
        queue = list(enumerate(items))
        running: dict[int, int] = {}  # worker -> item position
        while queue or running:
            for w, worker in enumerate(self._workers):
                if w not in running and queue:
                    position, args = queue.pop(0)
                    worker.submit([(("imap", w), function, args)], timeout_s)
                    running[w] = position
            for w, outcome in self._collect({w: self._workers[w] for w in running}, first_only=True):
                yield running.pop(w), self._raise_on_error(outcome)

    # -- what a subclass supplies -----------------------------------------------------------

    def _wait(self, waiting: dict[int, Worker], timeout: float) -> list[tuple[int, Answer]]:
        """The answers of ``waiting`` workers that arrive within ``timeout`` seconds (none when it passes), per
        worker in the order of its calls: ``(w, (key, outcome))``, or ``(w, why)`` for a worker found dead (its
        last entry: its unanswered calls fail)."""
        raise NotImplementedError

    def _restart_dead_workers(self) -> None:
        """Before new calls: restart every worker found dead while idle, losing its running episodes."""

    # -- internals -------------------------------------------------------------------------

    def _check_idle(self, calls: dict[int, tuple[Callable, tuple]], action: str) -> None:
        """Refuse calls for a worker that still holds an uncollected submission (its replies would interleave)."""
        for slot in calls:
            if self._workers[self.worker_of(slot)].pending:
                raise RuntimeError(
                    f"{type(self).__name__}.{action}: slot {slot}'s worker {self.worker_of(slot)} still has calls not "
                    "collected; call collect() on their submission first"
                )

    def _submit(self, kind: str, calls: dict[int, tuple[Callable, tuple]], results: list, timeout_s: float) -> PendingCalls:
        by_worker: dict[int, list[Call]] = {}
        for slot, (function, args) in calls.items():
            by_worker.setdefault(self.worker_of(slot), []).append((slot, function, args))
        for w, worker_calls in by_worker.items():
            self._workers[w].submit(worker_calls, timeout_s)
        return PendingCalls(kind, sorted(by_worker), results)

    def _collect(self, workers: dict[int, Worker], first_only: bool, per_key: bool = False) -> Iterator[tuple[Any, CallOutcome]]:
        """Gather answers from ``workers`` until all answered (or, with ``first_only``, until one worker did).

        Yields ``(slot, outcome)`` with ``per_key`` and ``(worker index, outcome)`` without.
        """
        waiting = {w: worker for w, worker in workers.items() if worker.pending}
        while waiting:
            timeout = max(0.0, min(worker.deadline for worker in waiting.values()) - time.monotonic())
            heard: set[int] = set()
            for w, answer in self._wait(waiting, timeout):
                worker = waiting[w]
                heard.add(w)
                if isinstance(answer, str):
                    yield from self._fail_worker(w, worker, answer, per_key)
                    continue
                key, outcome = answer
                worker.answered(key)
                yield (key if per_key else w), outcome
            for w, worker in waiting.items():
                if w not in heard and time.monotonic() >= worker.deadline:
                    yield from self._fail_worker(w, worker, "worker exceeded the time limit and was restarted", per_key)
            finished = [w for w, worker in waiting.items() if not worker.pending]
            for w in finished:
                del waiting[w]
            if first_only and finished:
                return

    def _fail_worker(self, w: int, worker: Worker, failure: str, per_key: bool) -> Iterator[tuple[Any, CallOutcome]]:
        pending = list(worker.pending)
        worker.restart()
        self._lose_episodes(w, f"{failure} while another slot of the same worker was running", pending)
        if per_key:
            for key in pending:
                yield key, CallOutcome(False, None, failure)
        else:
            yield w, CallOutcome(False, None, failure)

    def _lose_episodes(self, w: int, failure: str, answered: Sequence[Hashable]) -> None:
        """Mark the running episodes of worker ``w`` lost, except the slots in ``answered`` (failed by the caller)."""
        for slot in range(w, self.num_slots, self.num_workers):
            if self._active[slot] and slot not in answered:
                self._lost[slot] = failure

    @staticmethod
    def _raise_on_error(outcome: CallOutcome) -> CallOutcome:
        if not outcome.ok and outcome.failure is None:
            raise EnvWorkerError(f"an environment raised in a worker:\n{outcome.value}")
        return outcome

    def _failure_info(self, slot: int, failure: str) -> dict[str, Any]:
        task = self._slot_task[slot]
        return {
            "task_id": task.task_id if task else "",
            "task_type": task.task_type if task else "",
            "admissible_actions": [],
            "won": False,
            "score": 0.0,
            "failure": failure,
        }

    def _failed_step(self, slot: int, failure: str) -> StepResult:
        self._active[slot] = False
        return "", 0.0, False, True, self._failure_info(slot, failure)

    def _check_length(self, values: Sequence, name: str) -> None:
        if len(values) != self.num_slots:
            raise ValueError(f"{type(self).__name__}: {name} must have one entry per slot ({self.num_slots}), got {len(values)}")

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    def __enter__(self) -> SlotPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EnvPool(SlotPool):
    """Environment slots stepped in lockstep across worker processes on this machine (``cluster.backend:
    local``); ``num_workers`` defaults to ``environment.num_workers``."""

    def __init__(self, spec: EnvSpec, num_slots: int, num_workers: Optional[int] = None) -> None:
        super().__init__(spec, num_slots, num_workers or spec.config.num_workers)
        context = multiprocessing.get_context(spec.config.start_method)
        self._workers: list[_Process] = [_Process(context, spec) for _ in range(self.num_workers)]

    def _wait(self, waiting: dict[int, _Process], timeout: float) -> list[tuple[int, Answer]]:  # type: ignore[override]
        ready = multiprocessing.connection.wait([worker.conn for worker in waiting.values()], timeout=timeout)
        answers: list[tuple[int, Answer]] = []
        for w, worker in waiting.items():
            if worker.conn in ready:
                try:
                    answers.append((w, worker.conn.recv()))
                except (EOFError, OSError):
                    worker.process.join(timeout=EXIT_WAIT_S)  # reap it, so that its exit code is known
                    answers.append((w, f"worker process died (exit code {worker.process.exitcode})"))
        return answers

    def _restart_dead_workers(self) -> None:
        for w, worker in enumerate(self._workers):
            if not worker.pending and not worker.process.is_alive():  # a busy one is handled when collected
                failure = f"worker process died while idle (exit code {worker.process.exitcode}) and was restarted"
                self._lose_episodes(w, failure, ())
                worker.restart()


def pool_workers(environment: EnvironmentConfig, cluster: Optional[ClusterConfig] = None) -> int:
    """How many workers a pool of ``cluster``'s backend starts: ``cluster.env_workers`` on Ray, else
    ``environment.num_workers``."""
    return cluster.env_workers if cluster is not None and cluster.uses_ray else environment.num_workers


def open_env_pool(spec: EnvSpec, num_slots: int, cluster: Optional[ClusterConfig] = None) -> SlotPool:
    """The pool of ``cluster.backend``: :class:`EnvPool` for ``local`` (or no cluster config), Ray actors
    (:class:`~prism_agents.cluster.env_actors.RayEnvPool`, Ray imported only then) for ``ray``."""
    if cluster is None or not cluster.uses_ray:
        return EnvPool(spec, num_slots)
    from prism_agents.cluster.env_actors import RayEnvPool

    return RayEnvPool(spec, num_slots, cluster)
