"""The distributed learner (``cluster.backend: ray``): torch.distributed learner workers placed by Ray, and the
driver-side learner the pipeline calls like a local one.

:class:`LearnerGroup` places ``cluster.learner_workers`` Ray actors in one placement group (``learner_cpus`` and
``learner_gpus`` each), joins them into a torch.distributed group (gloo on CPUs, NCCL on GPUs; rank 0 picks the
rendezvous address) and has each load the base model with a LoRA adapter. :meth:`LearnerGroup.learner` gives a
:class:`DistributedLearner`: its ``train`` sends the driver policy's adapter weights to every worker, runs the
learner there (data parallel, :mod:`~prism_agents.learners.parallel`: DDP over the adapter), copies the trained
adapter back into the driver's policy and replays the step metrics to ``on_step``; the learner's own state
(optimizer, PPO's value head) lives in the workers across calls and travels through ``save_state`` /
``load_state``. :meth:`LearnerGroup.probe` runs the gradient probe with the trajectories' batches shared over
the workers.

A worker that dies or fails stops the whole group (the others would wait in a collective for ever) and the call
raises a :class:`LearnerGroupError`: the stage fails, and ``prism-agents run --resume`` continues from the last
committed state. Ray is imported only here, when a group starts.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from prism_agents.config import RunConfig
from prism_agents.config.cluster import ClusterConfig, actor_threads
from prism_agents.config.model import LoraConfig, ModelConfig
from prism_agents.io import write_bytes_atomic
from prism_agents.learners.base import Learner, StepCallback
from prism_agents.learners.parallel import DataParallel
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.registry import LEARNERS
from prism_agents.routers.probe import GradientProbe, ProbeResult, in_input_order
from prism_agents.types import Trajectory

log = logging.getLogger(__name__)

PLACEMENT_TIMEOUT_S = 120.0
"""How long the group waits for Ray to reserve its workers' CPUs and GPUs before it gives up."""
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
"""torch.distributed's timeout for the rendezvous and every collective."""

Weights = dict[str, torch.Tensor]


class LearnerGroupError(RuntimeError):
    """A learner worker died or failed; the group was stopped."""


def adapter_weights(policy: Policy) -> Weights:
    """The adapter's parameters of ``policy`` by name, on the CPU."""
    return {name: p.detach().cpu().clone() for name, p in policy.model.named_parameters() if p.requires_grad}


def load_adapter_weights(policy: Policy, weights: Weights) -> None:
    """Copy ``weights`` into ``policy``'s adapter in place; an error names the first parameter that does not match."""
    own = {name: p for name, p in policy.model.named_parameters() if p.requires_grad}
    if own.keys() != weights.keys() or any(own[name].shape != weights[name].shape for name in own):
        differing = next(name for name in sorted(own.keys() | weights.keys()) if name not in own or name not in weights
                         or own[name].shape != weights[name].shape)
        raise ValueError(
            f"the learner workers' adapter does not match the driver's at {differing}: the adapter was saved with "
            "another shape than the config's lora section (lora.rank, lora.target_modules) builds"
        )
    with torch.no_grad():
        for name, parameter in own.items():
            parameter.copy_(weights[name].to(parameter.device, parameter.dtype))


