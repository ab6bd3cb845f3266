"""Generator replicas as Ray actors (``cluster.backend: ray``): one :class:`Generator` over many engines.

:class:`ReplicaGenerator` starts ``cluster.generator_replicas`` actors, each running the configured generator
(vLLM by default, or ``hf``) with ``cluster.generator_cpus`` CPUs, ``cluster.generator_gpus`` GPUs and
``cluster.tensor_parallel_size`` for vLLM. It is data parallel: a batch of prompts is cut into contiguous
shares, one per replica (sizes differ by at most one), run at once, and the results come back in the
caller's order; ``score`` likewise.

Weight sync: each new adapter version travels once through Ray's object store as its two peft files
(``adapter_config.json`` and ``adapter_model.safetensors``: the LoRA tensors, not merged weights; 19.6 MB
in float32 for the embedded SmolLM2-135M with the default ``lora`` section, rank 16 on the seven
projections). So no shared file system is needed: each replica writes them into a private temporary folder
on its own node and its generator syncs from there in place (merged: the changed projections reloaded into
the running engine; lora: a new LoRA request; hf: a new peft adapter). With ``reference``,
:meth:`ReplicaGenerator.load_adapter` returns only after the served-adapter check passed on every replica:
the training side's log-probs on the probe are computed once here and compared with each replica's scores,
and :class:`~prism_agents.policies.generators.check.AdapterMismatchError` names the replica that differs.

Sampling: vLLM replicas sample each prompt on the seed of its place in the whole batch, derived from the call's
seed as one local engine derives it, so sampled completions are those of one engine whatever the number of
replicas. An engine without per-prompt seeds (``hf``) samples its share on a stream derived from the call's seed
and its index, so its sampled completions depend on the number of replicas; greedy ones and scores never do.

Faults: a replica actor that dies is restarted by Ray (up to ``cluster.max_actor_restarts`` times). Every
call carries the number of the weight sync the replica must hold; a restarted replica is back at the base
model it started with, so it is first synced again to what is served now (and checked against the last
check's reference), then its share is run again with the same seed: the results are those of an unbroken
run. Once the restarts are used up :class:`ReplicaLostError` ends the stage, and ``prism-agents run
--resume`` continues from the last committed state.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray.exceptions import ActorUnavailableError, RayActorError

from prism_agents.config.cluster import ClusterConfig, actor_threads
from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.policies.generators import build_generator
from prism_agents.policies.generators.base import Completion, Generator, PromptScores, TrainingSide, derived_seed
from prism_agents.policies.generators.check import CheckResult, ProbeReference, served_by
from prism_agents.policies.generators.vllm import VLLMGenerator

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""The files of a peft adapter folder that a replica needs to serve it."""
RESTART_TIMEOUT_S = 900.0
"""Longest wait for Ray to bring a dead replica back (its engine starts again: minutes for a large model)."""
RESTART_POLL_S = 0.5
"""Pause between two looks at a restarting replica."""


class ReplicaOutOfSync(RuntimeError):
    """A replica was asked to run a call but does not hold the weight sync the call expects (it was restarted)."""


class ReplicaLostError(RuntimeError):
    """A replica died more often than ``cluster.max_actor_restarts`` allows, or Ray could not restart it."""


@dataclass
class AdapterFiles:
    """An adapter folder's files as bytes: what travels through the object store to every replica."""

    files: dict[str, bytes]
    """File name -> content, for each of :data:`ADAPTER_FILES`."""

    @classmethod
    def read(cls, folder: Path) -> AdapterFiles:
        """The files of the adapter folder ``folder``; FileNotFoundError names a missing one."""
        missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"adapter folder {str(folder)!r} has no {', '.join(missing)}")
        return cls({name: (folder / name).read_bytes() for name in ADAPTER_FILES})

    def write(self, folder: Path) -> Path:
        """Write the files into ``folder`` (an existing, empty folder) and return it."""
        for name, content in self.files.items():
            (folder / name).write_bytes(content)
        return folder

    @property
    def size(self) -> int:
        """Bytes sent."""
        return sum(map(len, self.files.values()))


class GeneratorReplica:
    """The body of one replica actor: the configured generator and the number of the weight sync it holds."""

    def __init__(
        self, config: GeneratorConfig, base_model_path: str, tensor_parallel_size: int, threads: int, replicas: int
    ) -> None:
        torch.set_num_threads(actor_threads(threads, replicas))  # on this replica's node
        self.generator = build_generator(config, base_model_path, tensor_parallel_size)
        self.sync = 0
        """Number of the last weight sync applied; 0 = the base model as the engine started (or restarted)."""
        self._folder = Path(tempfile.mkdtemp(prefix="prism-replica-"))
        """Node-local folder holding the adapter version now served."""
        self._served: Path | None = None

    def ready(self) -> tuple[int, str]:
        """This actor's process id and the class of its generator (once the engine has started)."""
        return os.getpid(), type(self.generator).__name__

    def serve(self, adapter: AdapterFiles | None, version: int | None, sync: int) -> None:
        """Serve ``adapter`` as ``version`` (None: the base model); the replica then holds weight sync ``sync``."""
        previous = self._served
        if adapter is None:
            self.generator.use_base_model()
            self._served = None
        else:
            self._served = adapter.write(Path(tempfile.mkdtemp(prefix=f"sync{sync}-", dir=self._folder)))
            self.generator.load_adapter(self._served, version)
        if previous is not None:
            shutil.rmtree(previous)
        self.sync = sync

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int], replica_seed: int, sync: int
    ) -> list[Completion]:
        """Completions of ``prompts`` under weight sync ``sync``: each sampled on its seed of ``seeds`` by an engine
        that takes per-prompt seeds (vLLM), else all on the stream of ``replica_seed``."""
        self._require(sync)
        if isinstance(self.generator, VLLMGenerator):
            return self.generator.generate_seeded(prompts, sampling, seeds)
        self.generator.reseed(replica_seed)
        return self.generator.generate(prompts, sampling)

    def score(self, prompts: list[list[int]], sync: int) -> list[PromptScores]:
        """Teacher-forced scores of ``prompts`` under weight sync ``sync``."""
        self._require(sync)
        return self.generator.score(prompts)

    def close(self) -> None:
        """Free the engine and the adapter folder."""
        self.generator.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _require(self, sync: int) -> None:
        if self.sync != sync:
            raise ReplicaOutOfSync(f"replica holds weight sync {self.sync}, the call expects {sync}")


def _connection() -> tuple[str, str]:
    """This process's Ray connection: its job (one per ``ray.init``) on its node (one per Ray started)."""
    context = ray.get_runtime_context()
    return context.get_job_id(), context.get_node_id()


def contiguous_shares(count: int, parts: int) -> list[range]:
    """``range(count)`` cut into ``parts`` contiguous pieces whose sizes differ by at most one (larger first)."""
    size, extra = divmod(count, parts)
    starts = [index * size + min(index, extra) for index in range(parts + 1)]
    return [range(start, end) for start, end in zip(starts, starts[1:])]