class LearnerWorker:
    """One rank of the group (a Ray actor): the base model with a LoRA adapter, and the learners built on it."""

    def __init__(self, rank: int, world: int, model: ModelConfig, lora: LoraConfig, threads: int) -> None:
        torch.set_num_threads(actor_threads(threads, world))  # on this worker's node
        self.policy = Policy.load(model, lora)
        self.parallel = DataParallel(rank, world, self.policy.device.type)
        self.learners: dict[str, Learner] = {}

    def rendezvous(self) -> str:
        """``host:port`` of a free port on this worker's node, for the group's ``init_process_group``."""
        import ray

        host = ray.util.get_node_ip_address()
        with socket.socket() as probe:
            probe.bind((host, 0))
            return f"{host}:{probe.getsockname()[1]}"

    def join(self, address: str, backend: str) -> None:
        """Join the torch.distributed group of the workers at ``address``."""
        import torch.distributed as dist

        if self.policy.device.type == "cuda":
            torch.cuda.set_device(self.policy.device)
        dist.init_process_group(
            backend, init_method=f"tcp://{address}", rank=self.parallel.rank, world_size=self.parallel.world,
            timeout=COLLECTIVE_TIMEOUT,
        )

    def build(self, key: str, name: str, config: Any) -> None:
        """Build learner ``name`` with ``config`` under ``key``, in this worker's place of the group."""
        learner = LEARNERS.get(name)(config)
        if not hasattr(learner, "parallel") and self.parallel.world > 1:
            raise ValueError(
                f"learner {name!r} ({type(learner).__name__}) is not data parallel (it has no `parallel` attribute): "
                "run it with cluster.learner_workers=1"
            )
        learner.parallel = self.parallel
        self.learners[key] = learner

    def train(self, key: str, weights: Weights, data: Sequence[Any], prompts: PromptBuilder) -> tuple:
        """Train learner ``key`` from adapter ``weights``: its metrics, its step metrics, and (rank 0) the adapter."""
        load_adapter_weights(self.policy, weights)
        steps: list[dict[str, float]] = []
        metrics = self.learners[key].train(self.policy, data, prompts=prompts, on_step=steps.append)
        return metrics, steps, adapter_weights(self.policy) if self.parallel.rank == 0 else None

    def save_state(self, key: str) -> bytes | None:
        """What learner ``key``'s ``save_state`` writes (None when it writes nothing)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "state.pt"
            self.learners[key].save_state(path)
            return path.read_bytes() if path.is_file() else None

    def load_state(self, key: str, weights: Weights, state: bytes) -> None:
        """Restore learner ``key``'s ``state`` (as its ``save_state`` wrote it) for the adapter ``weights``."""
        load_adapter_weights(self.policy, weights)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "state.pt"
            path.write_bytes(state)
            self.learners[key].load_state(path, self.policy)

    def probe(
        self, weights: Weights, prompts: PromptBuilder, trajectories: Sequence[Trajectory], gradients: bool,
        options: dict[str, Any],
    ) -> list[tuple[int, ProbeResult]]:
        """This worker's share of the probe's batches on the adapter ``weights`` (see :meth:`GradientProbe.probe_shard`)."""
        load_adapter_weights(self.policy, weights)
        probe = GradientProbe(self.policy, prompts, **options | {"progress": False})
        return probe.probe_shard(trajectories, gradients, self.parallel)


class LearnerGroup:
    """``cluster.learner_workers`` :class:`LearnerWorker` actors in a torch.distributed group (see the module
    docstring); a context manager that stops them (and a private Ray it started) on exit."""

    def __init__(
        self, cluster: ClusterConfig, model: ModelConfig, lora: LoraConfig, worker: type[LearnerWorker] = LearnerWorker
    ) -> None:
        """Start the workers (``worker``: the actor class; a subclass adds measurements, as
        ``benchmarks/scaling_learner.py`` does) and join them into one torch.distributed group."""
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from prism_agents.cluster.runtime import ray_runtime

        self._ray = ray
        self._stack = ExitStack()
        self._stack.enter_context(ray_runtime(cluster))
        self.workers: list[Any] = []
        self._keys = 0
        world, gpus = cluster.learner_workers, cluster.learner_gpus
        bundle = {"CPU": cluster.learner_cpus} | ({"GPU": gpus} if gpus else {})
        total = ray.cluster_resources()
        if cluster.address is None and any(world * need > total.get(kind, 0.0) + 1e-9 for kind, need in bundle.items()):
            self._stack.close()  # a private Ray never grows: refuse now rather than wait
            raise LearnerGroupError(
                f"cluster.learner_workers={world} x learner_cpus={cluster.learner_cpus} CPUs (learner_gpus={gpus} GPUs) "
                f"do not fit this Ray ({total.get('CPU', 0.0):g} CPUs, {total.get('GPU', 0.0):g} GPUs: "
                "cluster.local_cpus / local_gpus); lower them or raise local_cpus / local_gpus"
            )
        group = placement_group([dict(bundle) for _ in range(world)], strategy="PACK")
        self._stack.callback(remove_placement_group, group)
        try:
            try:
                ray.get(group.ready(), timeout=PLACEMENT_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                raise LearnerGroupError(
                    f"Ray could not place cluster.learner_workers={world} workers of learner_cpus={cluster.learner_cpus}"
                    f" and learner_gpus={gpus} within {PLACEMENT_TIMEOUT_S:.0f} s (the cluster has "
                    f"{ray.cluster_resources()}, free {ray.available_resources()}); lower them or add nodes"
                ) from None
            worker_class = ray.remote(worker)
            device = "cuda" if gpus else "cpu"
            settings = dataclasses.replace(model, device=device)
            for rank in range(world):
                strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=rank)
                self.workers.append(
                    worker_class.options(num_cpus=cluster.learner_cpus, num_gpus=gpus, scheduling_strategy=strategy,
                                         max_restarts=0)
                    .remote(rank, world, settings, lora, cluster.actor_threads)
                )
            self._stack.callback(self._stop)
            address = self._call_rank0("rendezvous")
            self._call_all("join", address, "nccl" if gpus else "gloo")
            log.info("learner group: %d workers (%s, %s) joined at %s", world, device, "nccl" if gpus else "gloo", address)
        except BaseException:
            self._stack.close()
            raise

    def learner(self, name: str, config: Any) -> DistributedLearner:
        """Learner ``name`` (a registered one) with its ``config`` on the group's workers."""
        self._keys += 1
        key = f"{name}-{self._keys}"
        self._call_all("build", key, name, config)
        return DistributedLearner(self, key, config)

    def probe(
        self, policy: Policy, prompts: PromptBuilder, trajectories: Sequence[Trajectory], gradients: bool = True,
        **options: Any,
    ) -> list[ProbeResult]:
        """:meth:`GradientProbe.probe` of ``trajectories`` on ``policy``'s adapter, the batches shared over the
        workers; ``options``: :class:`GradientProbe`'s keyword arguments."""
        put = self._ray.put  # once for all workers
        shares = self._call_all(
            "probe", put(adapter_weights(policy)), put(prompts), put(list(trajectories)), gradients, options
        )
        return in_input_order(shares, len(trajectories))

    def _call_rank0(self, method: str, *args: Any) -> Any:
        return self._wait([getattr(self.workers[0], method).remote(*args)], method)[0]

    def _call_all(self, method: str, *args: Any) -> list[Any]:
        return self._wait([getattr(worker, method).remote(*args) for worker in self.workers], method)

    def _wait(self, futures: list[Any], method: str) -> list[Any]:
        """The results of ``futures`` in order; the first failure stops the group and raises."""
        ray = self._ray
        pending = list(futures)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready[0])
            except Exception as error:
                rank, world = futures.index(ready[0]), len(self.workers)
                self._stop()
                cause = getattr(error, "cause", None) or error  # a task's own exception, or the actor's death
                reason = (str(cause).strip().splitlines() or [""])[-1]
                raise LearnerGroupError(
                    f"learner worker {rank} of {world} failed in {method}: {type(cause).__name__}: {reason}; the "
                    "learner group was stopped (the stage fails; `prism-agents run --resume` continues from the last "
                    "committed state)"
                ) from error
        return ray.get(futures)

    def _stop(self) -> None:
        """Kill every worker (also those waiting in a collective for a dead one)."""
        for worker in self.workers:
            self._ray.kill(worker, no_restart=True)
        self.workers = []

    def close(self) -> None:
        """Stop the workers and release their placement (and a private Ray this group started)."""
        self._stack.close()

    def __enter__(self) -> LearnerGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class DistributedLearner:
    """A registered learner running on a :class:`LearnerGroup`, with the :class:`~prism_agents.learners.base.Learner`
    contract: ``train`` updates the driver's policy in place, the learner's state lives in the workers."""

    def __init__(self, group: LearnerGroup, key: str, config: Any) -> None:
        self.group = group
        self.key = key
        self.config = config

    def train(
        self,
        policy: Policy,
        data: Sequence[Any],
        *,
        prompts: PromptBuilder,
        on_step: StepCallback | None = None,
    ) -> dict[str, float]:
        """Train on every worker from ``policy``'s adapter, copy the result into ``policy``, replay the steps to
        ``on_step`` (after the training, in order) and return rank 0's final metrics (those of the whole run)."""
        put = self.group._ray.put  # once for all workers
        results = self.group._call_all("train", self.key, put(adapter_weights(policy)), put(list(data)), put(prompts))
        metrics, steps, trained = results[0]
        load_adapter_weights(policy, trained)
        for values in steps:
            if on_step is not None:
                on_step(values)
        return metrics

    def save_state(self, path: Path) -> None:
        """Write the learner's state (rank 0's; every worker holds the same) to ``path``, atomically."""
        state = self.group._call_rank0("save_state", self.key)
        if state is not None:
            write_bytes_atomic(path, state)

    def load_state(self, path: Path, policy: Policy) -> None:
        """Restore ``path``'s state on every worker, for ``policy``'s adapter."""
        weights = self.group._ray.put(adapter_weights(policy))
        self.group._call_all("load_state", self.key, weights, Path(path).read_bytes())


@contextmanager
def learner_for(config: RunConfig, name: str, settings: Any) -> Iterator[Learner | DistributedLearner]:
    """Learner ``name`` with ``settings`` for the block: in this process, or with ``cluster.backend: ray`` on a
    :class:`LearnerGroup` of ``cluster.learner_workers`` workers stopped at the end."""
    if not config.cluster.uses_ray:
        yield LEARNERS.get(name)(settings)
        return
    with LearnerGroup(config.cluster, config.model, config.lora) as group:
        yield group.learner(name, settings)