class ReplicaGenerator(Generator):
    """``cluster.generator_replicas`` generator actors behind the :class:`Generator` contract (module docstring).

    Needs a connected Ray (:func:`prism_agents.cluster.runtime.ray_runtime`).
    """

    def __init__(self, config: GeneratorConfig, base_model_path: str | Path, cluster: ClusterConfig) -> None:
        super().__init__(config, base_model_path)
        if not ray.is_initialized():
            raise RuntimeError("cluster.backend=ray: the generator replicas need a connected Ray (ray_runtime)")
        self.cluster = cluster
        self._connection = _connection()
        """The Ray connection the replicas were started on (see :meth:`connected`)."""
        threads, replicas = config.num_threads or cluster.actor_threads, cluster.generator_replicas
        actor = ray.remote(GeneratorReplica).options(
            num_cpus=cluster.generator_cpus,
            num_gpus=cluster.generator_gpus,
            max_restarts=cluster.max_actor_restarts,
            max_task_retries=0,
        )
        self.replicas = [
            actor.remote(config, str(self.base_model_path), cluster.tensor_parallel_size, threads, replicas)
            for _ in range(replicas)
        ]
        """The replica actors, in share order."""
        self._sync = 0
        """Number of the weight sync every replica must hold (0: the base model the engines started with)."""
        self._served: tuple[Any, int | None] = (None, None)
        """What every replica serves now: the object reference of its :class:`AdapterFiles` and its version
        (None, None: the base model)."""
        self._reference: ProbeReference | None = None
        """The last passed check's training side, for re-checking a restarted replica (None: not checked)."""
        try:
            started = ray.get([replica.ready.remote() for replica in self.replicas])
        except RayActorError as error:
            self.close()
            raise RuntimeError(
                f"cluster.backend=ray: a generator replica could not start generator {config.name!r} "
                f"({cluster.generator_cpus} CPUs, {cluster.generator_gpus} GPUs each): {error}"
            ) from error
        self.engines = [engine for _, engine in started]
        """Generator class each replica runs (``VLLMGenerator``, or ``HFGenerator`` after a fallback)."""
        log.info("started %d generator replicas (%s)", len(self.replicas), ", ".join(self.engines))

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None = None) -> list[Completion]:
        sampling = self._sampling(sampling)
        call_seed = self._call_seed()
        calls = {}
        for index, (positions, share) in self._shares(prompts).items():
            seeds = [derived_seed(call_seed, position) for position in positions]
            calls[index] = (share, sampling, seeds, derived_seed(call_seed, "replica", index), self._sync)
        return self._in_order(self._each("generate", calls))

    def score(self, prompts: Sequence[Sequence[int]]) -> list[PromptScores]:
        calls = {index: (share, self._sync) for index, (_, share) in self._shares(prompts).items()}
        return self._in_order(self._each("score", calls))

    def _shares(self, prompts: Sequence[Sequence[int]]) -> dict[int, tuple[list[int], list[list[int]]]]:
        """Each replica's contiguous share of ``prompts`` (their places in ``prompts`` and the prompts), by replica
        (replicas left without one are omitted)."""
        shares = contiguous_shares(len(prompts), len(self.replicas))
        return {index: (list(share), [list(prompts[i]) for i in share]) for index, share in enumerate(shares) if share}

    def check(self, reference: TrainingSide) -> CheckResult:
        """The served-adapter check on every replica: the training side scored once, each replica's probe
        scores compared with it; raises AdapterMismatchError naming the first replica that differs."""
        probe = ProbeReference.of(reference.model, reference.tokenizer, self.config.check_prompt)
        scores = self._each("score", {index: ([probe.probe], self._sync) for index in range(len(self.replicas))})
        results = [self._compare(probe, index, scores[index][0]) for index in range(len(self.replicas))]
        self._reference = probe
        return CheckResult(
            version=self.adapter_version,
            positions=results[0].positions,
            max_logprob_diff=max(result.max_logprob_diff for result in results),
        )

    def _serve_adapter(self, path: Path, version: int) -> None:
        adapter = AdapterFiles.read(path)
        log.info("sending adapter version %d (%.1f MB) to %d replicas", version, adapter.size / 1e6, len(self.replicas))
        self._sync_all(ray.put(adapter), version)

    def _serve_base(self) -> None:
        self._sync_all(None, None)

    def _sync_all(self, adapter: Any, version: int | None) -> None:
        """Make every replica serve ``adapter`` (an object reference; None: the base model) as the next sync."""
        self._sync += 1
        self._served, self._reference = (adapter, version), None
        self._each("serve", {index: (adapter, version, self._sync) for index in range(len(self.replicas))})

    def _compare(self, probe: ProbeReference, index: int, served: PromptScores) -> CheckResult:
        """Replica ``index``'s probe scores against the training side's ``probe``; a mismatch names the replica."""
        replica = f"generator replica {index} of {len(self.replicas)} ({self.engines[index]})"
        where = served_by(replica, self.adapter_version)
        return probe.compare(served, self.adapter_version, where, self.config.check_tolerance)

    def _each(self, method: str, calls: dict[int, tuple]) -> dict[int, Any]:
        """``method(*args)`` on each replica of ``calls`` at once; the results by replica."""
        pending = {index: getattr(self.replicas[index], method).remote(*args) for index, args in calls.items()}
        return {index: self._result(index, future, method, calls[index]) for index, future in pending.items()}

    def _result(self, index: int, future: Any, method: str, args: tuple) -> Any:
        """The result of ``future``; when replica ``index`` died or was restarted, it is synced again
        (:meth:`_recover`) and ``method(*args)`` repeated, at most ``cluster.max_actor_restarts`` times."""
        for attempt in range(self.cluster.max_actor_restarts + 1):
            try:
                if attempt:
                    self._recover(index)
                    future = getattr(self.replicas[index], method).remote(*args)
                return ray.get(future)
            except (RayActorError, ReplicaOutOfSync) as error:
                failure = error
                log.warning("generator replica %d: %s", index, type(error).__name__)
        raise self._lost(index, failure) from failure

    def _recover(self, index: int) -> None:
        """Wait for Ray to restart replica ``index``, serve it what is served now, and repeat the last check."""
        replica = self.replicas[index]
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        while True:
            try:
                ray.get(replica.ready.remote())
                break
            except ActorUnavailableError:  # still restarting
                if time.monotonic() > deadline:
                    raise
                time.sleep(RESTART_POLL_S)
        ray.get(replica.serve.remote(*self._served, self._sync))
        if self._reference is not None:
            served = ray.get(replica.score.remote([self._reference.probe], self._sync))[0]
            self._compare(self._reference, index, served)

    def _lost(self, index: int, error: BaseException) -> ReplicaLostError:
        return ReplicaLostError(
            f"generator replica {index} of {len(self.replicas)} failed and could not be brought back within "
            f"cluster.max_actor_restarts={self.cluster.max_actor_restarts} ({type(error).__name__}: "
            f"{str(error).splitlines()[0]}); "
            "the stage stops here and `prism-agents run <run folder> --resume` continues from its last committed state"
        )

    @staticmethod
    def _in_order(results: dict[int, list]) -> list:
        """The replicas' result lists joined in share order (the caller's order of prompts)."""
        return [item for index in sorted(results) for item in results[index]]

    def connected(self) -> bool:
        """Whether this process is still connected to the Ray the replicas were started on (a run that started
        its own Ray stops it, and the replicas with it, when it ends)."""
        return ray.is_initialized() and _connection() == self._connection

    def close(self) -> None:
        """Stop every replica (its engine freed, its adapter folder removed) and end the actors."""
        if not self.replicas or not self.connected():
            self.replicas = []
            return
        closing = [replica.close.remote() for replica in self.replicas]
        ray.wait(closing, num_returns=len(closing), timeout=60)
        for replica in self.replicas:
            ray.kill(replica, no_restart=True)
        self.replicas = []
